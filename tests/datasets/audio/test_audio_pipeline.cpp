// Golden case `beats`, input side: FFmpeg decoding of the fixture's WAV bytes, torchaudio Resample,
// kaldi fbank (64 and 128 bins), the AudioMapper normalise/pad/slice step; plus corrupt-input and
// slicing unit tests. Every rate, length and option comes from the fixture.
#include <catch2/catch.hpp>

#include <unistd.h>

#include "datasets/audio/audio_decode.h"
#include "datasets/audio/audio_mapper.h"
#include "datasets/audio/kaldi_fbank.h"
#include "framework/error.h"
#include "tests/support/golden.h"
#include "tests/support/make_media.h"
#include "tests/support/scratch_dir.h"

using cb::test::check_close;
using cb::test::Fixture;
namespace tol = cb::test::tol;
namespace fs = std::filesystem;

static std::vector<uint8_t> wav_bytes(const Fixture& f, size_t i) {
  auto t = f.get("input.wav" + std::to_string(i) + ".file_bytes").contiguous();
  auto* p = t.data_ptr<uint8_t>();
  return {p, p + t.numel()};
}

static cb::AudioMapperOptions mapper_options(const Fixture& f) {
  const auto& m = f.config().at("audio_mapper");
  cb::AudioMapperOptions o;
  o.melbins = m.at("audio_melbins");
  o.target_length = m.at("audio_target_length");
  o.sample_num = m.at("sample_num");
  o.mean = m.at("mean");
  o.std = m.at("std");
  o.training = m.at("training");
  return o;
}

static fs::path scratch(const std::string& name) {
  static const auto d = cb::test::fresh_dir("audio");
  return d / name;
}

TEST_CASE("beats golden: decode, resample, fbank, normalise/pad/slice, BEATs.preprocess") {
  Fixture f("beats");
  const auto wavs = f.meta("wavs");
  const auto opts = mapper_options(f);
  const auto pre = f.config().at("beats_preprocess");
  std::mt19937_64 rng(0);
  std::vector<torch::Tensor> slices;
  for (size_t i = 0; i < wavs.size(); ++i) {
    const std::string w = "output.wav" + std::to_string(i) + ".";
    auto bytes = wav_bytes(f, i);
    auto audio = cb::decode_audio_bytes(bytes.data(), bytes.size(), wavs[i].at("file"));
    CHECK(audio.sample_rate == wavs[i].at("sample_rate").get<int64_t>());
    CHECK(audio.samples.size(1) == wavs[i].at("num_samples").get<int64_t>());

    auto wave16 = cb::resample_to_16k(audio);
    check_close(wave16, f.get(w + "waveform_16k"), tol::fbank_norm, w + "waveform_16k");

    auto fbank = cb::beats_fbank(wave16, opts.melbins);
    CHECK(fbank.size(0) == wavs[i].at("frames").get<int64_t>());
    check_close(fbank, f.get(w + "fbank64_raw"), tol::fbank, w + "fbank64_raw");

    auto pre128 =
        cb::beats_preprocess(wave16.narrow(0, 0, 1), pre.at("num_mel_bins"), pre.at("fbank_mean"), pre.at("fbank_std"));
    check_close(pre128, f.get(w + "beats_preprocess_fbank128"), tol::fbank_norm, w + "beats_preprocess_fbank128");

    slices.push_back(cb::slice_fbank(fbank, opts, rng));
  }
  check_close(torch::cat(slices), f.get("input.fbank"), tol::fbank_norm, "beats input.fbank (AudioMapper output)");
}

TEST_CASE("audio decoding from a file equals decoding from memory, and AudioMapper finds <id>.wav") {
  Fixture f("beats");
  auto bytes = wav_bytes(f, 0);
  auto path = scratch("clip.wav");
  cb::test::write_bytes(path, bytes.data(), bytes.size());
  auto from_file = cb::decode_audio_file(path);
  auto from_memory = cb::decode_audio_bytes(bytes.data(), bytes.size(), "clip.wav");
  CHECK(from_file.sample_rate == from_memory.sample_rate);
  CHECK(torch::equal(from_file.samples, from_memory.samples));

  cb::AudioMapper mapper(path.parent_path(), mapper_options(f));
  std::mt19937_64 rng(0);
  auto found = mapper("clip", rng);
  CHECK(torch::equal(found, mapper.features(from_memory, rng)));
  auto missing = mapper("no_such_clip", rng);  // the original trains on silence
  CHECK(missing.sizes() == found.sizes());
  CHECK(missing.abs().sum().item<double>() == 0);
}

TEST_CASE("corrupt, truncated, random and empty audio raise cb::Error naming the input") {
  Fixture f("beats");
  auto bytes = wav_bytes(f, 0);
  auto expect_error = [](const std::function<void()>& fn, const std::string& needle) {
    try {
      fn();
      FAIL("no error raised for " << needle);
    } catch (const cb::Error& e) {
      INFO(e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
    }
  };
  expect_error([&] { cb::decode_audio_bytes(bytes.data(), bytes.size() / 2, "half.wav"); }, "half.wav");
  expect_error([&] { cb::decode_audio_bytes(bytes.data(), 30, "header_cut.wav"); }, "header_cut.wav");
  expect_error([&] { cb::decode_audio_bytes(bytes.data(), 0, "zero.wav"); }, "zero.wav");
  std::mt19937 gen(1234);
  std::vector<uint8_t> noise(4096);
  for (auto& b : noise) b = uint8_t(gen());
  expect_error([&] { cb::decode_audio_bytes(noise.data(), noise.size(), "noise.bin"); }, "noise.bin");
  // A valid header followed by garbage where the samples should be and a cut: still an error.
  std::vector<uint8_t> garbled(44 + noise.size());
  std::copy_n(bytes.begin(), 44, garbled.begin());
  std::copy(noise.begin(), noise.end(), garbled.begin() + 44);
  expect_error([&] { cb::decode_audio_bytes(garbled.data(), garbled.size(), "garbled.wav"); }, "garbled.wav");

  auto empty = scratch("empty.wav");
  cb::test::write_bytes(empty, nullptr, 0);
  expect_error([&] { cb::decode_audio_file(empty); }, "empty.wav");
  expect_error([&] { cb::decode_audio_file(scratch("absent.wav")); }, "absent.wav");
  auto half = scratch("half.wav");
  cb::test::write_bytes(half, bytes.data(), bytes.size() / 2);
  expect_error([&] { cb::decode_audio_file(half); }, "half.wav");
}

TEST_CASE("fbank refuses audio shorter than one window") {
  cb::FbankOptions o;
  o.num_mel_bins = 64;
  CHECK_THROWS_AS(cb::kaldi_fbank(torch::zeros({1, 100}), o), cb::Error);
  CHECK_THROWS_AS(cb::kaldi_fbank(torch::zeros({1, 1000}),
                                  [] {
                                    cb::FbankOptions p;
                                    p.channel = 1;
                                    return p;
                                  }()),
                  cb::Error);
}

TEST_CASE("AudioMapper slicing: padding, middle slice per group, random slice in training") {
  std::mt19937_64 rng(7);
  cb::AudioMapperOptions o;
  o.melbins = 2;
  o.target_length = 4;
  o.mean = 0;
  o.std = 0.5;  // (x − 0) / 1: values stay recognisable
  // 10 frames, frame t holds t+1: pad to 12 (>= 1 frame), 3 slices; one group -> the middle slice 1.
  auto fb = (torch::arange(1, 11, torch::kFloat).unsqueeze(1)).repeat({1, 2});
  auto one = cb::slice_fbank(fb, o, rng);
  REQUIRE(one.sizes() == torch::IntArrayRef({1, 4, 2}));
  CHECK(one[0][0][0].item<float>() == 5);
  // T a multiple of target_length: a whole extra zero slice is appended (pad = 4), slices [0..2].
  auto eight = cb::slice_fbank(fb.narrow(0, 0, 8), o, rng);
  CHECK(eight[0][0][0].item<float>() == 5);
  // sample_num 2 on 3 slices: groups {0,1},{2} -> middles 0 and 2 (slice 2: frames 9, 10, then zeros).
  o.sample_num = 2;
  auto two = cb::slice_fbank(fb, o, rng);
  REQUIRE(two.sizes() == torch::IntArrayRef({2, 4, 2}));
  CHECK(two[0][0][0].item<float>() == 1);
  CHECK(two[1][1][0].item<float>() == 10);
  CHECK(two[1].narrow(0, 2, 2).abs().sum().item<float>() == 0);
  // Short clip, sample_num 3: padded to 3 slices, one per group.
  o.sample_num = 3;
  auto three = cb::slice_fbank(fb.narrow(0, 0, 3), o, rng);
  CHECK(three.size(0) == 3);
  CHECK(three[0][0][0].item<float>() == 1);
  CHECK(three[1].abs().sum().item<float>() == 0);
  // Training picks any slice of its group.
  o.sample_num = 1;
  o.training = true;
  std::set<float> firsts;
  for (int i = 0; i < 64; ++i) firsts.insert(cb::slice_fbank(fb, o, rng)[0][0][0].item<float>());
  CHECK(firsts == std::set<float>{1, 5, 9});
}
