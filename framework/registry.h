// Name -> factory registries, one per kind, filled at static-initialisation time by the file that
// implements the class (like the original's @registry.register_* decorators, chatbridge/common/registry.py).
//
// Register with the ORIGINAL name, next to the class:
//
//   CB_REGISTER(lr_scheduler, "linear_warmup_cosine_lr", [](const cb::Config& run) { ... });
//
// The factory is converted to FactoryOf<Kind::k>::type, the signature that the layer owning the kind's
// interface declares once, in its header, next to the interface:
//
//   template <> struct cb::FactoryOf<cb::Kind::lr_scheduler> {
//     using type = std::function<std::unique_ptr<LRScheduler>(const Config&)>;
//   };
//
// and looked up with `cb::registry::get<cb::Kind::lr_scheduler>(name)` (throws, listing the
// registered names of that kind with a "did you mean"). Registering a name twice throws.
// Models and dataset builders also name their default yaml per type (the original's
// PRECONFIGURED/DATASET_CONFIG_DICT), relative to the source tree:
//
//   CB_REGISTER_DEFAULT_CONFIG(model, "chatbridge", "pretrain_vicuna", "models/configs/chatbridge.yaml");
//
// Layer libraries are linked whole-archive (top-level CMakeLists.txt, chatbridge_link) so these
// static registrations are never dropped by the linker.
#pragma once
#include <any>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cb {

enum class Kind { model, dataset_builder, processor, task, runner, lr_scheduler };
inline constexpr Kind kAllKinds[] = {Kind::model, Kind::dataset_builder, Kind::processor,
                                     Kind::task,  Kind::runner,          Kind::lr_scheduler};
std::string_view kind_name(Kind kind);  // "model", "dataset builder", "processor", ...

template <Kind K>
struct FactoryOf;  // specialised by the owner of each kind (see above)

namespace registry {

void add_any(Kind kind, const std::string& name, std::any factory);
const std::any& find_any(Kind kind, std::string_view name);  // throws cb::Error if unknown
bool contains(Kind kind, std::string_view name);
std::vector<std::string> names(Kind kind);  // sorted

void add_default_config(Kind kind, const std::string& name, const std::string& type, const std::string& path);
// Absolute path of the default yaml of <name> for <type>; throws naming the known names/types.
std::filesystem::path default_config(Kind kind, std::string_view name, std::string_view type);
std::vector<std::string> names_with_default_config(Kind kind);
std::vector<std::string> default_config_types(Kind kind, std::string_view name);  // sorted, empty if none

// Where relative default-config paths live: $CHATBRIDGE_ROOT if set, else the source tree.
std::filesystem::path resource_root();

template <Kind K, typename F>
bool add(const std::string& name, F&& factory) {
  add_any(K, name, std::any(typename FactoryOf<K>::type(std::forward<F>(factory))));
  return true;
}

template <Kind K>
const typename FactoryOf<K>::type& get(std::string_view name) {
  return std::any_cast<const typename FactoryOf<K>::type&>(find_any(K, name));
}

}  // namespace registry
}  // namespace cb

#define CB_REGISTRY_CAT2(a, b) a##b
#define CB_REGISTRY_CAT(a, b) CB_REGISTRY_CAT2(a, b)
#define CB_REGISTER(kind, name, ...) \
  [[maybe_unused]] static const bool CB_REGISTRY_CAT(cb_registered_, __COUNTER__) = \
      ::cb::registry::add<::cb::Kind::kind>(name, __VA_ARGS__)
#define CB_REGISTER_DEFAULT_CONFIG(kind, name, type, path) \
  [[maybe_unused]] static const bool CB_REGISTRY_CAT(cb_registered_, __COUNTER__) = \
      (::cb::registry::add_default_config(::cb::Kind::kind, name, type, path), true)
