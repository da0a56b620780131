// chatbridge-bench's set-up on the small workload (tests/bench/small.json): the workload is read as
// docs/benchmarks.md defines it, and the train/decode benches build the inputs it requires (LLaMA
// inputs B x 41 and B x 97 for small).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "bench/decode_bench.h"
#include "bench/train_bench.h"
#include "bench/workload.h"

using namespace cb;
using namespace cb::bench;
namespace fs = std::filesystem;

namespace {

const fs::path kSource = CHATBRIDGE_SOURCE_DIR;
const fs::path kWorkload = kSource / "tests/bench/small.json";
const fs::path kTokenizer = kSource / "tests/golden/tokenizer.model";

}  // namespace

TEST_CASE("bench workload: small.json parses into the README's quantities") {
  auto w = Workload::load(kWorkload);
  CHECK(w.name == "small");
  CHECK(w.threads == 2);
  CHECK(w.train1.batch_size == 4);
  CHECK(w.train2.max_txt_len == 96);
  CHECK(w.decode.prompt_len == 64);
  CHECK(w.data.shipped_jpegs.size() + w.data.converted_pngs.size() == 7);
  CHECK(w.data.wavs.size() == 9);
  auto c1 = w.model_config(1), c2 = w.model_config(2);
  CHECK(c1.stage == 1);
  CHECK(c1.max_txt_len == 32);
  CHECK(c1.end_sym == "\n");
  CHECK(c2.stage == 2);
  CHECK(c2.max_txt_len == 96);
  CHECK(c2.end_sym == "###");
  CHECK(c2.num_query_token == c1.num_query_token);
  CHECK(w.tokenizer == "shared/golden/tokenizer.model");
  CHECK(w.tokenizer_path(kTokenizer) == kTokenizer);
  CHECK_THROWS_WITH(w.model_config(3), Catch::Contains("stage 1 or 2"));
  auto broken = nlohmann::json::parse(std::ifstream(kWorkload));
  broken["workload"].erase("seed");
  CHECK_THROWS_WITH(Workload::from_json(broken, kWorkload), Catch::Contains("'seed'"));
}

TEST_CASE("bench train: small.json LLaMA inputs are B x (1+Q+max_txt_len) and B x (1+max_txt_len)") {
  auto w = Workload::load(kWorkload);
  TrainBench t1(w, 1, kTokenizer);
  const int64_t Q = t1.model->config().num_query_token;
  CHECK(t1.llama_input_shape() == std::vector<int64_t>{w.train1.batch_size, 1 + Q + w.train1.max_txt_len});
  CHECK(t1.llama_input_shape() == std::vector<int64_t>{4, 41});  // README: small B x 41
  CHECK(t1.batch.image.sizes().vec() == std::vector<int64_t>{4, 3, 64, 64});
  // Only the Q-Former side trains; the LLaMA and the ViT are frozen.
  for (const auto& p : t1.model->llama_model->parameters()) CHECK_FALSE(p.requires_grad());
  for (const auto& p : t1.model->visual_encoder->parameters()) CHECK_FALSE(p.requires_grad());
  const double loss = t1.step();
  CHECK(std::isfinite(loss));
  CHECK(t1.model_flops_per_step() > 0);

  TrainBench t2(w, 2, kTokenizer);
  CHECK(t2.llama_input_shape() == std::vector<int64_t>{4, 97});  // README: small B x 97
  CHECK(std::isfinite(t2.step()));
}

TEST_CASE("bench decode: prompt ids, prefill logits over every position, one position per step") {
  auto w = Workload::load(kWorkload);
  auto ids = decode_prompt_ids(2, 5);
  CHECK(ids[1].equal(torch::tensor({8, 25, 42, 59, 76}, torch::kLong)));  // 3 + (17 i + 5) mod 997
  CHECK(decode_prompt_ids(1, 60)[0][59].item<int64_t>() == 3 + (17 * 59 + 5) % 997);

  auto model = build_decode_model(w);
  const auto& d = w.decode;
  auto prompt = decode_prompt_ids(d.batch_size, d.prompt_len);
  auto run = greedy_decode(model, prompt, 4);
  const int64_t V = model->config().vocab_size;
  CHECK(run.prefill_logits_shape == std::vector<int64_t>{d.batch_size, d.prompt_len, V});
  CHECK(run.step_input_shape == std::vector<int64_t>{d.batch_size, 1});
  CHECK(run.sequences.sizes().vec() == std::vector<int64_t>{d.batch_size, d.prompt_len + 5});
  CHECK(run.final_cache_length == d.prompt_len + 4);
  // generate()'s prefill (the last position's logits only) picks the first token the full prefill picked.
  CHECK(generate_prefill(model, prompt).next.equal(run.sequences.select(1, d.prompt_len)));
  // Incremental decoding picks what a full forward over the whole sequence picks.
  torch::NoGradGuard no_grad;
  LlamaInputs full;
  full.input_ids = run.sequences.narrow(1, 0, run.sequences.size(1) - 1);
  auto greedy = model->forward(full).logits.narrow(1, d.prompt_len - 1, 5).argmax(-1);
  CHECK(greedy.equal(run.sequences.narrow(1, d.prompt_len, 5)));
}

TEST_CASE("bench decode: --profile-ops profiles the single-position steps, then generate()'s prefill") {
  auto w = Workload::load(kWorkload);
  w.decode.warmup_runs = 0;
  w.decode.runs = 1;
  w.decode.new_tokens = 2;
  const auto out = run_decode(w, 40);
  auto names = [&](const char* key) {
    std::set<std::string> s;
    for (const auto& op : out.at(key)) s.insert(op.at("name").get<std::string>());
    return s;
  };
  CHECK(out.at("op_profile_prefill_s").get<double>() > 0);
  // The prompt's attention runs through LibTorch's softmax; a step's through the fused decode attention.
  CHECK(names("op_profile_prefill").count("aten::_softmax") == 1);
  CHECK(names("op_profile").count("aten::_softmax") == 0);
}
