// Loading the Hugging Face Vicuna fixture directories found below <golden>/ckpt (in set A vicuna_bin:
// sharded pytorch_model.bin, fp16, with inv_freq buffers; vicuna_st: sharded safetensors, bf16, without).
#include <catch2/catch.hpp>

#include <malloc.h>
#include <unistd.h>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>

#include "framework/checkpoint/convert.h"
#include "framework/checkpoint/load.h"
#include "framework/checkpoint/safetensors.h"
#include "framework/error.h"
#include "models/llama_causal_lm.h"
#include "models/llama_hf.h"
#include "tests/support/golden.h"
#include "tests/support/proc_self.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;

namespace {

torch::Dtype config_dtype(const fs::path& dir) {
  auto name = nlohmann::json::parse(std::ifstream(dir / "config.json")).at("torch_dtype").get<std::string>();
  if (name == "float16") return torch::kHalf;
  if (name == "bfloat16") return torch::kBFloat16;
  if (name == "float32") return torch::kFloat;
  FAIL("unexpected torch_dtype " << name);
  return torch::kFloat;
}

}  // namespace

TEST_CASE("load_llama_hf: every checkpoint tensor lands in the model unchanged, in the checkpoint's dtype") {
  const auto dirs = cb::test::golden_hf_dirs();
  REQUIRE(!dirs.empty());
  for (const auto& dir : dirs) {
    INFO(dir.string());
    auto model = cb::load_llama_hf(dir);
    CHECK(model->lm_head->weight.scalar_type() == config_dtype(dir));
    CHECK(model->dtype() == torch::kFloat);  // activations are fp32 on the CPU whatever the storage
    CHECK_FALSE(model->is_training());
    auto own = cb::module_state_dict(*model);
    auto ref = cb::load_hf_directory(dir);
    size_t compared = 0;
    for (const auto& kv : ref) {
      REQUIRE(own.contains(kv.key()));
      if (kv.key().find("rotary_emb.inv_freq") != std::string::npos) {
        // kept in fp32 (the original's buffer dtype) whatever the file stores
        CHECK(own[kv.key()].scalar_type() == torch::kFloat);
        cb::test::check_close(own[kv.key()], kv.value().to(torch::kFloat), {1e-3, 0}, kv.key());
      } else {
        CHECK(own[kv.key()].scalar_type() == kv.value().scalar_type());
        CHECK(torch::equal(own[kv.key()], kv.value()));
        CHECK_FALSE(own[kv.key()].requires_grad());
      }
      ++compared;
    }
    CHECK(compared >= own.size() - static_cast<size_t>(model->config().num_hidden_layers));  // inv_freq may be absent
  }
}

TEST_CASE("load_llama_hf: loaded models run, in fp32 and stored in the checkpoint's own 16-bit dtype") {
  const auto dirs = cb::test::golden_hf_dirs();
  REQUIRE(!dirs.empty());
  for (const auto& dir : dirs) {
    INFO(dir.string());
    auto fp32 = cb::load_llama_hf(dir, "fp32");
    REQUIRE(fp32->dtype() == torch::kFloat);
    const auto V = fp32->config().vocab_size;
    torch::manual_seed(0);
    cb::LlamaInputs in;
    in.input_ids = torch::randint(0, V, {2, 6}, torch::kLong);
    in.labels = in.input_ids;
    torch::NoGradGuard no_grad;
    auto ref = fp32->forward(in);
    CHECK(ref.logits.sizes() == torch::IntArrayRef({2, 6, V}));
    CHECK(torch::isfinite(ref.logits).all().item<bool>());
    CHECK(std::isfinite(ref.loss.item<double>()));
    auto native = cb::load_llama_hf(dir);  // fp16 or bf16 storage, fp32 activations
    auto out = native->forward(in);
    CHECK(out.logits.scalar_type() == torch::kFloat);
    // The fixture's synthetic weights (std ~1, not init scales) amplify bf16 rounding to a few
    // percent: a coarse agreement check; test_llama_generation checks bf16 at realistic scales.
    cb::test::check_close(out.logits, ref.logits, {1e-1, 0}, dir.filename().string() + " bf16 vs fp32 logits");
  }
}

TEST_CASE("load_llama_hf: a checkpoint that does not match config.json is refused, naming the keys") {
  const auto tmp = cb::test::fresh_dir("llama_hf");
  const auto dirs = cb::test::golden_hf_dirs();
  REQUIRE(!dirs.empty());
  fs::copy_file(dirs.front() / "config.json", tmp / "config.json", fs::copy_options::overwrite_existing);
  auto sd = cb::load_hf_directory(dirs.front());
  cb::StateDict partial;
  for (const auto& kv : sd)
    if (kv.key() != "model.norm.weight") partial.insert(kv.key(), kv.value());
  partial.insert("model.extra.weight", torch::zeros({2}));
  cb::save_safetensors(tmp / "model.safetensors", partial);
  CHECK_THROWS_WITH(cb::load_llama_hf(tmp),
                    Catch::Contains("model.norm.weight") && Catch::Contains("model.extra.weight"));
  fs::remove_all(tmp);
}

namespace {

cb::LlamaConfig llama_config(int64_t vocab, int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads) {
  cb::LlamaConfig c;
  c.vocab_size = vocab, c.hidden_size = hidden, c.intermediate_size = intermediate, c.num_hidden_layers = layers;
  c.num_attention_heads = c.num_key_value_heads = heads;
  return c;
}

// A random fp16 LLaMA written as a Hugging Face directory in `shards` safetensors files with their
// index; returns the largest shard's size in bytes.
int64_t write_sharded_fp16_llama(const fs::path& dir, const cb::LlamaConfig& c, int shards) {
  fs::create_directories(dir);
  cb::LlamaForCausalLM skeleton(c, cb::LlamaStorage::from_precision("fp16", /*init=*/false));
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& kv : cb::module_state_dict(*skeleton)) {
    if (kv.key().find("inv_freq") != std::string::npos) continue;  // newer exports drop it
    names.push_back(kv.key());
    shapes.push_back(kv.value().sizes().vec());
  }
  skeleton = nullptr;
  nlohmann::json index;
  int64_t largest = 0;
  const size_t per_shard = (names.size() + shards - 1) / shards;
  for (int s = 0; s < shards; ++s) {
    const auto file = fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards);
    cb::StateDict sd;
    for (size_t i = s * per_shard; i < std::min(names.size(), (s + 1) * per_shard); ++i) {
      sd.insert(names[i], (torch::randn(shapes[i]) * 0.02).to(torch::kHalf));
      index["weight_map"][names[i]] = file;
    }
    cb::save_safetensors(dir / file, sd);
    largest = std::max<int64_t>(largest, int64_t(fs::file_size(dir / file)));
  }
  std::ofstream(dir / "model.safetensors.index.json") << index.dump();
  std::ofstream(dir / "config.json") << cb::llama_hf_config_json(c, torch::kHalf).dump();
  return largest;
}

}  // namespace

TEST_CASE("load_llama_hf: loading shard by shard peaks at the model's bytes + the largest shard + 10 %") {
  // ~270 MB of fp16 weights in 6 shards. The peak is measured as VmHWM above the RSS just before the
  // load (/proc/self/clear_refs resets VmHWM): file pages of the mapped shard count while it is read.
  const auto c = llama_config(16000, 1024, 2816, 8, 8);
  const auto dir = cb::test::fresh_dir("llama_rss") / "fp16";
  torch::manual_seed(0);
  const int64_t largest = write_sharded_fp16_llama(dir, c, 6);
  for (const std::string precision : {"bf16", "q8_0"}) {
    INFO(precision);
    malloc_trim(0);  // what the generation (or the previous load) freed leaves the resident set
    std::ofstream("/proc/self/clear_refs") << "5";
    const int64_t before = cb::test::status_kib("VmRSS:");
    int64_t weight_bytes = 0;
    {
      auto model = cb::load_llama_hf(dir, precision);
      for (const auto& kv : cb::module_state_dict(*model))
        weight_bytes += kv.value().numel() * kv.value().element_size();
      const int64_t peak = (cb::test::status_kib("VmHWM:") - before) * 1024;
      const double bound = 1.1 * double(weight_bytes + largest);
      std::cout << "[rss] load_llama_hf " << precision << ": peak above baseline " << peak / 1e6 << " MB, weights "
                << weight_bytes / 1e6 << " MB, largest shard " << largest / 1e6 << " MB, bound " << bound / 1e6
                << " MB\n";
      CHECK(double(peak) <= bound);
      CHECK(model->lm_head->format() == cb::kernels::parse_weight_format(precision));
    }
  }
  fs::remove_all(dir);
}

namespace {

// Whether [p, p + n) lies in a mapping of a file below `dir` (/proc/self/maps).
bool in_file_mapping(const void* p, size_t n, const fs::path& dir) {
  std::ifstream in("/proc/self/maps");
  std::string line;
  const auto a = reinterpret_cast<uintptr_t>(p);
  while (std::getline(in, line)) {
    if (line.find(dir.string()) == std::string::npos) continue;
    const auto dash = line.find('-'), space = line.find(' ');
    const auto lo = std::stoull(line.substr(0, dash), nullptr, 16);
    const auto hi = std::stoull(line.substr(dash + 1, space - dash - 1), nullptr, 16);
    if (a >= lo && a + n <= hi) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("load_llama_hf: a quantized directory's packed weights are copied in, or used from the mapping on request") {
  const auto c = llama_config(96, 64, 128, 2, 4);
  const auto base = cb::test::fresh_dir("llama_mmap");
  torch::manual_seed(5);
  write_sharded_fp16_llama(base / "fp16", c, 2);
  cb::quantize_hf_directory(base / "fp16", base / "q8", cb::kernels::WeightFormat::q8_0);
  const auto ids = torch::tensor({{1, 7, 30, 5, 60}}, torch::kLong);
  torch::NoGradGuard no_grad;
  auto copied = cb::load_llama_hf(base / "q8", "q8_0");
  auto mapped = cb::load_llama_hf(base / "q8", "q8_0", /*map_packed=*/true);
  for (auto* model : {&copied, &mapped}) {
    const bool map = model == &mapped;
    INFO("map_packed " << map);
    const auto layer = (*model)->model->layers[1]->as<cb::LlamaDecoderLayerImpl>();
    for (const auto& lin : {(*model)->lm_head, layer->mlp->down_proj}) {
      const auto& w = lin->weight;
      CHECK(w.scalar_type() == torch::kByte);
      CHECK(in_file_mapping(w.data_ptr(), size_t(w.numel()), base / "q8") == map);
    }
  }
  cb::LlamaInputs in;
  in.input_ids = ids;
  // The same bytes either way: the copy may lie in the CPU's panels (its kernels sum in another order).
  CHECK(torch::equal(copied->lm_head->packed_rows(), mapped->lm_head->weight));
  CHECK(torch::allclose(copied->forward(in).logits, mapped->forward(in).logits, 1e-5, 1e-5));
  fs::remove_all(base);
}
