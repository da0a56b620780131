#include "framework/config_schema.h"

#include <spdlog/spdlog.h>

#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "framework/config.h"
#include "framework/config_node.h"
#include "framework/did_you_mean.h"
#include "framework/error.h"
#include "framework/text/python_str.h"

namespace cb {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct Key {
  std::string_view path;
  Expect type;                    // Expect::any: anything below is accepted (builder / processor specific sections)
  std::string_view default_yaml;  // the value when absent, as YAML ('' is the empty string), or a marker below
  std::string_view doc;           // one line for docs/config-keys.md
  // Read only when another key has one of these values ("run.task=tri_pretrain,tri_instruct"): the
  // schema is one list for every model and task, so a key of another one's section would otherwise be
  // accepted and silently do nothing. Set elsewhere, it warns like kNotRead. Empty: read by all.
  std::string_view only = {};
  // The values accepted for a string key ("generate"; comma-separated): another one is refused with the
  // doc as the reason (a LAVIS setting whose other values would do what this code does not). Empty: any.
  std::string_view values = {};
  // The range a number key accepts; a value outside it (or NaN) is refused naming its file and line.
  struct Bounds {
    double lo = -kInf, hi = kInf;
    bool lo_open = false, hi_open = false;
    bool any() const { return lo == -kInf && hi == kInf; }
    bool holds(double v) const { return (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi); }
    std::string text() const {  // ">= 0", "> 0", "in [0, 1)"
      if (hi == kInf) return fmt::format("{} {}", lo_open ? ">" : ">=", lo);
      return fmt::format("in {}{}, {}{}", lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
    }
  } bounds = {};
};

using Bounds = Key::Bounds;
constexpr Bounds kNonNegative{0};
constexpr Bounds kPositive{0, kInf, true};
constexpr Bounds kAtLeastOne{1};
constexpr Bounds kProbability{0, 1, false, true};  // [0, 1): a drop rate

constexpr std::string_view kRequired = "!required";  // the code that reads it fails when it is absent
constexpr std::string_view kNoDefault = "!none";     // optional: absence means what the doc says
// Accepted so that the original's configs load, but nothing reads it: a config that sets it gets a
// warning quoting the doc (the reason), once per key and process.
constexpr std::string_view kNotRead = "!not-read";

using E = Expect;
constexpr Key kKeys[] = {
    // Sections owned by their builders/processors, merged from their default yamls.
    {"datasets", E::any, kNoDefault, "dataset builders by name; each merged over its default yaml"},
    {"preprocess", E::any, kNoDefault, "the base model yaml's processor block (unused by training and demo)"},

    // model: (ChatBridge.from_config)
    {"model.arch", E::string, kRequired, "registered model: `chatbridge`, or `llama_causal_lm` (stage 0)"},
    {"model.model_type", E::string, kRequired, "picks the base yaml of `arch` (e.g. `pretrain_vicuna`)"},
    {"model.vit_model", E::string, "eva_clip_g", "vision encoder; only `eva_clip_g` exists", "model.arch=chatbridge"},
    {"model.q_former_model", E::string, "''", "BLIP-2 checkpoint: Q-Former, query tokens, ln_vision ('': fresh)",
     "model.arch=chatbridge"},
    {"model.image_size", E::integer, kRequired, "ViT input side in pixels", "model.arch=chatbridge"},
    {"model.num_query_token", E::integer, kRequired, "query tokens per Q-Former pass (image and audio)",
     "model.arch=chatbridge"},
    {"model.llama_model", E::string, "''", "Hugging Face LLaMA/Vicuna folder (config, weights, tokenizer)"},
    {"model.drop_path_rate", E::number, "0.0", "ViT stochastic depth", "model.arch=chatbridge", "", kProbability},
    {"model.use_grad_checkpoint", E::boolean, "false", "activation checkpointing in the ViT and Q-Former",
     "model.arch=chatbridge"},
    {"model.vit_precision", E::string, "fp16", "ViT weights: fp16 (CUDA only), bf16 or fp32", "model.arch=chatbridge"},
    {"model.llama_precision", E::string, "auto",
     "frozen LLaMA storage: fp32, bf16, fp16, q8_0, q4_0; auto = fp16 with CUDA, else a quantized "
     "directory's own format, else fp32 (docs/precision.md)",
     "model.arch=chatbridge"},
    {"model.beats_precision", E::string, "fp32", "new: BEATs weights as vit_precision (the original keeps fp32)",
     "model.arch=chatbridge"},
    {"model.llama_mmap", E::boolean, "false",
     "new: True uses a quantized LLaMA file's packed weights from its memory mapping (fast load, slower "
     "CPU decode); False copies them in",
     "model.arch=chatbridge"},
    {"model.freeze_vit", E::boolean, "true", "keep the ViT frozen", "model.arch=chatbridge"},
    {"model.freeze_beat", E::boolean, "true", "keep the BEATs audio encoder frozen", "model.arch=chatbridge"},
    {"model.freeze_qformer", E::boolean, "true", "keep the Q-Former and query tokens frozen", "model.arch=chatbridge"},
    {"model.prompt_template", E::string, "''", "stored, unused by training (as the original)", "model.arch=chatbridge"},
    {"model.prompt", E::string, kNotRead, "the original's base yaml sets it; ChatBridge reads prompt_template"},
    {"model.max_txt_len", E::integer, "32", "stage 1: caption tokens; stage 2: positions per conversation"},
    {"model.end_sym", E::string, "\"\\n\"", "appended to stage-1 captions", "model.arch=chatbridge"},
    {"model.stage", E::integer, "1", "1: caption loss; 2/3: conversation loss; 4: also forces `drop`",
     "model.arch=chatbridge"},
    {"model.multi_sample", E::boolean, "false", "temporal embeddings for video frames and audio slices",
     "model.arch=chatbridge"},
    {"model.apply_lemmatizer", E::boolean, kNotRead, "accepted for the original's configs; not read"},
    {"model.inf_type", E::any, kNotRead, "accepted for the original's configs; not read"},
    {"model.drop", E::boolean, "false", "Q-Former BERT dropouts 0.1", "model.arch=chatbridge"},
    {"model.ckpt", E::string, "''",
     "ChatBridge checkpoint loaded last, non-strictly (.pth, .safetensors or checkpoint dir)", "model.arch=chatbridge"},
    {"model.prompt_path", E::string, kNotRead, "accepted for the original's configs; not read"},
    {"model.low_resource", E::boolean, "false", "True: the LLaMA in 8 bits, i.e. llama_precision q8_0",
     "model.arch=chatbridge"},
    {"model.device_8bit", E::integer, "0", "the original's 8-bit LLaMA device; non-zero warns (one device here)",
     "model.arch=chatbridge"},
    // model: keys of this implementation (paths the original hard-codes or downloads; tiny models)
    {"model.vit_ckpt", E::string, "''", "LAVIS eva_vit_g.pth ('': fresh ViT)", "model.arch=chatbridge"},
    {"model.beats_ckpt", E::string, "''", "BEATs_iter3_plus_AS2M.pt ('': fresh BEATs)", "model.arch=chatbridge"},
    {"model.llama_tokenizer", E::string, kNoDefault, "tokenizer.model or its folder (absent: `llama_model`)"},
    {"model.num_frames", E::integer, "4", "temporal embedding slots for video frames", "model.arch=chatbridge"},
    {"model.num_audios", E::integer, "2", "temporal embedding slots for audio slices", "model.arch=chatbridge"},
    {"model.tiny_dims", E::any, kNoDefault, "part configs of a small model (the golden fixtures' layout)",
     "model.arch=chatbridge"},
    {"model.llama_config", E::any, kNoDefault, "llama_causal_lm: config.json keys of a fresh LLaMA",
     "model.arch=llama_causal_lm"},

    // run: (train.py, RunnerBase, tasks, schedulers)
    {"run.task", E::string, kRequired, "registered task (tri_pretrain, tri_instruct, lm_pretrain, *_eval)"},
    {"run.runner", E::string, "runner_base", "registered runner"},
    {"run.lr_sched", E::string, kRequired, "registered lr scheduler (e.g. linear_warmup_cosine_lr)"},
    {"run.init_lr", E::number, kRequired, "peak learning rate", "", "", kNonNegative},
    {"run.min_lr", E::number, kRequired, "floor of the decay", "", "", kNonNegative},
    {"run.warmup_lr", E::number, "-1", "learning rate at warmup step 0 (negative: init_lr)"},
    {"run.warmup_steps", E::integer, "0", "linear warmup steps", "", "", kNonNegative},
    {"run.lr_decay_rate", E::number, kNoDefault, "linear_warmup_step_lr: factor per epoch (that schedule needs it)", "",
     "", kNonNegative},
    {"run.weight_decay", E::number, kRequired, "AdamW weight decay", "", "", kNonNegative},
    {"run.max_epoch", E::integer, kRequired, "epochs to train"},
    {"run.iters_per_epoch", E::integer, kNoDefault, "iterations per epoch (absent: the loader's length, else 10000)"},
    {"run.iter_per_epoch", E::integer, kNotRead, "accepted for the original's configs; not read"},
    {"run.inner_save", E::integer, kNotRead, "accepted for the original's configs; not read"},
    {"run.batch_size_train", E::integer, kRequired,
     "texts per rank and step; the tri tasks take each loader's batch_size in run.valor_data_opts_path",
     "run.task=lm_pretrain"},
    {"run.batch_size_eval", E::integer, "1", "chatbridge-eval and validation: items per generation batch"},
    {"run.num_workers", E::integer, kNotRead, "accepted for the original's configs; not read"},
    {"run.accum_grad_iters", E::integer, "1", "micro-batches per optimiser step", "", "", kAtLeastOne},
    {"run.log_freq", E::integer, "50", "iterations between metrics lines", "", "", kAtLeastOne},
    {"run.seed", E::integer, kRequired, "training seed, the same on every rank (eval, chat, convert, probe: 42)"},
    {"run.output_dir", E::string, kRequired, "checkpoints, config.yaml, metrics.jsonl, eval results"},
    {"run.amp", E::boolean, "false",
     "fp16 autocast and grad scaler on CUDA; bf16 autocast (no scaler) on the CPU, an extension: the original's "
     "`torch.cuda.amp` does nothing there"},
    {"run.resume_ckpt_path", E::string, kNoDefault, "checkpoint to resume from (absent: --resume decides)"},
    {"run.evaluate", E::boolean, kNotRead, "accepted for the original's configs; not read"},
    {"run.train_splits", E::list, kNotRead, "accepted for the original's configs; not read"},
    {"run.valid_splits", E::list, "[]",
     "splits of `datasets:` evaluated after each epoch; the best `val` agg_metrics is kept as checkpoint_best"},
    {"run.test_splits", E::list, "[]",
     "splits evaluated after training (with checkpoint_best when validating); chatbridge-eval's splits"},
    {"run.use_dist_eval_sampler", E::boolean, kNotRead, "accepted for the original's configs; not read"},
    {"run.train_dataset_ratios", E::any, kNotRead, "accepted for the original's configs; not read"},
    {"run.device", E::string, "cpu", "cuda[:N] when CUDA is available, else the CPU"},
    {"run.world_size", E::integer, kNotRead, "accepted; the launcher's environment sets it"},
    {"run.dist_url", E::string, kNotRead, "accepted; the launcher's environment sets it"},
    {"run.distributed", E::boolean, kNotRead, "accepted; the launcher's environment sets it"},
    {"run.gpu", E::integer, kNotRead, "accepted; the launcher's environment sets it"},
    {"run.rank", E::integer, kNotRead, "accepted; the launcher's environment sets it"},
    {"run.dist_backend", E::string, kNotRead, "accepted; the launcher's environment sets it"},
    {"run.valor_data_opts_path", E::string, kRequired, "tri_pretrain / tri_instruct: VALOR data-options JSON",
     "run.task=tri_pretrain,tri_instruct"},
    {"run.prompt_path", E::string, kNoDefault, "task prompts JSON: required by tri_instruct, optional for lm_pretrain",
     "run.task=tri_instruct,lm_pretrain"},
    {"run.stage", E::integer, "1", "data stage; tri_pretrain takes 1 only", "run.task=tri_pretrain"},
    {"run.losses", E::list, kNotRead, "accepted for the original's configs; not read"},
    {"run.wandb_key", E::string, "''", "Weights & Biases: not implemented, warns when set"},
    {"run.gt_file", E::string, kNotRead, "accepted for the original's configs; not read"},
    // Added by this implementation.
    {"run.save_every_iters", E::integer, "0", "mid-epoch checkpoint period (0: end of epoch only)", "", "",
     kNonNegative},
    {"run.keep_last_checkpoints", E::integer, "0", "delete older checkpoints beyond this many (0: keep all)", "", "",
     kNonNegative},
    {"run.tensorboard", E::boolean, "false", "TensorBoard event files of the logged metrics under `<output_dir>/tb`"},
    {"run.valid_task", E::string, kNoDefault,
     "evaluation task of valid/test splits (absent: caption_eval for caption sets, vqa_eval for QA sets)"},
    {"run.dist_timeout", E::number, "1800",
     "seconds a collective may wait for the other ranks before the job fails naming them (torchrun's 30 min)", "", "",
     kPositive},
    {"run.max_bad_sample_fraction", E::number, "0.1", "stop when a dataset skips more than this fraction"},
    {"run.pin_memory", E::boolean, "true", "page-locked batches when CUDA is available (as the original)"},
    {"run.lm_data_opts_paths", E::list, kRequired, "lm_pretrain: data-options JSONs whose texts make the corpus",
     "run.task=lm_pretrain"},
    {"run.caption_end_sym", E::string, "\"\\n\"", "lm_pretrain: appended to stage-1 captions", "run.task=lm_pretrain"},
    {"run.lm_fill_query_slots", E::boolean, "false", "lm_pretrain: query slots hold their media's caption text",
     "run.task=lm_pretrain"},
    {"run.export_dir", E::string, kNoDefault,
     "lm_pretrain: Hugging Face directory written at the end (absent: `<output_dir>/llama`)", "run.task=lm_pretrain"},
    // Evaluation tasks (caption_eval, vqa_eval; LAVIS's task keys).
    {"run.prompt", E::string, "''", "prompt with `<query>` per feature block, `<question>`, `<caption>`"},
    {"run.num_beams", E::integer, kNoDefault, "beam size (absent: caption_eval 5, vqa_eval 3)"},
    {"run.max_len", E::integer, kNoDefault,
     "HF max_length, counting the one placeholder id (absent: caption_eval 30, vqa_eval 10)"},
    {"run.min_len", E::integer, "1", "HF min_length, likewise"},
    {"run.length_penalty", E::number, "1.0", "beam search length penalty"},
    {"run.repetition_penalty", E::number, "1.0", "HF repetition penalty"},
    // LAVIS eval yamls' keys, accepted so that they load (they warn that they have no effect).
    {"run.inference_method", E::string, kNotRead,
     "LAVIS's VQA inference: answers are always generated, so only `generate` is accepted (`rank` over "
     "candidate answers is not implemented)",
     "", "generate"},
    {"run.num_ans_candidates", E::integer, kNotRead,
     "LAVIS's candidate answers of `rank` inference, which is not implemented: answers are generated"},
    {"run.report_metric", E::boolean, kNotRead, "LAVIS's switch for metrics: they are always computed and written"},
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

void warn_not_read(const Key& k, const ConfigNode& value) {
  static std::mutex mutex;
  static std::set<std::string_view> warned;
  std::lock_guard lock(mutex);
  if (warned.insert(k.path).second)
    spdlog::warn("{} is set in {} but has no effect here: {}", k.path, value.where(), k.doc);
}

// "run.task=a,b" -> "`run.task` a<sep>b" (Markdown) or "run.task a<sep>b"
std::string scope_text(std::string_view only, std::string_view sep, bool markdown) {
  const auto eq = only.find('=');
  const auto key = std::string(only.substr(0, eq));
  std::string out = (markdown ? "`" + key + "`" : key) + " ";
  const auto values = pystr::split(only.substr(eq + 1), ",");
  for (size_t i = 0; i < values.size(); ++i) out += (i ? std::string(sep) : "") + values[i];
  return out;
}

// A key set where its `only` condition does not hold, e.g. model.freeze_vit under model.arch
// llama_causal_lm: warns, once per key and process, naming the value that rules it out. Nothing is
// said while the condition's key is absent or not a string (its own check reports that).
// The value of k.only's key that rules k out (e.g. "llama_causal_lm" for model.freeze_vit), or nullptr
// when k is read, or when that key is absent or not a string (its own check reports that).
const ConfigNode* ruled_out_by(const Key& k, const ConfigNode& root) {
  if (k.only.empty()) return nullptr;
  const auto eq = k.only.find('=');
  const ConfigNode* n = &root;
  for (const auto& part : pystr::split(k.only.substr(0, eq), ".")) n = n && n->is_map() ? n->find(part) : nullptr;
  if (!n || n->type != ConfigNode::Type::string) return nullptr;
  const auto values = pystr::split(k.only.substr(eq + 1), ",");
  return std::find(values.begin(), values.end(), n->string) != values.end() ? nullptr : n;
}

void warn_out_of_scope(const Key& k, const ConfigNode& value, const ConfigNode& root) {
  const ConfigNode* by = ruled_out_by(k, root);
  if (!by) return;
  static std::mutex mutex;
  static std::set<std::string_view> warned;
  std::lock_guard lock(mutex);
  if (warned.insert(k.path).second)
    spdlog::warn("{} is set in {} but has no effect with {} '{}' (read with {} only): {}", k.path, value.where(),
                 k.only.substr(0, k.only.find('=')), by->string, scope_text(k.only, " / ", false), k.doc);
}

void validate(const ConfigNode& map, const std::string& parent, const ConfigNode& root) {
  for (const auto& [name, value] : map.entries) {
    std::string path = parent.empty() ? name : parent + "." + name;
    if (const Key* k = find_key(path)) {
      if (!value.is_null() && !matches(k->type, value))
        fail("{} in {}: expected {}, got {}", path, value.where(), describe(k->type), value.describe());
      if (!k->values.empty() && value.type == ConfigNode::Type::string) {
        const auto allowed = pystr::split(k->values, ",");
        if (std::find(allowed.begin(), allowed.end(), value.string) == allowed.end())
          fail("{} in {}: '{}' is not supported (accepted: {}): {}", path, value.where(), value.string, k->values,
               k->doc);
      }
      if (!k->bounds.any() && (value.type == ConfigNode::Type::integer || value.type == ConfigNode::Type::floating)) {
        const double v = value.type == ConfigNode::Type::integer ? double(value.integer) : value.floating;
        if (!k->bounds.holds(v))
          fail("{} in {}: expected {} {}, got {}", path, value.where(), describe(k->type), k->bounds.text(),
               value.describe());
      }
      if (!value.is_null() && k->default_yaml == kNotRead) warn_not_read(*k, value);
      if (!value.is_null()) warn_out_of_scope(*k, value, root);
    } else if (is_section(path)) {
      if (!value.is_null() && !value.is_map())
        fail("{} in {}: expected a mapping, got {}", path, value.where(), value.describe());
      if (value.is_map()) validate(value, path, root);
    } else {
      auto hint = did_you_mean(name, siblings(parent), parent.empty() ? "" : parent + ".");
      fail("{} in {}: unknown key{}", path, value.where(), hint);
    }
  }
}

bool has_default(const Key& k) { return !k.default_yaml.starts_with("!"); }

// Every declared default, parsed once; a default that is not of its key's type fails here, on first use.
const std::map<std::string_view, ConfigNode>& parsed_defaults() {
  static const auto defaults = [] {
    std::map<std::string_view, ConfigNode> out;
    for (const auto& k : kKeys) {
      if (!has_default(k)) continue;
      auto node = parse_yaml(std::string(k.default_yaml), fmt::format("the default of {} (config_schema.cpp)", k.path));
      if (node.is_null() || !matches(k.type, node))
        fail("{}: declared default {} is not {}", k.path, k.default_yaml, describe(k.type));
      out.emplace(k.path, std::move(node));
    }
    return out;
  }();
  return defaults;
}

std::string_view type_name(Expect e) {  // "an integer" -> "integer"
  if (e == Expect::any) return "any";
  auto d = describe(e);
  return d.substr(d.find(' ') + 1);
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
  validate(root, "", root);
}

const ConfigNode* declared_default(std::string_view path) {
  const auto& defaults = parsed_defaults();
  auto it = defaults.find(path);
  return it == defaults.end() ? nullptr : &it->second;
}

ConfigNode absent_defaults(const Config& cfg) {
  ConfigNode out = ConfigNode::mapping();
  for (const auto& k : kKeys) {  // in declaration order
    const ConfigNode* value = declared_default(k.path);
    if (!value || cfg.has(k.path) || ruled_out_by(k, cfg.node())) continue;  // not read by this model / task
    ConfigNode* at = &out;
    for (const auto& part : pystr::split(k.path, ".")) {
      if (at->is_null()) *at = ConfigNode::mapping();
      at = &at->child(part);
    }
    *at = *value;
  }
  return out;
}

std::string config_reference_markdown() {
  std::string md =
      "# Config keys\n\n"
      "Every key an experiment yaml may set, with its type and the value used when it is absent. Generated by\n"
      "`chatbridge-train --config-reference` from framework/config_schema.cpp; a test fails when this file\n"
      "differs. *required*: the code that reads the key fails without it; *none*: optional, absence means\n"
      "what the doc says. Sections marked *any* belong to their dataset builders and processors. *read with*:\n"
      "the model or task that reads the key; set with another one, it warns that it has no effect.\n";
  std::string section = "-";
  for (const auto& k : kKeys) {
    auto dot = k.path.find('.');
    auto sec = dot == std::string_view::npos ? std::string("top level") : std::string(k.path.substr(0, dot));
    if (sec != section) {
      section = sec;
      md += fmt::format("\n## {}\n\n| key | type | default | read with | doc |\n|---|---|---|---|---|\n", section);
    }
    auto def = k.default_yaml == kRequired    ? std::string("*required*")
               : k.default_yaml == kNoDefault ? std::string("*none*")
               : k.default_yaml == kNotRead   ? std::string("*not read* (warns)")
                                              : fmt::format("`{}`", k.default_yaml);
    // "read with": the `only` condition, `model.arch` chatbridge; every model / task when empty
    auto scope = k.only.empty() ? std::string("all") : scope_text(k.only, ", ", true);
    const auto type =
        k.bounds.any() ? std::string(type_name(k.type)) : fmt::format("{} {}", type_name(k.type), k.bounds.text());
    md += fmt::format("| `{}` | {} | {} | {} | {} |\n", k.path, type, def, scope, k.doc);
  }
  return md;
}

}  // namespace cb
