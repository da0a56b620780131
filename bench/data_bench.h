// Data pipeline benchmark (docs/benchmarks.md, data): the media are generated from Debian packages
// (python3-skimage photos, alsa-utils WAVs) with ffmpeg into a scratch directory, then each pipeline
// processes its list `*_repeat` times per timed pass. Each pipeline is timed twice: serially on the
// calling thread (LibTorch intra-op threads = `threads`; what the original's benchmark does; reported
// as data_*_per_s) and over `threads` worker threads with single-threaded ops, each with its own
// decoder and RNG as the training loader's workers (data_*_per_s_parallel).
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/workload.h"

namespace cb::bench {

struct BenchMedia {
  std::filesystem::path images_dir;  // WORK/images
  std::vector<std::string> images;   // file names in pass order
  std::filesystem::path audio_dir;   // the ALSA directory
  std::vector<std::string> wavs;
  std::filesystem::path videos_dir;  // WORK/videos
  std::string clip_id;               // a directory of frames under videos_dir
};

// Creates what is missing under `work_dir` (reuses files already there). Fails naming the Debian
// package when a source directory or ffmpeg is absent.
BenchMedia prepare_media(const Workload& w, const std::filesystem::path& work_dir);

// The scratch directory used when none is given: <tmp>/chatbridge-bench-media.
std::filesystem::path default_work_dir();

nlohmann::json run_data(const Workload& w, const std::filesystem::path& work_dir);

}  // namespace cb::bench
