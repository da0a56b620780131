#include "datasets/media/ffmpeg_io.h"

#include <algorithm>
#include <cstring>
#include <mutex>

#include "framework/error.h"

namespace cb::ffmpeg {

std::string error_string(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof(buf));
  return buf;
}

void quiet_logging() {
  static std::once_flag once;
  std::call_once(once, [] { av_log_set_level(AV_LOG_ERROR); });
}

// Read and seek callbacks over a byte span.
struct Input::Memory {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;

  static int read(void* opaque, uint8_t* buf, int n) {
    auto* r = static_cast<Memory*>(opaque);
    const size_t left = r->size - r->pos;
    if (left == 0) return AVERROR_EOF;
    const size_t k = std::min(left, size_t(n));
    std::memcpy(buf, r->data + r->pos, k);
    r->pos += k;
    return int(k);
  }
  static int64_t seek(void* opaque, int64_t offset, int whence) {
    auto* r = static_cast<Memory*>(opaque);
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

Input::Input() = default;
Input::Input(Input&&) noexcept = default;
Input& Input::operator=(Input&&) noexcept = default;
Input::~Input() = default;

void Input::IoDeleter::operator()(AVIOContext* io) const {
  av_freep(&io->buffer);  // FFmpeg may have replaced the buffer we gave it
  avio_context_free(&io);
}

Input Input::open_file(const std::filesystem::path& path, const char* what) {
  quiet_logging();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    fail("{} '{}': {}", what, path.string(),
         std::filesystem::is_directory(path, ec) ? "a directory, not a file" : "no such file");
  if (std::filesystem::file_size(path, ec) == 0) fail("{} '{}': the file is empty", what, path.string());
  AVFormatContext* raw = nullptr;
  const int rc = avformat_open_input(&raw, path.c_str(), nullptr, nullptr);
  if (rc < 0) fail("{} '{}': not a readable media file: {}", what, path.string(), error_string(rc));
  Input in;
  in.fmt_.reset(raw);
  return in;
}

Input Input::open_bytes(const uint8_t* data, size_t size, const std::string& name, const char* what) {
  quiet_logging();
  if (size == 0 || data == nullptr) fail("{} '{}': no bytes (empty input)", what, name);
  Input in;
  in.memory_ = std::make_unique<Memory>(Memory{data, size});
  constexpr int kBuffer = 1 << 16;
  auto* buffer = static_cast<uint8_t*>(av_malloc(kBuffer));
  if (!buffer) fail("{} '{}': out of memory", what, name);
  in.io_.reset(avio_alloc_context(buffer, kBuffer, 0, in.memory_.get(), &Memory::read, nullptr, &Memory::seek));
  if (!in.io_) {
    av_free(buffer);
    fail("{} '{}': out of memory", what, name);
  }
  AVFormatContext* raw = avformat_alloc_context();
  if (!raw) fail("{} '{}': out of memory", what, name);
  raw->pb = in.io_.get();
  raw->flags |= AVFMT_FLAG_CUSTOM_IO;
  const int rc = avformat_open_input(&raw, nullptr, nullptr, nullptr);  // frees `raw` on failure
  if (rc < 0) fail("{} '{}': not a readable media file: {}", what, name, error_string(rc));
  in.fmt_.reset(raw);
  return in;
}

CodecPtr open_decoder(AVFormatContext* fmt, int index, const std::string& name, const char* what) {
  AVStream* stream = fmt->streams[index];
  const AVCodec* codec = avcodec_find_decoder(stream->codecpar->codec_id);
  if (!codec) fail("{} '{}': no decoder for codec '{}'", what, name, avcodec_get_name(stream->codecpar->codec_id));
  CodecPtr dec(avcodec_alloc_context3(codec));
  if (!dec) fail("{} '{}': out of memory", what, name);
  int rc;
  if ((rc = avcodec_parameters_to_context(dec.get(), stream->codecpar)) < 0 ||
      (rc = avcodec_open2(dec.get(), codec, nullptr)) < 0)
    fail("{} '{}': cannot open the {} decoder: {}", what, name, codec->name, error_string(rc));
  return dec;
}

}  // namespace cb::ffmpeg
