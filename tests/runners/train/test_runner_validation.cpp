// Validation during training (runners/train/validation.h), TensorBoard event files and the loss/LR plot,
// on the tiny ChatBridge of the runner tests (runner_fixture.h) validated on the tiny dataset's
// caption split (scripts/make-tiny-data): a 2-epoch run validates after each epoch, keeps the best
// epoch as checkpoint_best and tests with it; a run resumed from the first epoch's checkpoint keeps
// the best of that epoch and validates the second only, with the uninterrupted run's figures. The
// event files and the plot are checked by tests/runners/train/check_run_record.py, which shares no
// code with the writers.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "framework/distributed/process_group.h"
#include "runners/train/loss_plot.h"
#include "runners/train/runner_base.h"
#include "runners/train/tensorboard_writer.h"
#include "runners/train/training_checkpoint.h"
#include "runners/train/validation.h"
#include "tests/runners/train/runner_fixture.h"
#include "tests/support/tiny_data.h"

using namespace cb;
using namespace cb::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path kSource = CHATBRIDGE_SOURCE_DIR;

// The tiny dataset built once per process.
struct TinyDir {
  fs::path root = fs::temp_directory_path() / fmt::format("cb-runner-valid-{}", std::random_device()());
  TinyDir() { make_tiny_data(root / "tiny_data"); }
  ~TinyDir() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

const TinyDir& tiny() {
  static const TinyDir dir;
  return dir;
}

fs::path fresh(const std::string& name) {
  auto d = tiny().root / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// 2 epochs of 4 iterations (run_config's schedule) with the tiny caption val split; greedy, short
// captions so that validation is quick.
Config config(const fs::path& out, const std::string& extra_run) {
  const auto data = tiny().root / "tiny_data";
  const auto yaml =
      fmt::format(R"(model:
  arch: chatbridge
  model_type: pretrain_vicuna
datasets:
  coco_caption:
    build_info:
      annotations:
        train: null
        val:
          storage: {0}/annotations/caption_val.json
        test: null
      images:
        storage: {0}
    vis_processor:
      eval: {{name: blip_image_eval, image_size: {1}}}
run:
  task: tri_pretrain
  lr_sched: linear_warmup_cosine_lr
  init_lr: 1e-3
  min_lr: 1e-5
  warmup_lr: 1e-6
  warmup_steps: 2
  weight_decay: 0.05
  max_epoch: 2
  iters_per_epoch: 4
  log_freq: 1
  seed: 42
  output_dir: {2}
  num_beams: 1
  max_len: 6
  batch_size_eval: 3
{3})",
                  data.string(), tiny_model_json().at("image_size").get<int64_t>(), out.string(), extra_run);
  const auto path = out / "config.yaml";
  std::ofstream(path) << yaml;
  return resolve_config(path, {});
}

TrainResult run(const Config& cfg, std::optional<fs::path> resume = std::nullopt) {
  auto task = std::make_shared<GeneratedTask>(2);
  RunnerInputs in{cfg,
                  task,
                  tiny_chatbridge().ptr(),
                  task->build_train_source(cfg, 0, 1),
                  dist::ProcessGroup::init(dist::DistEnv{}),
                  std::move(resume)};
  return make_runner(std::move(in))->train();
}

std::vector<json> metrics_lines(const fs::path& out) {
  std::vector<json> rows;
  std::ifstream in(out / "metrics.jsonl");
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

std::vector<json> lines_of(const std::vector<json>& rows, const std::string& split) {
  std::vector<json> out;
  for (const auto& r : rows)
    if (r.value("split", "") == split) out.push_back(r);
  return out;
}

json state_of(const fs::path& checkpoint) { return json::parse(std::ifstream(checkpoint / "state.json")); }

std::string bytes_of(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int check_run_record(const fs::path& out, const std::string& args = "") {
  const auto script = kSource / "tests/runners/train/check_run_record.py";
  return std::system(fmt::format("python3 '{}' '{}' {}", script.string(), out.string(), args).c_str());
}

}  // namespace

TEST_CASE("validation: each epoch validated, the best kept as checkpoint_best and tested, a resume keeps the best") {
  torch::set_num_threads(1);
  const std::string extra = "  valid_splits: [val]\n  test_splits: [val]\n";
  const auto a = fresh("full");
  const auto full = run(config(a, extra));
  REQUIRE(full.losses.size() == 8);

  // One line per validated epoch, LAVIS's "val_" keys, and the test of the best model at the end.
  const auto rows = metrics_lines(a);
  const auto val = lines_of(rows, "val");
  REQUIRE(val.size() == 2);
  int64_t best_epoch = -1;
  double best = -1e300;
  for (const auto& r : val) {
    REQUIRE(r.contains("val_CIDEr"));
    REQUIRE(r.at("val_num_samples") == 6);
    const double agg = r.at("val_agg_metrics");
    CHECK(agg == Approx(r.at("val_CIDEr").get<double>() + r.at("val_Bleu_4").get<double>()));
    if (agg > best) best = agg, best_epoch = r.at("epoch");
    CHECK(r.at("val_best_epoch") == best_epoch);
    CHECK(r.at("step") == 4 * (r.at("epoch").get<int64_t>() + 1) - 1);  // the epoch's last iteration
    CHECK(fs::exists(a / "result" / fmt::format("val_epoch{}_results.json", r.at("epoch").get<int64_t>())));
  }
  REQUIRE(lines_of(rows, "val_epochbest").size() == 1);
  CHECK(fs::exists(a / "val_epochbest_metrics.json"));

  // checkpoint_best: the best epoch's checkpoint, with the validation record.
  const auto best_dir = a / "checkpoint_best";
  REQUIRE(fs::exists(best_dir / "COMPLETE"));
  const auto best_state = state_of(best_dir);
  CHECK(best_state.at("epoch") == best_epoch);
  CHECK(best_state.at("validation").at("best_epoch") == best_epoch);
  CHECK(best_state.at("validation").at("best_agg_metric").get<double>() == best);
  const auto epoch_ckpt = [](const fs::path& out, int64_t epoch) {
    return checkpoints_dir(out) / fmt::format("step_{:09d}", 4 * (epoch + 1));
  };
  CHECK(bytes_of(best_dir / "model.safetensors") == bytes_of(epoch_ckpt(a, best_epoch) / "model.safetensors"));
  const auto last_state = state_of(epoch_ckpt(a, 1));
  CHECK(last_state.at("validation").at("validated_epoch") == 1);
  CHECK(last_state.at("validation").at("best_epoch") == best_epoch);

  // Resume from epoch 0's checkpoint in a new output dir that holds what the run had then.
  const auto b = fresh("resumed");
  fs::create_directories(checkpoints_dir(b));
  fs::copy(epoch_ckpt(a, 0), epoch_ckpt(b, 0), fs::copy_options::recursive);
  if (best_epoch == 0) fs::copy(best_dir, b / "checkpoint_best", fs::copy_options::recursive);
  const auto resumed = run(config(b, extra), epoch_ckpt(b, 0));
  REQUIRE(resumed.losses.size() == 4);
  const auto val_b = lines_of(metrics_lines(b), "val");
  REQUIRE(val_b.size() == 1);  // epoch 0 is not validated again
  CHECK(val_b[0].at("epoch") == 1);
  CHECK(val_b[0].at("val_agg_metrics") == val[1].at("val_agg_metrics"));
  CHECK(val_b[0].at("val_best_epoch") == best_epoch);  // compared against epoch 0's best, not from scratch
  CHECK(state_of(epoch_ckpt(b, 1)).at("validation") == last_state.at("validation"));
  CHECK(state_of(b / "checkpoint_best").at("validation") == best_state.at("validation"));
  CHECK(bytes_of(b / "checkpoint_best" / "model.safetensors") == bytes_of(best_dir / "model.safetensors"));
}

TEST_CASE("tensorboard: event files hold metrics.jsonl's values, read by an independent reader, and the plot") {
  torch::set_num_threads(1);
  const auto c = fresh("tensorboard");
  run(config(c, "  valid_splits: [val]\n  tensorboard: true\n"));
  REQUIRE(fs::exists(c / "tb"));
  REQUIRE(fs::exists(c / "loss_lr.svg"));
  CHECK(check_run_record(c) == 0);

  // The reader checks the framing: one flipped byte in an event's data fails its CRC.
  const auto broken = fresh("tensorboard_broken");
  fs::copy(c / "metrics.jsonl", broken / "metrics.jsonl");
  fs::create_directories(broken / "tb");
  for (const auto& e : fs::directory_iterator(c / "tb")) {
    auto bytes = bytes_of(e.path());
    REQUIRE(bytes.size() > 200);
    bytes[bytes.size() - 30] ^= 0x01;
    std::ofstream(broken / "tb" / e.path().filename(), std::ios::binary) << bytes;
  }
  CHECK(check_run_record(broken, "--no-plot") != 0);
}

TEST_CASE("validation config: missing datasets section or split, and a model that is not ChatBridge, are errors") {
  const auto d = fresh("errors");
  auto model = tiny_chatbridge();
  const auto no_split = config(d, "  valid_splits: [nosuch]\n");
  CHECK_THROWS_WITH(Validator(no_split, *model, torch::kCPU),
                    Catch::Contains("run.valid_splits") && Catch::Contains("'nosuch' split"));
  const auto no_datasets = run_config(d.string(), "  valid_splits: [val]\n");
  CHECK_THROWS_WITH(Validator(no_datasets, *model, torch::kCPU), Catch::Contains("no datasets: section"));
  torch::nn::Linear linear(2, 2);
  CHECK_THROWS_WITH(Validator(config(d, "  valid_splits: [val]\n"), *linear, torch::kCPU),
                    Catch::Contains("ChatBridge"));
  CHECK_FALSE(Validator::configured(run_config(d.string())));
}

TEST_CASE("tensorboard writer: CRC-32C check value, and the loss plot draws each logged step once") {
  const std::string check = "123456789";
  CHECK(crc32c(check.data(), check.size()) == 0xE3069283u);  // the CRC-32C catalogue's check value

  const auto d = fresh("plot");
  std::ofstream(d / "metrics.jsonl") << R"({"step":0,"loss":2.0,"loss_avg":2.0,"lr":0.1}
{"step":1,"loss":1.5,"loss_avg":1.7,"lr":0.2}
{"epoch":0,"step":1,"split":"val","val_agg_metrics":0.5}
{"step":1,"loss":1.4,"loss_avg":1.6,"lr":0.2}
{"step":2,"loss":1.0,"loss_avg":1.2,"lr":0.1}
)";
  CHECK(write_loss_plot(d / "metrics.jsonl", d / "loss_lr.svg") == 3);  // step 1 replayed after a restart
  CHECK(fs::exists(d / "loss_lr.svg"));
  // A NaN loss is written as null: the point is left out of the loss lines, the lr line keeps it.
  std::ofstream(d / "metrics.jsonl", std::ios::app) << R"({"step":3,"loss":null,"loss_avg":null,"lr":0.05}
)";
  CHECK(write_loss_plot(d / "metrics.jsonl", d / "loss_lr.svg") == 4);
}
