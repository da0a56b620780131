#include "bench/data_bench.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <random>

#include "bench/timing.h"
#include "datasets/audio/audio_mapper.h"
#include "datasets/media/image_decode.h"
#include "datasets/media/valor_video.h"
#include "datasets/processors/blip_image_train.h"
#include "framework/error.h"

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
  std::mt19937_64 rng(w.seed);
  ImageDecoder decoder;
  nlohmann::json out = {{"work_dir", work_dir.string()}};

  auto passes = [&](const char* name, int64_t n_passes, int64_t items, const std::function<void()>& pass) {
    spdlog::info("data {}: {} warm-up + {} timed passes of {} items", name, d.warmup_passes, n_passes, items);
    out[name] = rate_json(time_repeats(d.warmup_passes, n_passes, pass), items);
  };

  // (1) BlipImageTrainProcessor from JPEG.
  BlipImageTrainProcessor blip;
  blip.image_size = d.image_size;
  std::vector<int64_t> image_out;
  passes("image", d.image_passes, d.image_repeat * int64_t(media.images.size()), [&] {
    for (int64_t r = 0; r < d.image_repeat; ++r)
      for (const auto& name : media.images) image_out = blip(decoder.decode_file(media.images_dir / name), rng).sizes().vec();
  });
  out["image"]["output_shape"] = image_out;

  // (2) valor AudioMapper, BEATs settings.
  AudioMapper audio(media.audio_dir, AudioMapperOptions{.melbins = d.audio_melbins,
                                                        .target_length = d.audio_target_length,
                                                        .sample_num = cfg.num_audios,
                                                        .training = false});
  std::vector<int64_t> audio_out;
  passes("audio", d.audio_passes, d.audio_repeat * int64_t(media.wavs.size()), [&] {
    for (int64_t r = 0; r < d.audio_repeat; ++r)
      for (const auto& wav : media.wavs) audio_out = audio(wav, rng).sizes().vec();
  });
  out["audio"]["output_shape"] = audio_out;

  // (3) valor VideoMapper on a frame directory.
  VideoMapper video(media.videos_dir, VideoMapperOptions{.resolution = d.video_resolution,
                                                         .sample_num = cfg.num_frames,
                                                         .training = false});
  std::vector<int64_t> video_out;
  passes("video", d.video_passes, d.video_repeat, [&] {
    for (int64_t r = 0; r < d.video_repeat; ++r) video_out = video.video(media.clip_id, decoder, rng).sizes().vec();
  });
  out["video"]["output_shape"] = video_out;

  // (4) valor VideoMapper image path.
  VideoMapper valor_image(media.images_dir, VideoMapperOptions{.resolution = d.valor_image_resolution, .sample_num = 1});
  std::vector<int64_t> valor_out;
  passes("valor_image", d.valor_image_passes, d.valor_image_repeat * int64_t(media.images.size()), [&] {
    for (int64_t r = 0; r < d.valor_image_repeat; ++r)
      for (const auto& name : media.images) valor_out = valor_image.image(name, decoder).sizes().vec();
  });
  out["valor_image"]["output_shape"] = valor_out;
  return out;
}

}  // namespace cb::bench
