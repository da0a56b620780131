#include "datasets/audio/audio_decode.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "datasets/media/ffmpeg_io.h"
#include "datasets/media/image_decode.h"
#include "framework/error.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

namespace cb {

namespace {

using ffmpeg::error_string;

struct SwrDeleter {
  void operator()(SwrContext* s) const { swr_free(&s); }
};

uint32_t le16(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8; }
uint32_t le32(const uint8_t* p) { return le16(p) | le16(p + 2) << 16; }

// Where a RIFF/WAVE file's chunks are, as its header says: the last "fmt " chunk before the first
// "data" chunk, and that data chunk (sizes as declared, not checked against the file).
struct WavChunks {
  size_t fmt = 0, data = 0;  // offsets of the chunk bodies; 0: absent
  uint32_t fmt_size = 0, data_size = 0;
};

std::optional<WavChunks> wav_chunks(const uint8_t* d, size_t n) {
  if (n < 12 || std::memcmp(d, "RIFF", 4) != 0 || std::memcmp(d + 8, "WAVE", 4) != 0) return std::nullopt;
  WavChunks c;
  size_t pos = 12;
  for (int chunks = 0; chunks < 1024 && pos + 8 <= n; ++chunks) {
    const uint32_t size = le32(d + pos + 4);
    if (std::memcmp(d + pos, "fmt ", 4) == 0) c.fmt = pos + 8, c.fmt_size = size;
    if (std::memcmp(d + pos, "data", 4) == 0) {
      c.data = pos + 8, c.data_size = size;
      break;
    }
    pos += 8 + uint64_t(size) + (size & 1);
  }
  return c;
}

// The data size a RIFF/WAVE header declares (FFmpeg quietly replaces a too-large size with what the
// file holds). nullopt when not RIFF/WAVE, no data chunk is found, or the size is a streaming
// placeholder (0 or 0xFFFFFFFF).
std::optional<uint64_t> declared_wav_data_bytes(const uint8_t* d, size_t n) {
  const auto c = wav_chunks(d, n);
  if (!c || c->data == 0 || c->data_size == 0 || c->data_size == 0xFFFFFFFFu) return std::nullopt;
  return c->data_size;
}

// Decodes the best audio stream of an opened container into planar float, one vector per channel.
DecodedAudio decode_opened(AVFormatContext* fmt, const std::string& name, std::optional<uint64_t> declared_wav_bytes) {
  int rc = avformat_find_stream_info(fmt, nullptr);
  if (rc < 0) fail("audio '{}': cannot read stream info: {}", name, error_string(rc));
  const int index = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, nullptr, 0);
  if (index < 0) fail("audio '{}': no audio stream in the file ({})", name, error_string(index));
  AVStream* stream = fmt->streams[index];

  auto dec = ffmpeg::open_decoder(fmt, index, name, "audio");
  if (dec->sample_rate <= 0 || dec->ch_layout.nb_channels <= 0)
    fail("audio '{}': invalid stream ({} Hz, {} channels)", name, dec->sample_rate, dec->ch_layout.nb_channels);

  const int channels = dec->ch_layout.nb_channels;
  struct Layout {  // released on every exit path
    AVChannelLayout l{};
    ~Layout() { av_channel_layout_uninit(&l); }
  } owned;
  AVChannelLayout& layout = owned.l;
  if (dec->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) av_channel_layout_default(&layout, channels);
  else if ((rc = av_channel_layout_copy(&layout, &dec->ch_layout)) < 0)
    fail("audio '{}': bad channel layout: {}", name, error_string(rc));

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
        fail("audio '{}': cannot convert {} samples to float: {}", name, av_get_sample_fmt_name(format),
             error_string(rc));
      swr_format = format;
    }
    const size_t n = size_t(frame->nb_samples);
    for (int c = 0; c < channels; ++c) {
      planes[c].resize(planes[c].size() + n);
      out_ptrs[c] = reinterpret_cast<uint8_t*>(planes[c].data() + planes[c].size() - n);
    }
    const int got = swr_convert(swr.get(), out_ptrs.data(), int(n), const_cast<const uint8_t**>(frame->extended_data),
                                frame->nb_samples);
    if (got < 0) fail("audio '{}': sample conversion failed: {}", name, error_string(got));
    for (auto& p : planes) p.resize(p.size() - (n - size_t(got)));
  };

  ffmpeg::PacketPtr packet(av_packet_alloc());
  ffmpeg::FramePtr frame(av_frame_alloc());
  if (!packet || !frame) fail("audio '{}': out of memory", name);
  auto drain = [&] {
    while ((rc = avcodec_receive_frame(dec.get(), frame.get())) >= 0) {
      take_frame(frame.get());
      av_frame_unref(frame.get());
    }
    if (rc != AVERROR(EAGAIN) && rc != AVERROR_EOF) fail("audio '{}': decoding failed: {}", name, error_string(rc));
  };
  while ((rc = av_read_frame(fmt, packet.get())) >= 0) {
    if (packet->stream_index == index) {
      const int sent = avcodec_send_packet(dec.get(), packet.get());
      av_packet_unref(packet.get());
      if (sent < 0) fail("audio '{}': corrupt audio data: {}", name, error_string(sent));
      drain();
    } else {
      av_packet_unref(packet.get());
    }
  }
  if (rc != AVERROR_EOF) fail("audio '{}': read error: {}", name, error_string(rc));
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
  for (int c = 0; c < channels; ++c)
    std::memcpy(out[c].data_ptr<float>(), planes[c].data(), size_t(samples) * sizeof(float));
  return {out, dec->sample_rate};
}

// Little-endian PCM or IEEE-float WAV read directly: opening a container through libavformat (format
// probing, stream info) costs more than decoding a clip of a few seconds. The samples are scaled as
// FFmpeg + swresample scale them (u8 (x-128)/128, s16 x/2^15, s24 x/2^23, s32 x/2^31, floats as
// they are), so both paths give the same numbers. nullopt for anything else (other codecs, streaming
// placeholders, odd headers): FFmpeg decides about those.
std::optional<DecodedAudio> decode_plain_wav(const uint8_t* d, size_t n, const std::string& name) {
  const auto c = wav_chunks(d, n);
  if (!c || c->fmt == 0 || c->data == 0 || c->fmt_size < 16 || c->fmt_size > n - c->fmt) return std::nullopt;
  const uint8_t* f = d + c->fmt;
  uint32_t format = le16(f);
  const uint32_t channels = le16(f + 2), rate = le32(f + 4), block = le16(f + 12), bits = le16(f + 14);
  if (format == 0xFFFE && c->fmt_size >= 26) format = le16(f + 24);  // WAVE_FORMAT_EXTENSIBLE: the sub-format
  const bool pcm = format == 1 && (bits == 8 || bits == 16 || bits == 24 || bits == 32);
  const bool ieee = format == 3 && (bits == 32 || bits == 64);
  const uint32_t size = c->data_size;
  if (!(pcm || ieee) || channels == 0 || rate == 0 || block != channels * bits / 8 || size == 0 || size == 0xFFFFFFFFu)
    return std::nullopt;
  const size_t body = c->data;
  const size_t avail = n - body, frames = std::min<size_t>(size, avail) / block;
  if (frames == 0) fail("audio '{}': the file holds no audio samples", name);
  if (size > avail)
    fail("audio '{}': truncated WAV: the header declares {} samples per channel, the file holds {}", name, size / block,
         frames);
  auto out = torch::empty({int64_t(channels), int64_t(frames)}, torch::kFloat);
  float* o = out.data_ptr<float>();
  const uint8_t* p = d + body;
  const size_t width = bits / 8;
  for (size_t frame = 0; frame < frames; ++frame) {
    for (size_t ch = 0; ch < channels; ++ch, p += width) {
      float v;
      if (ieee && bits == 32) std::memcpy(&v, p, 4);
      else if (ieee) {
        double x;
        std::memcpy(&x, p, 8);
        v = float(x);
      } else if (bits == 8) v = float(int(p[0]) - 128) / 128.0f;
      else if (bits == 16) v = float(int16_t(uint16_t(le16(p)))) / 32768.0f;
      else if (bits == 24)
        v = float(int32_t(uint32_t(p[0]) << 8 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 24) >> 8) / 8388608.0f;
      else v = float(int32_t(le32(p))) / 2147483648.0f;
      o[ch * frames + frame] = v;
    }
  }
  return DecodedAudio{out, int64_t(rate)};
}

}  // namespace

DecodedAudio decode_audio_file(const std::filesystem::path& path) {
  std::vector<uint8_t> bytes;
  read_file_bytes(path, bytes, "audio");
  if (bytes.empty()) fail("audio '{}': the file is empty", path.string());
  return decode_audio_bytes(bytes.data(), bytes.size(), path.string());
}

DecodedAudio decode_audio_bytes(const uint8_t* data, size_t size, const std::string& name) {
  std::optional<DecodedAudio> out;
  if (data && size > 0) out = decode_plain_wav(data, size, name);
  if (!out) {
    auto fmt = ffmpeg::Input::open_bytes(data, size, name, "audio");
    out = decode_opened(fmt.get(), name, declared_wav_data_bytes(data, size));
  }
  // Float formats can carry NaN or inf: such a clip would turn the loss and then every trained
  // weight into NaN, so it is refused as corrupt (and skipped in training) instead.
  if (!torch::isfinite(out->samples).all().item<bool>())
    fail("audio '{}': the file holds NaN or infinite samples", name);
  return std::move(*out);
}

}  // namespace cb
