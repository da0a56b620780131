#include "datasets/train_source.h"

#include <spdlog/spdlog.h>

#include "datasets/valor/meta_loader.h"
#include "datasets/valor/webdataset_images.h"
#include "framework/error.h"

namespace cb {

std::unique_ptr<BatchSource> build_train_source(const Config& cfg, int rank, int world_size) {
  const auto task = cfg.get<std::string>("run.task");
  const bool instruct = task == "tri_instruct";
  if (!instruct && task != "tri_pretrain")
    fail("run.task '{}': the valor training data is built for tri_pretrain or tri_instruct", task);
  // valor_collate_stage2 (run.stage 2 with tri_pretrain) unpacks 9 of the 10 sample fields and always
  // fails in the original; there is nothing to reproduce.
  if (!instruct && cfg.get<int64_t>("run.stage") != 1)
    fail("run.stage {}: tri_pretrain's stage-2 collate never ran in the original; use stage 1 or tri_instruct",
         cfg.get<int64_t>("run.stage"));

  const DataOptions opts = DataOptions::load(cfg.get<std::string>("run.valor_data_opts_path"));
  TaskPrompts prompts;
  if (instruct) prompts = load_task_prompts(cfg.get<std::string>("run.prompt_path"));

  std::vector<SubLoader> loaders;
  const int64_t seed = cfg.get<int64_t>("run.seed");
  for (const LoaderGroupSpec& group : opts.train) {
    SubLoader l;
    l.name = group.name();
    l.task = group.task;
    l.conversation = instruct;
    l.batch_size = group.batch_size / world_size;
    if (l.batch_size < 1)
      fail("{}: loader {} has batch_size {} (global) for {} ranks", opts.source.string(), l.name, group.batch_size,
           world_size);
    l.n_workers = group.n_workers;
    if (group.data_format == "webdataset") {
      if (instruct)
        fail("{}: loader {}: data_format webdataset gives captions for stage 1 (tri_pretrain), not conversations",
             opts.source.string(), l.name);
      l.shards =
          std::make_shared<WebdatasetImages>(group, opts, rank, world_size, seed, static_cast<int64_t>(loaders.size()));
      l.weight = *group.steps;
      spdlog::info(
          "loader {}: {} tar shards on this rank in {} readers, shuffle buffer {}, weight {}, batch {} per rank",
          l.name, l.shards->shards(), l.shards->readers(), group.shuffle_buffer, l.weight, l.batch_size);
      loaders.push_back(std::move(l));
      continue;
    }
    std::shared_ptr<const TaskConversation> conversation;
    if (instruct) conversation = std::make_shared<const TaskConversation>(group.task, prompts, opts.zh);
    int64_t total = 0;
    for (const ValorDatasetSpec& spec : group.datasets) {
      l.datasets.push_back(std::make_shared<const ValorDataset>(spec, group, opts, conversation));
      total += l.datasets.back()->size();
    }
    // `steps` is the sampling weight; `epoch` gives int(len(dataset) // global batch * epoch).
    l.weight =
        group.steps ? *group.steps : static_cast<int64_t>(static_cast<double>(total / group.batch_size) * *group.epoch);
    spdlog::info("loader {}: {} samples, weight {}, batch {} per rank, {} workers", l.name, total, l.weight,
                 l.batch_size, l.n_workers);
    loaders.push_back(std::move(l));
  }
  MetaLoaderOptions mo;
  mo.rank = rank;
  mo.world_size = world_size;
  mo.seed = seed;
  mo.accum_steps = opts.gradient_accumulation_steps;
  mo.round_robin = opts.dataset_mix_type != "random";
  mo.max_bad_fraction = cfg.get<double>("run.max_bad_sample_fraction");
  mo.pin_memory = cfg.get<bool>("run.pin_memory");
  return std::make_unique<MetaLoader>(std::move(loaders), mo);
}

}  // namespace cb
