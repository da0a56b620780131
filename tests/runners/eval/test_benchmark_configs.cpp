// Every benchmark yaml of eval_configs/{caption,qa,dialogue} runs end to end through chatbridge-eval
// on a two-sample split generated here (annotation file in the builder's format, JPEG/MP4/WAV media
// from tests/support/make_media), with the tiny ChatBridge of tests/runners/eval/tiny_eval_model.h.
// The yaml is used as shipped (task, prompt, decoding, processors, builder type); the test points its
// storage at the generated files and sizes the images for the tiny model. Checks: both samples in the
// results under the task's id field, and the metrics file holds the task's metrics computed from those
// results and the generated references.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <functional>
#include <set>

#include "runners/eval/metrics/caption_scores.h"
#include "runners/eval/metrics/vqa_accuracy.h"
#include "tests/runners/eval/tiny_eval_model.h"
#include "tests/support/make_media.h"
#include "tests/support/process_util.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace cb::test;

namespace {

const fs::path kSource = CHATBRIDGE_SOURCE_DIR;

enum class Media { image, video, audio, video_audio };

struct Benchmark {
  std::string yaml;     // under eval_configs/
  std::string builder;  // its datasets: entry
  std::string split;    // its run.test_splits
  Media media;
  // The two-sample annotation file, given the media names (file names relative to the media roots).
  std::function<json(const std::vector<std::string>& media)> annotation;
  std::string id_key;                          // the result records' id field
  std::vector<std::string> ids;                // the ids the two samples get
  std::vector<std::vector<std::string>> refs;  // their reference captions / answers
};

const std::vector<std::string> kCaps0 = {"a red square on a blue field", "a square of red"};
const std::vector<std::string> kCaps1 = {"stripes moving to the left", "a moving pattern"};
const std::vector<std::string> kAns0 = {"red", "red", "crimson"};
const std::vector<std::string> kAns1 = {"two", "2", "two"};

json image_qa(const std::vector<std::string>& m) {
  return json::array({{{"image", m[0]}, {"question", "What colour is it?"}, {"answer", kAns0}, {"question_id", 11}},
                      {{"image", m[1]}, {"question", "How many?"}, {"answer", kAns1}, {"question_id", 12}}});
}
json video_qa(const std::vector<std::string>& m) {
  return json::array({{{"video", m[0]}, {"question", "What colour is it?"}, {"answer", "red"}, {"question_id", 21}},
                      {{"video", m[1]}, {"question", "How many?"}, {"answer", "two"}, {"question_id", 22}}});
}
json video_caption(const std::vector<std::string>& m) {
  return json::array({{{"video", m[0]}, {"image_id", "vid0"}, {"caption", kCaps0}},
                      {{"video", m[1]}, {"image_id", "vid1"}, {"caption", kCaps1}}});
}

const std::vector<Benchmark>& benchmarks() {
  static const std::vector<Benchmark> all = {
      {"caption/coco_caption_eval.yaml",
       "coco_caption",
       "test",
       Media::image,
       [](const auto& m) {
         return json::array({{{"image", m[0]}, {"caption", kCaps0}}, {{"image", m[1]}, {"caption", kCaps1}}});
       },
       "image_id",
       {"000000000001", "000000000002"},
       {kCaps0, kCaps1}},
      {"caption/nocaps_eval.yaml",
       "nocaps",
       "val",
       Media::image,
       [](const auto& m) {
         return json::array({{{"image", m[0]}, {"img_id", 0}, {"caption", kCaps0}},
                             {{"image", m[1]}, {"img_id", 1}, {"caption", kCaps1}}});
       },
       "image_id",
       {"0", "1"},
       {kCaps0, kCaps1}},
      {"caption/flickr30k_eval.yaml",
       "flickr30k",
       "test",
       Media::image,
       [](const auto& m) {
         return json::array({{{"image", m[0]}, {"caption", kCaps0}}, {{"image", m[1]}, {"caption", kCaps1}}});
       },
       "image_id",
       {"COCO_val2014_000000000001", "COCO_val2014_000000000002"},
       {kCaps0, kCaps1}},
      {"qa/okvqa_eval.yaml", "ok_vqa", "test", Media::image, image_qa, "question_id", {"11", "12"}, {kAns0, kAns1}},
      {"qa/gqa_eval.yaml",
       "gqa",
       "val",
       Media::image,
       [](const auto& m) {
         return json::array({{{"image", m[0]}, {"question", "What colour?"}, {"answer", "red"}, {"question_id", "g1"}},
                             {{"image", m[1]}, {"question", "How many?"}, {"answer", "two"}, {"question_id", "g2"}}});
       },
       "question_id",
       {"g1", "g2"},
       {{"red"}, {"two"}}},
      {"qa/vqav2_eval.yaml", "coco_vqa", "val", Media::image, image_qa, "question_id", {"11", "12"}, {kAns0, kAns1}},
      {"qa/msvd_qa_eval.yaml",
       "msvd_qa",
       "test",
       Media::video,
       video_qa,
       "question_id",
       {"21", "22"},
       {{"red"}, {"two"}}},
      {"qa/msrvtt_qa_eval.yaml",
       "msrvtt_qa",
       "test",
       Media::video,
       video_qa,
       "question_id",
       {"21", "22"},
       {{"red"}, {"two"}}},
      {"qa/music_avqa_eval.yaml",
       "music_qa",
       "test",
       Media::video_audio,
       video_qa,
       "question_id",
       {"21", "22"},
       {{"red"}, {"two"}}},
      {"caption/vatex_eval.yaml",
       "vatex_caption",
       "val",
       Media::video,
       video_caption,
       "image_id",
       {"vid0", "vid1"},
       {kCaps0, kCaps1}},
      {"caption/msrvtt_caption_eval.yaml",
       "msrvtt_caption",
       "test",
       Media::video,
       video_caption,
       "image_id",
       {"vid0", "vid1"},
       {kCaps0, kCaps1}},
      {"caption/valor_eval.yaml",
       "av_caption",
       "test",
       Media::video_audio,
       [](const auto& m) {
         return json::array({{{"video_id", fs::path(m[0]).stem().string()}, {"desc", kCaps0}},
                             {{"video_id", fs::path(m[1]).stem().string()}, {"desc", kCaps1}}});
       },
       "image_id",
       {"clip0", "clip1"},
       {kCaps0, kCaps1}},
      {"caption/clotho_eval.yaml",
       "audio_caption",
       "val",
       Media::audio,
       [](const auto& m) {
         return json::array({{{"audio", m[0]}, {"caption", kCaps0}}, {{"audio", m[1]}, {"caption", kCaps1}}});
       },
       "image_id",
       {"clip0.wav", "clip1.wav"},
       {kCaps0, kCaps1}},
      {"caption/audiocaps_eval.yaml",
       "audio_caption",
       "val",
       Media::audio,
       [](const auto& m) {
         return json::array({{{"audio", m[0]}, {"caption", kCaps0}}, {{"audio", m[1]}, {"caption", kCaps1}}});
       },
       "image_id",
       {"clip0.wav", "clip1.wav"},
       {kCaps0, kCaps1}},
      {"dialogue/avsd_eval.yaml",
       "avsd_dialogue",
       "test",
       Media::video_audio,
       [](const auto& m) {
         const auto dialog = [](const std::string& id, const std::string& last) {
           return json{{"image_id", id},
                       {"caption", "a person walks in"},
                       {"dialog", json::array({{{"question", "is there sound?"}, {"answer", "yes, music plays"}},
                                               {{"question", "what happens?"}, {"answer", last}}})}};
         };
         return json{{"dialogs", json::array({dialog(fs::path(m[0]).stem().string(), "he sits down"),
                                              dialog(fs::path(m[1]).stem().string(), "she opens the door")})}};
       },
       "image_id",
       {"clip0", "clip1"},
       {{"he sits down"}, {"she opens the door"}}},
  };
  return all;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  REQUIRE(in.good());
  return json::parse(in);
}

// The generated split: media under <dir>/media/{images,videos,audios}, the annotation file, and the
// --options that point the yaml's builder at them. Returns the media names the annotation uses.
std::vector<std::string> write_split(const Benchmark& b, const fs::path& dir, std::vector<std::string>& options) {
  const std::string ds = "datasets." + b.builder + ".";
  std::vector<std::string> names;
  const auto media = dir / "media";
  const int64_t size = tiny_eval_image_size();
  for (int i = 0; i < 2; ++i) {
    if (b.media == Media::image) {
      // COCO-style names: the coco builder takes the id from them, flickr30k the file stem.
      names.push_back(fmt::format("val2014/COCO_val2014_00000000000{}.jpg", i + 1));
      write_file(media / "images" / names.back(), encode_jpeg(pattern_frame(7 * i, 48, 64)));
    } else if (b.media == Media::audio) {
      names.push_back(fmt::format("clip{}.wav", i));
      write_file(media / "audios" / names.back(), encode_wav_tone(16000, 16000 * 2, 300.0 + 200 * i));
    } else {
      names.push_back(fmt::format("clip{}.mp4", i));
      fs::create_directories(media / "videos");
      write_mp4(media / "videos" / names.back(), 8, 48, 64, 4, 4);
      if (b.media == Media::video_audio)
        write_file(media / "audios" / fmt::format("clip{}.wav", i), encode_wav_tone(16000, 16000 * 2, 440.0 + 100 * i));
    }
  }
  const auto ann = dir / "annotation.json";
  write_text(ann, b.annotation(names).dump(1));
  options.push_back(ds + "build_info.annotations." + b.split + ".storage=" + ann.string());
  if (b.media == Media::image) options.push_back(ds + "build_info.images.storage=" + (media / "images").string());
  if (b.media == Media::video || b.media == Media::video_audio)
    options.push_back(ds + "build_info.videos.storage=" + (media / "videos").string());
  if (b.media == Media::audio || b.media == Media::video_audio)
    options.push_back(ds + "build_info.audios.storage=" + (media / "audios").string());
  if (b.media != Media::audio) options.push_back(ds + "vis_processor.eval.image_size=" + std::to_string(size));
  return names;
}

void run_benchmark(const Benchmark& b) {
  INFO(b.yaml);
  const auto dir = fresh_dir("bench_" + b.builder + "_" + fs::path(b.yaml).stem().string());
  const auto model_yaml = write_tiny_eval_model(dir / "model");
  std::vector<std::string> options = {"run.output_dir=" + (dir / "out").string(), "run.device=cpu",
                                      "run.batch_size_eval=2"};
  write_split(b, dir, options);
  std::vector<std::string> argv = {
      CB_EVAL,       "--threads",         "1",        "--cfg-path", (kSource / "eval_configs" / b.yaml).string(),
      "--model-cfg", model_yaml.string(), "--options"};
  argv.insert(argv.end(), options.begin(), options.end());
  const auto log = dir / "log.txt";
  const int code = wait_exit(spawn(argv, {{"CHATBRIDGE_CACHE_ROOT", dir.string()}}, log));
  if (code != 0) {
    std::ifstream in(log);
    FAIL("chatbridge-eval exited with " << code << ":\n" << std::string(std::istreambuf_iterator<char>(in), {}));
  }

  const auto results = read_json(dir / "out" / "result" / (b.split + "_results.json"));
  const auto m = read_json(dir / "out" / (b.split + "_metrics.json"));
  REQUIRE(results.size() == 2);
  std::vector<std::string> predictions;
  const std::string pred_key = results[0].contains("caption") ? "caption" : "answer";
  for (size_t i = 0; i < 2; ++i) {
    CHECK(results[i].at(b.id_key).get<std::string>() == b.ids[i]);
    predictions.push_back(results[i].at(pred_key).get<std::string>());
  }
  CHECK(m.at("num_samples") == 2);
  REQUIRE(m.contains("agg_metrics"));
  CHECK(std::isfinite(m["agg_metrics"].get<double>()));
  // The metrics are those of the results against the generated references.
  if (m.contains("CIDEr")) {
    const auto expect = cb::metrics::caption_scores(b.refs, predictions);
    for (const auto& [k, v] : expect.items()) {
      INFO(k);
      CHECK(m.at(k).get<double>() == Approx(v.get<double>()).epsilon(1e-12));
    }
  } else {
    double acc = 0;
    for (size_t i = 0; i < 2; ++i) acc += cb::metrics::vqa_accuracy(predictions[i], b.refs[i]);
    CHECK(m.at("acc").get<double>() == Approx(100 * acc / 2).margin(0.005));
    REQUIRE(m.contains("exact_match"));
  }
}

const Benchmark& find(const std::string& yaml) {
  for (const auto& b : benchmarks())
    if (b.yaml == yaml) return b;
  FAIL("no benchmark " << yaml);
  throw;
}

}  // namespace

TEST_CASE("every benchmark yaml in eval_configs/{caption,qa,dialogue} has a test here", "[benchmarks]") {
  std::set<std::string> shipped, tested;
  for (const char* sub : {"caption", "qa", "dialogue"})
    for (const auto& e : fs::directory_iterator(kSource / "eval_configs" / sub))
      shipped.insert(std::string(sub) + "/" + e.path().filename().string());
  for (const auto& b : benchmarks()) tested.insert(b.yaml);
  CHECK(shipped == tested);
}

TEST_CASE("benchmark: COCO caption", "[benchmarks]") { run_benchmark(find("caption/coco_caption_eval.yaml")); }
TEST_CASE("benchmark: NoCaps", "[benchmarks]") { run_benchmark(find("caption/nocaps_eval.yaml")); }
TEST_CASE("benchmark: Flickr30K", "[benchmarks]") { run_benchmark(find("caption/flickr30k_eval.yaml")); }
TEST_CASE("benchmark: OK-VQA", "[benchmarks]") { run_benchmark(find("qa/okvqa_eval.yaml")); }
TEST_CASE("benchmark: GQA", "[benchmarks]") { run_benchmark(find("qa/gqa_eval.yaml")); }
TEST_CASE("benchmark: VQAv2", "[benchmarks]") { run_benchmark(find("qa/vqav2_eval.yaml")); }
TEST_CASE("benchmark: MSVD-QA", "[benchmarks]") { run_benchmark(find("qa/msvd_qa_eval.yaml")); }
TEST_CASE("benchmark: MSRVTT-QA", "[benchmarks]") { run_benchmark(find("qa/msrvtt_qa_eval.yaml")); }
TEST_CASE("benchmark: MUSIC-AVQA", "[benchmarks]") { run_benchmark(find("qa/music_avqa_eval.yaml")); }
TEST_CASE("benchmark: VATEX", "[benchmarks]") { run_benchmark(find("caption/vatex_eval.yaml")); }
TEST_CASE("benchmark: MSRVTT caption", "[benchmarks]") { run_benchmark(find("caption/msrvtt_caption_eval.yaml")); }
TEST_CASE("benchmark: VALOR-32K", "[benchmarks]") { run_benchmark(find("caption/valor_eval.yaml")); }
TEST_CASE("benchmark: Clotho", "[benchmarks]") { run_benchmark(find("caption/clotho_eval.yaml")); }
TEST_CASE("benchmark: AudioCaps", "[benchmarks]") { run_benchmark(find("caption/audiocaps_eval.yaml")); }
TEST_CASE("benchmark: AVSD", "[benchmarks]") { run_benchmark(find("dialogue/avsd_eval.yaml")); }
