#include "datasets/media/video_decode.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "datasets/media/ffmpeg_io.h"
#include "framework/error.h"

extern "C" {
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
}

namespace cb {

namespace {

// A target further ahead than this many frames is reached by seeking to its keyframe instead of
// decoding every frame in between.
constexpr int64_t kSeekAhead = 32;

struct SwsDeleter {
  void operator()(SwsContext* s) const { sws_freeContext(s); }
};

}  // namespace

struct VideoReader::State {
  std::string name;
  ffmpeg::Input input;
  ffmpeg::CodecPtr dec;
  int stream = -1;
  AVRational time_base{0, 1};
  double rate = 0;  // frames per second
  int64_t start_pts = 0;
  int64_t max_pixels = 0;
  ffmpeg::PacketPtr packet{av_packet_alloc()};
  ffmpeg::FramePtr frame{av_frame_alloc()};
  std::unique_ptr<SwsContext, SwsDeleter> sws;
  int64_t cursor = -1;     // index of the last decoded frame; -1 before the first
  bool at_start = true;    // nothing read since opening or rewinding
  bool draining = false;   // the demuxer is exhausted, the decoder is being flushed
  std::string read_error;  // why the demuxer stopped early, if it did
  int64_t counted = -1;    // frame count found by decoding everything
  // decord's frame index: the pts of every video packet, sorted, read once at opening without decoding.
  // Frame i is the frame shown at pts_table[i], on constant and variable frame rates alike. Empty when
  // some packet has no pts (then frames are numbered from timestamp x frame rate, else counted).
  std::vector<int64_t> pts_table;
  std::string index_error;  // why reading the packets for the table stopped early, if it did

  explicit State(ffmpeg::Input in, std::string n, int64_t max_px)
      : name(std::move(n)), input(std::move(in)), max_pixels(max_px) {
    if (!packet || !frame) fail("video '{}': out of memory", name);
    AVFormatContext* fmt = input.get();
    int rc = avformat_find_stream_info(fmt, nullptr);
    if (rc < 0) fail("video '{}': cannot read stream info: {}", name, ffmpeg::error_string(rc));
    stream = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, nullptr, 0);
    if (stream < 0) fail("video '{}': no video stream in the file ({})", name, ffmpeg::error_string(stream));
    AVStream* st = fmt->streams[stream];
    const int64_t w = st->codecpar->width, h = st->codecpar->height;
    if (w <= 0 || h <= 0) fail("video '{}': invalid frame size {}x{}", name, w, h);
    if (w * h > max_pixels)
      fail("video '{}': {}x{} = {} pixels per frame exceeds the limit of {}", name, w, h, w * h, max_pixels);
    dec = ffmpeg::open_decoder(fmt, stream, name, "video");
    time_base = st->time_base;
    const AVRational guessed = av_guess_frame_rate(fmt, st, nullptr);
    rate = guessed.num > 0 && guessed.den > 0 ? av_q2d(guessed) : 0;
    if (rate <= 0) fail("video '{}': unknown frame rate", name);
    start_pts = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
    index_packets();
  }

  // Fills pts_table the way decord's IndexKeyframes does (every packet of the stream, sorted by pts),
  // then rewinds. Other streams are discarded so that their data is not read.
  void index_packets() {
    AVFormatContext* fmt = input.get();
    for (unsigned i = 0; i < fmt->nb_streams; ++i)
      if (int(i) != stream) fmt->streams[i]->discard = AVDISCARD_ALL;
    bool complete = true;
    int rc = 0;
    while ((rc = av_read_frame(fmt, packet.get())) >= 0) {
      if (packet->stream_index == stream) {
        if (packet->pts == AV_NOPTS_VALUE) complete = false;
        pts_table.push_back(packet->pts);
      }
      av_packet_unref(packet.get());
    }
    if (rc != AVERROR_EOF) index_error = ffmpeg::error_string(rc);
    if (complete) {
      std::sort(pts_table.begin(), pts_table.end());
    } else {
      pts_table.clear();
    }
    seek(0);
  }

  // The frame index of the decoded `frame`: its place in pts_table (or, without a table, from its
  // timestamp x frame rate) when it has a timestamp, else by counting.
  int64_t index_of_frame() const {
    const int64_t pts = frame->best_effort_timestamp;
    if (pts == AV_NOPTS_VALUE) return cursor + 1;
    if (!pts_table.empty()) return std::lower_bound(pts_table.begin(), pts_table.end(), pts) - pts_table.begin();
    return std::llround(double(pts - start_pts) * av_q2d(time_base) * rate);
  }

  // Decodes the next frame into `frame`; false at the end of the decodable data.
  bool next_frame() {
    for (;;) {
      int rc = avcodec_receive_frame(dec.get(), frame.get());
      if (rc >= 0) {
        if (int64_t(frame->width) * frame->height > max_pixels)
          fail("video '{}': a {}x{} frame exceeds the pixel limit of {}", name, frame->width, frame->height,
               max_pixels);
        cursor = std::max(index_of_frame(), cursor + (at_start ? 0 : 1));
        at_start = false;
        return true;
      }
      if (rc == AVERROR_EOF) return false;
      if (rc != AVERROR(EAGAIN)) fail("video '{}': decoding failed: {}", name, ffmpeg::error_string(rc));
      if (draining) return false;
      rc = av_read_frame(input.get(), packet.get());
      if (rc < 0) {  // end of file, or data that stops early: flush what the decoder holds
        if (rc != AVERROR_EOF) read_error = ffmpeg::error_string(rc);
        avcodec_send_packet(dec.get(), nullptr);
        draining = true;
        continue;
      }
      if (packet->stream_index == stream) {
        rc = avcodec_send_packet(dec.get(), packet.get());
        av_packet_unref(packet.get());
        if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_INVALIDDATA)
          fail("video '{}': corrupt video data: {}", name, ffmpeg::error_string(rc));
      } else {
        av_packet_unref(packet.get());
      }
    }
  }

  // Positions the demuxer at the keyframe at or before `target` (the start for target 0).
  void seek(int64_t target) {
    const int64_t ts = target == 0 ? start_pts
                       : target < int64_t(pts_table.size())
                           ? pts_table[size_t(target)]
                           : start_pts + std::llround(double(target) / rate / av_q2d(time_base));
    int rc = av_seek_frame(input.get(), stream, ts, AVSEEK_FLAG_BACKWARD);
    if (rc < 0) rc = av_seek_frame(input.get(), stream, start_pts, AVSEEK_FLAG_BACKWARD);
    if (rc < 0) fail("video '{}': cannot seek to frame {}: {}", name, target, ffmpeg::error_string(rc));
    avcodec_flush_buffers(dec.get());
    draining = false;
    cursor = -1;
    at_start = true;
  }

  // Bicubic, the default flags of libavfilter's scale filter through which decord converts and resizes.
  void to_rgb(uint8_t* out, int64_t out_h, int64_t out_w) {
    sws.reset(sws_getCachedContext(sws.release(), frame->width, frame->height, AVPixelFormat(frame->format), int(out_w),
                                   int(out_h), AV_PIX_FMT_RGB24, SWS_BICUBIC, nullptr, nullptr, nullptr));
    if (!sws) {
      const char* format = av_get_pix_fmt_name(AVPixelFormat(frame->format));
      fail("video '{}': cannot convert {} frames to RGB", name, format ? format : "unknown-format");
    }
    uint8_t* dst[4] = {out, nullptr, nullptr, nullptr};
    int stride[4] = {int(out_w * 3), 0, 0, 0};
    sws_scale(sws.get(), frame->data, frame->linesize, 0, frame->height, dst, stride);
  }

  // Why no frame came at or after `target`. A file cut inside its media data, with its index first,
  // reads to a clean end of file: its header still declares all its frames.
  std::string end_reason(int64_t target) const {
    if (!read_error.empty() || !index_error.empty())
      return "the data stops early (" + (read_error.empty() ? index_error : read_error) + "; truncated?)";
    const int64_t declared = input->streams[stream]->nb_frames;
    if (declared > target)
      return fmt::format("the file ends before the {} frames its header declares (truncated?)", declared);
    return "the stream ends there";
  }
};

VideoReader::VideoReader(std::unique_ptr<State> state) : s_(std::move(state)) {}
VideoReader::VideoReader(VideoReader&&) noexcept = default;
VideoReader& VideoReader::operator=(VideoReader&&) noexcept = default;
VideoReader::~VideoReader() = default;

VideoReader VideoReader::open_file(const std::filesystem::path& path, int64_t max_pixels) {
  return VideoReader(std::make_unique<State>(ffmpeg::Input::open_file(path, "video"), path.string(), max_pixels));
}

VideoReader VideoReader::open_bytes(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  return VideoReader(std::make_unique<State>(ffmpeg::Input::open_bytes(data, size, name, "video"), name, max_pixels));
}

double VideoReader::fps() const { return s_->rate; }
int64_t VideoReader::width() const { return s_->dec->width; }
int64_t VideoReader::height() const { return s_->dec->height; }

int64_t VideoReader::frame_count() {
  AVStream* st = s_->input->streams[s_->stream];
  // decord's len(): the packets indexed. A header that declares more (a file cut short) keeps its count,
  // so that asking for the missing frames says the file is truncated.
  if (!s_->pts_table.empty()) return std::max<int64_t>(int64_t(s_->pts_table.size()), st->nb_frames);
  if (st->nb_frames > 0) return st->nb_frames;
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
    return std::llround(double(st->duration) * av_q2d(st->time_base) * s_->rate);
  if (s_->counted < 0) {  // no header information: count by decoding, then start over
    s_->seek(0);
    int64_t n = 0;
    while (s_->next_frame()) ++n;
    s_->counted = n;
    s_->seek(0);
  }
  return s_->counted;
}

torch::Tensor VideoReader::frames(const std::vector<int64_t>& indices, int64_t out_h, int64_t out_w) {
  State& s = *s_;
  if (out_h <= 0 || out_w <= 0) out_h = s.dec->height, out_w = s.dec->width;
  std::vector<int64_t> targets = indices;
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  if (!targets.empty() && targets.front() < 0) fail("video '{}': negative frame index {}", s.name, targets.front());

  const auto table_size = int64_t(s.pts_table.size());
  if (table_size > 0 && !targets.empty() && targets.back() >= table_size)
    fail("video '{}': frame {} requested but only frames up to {} are in the file: {}", s.name, targets.back(),
         table_size - 1, s.end_reason(targets.back()));
  std::map<int64_t, torch::Tensor> decoded;
  for (const int64_t target : targets) {
    const bool behind = !s.at_start && target <= s.cursor;
    bool sought = behind || target - s.cursor > kSeekAhead;
    if (sought) s.seek(target);
    for (;;) {
      if (!s.next_frame())  // cursor is -1 when nothing decoded since the seek to the keyframe before target
        fail("video '{}': frame {} requested but {}: {}", s.name, target,
             s.cursor >= 0 ? fmt::format("only frames up to {} could be decoded", s.cursor)
                           : std::string("no frame could be decoded from the keyframe before it"),
             s.end_reason(target));
      // The keyframe the demuxer found shows after the target (a seek by pts into reordered frames):
      // decode from the start instead, once.
      if (sought && s.cursor > target && target > 0) {
        s.seek(0);
        sought = false;
        continue;
      }
      sought = false;
      if (s.cursor >= target) break;
    }
    auto rgb = torch::empty({out_h, out_w, 3}, torch::kUInt8);
    s.to_rgb(rgb.data_ptr<uint8_t>(), out_h, out_w);
    decoded.emplace(target, std::move(rgb));
  }
  std::vector<torch::Tensor> out;
  for (const int64_t i : indices) out.push_back(decoded.at(i));
  if (out.empty()) return torch::empty({0, out_h, out_w, 3}, torch::kUInt8);
  return torch::stack(out);  // [n, H, W, 3]
}

}  // namespace cb
