#include "bench/data_bench.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <random>
#include <thread>

#include "bench/timing.h"
#include "datasets/audio/audio_mapper.h"
#include "datasets/media/image_decode.h"
#include "datasets/media/valor_video.h"
#include "datasets/processors/blip_image_train.h"
#include "framework/error.h"
#include "framework/runtime.h"

namespace cb::bench {
namespace fs = std::filesystem;
namespace {

std::string quoted(const fs::path& p) {
  std::string s = "'";
  for (char c : p.string()) s += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return s + "'";
}

void run_command(const std::string& cmd) {
  spdlog::debug("data: {}", cmd);
  if (std::system(cmd.c_str()) != 0) fail("data: command failed: {}", cmd);
}

void require_file(const fs::path& p, const std::string& package) {
  if (!fs::exists(p))
    fail("{} is missing: install the Debian package '{}' (scripts/setup --with-tiny-data installs it)", p.string(),
         package);
}

void require_ffmpeg() {
  if (std::system("command -v ffmpeg >/dev/null 2>&1") != 0)
    fail("ffmpeg is not on PATH: install the Debian package 'ffmpeg' (scripts/setup --with-tiny-data installs it)");
}

// What each of the training loader's worker threads owns: a decoder and its own RNG stream.
struct Worker {
  ImageDecoder decoder;
  std::mt19937_64 rng;
  explicit Worker(uint64_t seed) : rng(seed) {}
};

// Processes item i of a pass with the given worker's state.
using ItemFn = std::function<torch::Tensor(int64_t, Worker&)>;

// `threads` persistent worker threads (worker t seeded seed + 1 + t; the serial passes use their own
// state, seeded seed), as the loader's: per-thread caches (resampling kernels, fbank constants) and
// OpenMP set-up are built once, not per pass. In a pass each takes the next item index until done.
class WorkerPool {
 public:
  WorkerPool(uint64_t seed, int64_t threads) : serial_(seed) {
    for (int64_t t = 0; t < std::max<int64_t>(threads, 1); ++t)
      workers_.push_back(std::make_unique<Worker>(seed + 1 + t));
    for (size_t t = 0; t < workers_.size(); ++t) threads_.emplace_back([this, t] { loop(*workers_[t]); });
  }
  ~WorkerPool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& th : threads_) th.join();
  }
  Worker& serial() { return serial_; }
  int64_t size() const { return int64_t(workers_.size()); }

  // Items [0, items) over the workers; rethrows the first error after every worker has stopped.
  void run(int64_t items, const ItemFn& item) {
    std::unique_lock lock(mutex_);
    item_ = &item;
    items_ = items;
    next_ = 0;
    busy_ = workers_.size();
    error_ = nullptr;
    ++pass_;
    wake_.notify_all();
    done_.wait(lock, [&] { return busy_ == 0; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop(Worker& w) {
    single_threaded_ops();
    for (uint64_t seen = 0;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stop_ || pass_ != seen; });
        if (stop_) return;
        seen = pass_;
      }
      try {
        for (int64_t i; (i = next_++) < items_;) (*item_)(i, w);
      } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
        next_ = items_;  // the others stop after their current item
      }
      std::lock_guard lock(mutex_);
      if (--busy_ == 0) done_.notify_one();
    }
  }

  Worker serial_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const ItemFn* item_ = nullptr;
  int64_t items_ = 0;
  std::atomic<int64_t> next_{0};
  size_t busy_ = 0;
  uint64_t pass_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

// Timed passes of `items_per_pass` items; rates from the median and the min pass time.
nlohmann::json rate_json(const Timings& t, int64_t items_per_pass) {
  auto j = t.to_json();
  j["items_per_pass"] = items_per_pass;
  j["per_s"] = double(items_per_pass) / t.median();
  j["per_s_best"] = double(items_per_pass) / t.min();
  return j;
}

}  // namespace

fs::path default_work_dir() { return fs::temp_directory_path() / "chatbridge-bench-media"; }

BenchMedia prepare_media(const Workload& w, const fs::path& work_dir) {
  const auto& d = w.data;
  BenchMedia m;
  m.images_dir = work_dir / "images";
  m.videos_dir = work_dir / "videos";
  m.audio_dir = w.alsa_dir;
  m.wavs = d.wavs;
  m.clip_id = d.video_clip_id;
  fs::create_directories(m.images_dir);

  for (const auto& name : d.shipped_jpegs) {  // copied as they are
    const auto src = w.skimage_dir / name;
    require_file(src, w.skimage_package);
    if (!fs::exists(m.images_dir / name)) fs::copy_file(src, m.images_dir / name);
    m.images.push_back(name);
  }
  for (const auto& png : d.converted_pngs) {
    const auto src = w.skimage_dir / png;
    require_file(src, w.skimage_package);
    const auto jpg = fs::path(png).replace_extension(".jpg").string();
    if (!fs::exists(m.images_dir / jpg)) {
      require_ffmpeg();
      run_command("ffmpeg -loglevel error -y -i " + quoted(src) + " -pix_fmt yuvj420p -q:v 3 " +
                  quoted(m.images_dir / jpg));
    }
    m.images.push_back(jpg);
  }
  for (const auto& wav : d.wavs) require_file(w.alsa_dir / wav, w.alsa_package);

  const auto clip = m.videos_dir / d.video_clip_id;
  const auto last_frame = clip / fmt::format("img_{:04d}.jpg", d.video_frames);
  if (!fs::exists(last_frame)) {
    const auto src = w.skimage_dir / d.video_source_png;
    require_file(src, w.skimage_package);
    require_ffmpeg();
    fs::create_directories(clip);
    run_command(fmt::format(
        "ffmpeg -loglevel error -y -loop 1 -i {} -vf \"crop={}:{}:'2*n':'3*n',format=yuvj420p\" -frames:v {} -q:v 3 "
        "-start_number 1 {}",
        quoted(src), d.video_w, d.video_h, d.video_frames, quoted(clip / "img_%04d.jpg")));
  }
  return m;
}

nlohmann::json run_data(const Workload& w, const fs::path& work_dir) {
  const auto& d = w.data;
  const auto cfg = w.model_config(1);
  const auto media = prepare_media(w, work_dir);
  keep_freed_memory();
  WorkerPool pool(w.seed, at::get_num_threads());  // the configured threads (--threads or the workload's)
  nlohmann::json out = {{"work_dir", work_dir.string()}, {"workers", pool.size()}};

  // Serial passes first (their last item gives the output shape), then the same passes over the pool.
  auto passes = [&](const char* name, int64_t n_passes, int64_t items, const ItemFn& item) {
    spdlog::info("data {}: {} warm-up + {} timed passes of {} items, serial then over {} workers", name,
                 d.warmup_passes, n_passes, items, pool.size());
    torch::Tensor last;
    out[name] = rate_json(time_repeats(d.warmup_passes, n_passes,
                                       [&] {
                                         for (int64_t i = 0; i < items; ++i) last = item(i, pool.serial());
                                       }),
                          items);
    out[name]["output_shape"] = last.sizes().vec();
    out[name]["parallel"] = rate_json(time_repeats(d.warmup_passes, n_passes, [&] { pool.run(items, item); }), items);
  };

  // (1) BlipImageTrainProcessor from JPEG.
  BlipImageTrainProcessor blip;
  blip.image_size = d.image_size;
  const auto n_images = int64_t(media.images.size());
  passes("image", d.image_passes, d.image_repeat * n_images, [&](int64_t i, Worker& wk) {
    return blip(wk.decoder.decode_file(media.images_dir / media.images[size_t(i % n_images)]), wk.rng);
  });

  // (2) valor AudioMapper, BEATs settings.
  AudioMapper audio(media.audio_dir, AudioMapperOptions{.melbins = d.audio_melbins,
                                                        .target_length = d.audio_target_length,
                                                        .sample_num = cfg.num_audios,
                                                        .training = false});
  const auto n_wavs = int64_t(media.wavs.size());
  passes("audio", d.audio_passes, d.audio_repeat * n_wavs,
         [&](int64_t i, Worker& wk) { return audio(media.wavs[size_t(i % n_wavs)], wk.rng); });

  // (3) valor VideoMapper on a frame directory.
  VideoMapper video(
      media.videos_dir,
      VideoMapperOptions{.resolution = d.video_resolution, .sample_num = cfg.num_frames, .training = false});
  passes("video", d.video_passes, d.video_repeat,
         [&](int64_t, Worker& wk) { return video.video(media.clip_id, wk.decoder, wk.rng); });

  // (4) valor VideoMapper image path.
  VideoMapper valor_image(media.images_dir,
                          VideoMapperOptions{.resolution = d.valor_image_resolution, .sample_num = 1});
  passes("valor_image", d.valor_image_passes, d.valor_image_repeat * n_images, [&](int64_t i, Worker& wk) {
    return valor_image.image(media.images[size_t(i % n_images)], wk.decoder, wk.rng);
  });
  return out;
}

}  // namespace cb::bench
