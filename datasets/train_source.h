// The training data of a run, as the runner sees it: the original's valor meta loader
// (custom_datasets/valor_data, chatbridge/tasks/valor_train_utils.py) built from the experiment config.
//
//   run.task                 tri_pretrain -> stage-1 VALORDataset loaders (captions, task "ti"/"ta"/...)
//                            tri_instruct -> stage-2 TASKDataset loaders (MULTIS conversations)
//                            (a stage-1 group may stream webdataset tar shards: data_format webdataset)
//   run.valor_data_opts_path the data-options JSON (datasets, tasks, mixing weights, batch sizes, workers)
//   run.prompt_path          tri_instruct only: task -> instruction templates (task_prompt.json)
//   run.seed                 base seed: mixing draws use seed + rank, as the original
//   run.max_bad_sample_fraction  stop with cb::Error once a dataset skipped more than this fraction of the
//                            samples it tried (default 0.1)
// Relative paths (the options file and the paths inside it) resolve against the working directory, as in
// the original. Per-rank batch = the JSON's global batch_size / world_size.
#pragma once
#include <memory>

#include "datasets/batch_source.h"
#include "framework/config.h"

namespace cb {

std::unique_ptr<BatchSource> build_train_source(const Config& cfg, int rank, int world_size);

}  // namespace cb
