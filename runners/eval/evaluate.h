// chatbridge-eval's loop over one dataset split: this rank's share of the samples (every world_size-th
// index from its rank: no padding duplicates, every sample exactly once), batches of
// run.batch_size_eval, the task's prompts -> embeddings -> generation, gathered on rank 0 through the
// process group, which writes the per-sample results and the metrics:
//   <output_dir>/result/<prefix>_results.json   (the task's records, in dataset order)
//   <output_dir>/<prefix>_metrics.json
// where <prefix> is the split, or <builder>_<split> when the run evaluates several datasets.
// Progress and ETA are logged through spdlog (rank 0 at info; other ranks only at --log-all-ranks).
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "datasets/builders/dataset.h"
#include "framework/distributed/process_group.h"
#include "models/chatbridge.h"
#include "runners/eval/eval_task.h"

namespace cb {

struct EvalSplitOptions {
  int64_t batch_size = 1;
  std::filesystem::path output_dir;
  std::string prefix;  // file name prefix: the split, or <builder>_<split>
  torch::Device device = torch::kCPU;
};

// The model chatbridge-eval evaluates, as ChatBridge; cb::Error "task '<task>' cannot evaluate the model
// ..." naming model.arch when it is another model (a LLaMA of an lm_pretrain yaml given as --model-cfg).
ChatBridgeImpl& model_to_evaluate(torch::nn::Module& model, const std::string& task);

// The warning that the metrics leave samples out, or "" when they cover every one: `evaluated` of the
// dataset's `samples` (the others' media could not be read), and the annotation records dropped as
// malformed when the set was built. Counts are of samples (one may group several records, e.g. an
// image's captions) except the malformed ones, which are records.
std::string coverage_warning(const std::string& dataset, int64_t evaluated, int64_t samples, int64_t malformed_records);

// The predictions of `samples` (one generated text each), generated as one batch.
std::vector<std::string> predict(ChatBridgeImpl& model, const EvalTask& task, const DatasetInfo& info,
                                 const std::vector<Sample>& samples, torch::Device device);

// Evaluates `ds` on every rank; returns the metrics on rank 0 (nullopt elsewhere).
std::optional<nlohmann::ordered_json> evaluate_split(ChatBridgeImpl& model, const EvalTask& task, const Dataset& ds,
                                                     dist::ProcessGroup& pg, const EvalSplitOptions& opts);

}  // namespace cb
