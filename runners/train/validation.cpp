#include "runners/train/validation.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "framework/error.h"
#include "framework/registry.h"
#include "models/chatbridge.h"
#include "runners/eval/evaluate.h"

namespace cb {
namespace fs = std::filesystem;

namespace {

// The evaluation task of a dataset kind when run.valid_task is absent.
const std::map<std::string, std::string> kDefaultTask = {{"caption", "caption_eval"}, {"qa", "vqa_eval"}};

std::shared_ptr<const EvalTask> eval_task(const Config& cfg, const std::string& name) {
  std::shared_ptr<const Task> task = registry::get<Kind::task>(name)(cfg);
  auto eval = std::dynamic_pointer_cast<const EvalTask>(task);
  if (!eval) fail("run.valid_task '{}' trains; validation needs an evaluation task (caption_eval, vqa_eval)", name);
  return eval;
}

ChatBridgeImpl& chatbridge(torch::nn::Module& model) {
  if (auto* m = dynamic_cast<ChatBridgeImpl*>(&model)) return *m;
  fail(
      "run.valid_splits / run.test_splits: validation generates with a ChatBridge model; this run trains '{}' "
      "(model.arch)",
      model.name());
}

}  // namespace

nlohmann::json ValidationRecord::to_json() const {
  return {{"best_epoch", best_epoch},
          {"best_agg_metric", best_epoch < 0 ? nlohmann::json() : nlohmann::json(best_agg_metric)},
          {"validated_epoch", validated_epoch}};
}

ValidationRecord ValidationRecord::from_json(const nlohmann::json& j, const std::string& source) {
  ValidationRecord r;
  if (j.is_null()) return r;
  try {
    r.best_epoch = j.at("best_epoch");
    if (r.best_epoch >= 0) r.best_agg_metric = j.at("best_agg_metric");
    r.validated_epoch = j.at("validated_epoch");
  } catch (const std::exception& e) {
    fail("{}: validation record: {}", source, e.what());
  }
  return r;
}

bool Validator::configured(const Config& cfg) {
  for (const char* key : {"run.valid_splits", "run.test_splits"})
    if (!cfg.get<std::vector<std::string>>(key).empty()) return true;
  return false;
}

Validator::Validator(const Config& cfg, torch::nn::Module& model, torch::Device device)
    : model_(chatbridge(model)), device_(device) {
  valid_splits_ = cfg.get<std::vector<std::string>>("run.valid_splits");
  test_splits_ = cfg.get<std::vector<std::string>>("run.test_splits");
  output_dir_ = cfg.get<std::string>("run.output_dir");
  batch_size_ = cfg.get<int64_t>("run.batch_size_eval");
  if (batch_size_ < 1) fail("run.batch_size_eval must be at least 1, got {}", batch_size_);
  if (!cfg.has("datasets"))
    fail("run.valid_splits / run.test_splits are set but the config has no datasets: section to take them from");
  if (!valid_splits_.empty() && std::find(valid_splits_.begin(), valid_splits_.end(), "val") == valid_splits_.end())
    spdlog::warn(
        "run.valid_splits has no 'val' split: the splits are logged but, as in the original, only 'val' "
        "chooses checkpoint_best, so none is kept");

  const auto task_name = cfg.get_optional<std::string>("run.valid_task");
  std::map<std::string, std::shared_ptr<const EvalTask>> tasks;  // by name, built once
  const auto built = build_datasets(cfg);
  const std::pair<const char*, const std::vector<std::string>*> lists[] = {{"run.valid_splits", &valid_splits_},
                                                                           {"run.test_splits", &test_splits_}};
  for (const auto& [key, splits] : lists) {
    for (const auto& split : *splits) {
      if (splits_.count(split)) continue;  // a split both validated and tested
      for (const auto& [builder, by_split] : built) {
        auto it = by_split.find(split);
        if (it == by_split.end() || !it->second) continue;
        const auto& kind = it->second->kind();
        std::string name;
        if (task_name) name = *task_name;
        else if (kDefaultTask.count(kind)) name = kDefaultTask.at(kind);
        else fail("datasets.{}: no default evaluation task for '{}' datasets; set run.valid_task", builder, kind);
        if (!tasks.count(name)) tasks[name] = eval_task(cfg, name);
        if (tasks[name]->kind() != kind)
          fail("datasets.{}: run.valid_task '{}' evaluates '{}' datasets, this one is '{}'", builder, name,
               tasks[name]->kind(), kind);
        splits_[split].push_back({builder, it->second, tasks[name]});
      }
      if (!splits_.count(split))
        fail("{}: no dataset under datasets: has a '{}' split (build_info.annotations.{})", key, split, split);
    }
  }
}

nlohmann::json Validator::evaluate(const std::string& split, const std::string& label, dist::ProcessGroup& pg) {
  const auto& sets = splits_.at(split);
  EvalSplitOptions opts;
  opts.batch_size = batch_size_;
  opts.output_dir = output_dir_;
  opts.device = device_;
  nlohmann::json combined = nlohmann::json::object();
  double agg_sum = 0;
  for (const auto& s : sets) {
    opts.prefix = (sets.size() > 1 ? s.builder + "_" : "") + split + "_epoch" + label;
    const auto metrics = evaluate_split(model_, *s.task, *s.dataset, pg, opts);
    if (!metrics) continue;  // not rank 0
    if (!metrics->contains("agg_metrics"))
      fail("{}: the task '{}' reports no agg_metrics to validate by", s.dataset->name(), s.task->name());
    agg_sum += metrics->at("agg_metrics").get<double>();
    for (const auto& [k, v] : metrics->items()) combined[sets.size() > 1 ? s.builder + "_" + k : k] = v;
  }
  if (!pg.is_main()) return nullptr;
  if (sets.size() > 1) combined["agg_metrics"] = agg_sum / static_cast<double>(sets.size());
  return combined;
}

bool Validator::validate(int64_t epoch, int64_t step, dist::ProcessGroup& pg, TrainLog& log, ValidationRecord& record) {
  bool best = false;
  for (const auto& split : valid_splits_) {
    spdlog::info("Evaluating on {}.", split);
    auto metrics = evaluate(split, std::to_string(epoch), pg);
    if (!pg.is_main()) continue;
    const double agg = metrics.at("agg_metrics").get<double>();
    if (split == "val" && agg > record.best_agg_metric) {
      record.best_epoch = epoch, record.best_agg_metric = agg;
      best = true;
    }
    metrics["best_epoch"] = record.best_epoch;
    log.record_validation(split, epoch, step, metrics);
  }
  record.validated_epoch = epoch;
  return best;
}

void Validator::test(const std::string& label, int64_t epoch, int64_t step, dist::ProcessGroup& pg, TrainLog& log) {
  for (const auto& split : test_splits_) {
    spdlog::info("Testing on {} with the {} model.", split, label == "best" ? "best" : "last");
    auto metrics = evaluate(split, label, pg);
    if (pg.is_main()) log.record_validation(split + "_epoch" + label, epoch, step, metrics);
  }
}

fs::path best_checkpoint_dir(const fs::path& output_dir) { return output_dir / "checkpoint_best"; }

fs::path keep_as_best(const fs::path& checkpoint, const fs::path& output_dir) {
  const auto dest = best_checkpoint_dir(output_dir), tmp = output_dir / ".tmp-checkpoint_best",
             old = output_dir / ".old-checkpoint_best";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const auto& e : fs::directory_iterator(checkpoint)) {
    // Checkpoint files are never rewritten in place (atomic_file), so a hard link is a stable copy.
    std::error_code ec;
    fs::create_hard_link(e.path(), tmp / e.path().filename(), ec);
    if (ec) fs::copy_file(e.path(), tmp / e.path().filename());
  }
  fs::remove_all(old);
  if (fs::exists(dest)) fs::rename(dest, old);
  fs::rename(tmp, dest);
  fs::remove_all(old);
  return dest;
}

}  // namespace cb
