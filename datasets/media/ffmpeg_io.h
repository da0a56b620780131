// FFmpeg plumbing shared by the audio and video decoders: error strings, RAII deleters, quiet
// logging, and opening a container from a file or from bytes in memory (a custom AVIOContext; no
// temp files). Every failure throws cb::Error naming the input and `what` ("audio", "video").
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
}

namespace cb::ffmpeg {

std::string error_string(int code);  // av_strerror
void quiet_logging();                // only errors from FFmpeg's own log, once per process

struct CodecDeleter {
  void operator()(AVCodecContext* c) const { avcodec_free_context(&c); }
};
struct PacketDeleter {
  void operator()(AVPacket* p) const { av_packet_free(&p); }
};
struct FrameDeleter {
  void operator()(AVFrame* f) const { av_frame_free(&f); }
};
using CodecPtr = std::unique_ptr<AVCodecContext, CodecDeleter>;
using PacketPtr = std::unique_ptr<AVPacket, PacketDeleter>;
using FramePtr = std::unique_ptr<AVFrame, FrameDeleter>;

// An opened container (and, for memory input, its reader and AVIOContext), closed on destruction.
class Input {
 public:
  static Input open_file(const std::filesystem::path& path, const char* what);
  // `data` must outlive the Input.
  static Input open_bytes(const uint8_t* data, size_t size, const std::string& name, const char* what);
  Input(Input&&) noexcept;
  Input& operator=(Input&&) noexcept;
  ~Input();
  AVFormatContext* get() const { return fmt_.get(); }
  AVFormatContext* operator->() const { return fmt_.get(); }

 private:
  Input();
  struct Memory;
  struct FormatDeleter {
    void operator()(AVFormatContext* f) const { avformat_close_input(&f); }
  };
  struct IoDeleter {
    void operator()(AVIOContext* io) const;
  };
  std::unique_ptr<Memory> memory_;
  std::unique_ptr<AVIOContext, IoDeleter> io_;
  std::unique_ptr<AVFormatContext, FormatDeleter> fmt_;  // declared last: closed first
};

// Opens the decoder of stream `index` of `fmt` (threads: FFmpeg's default).
CodecPtr open_decoder(AVFormatContext* fmt, int index, const std::string& name, const char* what);

}  // namespace cb::ffmpeg
