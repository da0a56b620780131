// The direct WAV reader (datasets/audio/audio_decode.cpp) against FFmpeg: the same samples written by
// the ffmpeg tool as WAV (read directly) and as AIFF (big-endian, which only FFmpeg reads) decode to
// the same numbers, for every PCM width and both float widths, in stereo.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "datasets/audio/audio_decode.h"
#include "framework/error.h"
#include "tests/support/make_media.h"

namespace {

// Two different tones, one per channel, 0.25 s at 22050 Hz.
void write_tones(const std::filesystem::path& out, const std::string& codec) {
  const std::string cmd =
      "ffmpeg -loglevel error -y -f lavfi -i \"aevalsrc=0.5*sin(2*PI*440*t)|0.3*sin(2*PI*660*t):s=22050:d=0.25\" "
      "-c:a " +
      codec + " '" + out.string() + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

}  // namespace

TEST_CASE("WAV read directly equals FFmpeg's decoding of the same samples (s16, s24, s32, f32, f64, stereo)") {
  cb::test::TempDir dir;
  for (const std::string width : {"s16", "s24", "s32", "f32", "f64"}) {
    INFO(width);
    const auto wav = dir.path / (width + ".wav"), aiff = dir.path / (width + ".aiff");
    write_tones(wav, "pcm_" + width + "le");
    write_tones(aiff, "pcm_" + width + "be");
    const auto direct = cb::decode_audio_file(wav), ffmpeg = cb::decode_audio_file(aiff);
    REQUIRE(direct.sample_rate == 22050);
    REQUIRE(ffmpeg.sample_rate == 22050);
    REQUIRE(direct.samples.sizes() == ffmpeg.samples.sizes());
    CHECK(direct.samples.size(0) == 2);
    CHECK(direct.samples.equal(ffmpeg.samples));
    CHECK(direct.samples[0].abs().max().item<float>() > 0.45f);  // the channels are the two tones
    CHECK(direct.samples[1].abs().max().item<float>() < 0.31f);
  }
}

TEST_CASE("8-bit WAV: unsigned samples centred on 128, within one step of the 16-bit version") {
  cb::test::TempDir dir;
  write_tones(dir.path / "u8.wav", "pcm_u8");
  write_tones(dir.path / "s16.wav", "pcm_s16le");
  const auto u8 = cb::decode_audio_file(dir.path / "u8.wav").samples,
             s16 = cb::decode_audio_file(dir.path / "s16.wav").samples;
  REQUIRE(u8.sizes() == s16.sizes());
  CHECK((u8 - s16).abs().max().item<float>() <= 1.0f / 128);
}

TEST_CASE("float audio holding NaN or inf is an error naming the file, read directly or through FFmpeg") {
  cb::test::TempDir dir;
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    for (const std::string container : {"wav", "aiff"}) {  // the direct reader and FFmpeg
      INFO(bad << " " << container);
      const auto path = dir.path / ("tone." + container);
      write_tones(path, container == "wav" ? "pcm_f32le" : "pcm_f32be");
      auto bytes = cb::test::read_bytes(path);
      // One sample, 100 samples before the end of the file, becomes NaN or inf.
      uint32_t raw;
      std::memcpy(&raw, &bad, 4);
      if (container == "aiff") raw = __builtin_bswap32(raw);
      std::memcpy(bytes.data() + bytes.size() - 400, &raw, 4);
      cb::test::write_file(path, bytes);
      try {
        cb::decode_audio_file(path);
        FAIL("no error for a non-finite sample");
      } catch (const cb::Error& e) {
        CHECK_THAT(e.what(), Catch::Contains(path.string()) && Catch::Contains("NaN or infinite"));
      }
    }
  }
}
