#include "framework/config_schema.h"

#include <string>
#include <vector>

#include "framework/config_node.h"
#include "framework/did_you_mean.h"
#include "framework/error.h"

namespace cb {
namespace {

struct Key {
  std::string_view path;
  Expect type;  // Expect::any: anything below is accepted (builder / processor specific sections)
};

using E = Expect;
constexpr Key kKeys[] = {
    // Sections owned by their builders/processors, merged from their default yamls.
    {"datasets", E::any},
    {"preprocess", E::any},  // the base model yaml's block (unused by training and demo)

    // model: (ChatBridge.from_config)
    {"model.arch", E::string},
    {"model.model_type", E::string},
    {"model.vit_model", E::string},
    {"model.q_former_model", E::string},
    {"model.image_size", E::integer},
    {"model.num_query_token", E::integer},
    {"model.llama_model", E::string},
    {"model.drop_path_rate", E::number},
    {"model.use_grad_checkpoint", E::boolean},
    {"model.vit_precision", E::string},
    {"model.freeze_vit", E::boolean},
    {"model.freeze_beat", E::boolean},
    {"model.freeze_qformer", E::boolean},
    {"model.prompt_template", E::string},
    {"model.prompt", E::string},
    {"model.max_txt_len", E::integer},
    {"model.end_sym", E::string},
    {"model.stage", E::integer},
    {"model.multi_sample", E::boolean},
    {"model.apply_lemmatizer", E::boolean},
    {"model.inf_type", E::any},
    {"model.drop", E::boolean},
    {"model.ckpt", E::string},
    {"model.prompt_path", E::string},
    {"model.low_resource", E::boolean},
    {"model.device_8bit", E::integer},
    // model: keys of this implementation (paths the original hard-codes or downloads; tiny models)
    {"model.vit_ckpt", E::string},         // LAVIS eva_vit_g.pth
    {"model.beats_ckpt", E::string},       // BEATs_iter3_plus_AS2M.pt
    {"model.llama_tokenizer", E::string},  // tokenizer.model or its folder (default: llama_model)
    {"model.num_frames", E::integer},      // temporal embedding slots (a constructor argument there)
    {"model.num_audios", E::integer},
    {"model.tiny_dims", E::any},     // part configs of a small model (the golden fixtures' layout)
    {"model.llama_config", E::any},  // llama_causal_lm: config.json keys of a fresh LLaMA

    // run: (train.py, RunnerBase, tasks, schedulers)
    {"run.task", E::string},
    {"run.runner", E::string},
    {"run.lr_sched", E::string},
    {"run.init_lr", E::number},
    {"run.min_lr", E::number},
    {"run.warmup_lr", E::number},
    {"run.warmup_steps", E::integer},
    {"run.lr_decay_rate", E::number},
    {"run.weight_decay", E::number},
    {"run.max_epoch", E::integer},
    {"run.iters_per_epoch", E::integer},
    {"run.iter_per_epoch", E::integer},
    {"run.inner_save", E::integer},
    {"run.batch_size_train", E::integer},
    {"run.batch_size_eval", E::integer},
    {"run.num_workers", E::integer},
    {"run.accum_grad_iters", E::integer},
    {"run.log_freq", E::integer},
    {"run.seed", E::integer},
    {"run.output_dir", E::string},
    {"run.amp", E::boolean},
    {"run.resume_ckpt_path", E::string},
    {"run.evaluate", E::boolean},
    {"run.train_splits", E::list},
    {"run.valid_splits", E::list},
    {"run.test_splits", E::list},
    {"run.use_dist_eval_sampler", E::boolean},
    {"run.train_dataset_ratios", E::any},
    {"run.device", E::string},
    {"run.world_size", E::integer},
    {"run.dist_url", E::string},
    {"run.distributed", E::boolean},
    {"run.gpu", E::integer},
    {"run.rank", E::integer},
    {"run.dist_backend", E::string},
    {"run.valor_data_opts_path", E::string},
    {"run.prompt_path", E::string},
    {"run.stage", E::integer},
    {"run.losses", E::list},
    {"run.wandb_key", E::string},
    {"run.gt_file", E::string},
    // Added by this implementation.
    {"run.save_every_iters", E::integer},        // mid-epoch checkpoint period (0/absent: end of epoch only)
    {"run.keep_last_checkpoints", E::integer},   // delete older checkpoints beyond this many
    {"run.max_bad_sample_fraction", E::number},  // stop when a dataset skips more than this fraction
    {"run.pin_memory",
     E::boolean},  // LAVIS-style loaders: page-locked batches when CUDA is available (default true, as the original)
    {"run.lm_data_opts_paths", E::list},      // lm_pretrain: data-options JSONs whose texts make the corpus
    {"run.caption_end_sym", E::string},       // lm_pretrain: appended to stage-1 captions
    {"run.lm_fill_query_slots", E::boolean},  // lm_pretrain: query slots hold their media's caption text
    {"run.export_dir", E::string},            // lm_pretrain: the Hugging Face directory written at the end
    // Evaluation tasks (caption_eval, vqa_eval; LAVIS's task keys).
    {"run.prompt", E::string},  // prompt with <query> per feature block, <question>, <caption>
    {"run.num_beams", E::integer},
    {"run.max_len", E::integer},  // HF max_length: counts the one placeholder id
    {"run.min_len", E::integer},  // HF min_length: likewise
    {"run.length_penalty", E::number},
    {"run.repetition_penalty", E::number},
};

bool matches(Expect e, const ConfigNode& n) {
  using Type = ConfigNode::Type;
  switch (e) {
    case Expect::boolean: return n.type == Type::boolean;
    case Expect::integer: return n.type == Type::integer;
    case Expect::number: return n.type == Type::integer || n.type == Type::floating;
    case Expect::string: return n.type == Type::string;
    case Expect::list: return n.type == Type::list;
    case Expect::mapping: return n.type == Type::map;
    case Expect::any: return true;
  }
  return false;
}

const Key* find_key(std::string_view path) {
  for (const auto& k : kKeys)
    if (k.path == path) return &k;
  return nullptr;
}

bool is_section(std::string_view path) {  // an interior node of the schema, e.g. "run"
  for (const auto& k : kKeys)
    if (k.path.size() > path.size() && k.path.starts_with(path) && k.path[path.size()] == '.') return true;
  return false;
}

std::vector<std::string> siblings(std::string_view parent) {
  std::vector<std::string> out;
  std::string prefix = parent.empty() ? "" : std::string(parent) + ".";
  for (const auto& k : kKeys) {
    if (!k.path.starts_with(prefix)) continue;
    auto rest = k.path.substr(prefix.size());
    std::string name(rest.substr(0, rest.find('.')));
    if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
  }
  return out;
}

void validate(const ConfigNode& map, const std::string& parent) {
  for (const auto& [name, value] : map.entries) {
    std::string path = parent.empty() ? name : parent + "." + name;
    if (const Key* k = find_key(path)) {
      if (!value.is_null() && !matches(k->type, value))
        fail("{} in {}: expected {}, got {}", path, value.where(), describe(k->type), value.describe());
    } else if (is_section(path)) {
      if (!value.is_null() && !value.is_map())
        fail("{} in {}: expected a mapping, got {}", path, value.where(), value.describe());
      if (value.is_map()) validate(value, path);
    } else {
      auto hint = did_you_mean(name, siblings(parent));
      if (!hint.empty() && !parent.empty()) hint.insert(hint.find('\'') + 1, parent + ".");
      fail("{} in {}: unknown key{}", path, value.where(), hint);
    }
  }
}

}  // namespace

std::string_view describe(Expect e) {
  switch (e) {
    case Expect::boolean: return "a boolean";
    case Expect::integer: return "an integer";
    case Expect::number: return "a number";
    case Expect::string: return "a string";
    case Expect::list: return "a list";
    case Expect::mapping: return "a mapping";
    case Expect::any: return "any value";
  }
  return "?";
}

void validate_config_schema(const ConfigNode& root) {
  if (!root.is_map()) fail("{}: expected a mapping at the top level, got {}", root.where(), root.describe());
  validate(root, "");
}

}  // namespace cb
