// The LAVIS-style builders on small samples of each annotation format written at test time (JPEG
// images, MPEG-4 videos, WAV clips, JSON annotations, tar shards): the builder's shipped default yaml
// with a test section merged over it (as resolve_config does), then sample contents (ids, texts,
// answer lists and weights, media shapes), collation, and bad records / bad media skipped and reported
// with their file and reason.
#include <catch2/catch.hpp>

#include <set>

#include "datasets/builders/dataset.h"
#include "framework/config_node.h"
#include "framework/error.h"
#include "tests/datasets/webdataset/write_tar.h"
#include "tests/support/make_media.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using nlohmann::json;

namespace {

constexpr int64_t kSize = 16, kFrames = 2;

using cb::test::encode_wav_tone;
using cb::test::write_file;
using cb::test::write_tar;
using cb::test::write_text;

std::vector<uint8_t> jpeg(int64_t t) { return cb::test::encode_jpeg(cb::test::pattern_frame(t, 24, 32)); }

// Media every test can use: images/img{0..3}.jpg, videos/vid{0,1}.mp4, audios/vid{0,1}.wav,
// audios/clip{0,1}.wav, plus broken files: images/broken.jpg (truncated), videos/broken.mp4 (random
// bytes), audios/empty.wav (zero length).
struct Media {
  cb::test::TempDir dir;
  fs::path root = dir.path;
  Media() {
    for (int i = 0; i < 4; ++i) write_file(root / fmt::format("images/img{}.jpg", i), jpeg(i));
    auto j = jpeg(9);
    write_file(root / "images/broken.jpg", std::vector<uint8_t>(j.begin(), j.begin() + j.size() / 3));
    for (int v = 0; v < 2; ++v) {
      fs::create_directories(root / "videos");
      cb::test::write_mp4(root / fmt::format("videos/vid{}.mp4", v), 6, 32, 32, 3, 8);
      write_file(root / fmt::format("audios/vid{}.wav", v), encode_wav_tone(16000, 8000, 220.0 * (v + 1)));
      write_file(root / fmt::format("audios/clip{}.wav", v), encode_wav_tone(22050, 11025, 330.0 * (v + 1)));
    }
    std::vector<uint8_t> noise(4096);
    for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint8_t>(i * 131 + 7);
    write_file(root / "videos/broken.mp4", noise);
    write_file(root / "audios/empty.wav", {});
  }
  void annotations(const std::string& name, const json& records) const {
    write_text(root / "ann" / name, records.dump());
  }
};

// The builder's default yaml with `user` (a YAML `datasets:` document) merged over it, as
// resolve_config does; small media processors so that the tests run fast.
cb::Config section(const std::string& builder, const std::string& user, const std::string& type = "default",
                   bool small_processors = true) {
  const auto path = cb::registry::default_config(cb::Kind::dataset_builder, builder, type);
  // Named as resolve_config names it: a processor key kept from it only warns (make_processor).
  cb::ConfigNode base =
      cb::load_yaml_file(path, std::filesystem::relative(path, cb::registry::resource_root()).string());
  cb::merge_into(base, cb::parse_yaml(user, "test section"));
  // n_frms only where the builder's video processors read it: a processor refuses keys it does not read.
  const cb::Config defaults(base, "defaults");
  const bool frames = defaults.has("datasets." + builder + ".vis_processor.eval.n_frms");
  const std::string size =
      fmt::format("{{image_size: {}{}}}", kSize, frames ? fmt::format(", n_frms: {}", kFrames) : "");
  cb::ConfigNode small = cb::parse_yaml(fmt::format(R"(
datasets:
  {0}:
    vis_processor:
      train: {1}
      eval: {1}
)",
                                                    builder, size),
                                        "small processors");
  if (small_processors) cb::merge_into(base, small);
  return cb::Config(base, "test").sub("datasets." + builder);
}

cb::BuiltDatasets build(const Media& m, const std::string& builder, const std::string& user,
                        const std::string& type = "default") {
  return cb::build_dataset(builder, section(builder, user, type), m.root);
}

// `builder` with a train split only: annotation file ann/`annotation`, media section `media` (images,
// videos, audios) stored at `storage`.
cb::BuiltDatasets build_train_only(const Media& m, const std::string& builder, const std::string& annotation,
                                   const std::string& media, const std::string& storage) {
  return build(m, builder,
               fmt::format(R"(
datasets:
  {}:
    build_info:
      annotations:
        train: {{storage: ann/{}}}
        val: null
        test: null
      {}: {{storage: {}}}
)",
                           builder, annotation, media, storage));
}

std::vector<cb::Sample> all(const cb::Dataset& ds, std::vector<cb::BadSample>& bad) {
  std::vector<int64_t> idx(static_cast<size_t>(ds.size()));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  return cb::load_samples(ds, idx, bad);
}

void require_shape(const torch::Tensor& t, std::vector<int64_t> shape) {
  REQUIRE(t.defined());
  REQUIRE(t.sizes().vec() == shape);
  REQUIRE(torch::isfinite(t).all().item<bool>());
}

const std::vector<int64_t> kImage = {3, kSize, kSize}, kVideo = {kFrames, 3, kSize, kSize}, kAudio = {1, 1024, 64};

}  // namespace

TEST_CASE("builders: every original name is registered with a default yaml naming it", "[builders]") {
  const std::vector<std::string> names = {
      "coco_caption", "nocaps",       "msrvtt_caption", "msvd_caption", "vatex_caption", "audio_caption",
      "av_caption",   "msrvtt_qa",    "msvd_qa",        "coco_vqa",     "ok_vqa",        "aok_vqa",
      "gqa",          "vg_vqa",       "avsd_dialogue",  "music_qa",     "cc_sbu_align",  "cc_sbu",
      "laion",        "vist_caption", "mosei",          "flickr30k"};
  for (const auto& n : names) {
    INFO(n);
    REQUIRE(cb::registry::contains(cb::Kind::dataset_builder, n));
    for (const auto& type : cb::registry::default_config_types(cb::Kind::dataset_builder, n)) {
      auto node = cb::load_yaml_file(cb::registry::default_config(cb::Kind::dataset_builder, n, type), n);
      const cb::ConfigNode* ds = node.find("datasets");
      REQUIRE(ds);
      REQUIRE(ds->entries.size() == 1);
      REQUIRE(ds->entries[0].first == n);
    }
    REQUIRE(!cb::registry::default_config_types(cb::Kind::dataset_builder, n).empty());
  }
  REQUIRE(cb::registry::contains(cb::Kind::processor, "blip_audio_eval"));
}

TEST_CASE("coco_caption: train captions, eval references grouped per image with the COCO id quirk", "[builders]") {
  Media m;
  fs::copy_file(m.root / "images/img0.jpg", m.root / "images/COCO_val2014_000000000042.jpg");
  m.annotations("cap_train.json", json::array({
                                      {{"image", "images/img0.jpg"}, {"caption", "A Dog (running)!"}, {"image_id", 7}},
                                      {{"image", "images/img0.jpg"}, {"caption", "the dog; again"}, {"image_id", 7}},
                                      {{"image", "images/img1.jpg"}, {"caption", "a cat"}, {"image_id", "c1"}},
                                      {{"image", "images/img2.jpg"}, {"image_id", 3}},  // no caption
                                      "not an object",
                                  }));
  m.annotations("cap_val.json",
                json::array({
                    {{"image", "images/COCO_val2014_000000000042.jpg"}, {"caption", {"ref one", "ref two"}}},
                    {{"image", "images/img1.jpg"}, {"caption", "single ref"}},
                    {{"image", "images/COCO_val2014_000000000042.jpg"}, {"caption", "ref three"}},
                }));
  auto built = build(m, "coco_caption", R"(
datasets:
  coco_caption:
    build_info:
      annotations:
        train: {storage: ann/cap_train.json}
        val: {storage: ann/cap_val.json}
        test: null
      images: {storage: .}
)");
  REQUIRE(built.size() == 2);
  const cb::Dataset& train = *built.at("train");
  CHECK(train.kind() == "caption");
  CHECK(train.info().image);
  CHECK(train.info().task() == "ti");
  REQUIRE(train.size() == 3);
  REQUIRE(train.malformed().size() == 2);
  CHECK_THAT(train.malformed()[0].reason, Contains("record 3") && Contains("caption"));
  CHECK_THAT(train.malformed()[0].file, Contains("cap_train.json"));
  CHECK_THAT(train.malformed()[1].reason, Contains("record 4") && Contains("not a JSON object"));

  std::vector<cb::BadSample> bad;
  auto samples = all(train, bad);
  REQUIRE(bad.empty());
  CHECK(samples[0].text_input == "a dog running");  // blip_caption
  CHECK(samples[1].text_input == "the dog again");
  CHECK(samples[0].id == "7");
  CHECK(samples[2].id == "c1");
  CHECK(samples[2].instance_id == 2);
  for (const auto& s : samples) require_shape(s.image, kImage);

  const cb::Dataset& val = *built.at("val");
  REQUIRE(val.size() == 2);
  auto refs = all(val, bad);
  REQUIRE(bad.empty());
  CHECK(refs[0].id == "000000000042");
  CHECK(refs[0].answers == std::vector<std::string>{"ref one", "ref two", "ref three"});
  CHECK(refs[1].id == "img1");
  CHECK(refs[1].answers == std::vector<std::string>{"single ref"});
  CHECK(refs[0].text_input.empty());
  // blip_image_eval is deterministic: the grouped sample is the image's only sample.
  CHECK(torch::equal(refs[0].image, val.get(0).image));

  cb::SampleBatch b = cb::collate(refs, val.info(), /*pin_memory=*/true);
  require_shape(b.batch.image, {2, 3, kSize, kSize});
  CHECK(!b.batch.audio.defined());
  CHECK(b.batch.ids == std::vector<std::string>{"000000000042", "img1"});
  CHECK(b.answers[0].size() == 3);
  CHECK(b.batch.task == "ti");
  CHECK(b.batch.size() == 2);
}

// Train records of the caption builders are checked from their text where it can vouch for them
// (QuickCheck) and parsed otherwise: every shape below must end as the parser alone decides it.
TEST_CASE("caption train records: the quick check keeps exactly what the parser keeps, with its reasons",
          "[builders]") {
  Media m;
  const std::vector<std::pair<std::string, const char*>> coco = {
      // record text, the field the parser names ("" when the record is good)
      {R"({"image": "images/img0.jpg", "caption": "a", "image_id": 7})", ""},
      {R"({"image": "images/img0.jpg", "caption": "b", "image_id": -7})", ""},
      {R"({"image": "images/img0.jpg", "caption": "c", "image_id": 1.5})", "image_id"},
      {R"({"image": "images/img0.jpg", "caption": "c", "image_id": 1e3})", "image_id"},
      {R"({"image": "images/img0.jpg", "caption": "c", "image_id": 123456789012345678901})", "image_id"},
      {R"({"image": "images/img1.jpg", "caption": "d", "image_id": 12345678901234567890})", ""},
      {R"({"image": "images/img0.jpg", "caption": null, "image_id": 1})", "caption"},
      {R"({"image": "images/img1.jpg", "caption": 5, "caption": "last wins", "image_id": 1})", ""},
      {R"({"image": "images/img0.jpg", "caption": "first", "caption": 5, "image_id": 1})", "caption"},
      {R"({"im\u0061ge": "images/img2.jpg", "caption": "escaped key", "image_id": 2})", ""},
      {R"({"image": 3, "caption": "c", "image_id": 1})", "image"},
      {R"([])", "not a JSON object"},
      {R"({"image": "images/img2.jpg", "caption": "e", "image_id": "s"})", ""},
      {R"({"image": "images/img0.jpg", "caption": "c"})", "image_id"},
      {R"({"image": "images/img0.jpg", "caption": "c", "image_id": null})", "image_id"},
      {"{ \"image\" : \"images/img3.jpg\" ,\n \"caption\" : \"f\" , \"image_id\" : 3 }", ""},
  };
  std::string text = "[";
  std::vector<int64_t> good;
  std::vector<std::string> reasons;
  for (size_t i = 0; i < coco.size(); ++i) {
    text += (i ? ",\n" : "") + coco[i].first;
    if (*coco[i].second) reasons.push_back(coco[i].second);
    else good.push_back(static_cast<int64_t>(i));
  }
  write_text(m.root / "ann/quick_train.json", text + "]");
  auto built = build_train_only(m, "coco_caption", "quick_train.json", "images", ".");
  const cb::Dataset& train = *built.at("train");
  REQUIRE(train.malformed().size() == reasons.size());
  for (size_t k = 0; k < reasons.size(); ++k) CHECK_THAT(train.malformed()[k].reason, Contains(reasons[k]));
  REQUIRE(train.size() == static_cast<int64_t>(good.size()));
  std::vector<cb::BadSample> bad;
  const auto samples = all(train, bad);
  REQUIRE(bad.empty());
  for (size_t k = 0; k < good.size(); ++k) CHECK(samples[k].instance_id == good[k]);  // ids count every record
  CHECK(samples[3].text_input == "last wins");
  CHECK(samples[4].text_input == "escaped key");

  // The video and audio caption builders' fields.
  write_text(m.root / "ann/quick_video.json", R"([{"video": "videos/vid0.mp4", "caption": "v", "image_id": 1},
    {"video": "videos/vid0.mp4", "caption": "v", "image_id": 0.5}, {"video": "videos/vid1.mp4", "caption": "w"}])");
  auto video = build_train_only(m, "msrvtt_caption", "quick_video.json", "videos", ".");
  CHECK(video.at("train")->size() == 1);
  REQUIRE(video.at("train")->malformed().size() == 2);
  CHECK_THAT(video.at("train")->malformed()[1].reason, Contains("record 2") && Contains("image_id"));
  write_text(m.root / "ann/quick_audio.json", R"([{"audio": "clip0.wav", "caption": "a"},
    {"audio": ["clip0.wav"], "caption": "a"}, {"audio": "clip1.wav", "caption": "b", "image_id": 0.5}])");
  auto audio = build_train_only(m, "audio_caption", "quick_audio.json", "audios", "audios");
  CHECK(audio.at("train")->size() == 2);  // audio_caption reads no image_id
  REQUIRE(audio.at("train")->malformed().size() == 1);
  CHECK_THAT(audio.at("train")->malformed()[0].reason, Contains("record 1") && Contains("audio"));
}

TEST_CASE("nocaps: eval only, ids from img_id", "[builders]") {
  Media m;
  m.annotations("nocaps_val.json",
                json::array({{{"image", "images/img3.jpg"}, {"img_id", 0}, {"caption", {"x y", "z"}}},
                             {{"image", "images/img2.jpg"}, {"img_id", 1}},
                             {{"image", "images/img1.jpg"}}}));
  auto built = build(m, "nocaps", R"(
datasets:
  nocaps:
    build_info:
      annotations:
        val: {storage: ann/nocaps_val.json}
        test: null
      images: {storage: .}
)");
  const cb::Dataset& val = *built.at("val");
  REQUIRE(val.size() == 2);
  REQUIRE(val.malformed().size() == 1);
  CHECK_THAT(val.malformed()[0].reason, Contains("img_id"));
  std::vector<cb::BadSample> bad;
  auto s = all(val, bad);
  CHECK(s[0].id == "0");
  CHECK(s[0].answers == std::vector<std::string>{"x y", "z"});
  CHECK(s[1].answers.empty());
  require_shape(s[1].image, kImage);

  CHECK_THROWS_WITH(build(m, "nocaps", R"(
datasets:
  nocaps:
    build_info:
      annotations: {train: {storage: ann/nocaps_val.json}, val: null, test: null}
      images: {storage: .}
)"),
                    Contains("datasets.nocaps.build_info.annotations.train") && Contains("no train dataset"));
}

TEST_CASE("flickr30k: LAVIS's files, train captions by image_id, eval references per image by file stem",
          "[builders]") {
  Media m;
  fs::create_directories(m.root / "images/flickr30k-images");
  fs::copy_file(m.root / "images/img0.jpg", m.root / "images/flickr30k-images/1007129816.jpg");
  m.annotations(
      "train.json",
      json::array({{{"image", "flickr30k-images/1007129816.jpg"}, {"caption", "A man (smiling)."}, {"image_id", 0}},
                   {{"image", "flickr30k-images/1007129816.jpg"}, {"caption", "a man"}}}));  // no image_id
  m.annotations("test.json",
                json::array({{{"image", "flickr30k-images/1007129816.jpg"}, {"caption", {"one", "two", "three"}}}}));
  auto built = build(m, "flickr30k", R"(
datasets:
  flickr30k:
    build_info:
      annotations:
        train: {storage: ann/train.json}
        val: null
        test: {storage: ann/test.json}
      images: {storage: images}
)");
  REQUIRE(built.size() == 2);
  const cb::Dataset& train = *built.at("train");
  CHECK(train.kind() == "caption");
  REQUIRE(train.size() == 1);
  REQUIRE(train.malformed().size() == 1);
  CHECK_THAT(train.malformed()[0].reason, Contains("image_id"));
  std::vector<cb::BadSample> bad;
  auto s = all(train, bad);
  CHECK(s[0].text_input == "a man smiling");
  CHECK(s[0].id == "0");
  require_shape(s[0].image, kImage);

  auto t = all(*built.at("test"), bad);
  REQUIRE(bad.empty());
  REQUIRE(t.size() == 1);
  CHECK(t[0].id == "1007129816");
  CHECK(t[0].answers == std::vector<std::string>{"one", "two", "three"});
  require_shape(t[0].image, kImage);
}

TEST_CASE("msrvtt/msvd/vatex_caption: video frames, eval by video_id, undecodable video skipped", "[builders]") {
  Media m;
  m.annotations("vcap_train.json",
                json::array({{{"video", "vid0.mp4"}, {"caption", "A man: cooking."}, {"image_id", "v0"}},
                             {{"video", "broken.mp4"}, {"caption", "broken"}, {"image_id", "b"}}}));
  m.annotations("vcap_test.json", json::array({{{"video_id", "vid1"}, {"caption", {"first", "second"}}},
                                               {{"video_id", "vid0"}, {"image_id", 5}, {"caption", "third"}}}));
  for (const std::string name : {"msrvtt_caption", "msvd_caption", "vatex_caption"}) {
    INFO(name);
    auto built = build(m, name,
                       fmt::format(R"(
datasets:
  {}:
    build_info:
      annotations:
        train: {{storage: ann/vcap_train.json}}
        val: null
        test: {{storage: ann/vcap_test.json}}
      videos: {{storage: videos}}
)",
                                   name));
    const cb::Dataset& train = *built.at("train");
    CHECK(train.info().video);
    CHECK(train.info().task() == "tv");
    REQUIRE(train.size() == 2);
    std::vector<cb::BadSample> bad;
    auto s = all(train, bad);
    REQUIRE(s.size() == 1);
    CHECK(s[0].text_input == "a man cooking");
    CHECK(s[0].id == "v0");
    require_shape(s[0].image, kVideo);
    REQUIRE(bad.size() == 1);
    CHECK_THAT(bad[0].file, Contains("broken.mp4"));
    CHECK_THROWS_WITH(train.get(1), Contains("broken.mp4"));

    const cb::Dataset& test = *built.at("test");
    auto t = all(test, bad);
    REQUIRE(t.size() == 2);
    CHECK(t[0].id == "vid1");
    CHECK(t[0].answers == std::vector<std::string>{"first", "second"});
    CHECK(t[1].id == "5");
    cb::SampleBatch b = cb::collate(t, test.info());
    require_shape(b.batch.image, {2, kFrames, 3, kSize, kSize});
  }
}

TEST_CASE("audio_caption: fbank slices, references per clip, empty audio file skipped", "[builders]") {
  Media m;
  m.annotations("clotho_val.json", json::array({{{"audio", "clip0.wav"}, {"caption", "a low tone"}},
                                                {{"audio", "clip1.wav"}, {"caption", "a high tone"}},
                                                {{"audio", "clip0.wav"}, {"caption", "a steady hum"}},
                                                {{"audio", "empty.wav"}, {"caption", "nothing"}}}));
  auto built = build(m, "audio_caption", R"(
datasets:
  audio_caption:
    build_info:
      annotations: {val: {storage: ann/clotho_val.json}}
      audios: {storage: audios}
)");
  const cb::Dataset& val = *built.at("val");
  CHECK(val.info().audio);
  CHECK(!val.info().image);
  CHECK(val.info().task() == "ta");
  REQUIRE(val.size() == 3);
  std::vector<cb::BadSample> bad;
  auto s = all(val, bad);
  REQUIRE(s.size() == 2);
  CHECK(s[0].id == "clip0.wav");
  CHECK(s[0].answers == std::vector<std::string>{"a low tone", "a steady hum"});
  require_shape(s[0].audio, kAudio);
  CHECK(!s[0].image.defined());
  REQUIRE(bad.size() == 1);
  CHECK_THAT(bad[0].file, Contains("empty.wav"));
  cb::SampleBatch b = cb::collate(s, val.info());
  require_shape(b.batch.audio, {2, 1, 1024, 64});
  CHECK(!b.batch.image.defined());
}

TEST_CASE("av_caption: video + audio named after the video, desc references", "[builders]") {
  Media m;
  m.annotations("valor_test.json",
                json::array({{{"video_id", "vid0"}, {"desc", "a tone and a moving pattern"}},
                             {{"video", "vid1.mp4"}, {"audio", "clip1.wav"}, {"image_id", "v1"}, {"desc", {"a", "b"}}},
                             {{"video", "vid1.mp4"}, {"desc", "no id"}}}));
  auto built = build(m, "av_caption", R"(
datasets:
  av_caption:
    build_info:
      annotations: {test: {storage: ann/valor_test.json}}
      videos: {storage: videos}
      audios: {storage: audios}
)");
  const cb::Dataset& test = *built.at("test");
  CHECK(test.info().task() == "tva");
  REQUIRE(test.malformed().size() == 1);  // neither image_id nor video_id, a KeyError there
  CHECK_THAT(test.malformed()[0].reason, Contains("video_id"));
  std::vector<cb::BadSample> bad;
  auto s = all(test, bad);
  REQUIRE(bad.empty());
  REQUIRE(s.size() == 2);
  CHECK(s[0].id == "vid0");
  CHECK(s[0].answers == std::vector<std::string>{"a tone and a moving pattern"});
  CHECK_THAT(test.describe(0), Contains("vid0.mp4") && Contains("vid0.wav"));
  CHECK_THAT(test.describe(1), Contains("clip1.wav"));
  CHECK(s[1].id == "v1");
  CHECK(s[1].answers == std::vector<std::string>{"a", "b"});
  require_shape(s[1].image, kVideo);
  require_shape(s[1].audio, kAudio);
  cb::SampleBatch b = cb::collate(s, test.info());
  require_shape(b.batch.audio, {2, 1, 1024, 64});
}

TEST_CASE("coco_vqa / ok_vqa: answers weighted by frequency, eval questions from the first file", "[builders]") {
  Media m;
  m.annotations(
      "vqa_train.json",
      json::array(
          {{{"image", "images/img0.jpg"}, {"question", "What is THIS?"}, {"answer", {"dog", "dog", "cat", "dog"}}},
           {{"image", "images/img1.jpg"}, {"question", "Is it (red)."}, {"answer", "yes"}, {"question_id", 9}},
           {{"image", "images/img2.jpg"}, {"question", "no answers"}, {"answer", json::array()}}}));
  m.annotations("vqa_val_eval.json",
                json::array({{{"image", "images/img3.jpg"}, {"question", "How many?"}, {"question_id", 101}},
                             {{"image", "images/img0.jpg"},
                              {"question", "Colour?"},
                              {"question_id", "102"},
                              {"answer", {"red", "red", "blue"}}},
                             {{"image", "images/img1.jpg"}, {"question", "no id"}}}));
  m.annotations("answer_list.json", json::array({"dog", "cat"}));
  for (const std::string name : {"coco_vqa", "ok_vqa"}) {
    INFO(name);
    const char* eval_split = name == "coco_vqa" ? "val" : "test";
    auto built = build(m, name,
                       fmt::format(R"(
datasets:
  {0}:
    build_info:
      annotations:
        train: {{storage: [ann/vqa_train.json]}}
        {1}: {{storage: [ann/vqa_val_eval.json, ann/answer_list.json, ann/missing_questions.json]}}
        {2}: null
      images: {{storage: .}}
)",
                                   name, eval_split, name == "coco_vqa" ? "test" : "val"));
    const cb::Dataset& train = *built.at("train");
    CHECK(train.kind() == "qa");
    REQUIRE(train.size() == 2);
    REQUIRE(train.malformed().size() == 1);
    CHECK_THAT(train.malformed()[0].reason, Contains("record 2") && Contains("answer"));
    std::vector<cb::BadSample> bad;
    auto s = all(train, bad);
    CHECK(s[0].text_input == "what is this?");  // blip_question
    CHECK(s[0].answers == std::vector<std::string>{"dog", "cat"});
    REQUIRE(s[0].weights.size() == 2);
    CHECK(s[0].weights[0] == Approx(0.75f));
    CHECK(s[0].weights[1] == Approx(0.25f));
    CHECK(s[0].id == "0");  // no question_id: the instance id
    CHECK(s[1].text_input == "is it red");
    CHECK(s[1].id == "9");
    CHECK(s[1].weights == std::vector<float>{1.0f});
    require_shape(s[0].image, kImage);

    const cb::Dataset& eval = *built.at(eval_split);
    REQUIRE(eval.size() == 2);
    REQUIRE(eval.malformed().size() == 1);
    CHECK_THAT(eval.malformed()[0].reason, Contains("question_id"));
    auto e = all(eval, bad);
    REQUIRE(bad.empty());
    CHECK(e[0].id == "101");
    CHECK(e[0].text_input == "how many?");
    CHECK(e[0].answers.empty());
    CHECK(e[1].id == "102");
    CHECK(e[1].answers == std::vector<std::string>{"red", "red", "blue"});  // every human answer, as VQAEval
    cb::SampleBatch b = cb::collate(e, eval.info());
    CHECK(b.batch.ids == std::vector<std::string>{"101", "102"});
    CHECK(b.weights[1].empty());
  }
}

TEST_CASE("aok_vqa, gqa, vg_vqa: their answer fields and weights", "[builders]") {
  Media m;
  m.annotations("aok.json", json::array({{{"image", "images/img0.jpg"},
                                          {"question", "Why?"},
                                          {"question_id", "a1"},
                                          {"direct_answers", {"rain", "rain", "snow", "rain", "rain"}},
                                          {"choices", {"rain", "snow"}},
                                          {"correct_choice_idx", 0}}}));
  m.annotations(
      "gqa.json",
      json::array(
          {{{"image", "images/img1.jpg"}, {"question", "Which side?"}, {"answer", "left"}, {"question_id", 4}}}));
  m.annotations("vg.json", json::array({{{"image", "images/img2.jpg"}, {"question", "Where?"}, {"answer", "park"}}}));
  const auto yaml = [](const std::string& name, const std::string& train, const std::string& val) {
    return fmt::format(R"(
datasets:
  {}:
    build_info:
      annotations:
        train: {{storage: [ann/{}]}}
        val: {}
        test: null
      images: {{storage: .}}
)",
                       name, train, val);
  };
  std::vector<cb::BadSample> bad;
  auto aok = build(m, "aok_vqa", yaml("aok_vqa", "aok.json", "{storage: [ann/aok.json]}"));
  auto a = all(*aok.at("train"), bad);
  CHECK(a[0].answers == std::vector<std::string>{"rain", "snow"});
  CHECK(a[0].weights[0] == Approx(0.8f));
  CHECK(a[0].weights[1] == Approx(0.2f));
  auto av = all(*aok.at("val"), bad);
  CHECK(av[0].id == "a1");
  CHECK(av[0].answers == std::vector<std::string>{"rain", "rain", "snow", "rain", "rain"});

  auto gqa = build(m, "gqa", yaml("gqa", "gqa.json", "{storage: [ann/gqa.json]}"));
  auto g = all(*gqa.at("train"), bad);
  CHECK(g[0].answers == std::vector<std::string>{"left"});
  CHECK(g[0].weights == std::vector<float>{1.0f});
  CHECK(all(*gqa.at("val"), bad)[0].id == "4");
  // The other default types of gqa are registered as in the original.
  CHECK(cb::registry::default_config_types(cb::Kind::dataset_builder, "gqa") ==
        std::vector<std::string>{"balanced_testdev", "balanced_val", "default"});

  auto vg = build(m, "vg_vqa", yaml("vg_vqa", "vg.json", "null"));
  auto v = all(*vg.at("train"), bad);
  CHECK(v[0].answers == std::vector<std::string>{"park"});
  CHECK(v[0].weights == std::vector<float>{0.2f});
  CHECK_THROWS_WITH(build(m, "vg_vqa", yaml("vg_vqa", "vg.json", "{storage: [ann/vg.json]}")),
                    Contains("vg_vqa") && Contains("train only"));
  REQUIRE(bad.empty());
}

TEST_CASE("msrvtt_qa / msvd_qa and music_qa: video (and audio) questions", "[builders]") {
  Media m;
  m.annotations(
      "vqa.json",
      json::array({{{"video", "vid0.mp4"}, {"question", "What moves?"}, {"answer", "pattern"}, {"question_id", 11}},
                   {{"video", "vid1.mp4"}, {"question", "No id"}, {"answer", "x"}}}));
  for (const std::string name : {"msrvtt_qa", "msvd_qa"}) {
    INFO(name);
    auto built = build(m, name,
                       fmt::format(R"(
datasets:
  {}:
    build_info:
      annotations: {{train: null, val: null, test: {{storage: ann/vqa.json}}}}
      videos: {{storage: videos}}
)",
                                   name));
    const cb::Dataset& test = *built.at("test");
    REQUIRE(test.size() == 1);
    REQUIRE(test.malformed().size() == 1);
    std::vector<cb::BadSample> bad;
    auto s = all(test, bad);
    CHECK(s[0].text_input == "what moves?");
    CHECK(s[0].answers == std::vector<std::string>{"pattern"});
    CHECK(s[0].id == "11");
    require_shape(s[0].image, kVideo);
  }
  auto music = build(m, "music_qa", R"(
datasets:
  music_qa:
    build_info:
      annotations: {test: {storage: ann/vqa.json}}
      videos: {storage: videos}
      audios: {storage: audios}
)");
  const cb::Dataset& test = *music.at("test");
  REQUIRE(test.size() == 2);
  CHECK_THAT(test.describe(1), Contains("vid1.mp4") && Contains("vid1.wav"));
  std::vector<cb::BadSample> bad;
  auto s = all(test, bad);
  REQUIRE(bad.empty());
  CHECK(s[0].id == "11");
  CHECK(s[1].id == "1");
  require_shape(s[1].audio, kAudio);
  require_shape(s[1].image, kVideo);
}

TEST_CASE("avsd_dialogue: dialogue history strings, one eval sample per dialog, one train sample per turn",
          "[builders]") {
  Media m;
  json dialogs = {{"dialogs", json::array({{{"image_id", "vid0"},
                                            {"caption", "A Pattern moves."},
                                            {"dialog",
                                             {{{"question", "what is it?"}, {"answer", "a pattern"}},
                                              {{"question", "does it move?"}, {"answer", "yes"}},
                                              {{"question", "any sound?"}, {"answer", "a tone"}}}}},
                                           {{"image_id", "vid1"}, {"caption", "x"}, {"dialog", json::array()}}})}};
  write_text(m.root / "ann/avsd.json", dialogs.dump());
  auto built = build(m, "avsd_dialogue", R"(
datasets:
  avsd_dialogue:
    build_info:
      annotations: {train: {storage: ann/avsd.json}, val: null, test: {storage: ann/avsd.json}}
      videos: {storage: videos}
      audios: {storage: audios}
)");
  const cb::Dataset& test = *built.at("test");
  CHECK(test.kind() == "dialogue");
  REQUIRE(test.size() == 1);
  REQUIRE(test.malformed().size() == 1);
  CHECK_THAT(test.malformed()[0].reason, Contains("dialog 1"));
  std::vector<cb::BadSample> bad;
  auto s = all(test, bad);
  REQUIRE(bad.empty());
  CHECK(s[0].text_input ==
        "###Human: what is it?###Assistant: a pattern###Human: does it move?###Assistant: yes###Human: any "
        "sound?###Assistant:");
  CHECK(s[0].answers == std::vector<std::string>{"a tone"});
  CHECK(s[0].caption == "a pattern moves");
  CHECK(s[0].id == "vid0");
  require_shape(s[0].image, kVideo);
  require_shape(s[0].audio, kAudio);
  cb::SampleBatch b = cb::collate(s, test.info());
  CHECK(b.captions == std::vector<std::string>{"a pattern moves"});

  const cb::Dataset& train = *built.at("train");
  REQUIRE(train.size() == 3);
  CHECK(train.get(0).text_input == "###Human: what is it?###Assistant:");
  CHECK(train.get(1).answers == std::vector<std::string>{"yes"});

  write_text(m.root / "ann/avsd_list.json", "[]");
  CHECK_THROWS_WITH(build(m, "avsd_dialogue", R"(
datasets:
  avsd_dialogue:
    build_info:
      annotations: {train: null, val: null, test: {storage: ann/avsd_list.json}}
      videos: {storage: videos}
      audios: {storage: audios}
)"),
                    Contains("avsd_list.json") && Contains("dialogs"));
}

TEST_CASE("cc_sbu_align: filter_cap.json and image/<id>.jpg, captions as they are", "[builders]") {
  Media m;
  write_file(m.root / "align/image/2.jpg", jpeg(2));
  write_file(m.root / "align/image/5.jpg", jpeg(5));
  write_text(m.root / "align/filter_cap.json", json({{"annotations",
                                                      {{{"image_id", "2"}, {"caption", "The Image shows: a pattern."}},
                                                       {{"image_id", "5"}, {"caption", "Another."}},
                                                       {{"image_id", "6"}}}}})
                                                   .dump());
  auto built = build(m, "cc_sbu_align", "datasets: {cc_sbu_align: {build_info: {storage: align}}}");
  const cb::Dataset& train = *built.at("train");
  REQUIRE(train.size() == 2);
  REQUIRE(train.malformed().size() == 1);
  std::vector<cb::BadSample> bad;
  auto s = all(train, bad);
  CHECK(s[0].text_input == "The Image shows: a pattern.");
  CHECK(s[1].id == "5");
  require_shape(s[0].image, kImage);
}

TEST_CASE("laion / cc_sbu: resampled tar shards, shuffled, bad samples and missing shards reported", "[builders]") {
  Media m;
  auto bytes = [](const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); };
  const auto cap = [](const std::string& c) { return json({{"caption", c}}).dump(); };
  write_tar(m.root / "shards/00000.tar", {{"a0.jpg", bytes(jpeg(0))},
                                          {"a0.json", cap("First: Image!")},
                                          {"a1.jpg", bytes(jpeg(1))},
                                          {"a1.json", cap("second image")},
                                          {"bad.jpg", "not a jpeg"},
                                          {"bad.json", cap("broken")},
                                          {"nojson.jpg", bytes(jpeg(2))}});
  write_tar(m.root / "shards/00001.tar", {{"b0.jpg", bytes(jpeg(3))},
                                          {"b0.json", cap("third")},
                                          {"b1.jpg", bytes(jpeg(4))},
                                          {"b1.json", "{\"text\": 1}"}});
  // 00002.tar is named by the pattern but missing.
  for (const std::string name : {"laion", "cc_sbu"}) {
    INFO(name);
    auto built = build(
        m, name, fmt::format("datasets: {{{}: {{build_info: {{storage: 'shards/{{00000..00002}}.tar'}}}}}}", name));
    const cb::Dataset& train = *built.at("train");
    CHECK(train.info().streaming);
    CHECK(train.size() == -1);
    CHECK_THROWS_WITH(train.get(0), Contains("stream()"));
    auto stream = train.stream(3);
    std::vector<cb::BadSample> bad;
    std::set<std::string> ids;
    for (int i = 0; i < 40; ++i) {
      auto s = stream->next(bad);
      REQUIRE(s);
      ids.insert(s->id);
      require_shape(s->image, kImage);
      if (s->id == "a0") CHECK(s->text_input == "first image");
    }
    CHECK(ids == std::set<std::string>{"a0", "a1", "b0"});
    CHECK(train.skipped() == static_cast<int64_t>(bad.size()));
    std::set<std::string> reasons;
    for (const auto& b : bad) {
      if (b.file.find("00002.tar") != std::string::npos) reasons.insert("missing shard");
      else if (b.file.find(":bad") != std::string::npos) reasons.insert("bad jpeg");
      else if (b.file.find(":nojson") != std::string::npos && b.reason.find(".json") != std::string::npos)
        reasons.insert("no json");
      else if (b.file.find(":b1") != std::string::npos && b.reason.find("caption") != std::string::npos)
        reasons.insert("no caption");
    }
    CHECK(reasons == std::set<std::string>{"missing shard", "bad jpeg", "no json", "no caption"});
    // Same seed, same order.
    auto again = train.stream(3);
    auto first = train.stream(3)->next(bad);
    CHECK(again->next(bad)->id == first->id);
  }
  auto none = build(m, "laion", "datasets: {laion: {build_info: {storage: 'shards/missing-{0..1}.tar'}}}");
  std::vector<cb::BadSample> bad;
  CHECK_THROWS_WITH(none.at("train")->stream(0)->next(bad), Contains("no sample could be read"));
}

TEST_CASE("builders: broken annotation files and missing config keys are errors naming them", "[builders]") {
  Media m;
  write_text(m.root / "ann/broken.json", "[{\"image\": \"images/img0.jpg\",");
  write_text(m.root / "ann/lines.json",
             "{\"image\": \"images/img0.jpg\", \"caption\": \"one\", \"image_id\": 1}\n{broken\n\n"
             "{\"image\": \"images/broken.jpg\", \"caption\": \"two\", \"image_id\": 2}\n");
  const auto yaml = [](const std::string& file) {
    return fmt::format(R"(
datasets:
  coco_caption:
    build_info:
      annotations: {{train: {{storage: {}}}, val: null, test: null}}
      images: {{storage: .}}
)",
                       file);
  };
  CHECK_THROWS_WITH(build(m, "coco_caption", yaml("ann/broken.json")),
                    Contains("broken.json") && Contains("not valid JSON"));
  CHECK_THROWS_WITH(build(m, "coco_caption", yaml("ann/absent.json")), Contains("absent.json"));

  // JSON Lines: a broken line is a malformed record; an undecodable image a bad sample.
  auto built = build(m, "coco_caption", yaml("ann/lines.json"));
  const cb::Dataset& train = *built.at("train");
  REQUIRE(train.size() == 2);
  REQUIRE(train.malformed().size() == 1);
  CHECK_THAT(train.malformed()[0].reason, Contains("line 2"));
  std::vector<cb::BadSample> bad;
  auto s = all(train, bad);
  REQUIRE(s.size() == 1);
  REQUIRE(bad.size() == 1);
  CHECK_THAT(bad[0].file, Contains("broken.jpg"));
  CHECK_THAT(bad[0].reason, Contains("broken.jpg"));
  // A shuffled pass over a map-style set skips the same sample.
  auto stream = train.stream(1);
  std::vector<cb::BadSample> bad2;
  int n = 0;
  while (stream->next(bad2)) ++n;
  CHECK(n == 1);
  CHECK(bad2.size() == 1);
  CHECK(train.skipped() == 2);  // counted per dataset across callers

  CHECK_THROWS_WITH(build(m, "coco_caption", R"(
datasets:
  coco_caption:
    build_info:
      annotations: {train: {storage: ann/lines.json}, val: null, test: null}
      images: null
)"),
                    Contains("datasets.coco_caption.build_info.images.storage"));
  CHECK_THROWS_WITH(build(m, "coco_caption", R"(
datasets:
  coco_caption:
    build_info:
      annotations: {train: {storage: ann/lines.json}, val: null, test: null}
      images: {storage: .}
    vis_processor: {train: null}
)"),
                    Contains("datasets.coco_caption.vis_processor.train"));
  // A text processor as the image processor: the default yaml's image_size, which it does not read,
  // only warns; the builder refuses it.
  CHECK_THROWS_WITH(cb::build_dataset("coco_caption",
                                      section("coco_caption", R"(
datasets:
  coco_caption:
    build_info:
      annotations: {train: {storage: ann/lines.json}, val: null, test: null}
      images: {storage: .}
    vis_processor: {train: {name: blip_caption}}
)",
                                              "default", false),
                                      m.root),
                    Contains("coco_caption/train") && Contains("not an image processor"));

  // A misspelt key, which the original would ignore (leaving a split, a path or a processor setting
  // out), stops the build naming it, its line and the nearest key.
  const auto misspelt = [&](const std::string& yaml_text) {
    try {
      build(m, "coco_caption", yaml_text);
    } catch (const cb::Error& e) {
      return std::string(e.what());
    }
    return std::string("built");
  };
  CHECK_THAT(misspelt(R"(
datasets:
  coco_caption:
    build_info:
      annotations: {train: {storage: ann/lines.json}, vall: {storage: ann/lines.json}, test: null}
      images: {storage: .}
)"),
             StartsWith("datasets.coco_caption.build_info.annotations.vall in test section (line 5") &&
                 Contains("did you mean 'val'?"));
  CHECK_THAT(misspelt(R"(
datasets:
  coco_caption:
    build_info:
      annotations: {train: {storage: ann/lines.json}, val: null, test: null}
      images: {storge: .}
)"),
             Contains("datasets.coco_caption.build_info.images.storge") && Contains("did you mean 'storage'?"));
  CHECK_THAT(misspelt(R"(
datasets:
  coco_caption:
    vis_procesor: {train: {name: blip_image_train}}
    build_info:
      annotations: {train: {storage: ann/lines.json}, val: null, test: null}
      images: {storage: .}
)"),
             Contains("datasets.coco_caption.vis_procesor") && Contains("did you mean 'vis_processor'?"));
  CHECK_THAT(misspelt(R"(
datasets:
  coco_caption:
    vis_processor: {train: {name: blip_image_train, imagesize: 32}}
    build_info:
      annotations: {train: {storage: ann/lines.json}, val: null, test: null}
      images: {storage: .}
)"),
             StartsWith("datasets.coco_caption.vis_processor.train: imagesize in test section (line 4") &&
                 Contains("not a key of processor 'blip_image_train'") && Contains("did you mean 'image_size'?"));
  // LAVIS's download links are accepted (with a warning): nothing is downloaded.
  CHECK(misspelt(R"(
datasets:
  coco_caption:
    dataset_card: a LAVIS dataset card (documentation)
    build_info:
      annotations:
        train: {url: "https://example.com/train.json", md5: abc, storage: ann/lines.json}
        val: null
        test: null
      images: {storage: .}
)") == "built");
}

TEST_CASE("vist_caption: five image frames per story, mosei: sentiment answers", "[builders]") {
  Media m;
  for (int i = 0; i < 5; ++i) write_file(m.root / fmt::format("stories/s1/frame_000{}.jpg", i), jpeg(i));
  for (int i = 0; i < 4; ++i) write_file(m.root / fmt::format("stories/s2/frame_000{}.jpg", i), jpeg(i));
  m.annotations("vist.json", json::array({{{"video_id", "s1"}, {"caption", "a day at the park"}},
                                          {{"video_id", "s2"}, {"caption", "missing a frame"}}}));
  auto vist = build(m, "vist_caption", R"(
datasets:
  vist_caption:
    build_info:
      annotations: {test: {storage: ann/vist.json}}
      videos: {storage: stories}
)");
  const cb::Dataset& test = *vist.at("test");
  std::vector<cb::BadSample> bad;
  auto s = all(test, bad);
  REQUIRE(s.size() == 1);
  CHECK(s[0].id == "s1");
  CHECK(s[0].answers == std::vector<std::string>{"a day at the park"});
  require_shape(s[0].image, {5, 3, kSize, kSize});
  REQUIRE(bad.size() == 1);
  CHECK_THAT(bad[0].reason, Contains("frame_0004.jpg"));

  m.annotations("mosei.json", json::array({{{"video_id", "vid0"}, {"subtitle", "I Loved It"}, {"sent", 1.5}},
                                           {{"video_id", "vid1"}, {"subtitle", "meh"}, {"sent", 0}},
                                           {{"video_id", "vid1"}, {"subtitle", "bad"}, {"sent", -2}},
                                           {{"video_id", "vid1"}, {"subtitle", "?"}, {"sent", "high"}}}));
  auto mosei = build(m, "mosei", R"(
datasets:
  mosei:
    build_info:
      annotations: {test: {storage: ann/mosei.json}}
      videos: {storage: videos}
      audios: {storage: audios}
)");
  const cb::Dataset& mt = *mosei.at("test");
  REQUIRE(mt.size() == 3);
  REQUIRE(mt.malformed().size() == 1);
  auto ms = all(mt, bad);
  CHECK(ms[0].text_input == "I Loved It");
  CHECK(ms[0].answers == std::vector<std::string>{"positive"});
  CHECK(ms[1].answers == std::vector<std::string>{"neutral"});
  CHECK(ms[2].answers == std::vector<std::string>{"negative"});
  require_shape(ms[0].image, kVideo);
  require_shape(ms[0].audio, kAudio);
}
