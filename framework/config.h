// Experiment configuration, resolved as the original's Config (LAVIS/OmegaConf, chatbridge/common/config.py):
//
//   cb::Config cfg = cb::resolve_config("train_configs/chatbridge_pretrain.yaml", {"run.init_lr=3e-5"});
//   double lr   = cfg.get<double>("run.init_lr");                 // required
//   int64_t acc = cfg.get<int64_t>("run.accum_grad_iters", 1);     // default when absent or null
//   auto ckpt   = cfg.get_optional<std::string>("run.resume_ckpt_path");
//   cb::Config run = cfg.sub("run");  run.get<int64_t>("seed");
//
// get<T> for T = bool, int, int64_t, double, std::string, std::vector<int64_t | double | std::string>.
// double accepts integers too (the original wraps these in float()); nothing else converts.
// Errors name the key path, the file the value came from (or "--options") and the expected type:
//   "run.init_lr in train_configs/x.yaml (line 14): expected a number, got 'abc'".
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "framework/config_node.h"

namespace cb {

class Config {
 public:
  Config();  // empty mapping
  Config(ConfigNode root, std::string origin);

  bool has(std::string_view key) const;  // present and not null
  template <typename T>
  T get(std::string_view key) const;
  template <typename T>
  T get(std::string_view key, T fallback) const;
  template <typename T>
  std::optional<T> get_optional(std::string_view key) const;

  Config sub(std::string_view key) const;  // a mapping below this one
  std::vector<std::string> keys() const;
  const ConfigNode& node() const { return *node_; }
  const std::string& path() const { return path_; }  // "" for the root, else e.g. "run"

  // A view of the same tree that records the keys read through it and the sections taken from it:
  // how the owner of a section the schema leaves open (a processor's keys) finds the keys it did not
  // read, i.e. a misspelt key that the original would silently ignore.
  Config recording() const;
  // The keys directly below this mapping that were looked up through `recorder` (a recording() of
  // it) or its sections, present or not (a key read with a default counts).
  std::vector<std::string> keys_read(const Config& recorder) const;

  std::string to_yaml() const;
  nlohmann::ordered_json to_json() const;  // what checkpoints and log.txt store (cfg.to_dict())

 private:
  Config(std::shared_ptr<const ConfigNode> root, const ConfigNode* node, std::string path, std::string origin);
  const ConfigNode* lookup(std::string_view key) const;  // nullptr if absent
  std::string full(std::string_view key) const;

  std::shared_ptr<const ConfigNode> root_;
  const ConfigNode* node_;
  std::string path_;
  std::string origin_;  // the experiment yaml, for "missing key" errors
  struct Reads;
  std::shared_ptr<Reads> reads_;  // set by recording(): full paths looked up
};

// train.py's --options: `a.b=v` tokens, or alternating `key value` pairs when the first token has no
// '='; values typed as YAML (OmegaConf.from_dotlist). A `key` token without '=' sets null, as there.
ConfigNode options_to_node(const std::vector<std::string>& options);

// OmegaConf's interpolation, resolved in place over a merged tree: "${a.b}" alone takes the value at
// a.b with its type, text around it makes a string ("${run.output_dir}/eval"); ${oc.env:NAME} and
// ${env:NAME} read the environment (${oc.env:NAME,default}); "\${" stays a literal "${". A missing
// key, a cycle or another resolver fails naming the value's file and line.
void resolve_interpolations(ConfigNode& root);

// The original's merge (Config.build_config): {"run": yaml.run}, then the model's default yaml for
// model.model_type with the yaml's model section over it, then each dataset builder's default yaml
// with the yaml's datasets.<name> over it, then --options over everything; interpolations resolved;
// checked against the schema.
Config resolve_config(const std::filesystem::path& cfg_path, const std::vector<std::string>& options);
// chatbridge-eval --model-cfg: the model section of experiment yaml `model_cfg`, resolved, goes over the
// yaml's own model section and under --options; messages name its file and lines.
Config resolve_config(const std::filesystem::path& cfg_path, const std::vector<std::string>& options,
                      const std::filesystem::path& model_cfg);

}  // namespace cb
