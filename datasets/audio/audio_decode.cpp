#include "datasets/audio/audio_decode.h"

#include <cstring>
#include <fstream>
#include <optional>
#include <memory>
#include <mutex>
#include <vector>

#include "framework/error.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

namespace cb {

namespace {

std::string av_error(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

// In-memory input for libavformat: read and seek callbacks over a byte span.
struct MemoryReader {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;

  static int read(void* opaque, uint8_t* buf, int n) {
    auto* r = static_cast<MemoryReader*>(opaque);
    const size_t left = r->size - r->pos;
    if (left == 0) return AVERROR_EOF;
    const size_t k = std::min(left, size_t(n));
    std::memcpy(buf, r->data + r->pos, k);
    r->pos += k;
    return int(k);
  }
  static int64_t seek(void* opaque, int64_t offset, int whence) {
    auto* r = static_cast<MemoryReader*>(opaque);
    if (whence & AVSEEK_SIZE) return int64_t(r->size);
    int64_t base = 0;
    switch (whence & ~AVSEEK_FORCE) {
      case SEEK_SET: base = 0; break;
      case SEEK_CUR: base = int64_t(r->pos); break;
      case SEEK_END: base = int64_t(r->size); break;
      default: return AVERROR(EINVAL);
    }
    const int64_t target = base + offset;
    if (target < 0 || target > int64_t(r->size)) return AVERROR(EINVAL);
    r->pos = size_t(target);
    return target;
  }
};

struct IoDeleter {
  void operator()(AVIOContext* io) const {
    av_freep(&io->buffer);  // FFmpeg may have replaced the buffer we gave it
    avio_context_free(&io);
  }
};
struct FormatDeleter {
  void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
};
struct CodecDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct SwrDeleter {
  void operator()(SwrContext* s) const { swr_free(&s); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};

// The data size a RIFF/WAVE header declares, read straight from the bytes (FFmpeg quietly replaces a
// too-large size with what the file holds). nullopt when not RIFF/WAVE, no data chunk is found, or
// the size is a streaming placeholder (0 or 0xFFFFFFFF).
template <typename ReadAt>  // bool read_at(uint64_t offset, uint8_t* dst, size_t n)
std::optional<uint64_t> declared_wav_data_bytes(ReadAt read_at, uint64_t total) {
  uint8_t head[12];
  if (total < 12 || !read_at(0, head, 12) || std::memcmp(head, "RIFF", 4) != 0 || std::memcmp(head + 8, "WAVE", 4) != 0)
    return std::nullopt;
  uint64_t pos = 12;
  for (int chunks = 0; chunks < 1024 && pos + 8 <= total; ++chunks) {
    uint8_t chunk[8];
    if (!read_at(pos, chunk, 8)) return std::nullopt;
    const uint32_t size = uint32_t(chunk[4]) | uint32_t(chunk[5]) << 8 | uint32_t(chunk[6]) << 16 | uint32_t(chunk[7]) << 24;
    if (std::memcmp(chunk, "data", 4) == 0) {
      if (size == 0 || size == 0xFFFFFFFFu) return std::nullopt;
      return size;
    }
    pos += 8 + uint64_t(size) + (size & 1);
  }
  return std::nullopt;
}

void quiet_ffmpeg() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_ERROR); });
}

// Decodes the best audio stream of an opened container into planar float, one vector per channel.
DecodedAudio decode_opened(AVFormatContext* fmt, const std::string& name, std::optional<uint64_t> declared_wav_bytes) {
  int rc = avformat_find_stream_info(fmt, nullptr);
  if (rc < 0) fail("audio '{}': cannot read stream info: {}", name, av_error(rc));
  const int index = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
  if (index < 0) fail("audio '{}': no audio stream in the file ({})", name, av_error(index));
  AVStream* stream = fmt->streams[index];

  const AVCodec* codec = avcodec_find_decoder(stream->codecpar->codec_id);
  if (!codec) fail("audio '{}': no decoder for codec '{}'", name, avcodec_get_name(stream->codecpar->codec_id));
  std::unique_ptr<AVCodecContext, CodecDeleter> dec(avcodec_alloc_context3(codec));
  if (!dec) fail("audio '{}': out of memory", name);
  if ((rc = avcodec_parameters_to_context(dec.get(), stream->codecpar)) < 0 || (rc = avcodec_open2(dec.get(), codec, nullptr)) < 0)
    fail("audio '{}': cannot open the {} decoder: {}", name, codec->name, av_error(rc));
  if (dec->sample_rate <= 0 || dec->ch_layout.nb_channels <= 0)
    fail("audio '{}': invalid stream ({} Hz, {} channels)", name, dec->sample_rate, dec->ch_layout.nb_channels);

  const int channels = dec->ch_layout.nb_channels;
  struct Layout {  // released on every exit path
    AVChannelLayout l{};
    ~Layout() { av_channel_layout_uninit(&l); }
  } owned;
  AVChannelLayout& layout = owned.l;
  if (dec->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
    av_channel_layout_default(&layout, channels);
  else if ((rc = av_channel_layout_copy(&layout, &dec->ch_layout)) < 0)
    fail("audio '{}': bad channel layout: {}", name, av_error(rc));

  std::vector<std::vector<float>> planes(static_cast<size_t>(channels));
  std::unique_ptr<SwrContext, SwrDeleter> swr;
  AVSampleFormat swr_format = AV_SAMPLE_FMT_NONE;
  std::vector<uint8_t*> out_ptrs(static_cast<size_t>(channels));

  auto take_frame = [&](AVFrame* frame) {
    if (frame->nb_samples <= 0) return;
    if (frame->ch_layout.nb_channels != channels)
      fail("audio '{}': the channel count changes mid-stream ({} -> {})", name, channels, frame->ch_layout.nb_channels);
    const auto format = AVSampleFormat(frame->format);
    if (!swr || format != swr_format) {
      SwrContext* s = nullptr;
      rc = swr_alloc_set_opts2(&s, &layout, AV_SAMPLE_FMT_FLTP, dec->sample_rate, &layout, format, dec->sample_rate, 0,
                               nullptr);
      swr.reset(s);
      if (rc < 0 || (rc = swr_init(swr.get())) < 0)
        fail("audio '{}': cannot convert {} samples to float: {}", name, av_get_sample_fmt_name(format), av_error(rc));
      swr_format = format;
    }
    const size_t n = size_t(frame->nb_samples);
    for (int c = 0; c < channels; ++c) {
      planes[c].resize(planes[c].size() + n);
      out_ptrs[c] = reinterpret_cast<uint8_t*>(planes[c].data() + planes[c].size() - n);
    }
    const int got = swr_convert(swr.get(), out_ptrs.data(), int(n), const_cast<const uint8_t**>(frame->extended_data),
                                frame->nb_samples);
    if (got < 0) fail("audio '{}': sample conversion failed: {}", name, av_error(got));
    for (auto& p : planes) p.resize(p.size() - (n - size_t(got)));
  };

  std::unique_ptr<AVPacket, PacketDeleter> packet(av_packet_alloc());
  std::unique_ptr<AVFrame, FrameDeleter> frame(av_frame_alloc());
  if (!packet || !frame) fail("audio '{}': out of memory", name);
  auto drain = [&] {
    while ((rc = avcodec_receive_frame(dec.get(), frame.get())) >= 0) {
      take_frame(frame.get());
      av_frame_unref(frame.get());
    }
    if (rc != AVERROR(EAGAIN) && rc != AVERROR_EOF) fail("audio '{}': decoding failed: {}", name, av_error(rc));
  };
  while ((rc = av_read_frame(fmt, packet.get())) >= 0) {
    if (packet->stream_index == index) {
      const int sent = avcodec_send_packet(dec.get(), packet.get());
      av_packet_unref(packet.get());
      if (sent < 0) fail("audio '{}': corrupt audio data: {}", name, av_error(sent));
      drain();
    } else {
      av_packet_unref(packet.get());
    }
  }
  if (rc != AVERROR_EOF) fail("audio '{}': read error: {}", name, av_error(rc));
  avcodec_send_packet(dec.get(), nullptr);  // flush
  drain();

  const int64_t samples = int64_t(planes[0].size());
  if (samples == 0) fail("audio '{}': the file holds no audio samples", name);
  // A WAV whose data chunk is cut short decodes "successfully" up to the cut: compare with the
  // length its header declares.
  const int block_align = stream->codecpar->block_align;
  if (std::strcmp(fmt->iformat->name, "wav") == 0 && declared_wav_bytes && block_align > 0) {
    const auto declared = int64_t(*declared_wav_bytes / uint64_t(block_align));
    if (samples < declared)
      fail("audio '{}': truncated WAV: the header declares {} samples per channel, the file holds {}", name, declared,
           samples);
  }

  auto out = torch::empty({channels, samples}, torch::kFloat);
  for (int c = 0; c < channels; ++c) std::memcpy(out[c].data_ptr<float>(), planes[c].data(), size_t(samples) * sizeof(float));
  return {out, dec->sample_rate};
}

}  // namespace

DecodedAudio decode_audio_file(const std::filesystem::path& path) {
  quiet_ffmpeg();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail("audio '{}': no such file", path.string());
  if (std::filesystem::file_size(path, ec) == 0) fail("audio '{}': the file is empty", path.string());
  AVFormatContext* raw = nullptr;
  const int rc = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (rc < 0) fail("audio '{}': not a readable audio file: {}", path.string(), av_error(rc));
  std::unique_ptr<AVFormatContext, FormatDeleter> fmt(raw);
  std::ifstream in(path, std::ios::binary);
  auto read_at = [&](uint64_t offset, uint8_t* dst, size_t n) {
    in.clear();
    in.seekg(std::streamoff(offset));
    return bool(in.read(reinterpret_cast<char*>(dst), std::streamsize(n)));
  };
  return decode_opened(fmt.get(), path.string(), declared_wav_data_bytes(read_at, std::filesystem::file_size(path, ec)));
}

DecodedAudio decode_audio_bytes(const uint8_t* data, size_t size, const std::string& name) {
  quiet_ffmpeg();
  if (size == 0 || data == nullptr) fail("audio '{}': no bytes (empty input)", name);
  MemoryReader reader{data, size};
  constexpr int kBuffer = 1 << 16;
  auto* buffer = static_cast<uint8_t*>(av_malloc(kBuffer));
  if (!buffer) fail("audio '{}': out of memory", name);
  std::unique_ptr<AVIOContext, IoDeleter> io(
      avio_alloc_context(buffer, kBuffer, 0, &reader, &MemoryReader::read, nullptr, &MemoryReader::seek));
  if (!io) {
    av_free(buffer);
    fail("audio '{}': out of memory", name);
  }
  AVFormatContext* raw = avformat_alloc_context();
  if (!raw) fail("audio '{}': out of memory", name);
  raw->pb = io.get();
  raw->flags |= AVFMT_FLAG_CUSTOM_IO;
  const int rc = avformat_open_input(&raw, nullptr, nullptr, nullptr);  // frees `raw` on failure
  if (rc < 0) fail("audio '{}': not a readable audio file: {}", name, av_error(rc));
  std::unique_ptr<AVFormatContext, FormatDeleter> fmt(raw);
  auto read_at = [&](uint64_t offset, uint8_t* dst, size_t n) {
    if (offset > size || n > size - offset) return false;
    std::memcpy(dst, data + offset, n);
    return true;
  };
  return decode_opened(fmt.get(), name, declared_wav_data_bytes(read_at, size));
}

}  // namespace cb
