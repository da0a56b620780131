// Packed (q8_0/q4_0) and 16-bit weights in safetensors files (framework/checkpoint/safetensors.h) and
// chatbridge-convert --quantize's directory rewrite (framework/checkpoint/convert.h).
#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "framework/checkpoint/convert.h"
#include "framework/checkpoint/load.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/error.h"
#include "tests/framework/checkpoint/llama_dir.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;
using cb::kernels::WeightFormat;

namespace {

fs::path scratch(const std::string& name) {
  static const auto root = cb::test::fresh_dir("packed");
  auto d = root / name;
  fs::remove_all(d);
  return d;
}

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    FAIL("no error; expected one containing " << parts.front());
  } catch (const cb::Error& e) {
    const std::string msg = e.what();
    INFO(msg);
    for (const auto& p : parts) CHECK(msg.find(p) != std::string::npos);
  }
}

bool inside(const torch::Tensor& t, const cb::SafetensorsFile& f) {
  const auto* p = static_cast<const uint8_t*>(t.data_ptr());
  const auto* base = f.mapping()->data();
  return p >= base && p + t.numel() * t.element_size() <= base + f.mapping()->size();
}

}  // namespace

TEST_CASE("packed weights round-trip through safetensors, tagged, and read without a copy") {
  const auto w8 = torch::randn({48, 96}), w4 = torch::randn({40, 64}), emb = torch::randn({10, 96});
  const auto q8 = cb::kernels::pack_weight(w8, WeightFormat::q8_0);
  const auto q4 = cb::kernels::pack_weight(w4, WeightFormat::q4_0);
  const auto path = scratch("packed.safetensors");
  cb::SafetensorsWriter w(path,
                          {cb::TensorSpec::packed_weight("a.weight", WeightFormat::q8_0, 48, 96),
                           cb::TensorSpec::dense("emb", torch::kBFloat16, {10, 96}),
                           cb::TensorSpec::packed_weight("b.weight", WeightFormat::q4_0, 40, 64),
                           cb::TensorSpec::dense("norm", torch::kHalf, {96})},
                          {{"format", "pt"}});
  w.write("a.weight", q8.data);
  w.write("emb", emb.to(torch::kBFloat16));
  w.write("b.weight", q4.data);
  w.write("norm", torch::ones({96}, torch::kHalf));
  w.commit();

  cb::SafetensorsFile f(path);
  CHECK(f.metadata().at("format") == "pt");
  const auto tags = nlohmann::json::parse(f.metadata().at(cb::kWeightFormatKey));
  CHECK(
      tags ==
      nlohmann::json::parse(
          R"({"a.weight": {"format": "q8_0", "shape": [48, 96]}, "b.weight": {"format": "q4_0", "shape": [40, 64]}})"));
  const auto a = f.stored("a.weight");
  REQUIRE(a.packed == WeightFormat::q8_0);
  CHECK(a.rows == 48);
  CHECK(a.cols == 96);
  CHECK(a.data.scalar_type() == torch::kUInt8);
  CHECK(inside(a.data, f));  // the mapping itself, as the loader will hold it
  CHECK(torch::equal(cb::kernels::unpack_weight(a.packed_weight()), cb::kernels::unpack_weight(q8)));
  const auto b = f.stored("b.weight");
  REQUIRE(b.packed == WeightFormat::q4_0);
  CHECK(inside(b.data, f));
  CHECK(torch::equal(cb::kernels::unpack_weight(b.packed_weight()), cb::kernels::unpack_weight(q4)));
  const auto e = f.stored("emb");
  CHECK_FALSE(e.packed);
  CHECK(e.data.scalar_type() == torch::kBFloat16);
  CHECK(inside(e.data, f));
  CHECK(torch::equal(e.data, emb.to(torch::kBFloat16)));
  expect_error([&] { e.packed_weight(); }, {"dense"});
  CHECK(f.stored("norm").data.scalar_type() == torch::kHalf);
  // A file without tags reads as before, every tensor dense.
  CHECK_FALSE(cb::SafetensorsFile(path).stored("emb").packed);
}

TEST_CASE("SafetensorsWriter checks tensors against its plan and writes nothing unless complete") {
  const auto path = scratch("plan.safetensors");
  {
    cb::SafetensorsWriter w(
        path, {cb::TensorSpec::dense("x", torch::kFloat, {2, 3}), cb::TensorSpec::dense("y", torch::kFloat, {4})});
    expect_error([&] { w.write("y", torch::zeros({4})); }, {path.string(), "'y' written where the plan has 'x'"});
    expect_error([&] { w.write("x", torch::zeros({3, 2})); }, {path.string(), "the plan says F32 [2, 3]"});
    w.write("x", torch::zeros({2, 3}));
    expect_error([&] { w.commit(); }, {path.string(), "1 of 2 planned tensors"});
  }
  CHECK_FALSE(fs::exists(path));
  expect_error([&] { cb::TensorSpec::packed_weight("w", WeightFormat::q4_0, 4, 33); }, {"multiple of 32"});
}

TEST_CASE("a packed-weight tag that does not match its tensor is an error naming the file and the tensor") {
  const auto path = scratch("tags.safetensors");
  auto expect = [&](const std::string& tags, const std::vector<std::string>& parts) {
    cb::save_safetensors(
        path,
        [] {
          cb::StateDict sd;
          sd.insert("w", torch::zeros({4, 36}, torch::kUInt8));  // q4_0 [4, 64]: 2 blocks of 18 bytes per row
          sd.insert("f", torch::zeros({4, 64}));
          return sd;
        }(),
        {{cb::kWeightFormatKey, tags}});
    auto all = parts;
    all.push_back(path.string());
    expect_error([&] { cb::SafetensorsFile f(path); }, all);
  };
  CHECK_NOTHROW([&] {
    cb::save_safetensors(path,
                         [] {
                           cb::StateDict sd;
                           sd.insert("w", torch::zeros({4, 36}, torch::kUInt8));
                           return sd;
                         }(),
                         {{cb::kWeightFormatKey, R"({"w": {"format": "q4_0", "shape": [4, 64]}})"}});
    return cb::SafetensorsFile(path).stored("w").cols;
  }());
  expect(R"({"w": {"format": "q8_0", "shape": [4, 64]}})", {"'w' is tagged q8_0 [4, 64] so must be U8 [4, 68]"});
  expect(R"({"w": {"format": "q4_0", "shape": [4, 60]}})", {"multiple of 32 columns"});
  expect(R"({"f": {"format": "q4_0", "shape": [4, 64]}})", {"'f'", "but is F32"});
  expect(R"({"w": {"format": "q5_1", "shape": [4, 64]}})", {"'w' is tagged 'q5_1'"});
  expect(R"({"z": {"format": "q4_0", "shape": [4, 64]}})", {"tags 'z', which the file does not hold"});
  expect(R"({"w": "q4_0"})", {"entry of 'w' must be"});
  expect("[1, 2]", {"is not a JSON object"});
}

TEST_CASE(
    "quantize_hf_directory rewrites an HF LLaMA directory: linear weights packed, the rest 16-bit, config and "
    "tokenizer") {
  const auto in = scratch("llama"), out8 = scratch("llama-q8"), out4 = scratch("llama-q4"),
             outb = scratch("llama-bf16");
  torch::manual_seed(3);
  cb::test::write_llama_dir(in, {});
  const auto src = cb::load_hf_directory(in);

  const auto r = cb::quantize_hf_directory(in, out4, WeightFormat::q4_0);
  CHECK(r.shards == 2);
  CHECK(r.packed == 2 * 7 + 1);  // 7 projections per layer + lm_head
  CHECK(r.kept == src.size() - r.packed);
  CHECK(fs::exists(out4 / "model-00001-of-00002.safetensors"));
  CHECK(fs::exists(out4 / "model-00002-of-00002.safetensors"));
  CHECK(fs::exists(out4 / "tokenizer.model"));
  CHECK_FALSE(fs::exists(out4 / "model-1.safetensors"));
  nlohmann::json config, index;
  std::ifstream(out4 / "config.json") >> config;
  std::ifstream(out4 / "model.safetensors.index.json") >> index;
  CHECK(config["torch_dtype"] == "float16");
  CHECK(config["quantization_config"]["weight_format"] == "q4_0");
  CHECK(config["hidden_size"] == 64);
  CHECK(cb::hf_weight_format(out4) == WeightFormat::q4_0);
  CHECK_FALSE(cb::hf_weight_format(in));
  CHECK(index["weight_map"].size() == src.size());
  CHECK(index["metadata"]["total_size"].get<uint64_t>() == r.bytes_out);

  for (const auto& [name, shard] : index["weight_map"].items()) {
    cb::SafetensorsFile f(out4 / shard.get<std::string>());
    const auto s = f.stored(name);
    const auto& orig = src[name];
    INFO(name);
    if (cb::is_llama_linear_weight(name)) {
      REQUIRE(s.packed == WeightFormat::q4_0);
      CHECK(s.rows == orig.size(0));
      CHECK(s.cols == orig.size(1));
      CHECK(torch::equal(s.data, cb::kernels::pack_weight(orig, WeightFormat::q4_0).data));
    } else if (name.find("inv_freq") != std::string::npos) {
      CHECK(torch::equal(s.data, orig));
    } else {
      CHECK(s.data.scalar_type() == torch::kHalf);
      CHECK(torch::equal(s.data, orig.to(torch::kHalf)));
    }
  }

  cb::quantize_hf_directory(in, out8, WeightFormat::q8_0);
  cb::SafetensorsFile l0(out8 / "model-00001-of-00002.safetensors");
  CHECK(l0.stored("model.layers.0.mlp.down_proj.weight").packed == WeightFormat::q8_0);
  CHECK(l0.stored("model.layers.0.mlp.down_proj.weight").cols == 128);

  cb::quantize_hf_directory(in, outb, WeightFormat::bf16);
  std::ifstream(outb / "config.json") >> config;
  CHECK(config["torch_dtype"] == "bfloat16");
  CHECK_FALSE(config.contains("quantization_config"));
  const auto bf = cb::load_hf_directory(outb);
  for (const auto& kv : src) {
    INFO(kv.key());
    if (kv.key().find("inv_freq") != std::string::npos) continue;
    CHECK(bf[kv.key()].scalar_type() == torch::kBFloat16);
    CHECK(torch::equal(bf[kv.key()], kv.value().to(torch::kBFloat16)));
  }

  expect_error([&] { cb::quantize_hf_directory(in, out4, WeightFormat::q4_0); }, {out4.string(), "not empty"});
  expect_error([&] { cb::quantize_hf_directory(in, scratch("x"), WeightFormat::f32); }, {"not a smaller format"});
}

TEST_CASE("quantize_hf_directory: damaged input shards and unpackable weights are errors naming the file") {
  const auto in = scratch("damaged");
  torch::manual_seed(4);
  cb::test::write_llama_dir(in, {});
  const auto shard = in / "model-2.safetensors";
  fs::resize_file(shard, fs::file_size(shard) - 100);  // truncated, as an interrupted download
  // Shard 1 was written before shard 2 failed: the failed call removes it and the directories it
  // created, so that a rerun can start; an existing (empty) output directory stays, emptied.
  const auto out = scratch("damaged-out");
  expect_error([&] { cb::quantize_hf_directory(in, out / "nested", WeightFormat::q8_0); },
               {shard.string(), "out of range"});
  CHECK_FALSE(fs::exists(out));
  fs::create_directories(out);
  fs::remove(shard);
  expect_error([&] { cb::quantize_hf_directory(in, out, WeightFormat::q8_0); }, {shard.string(), "missing"});
  CHECK(fs::is_empty(out));

  const auto odd = scratch("odd");
  cb::test::write_llama_dir(odd, {.hidden = 64, .intermediate = 100});
  expect_error([&] { cb::quantize_hf_directory(odd, scratch("odd-out"), WeightFormat::q4_0); },
               {"model-1.safetensors", "model.layers.0.mlp.down_proj.weight", "not a multiple of 32"});
}

TEST_CASE("quantize_hf_directory refuses a directory it already quantized, and an output it cannot create") {
  const auto in = scratch("requant"), q8 = scratch("requant-q8"), out = scratch("requant-out");
  torch::manual_seed(8);
  cb::test::write_llama_dir(in, {.layers = 1});
  cb::quantize_hf_directory(in, q8, WeightFormat::q8_0);
  for (const auto format : {WeightFormat::q4_0, WeightFormat::q8_0, WeightFormat::bf16}) {
    expect_error([&] { cb::quantize_hf_directory(q8, out, format); },
                 {q8.string() + " is already q8_0: quantize from the fp32/fp16/bf16 directory"});
    CHECK_FALSE(fs::exists(out));
  }
  // An output that cannot be created: the path and the reason, not a bare filesystem_error.
  expect_error([&] { cb::quantize_hf_directory(in, in / "config.json" / "out", WeightFormat::q4_0); },
               {"cannot create the directory " + (in / "config.json" / "out").string(), "Not a directory"});
  // Packed shards under a config that does not say so: the packed weight itself is refused.
  fs::copy_file(in / "config.json", q8 / "config.json", fs::copy_options::overwrite_existing);
  expect_error([&] { cb::quantize_hf_directory(q8, out, WeightFormat::q4_0); },
               {"model.safetensors", "is U8, not a floating-point weight", "already quantized"});
  CHECK_FALSE(fs::exists(out));
}
