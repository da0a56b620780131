// Every config key the pipeline reads (the original's run keys, read across its runner and tasks;
// model keys, ChatBridge.from_config in chatbridge/models/chatbridge.py; plus keys this
// implementation adds), declared once in config_schema.cpp: type, default and a line of doc.
// From that one list come
//   - the schema check of a resolved config: unknown keys fail with a "did you mean", wrong types fail
//     naming file, key and expected type; null is accepted everywhere (it means "absent");
//   - the defaults: Config::get<T>(key) of a declared key the config leaves absent returns its
//     declared default (an explicit get<T>(key, fallback) is kept only where the default depends on
//     context, e.g. on another key);
//   - the defaults `chatbridge-train --print-config` lists for absent keys;
//   - docs/config-keys.md (`chatbridge-train --config-reference`; a test keeps the two equal).
// To read a new key, declare it in config_schema.cpp.
#pragma once
#include <string>
#include <string_view>

namespace cb {

class Config;
struct ConfigNode;

enum class Expect { boolean, integer, number, string, list, mapping, any };
std::string_view describe(Expect e);  // "a boolean", "an integer", "a number", ...

void validate_config_schema(const ConfigNode& root);

// The declared default of a key path ("run.log_freq"), typed as YAML; nullptr when the key has none
// (required, optional without a default, or not declared).
const ConfigNode* declared_default(std::string_view path);

// The declared defaults of the keys a resolved config leaves absent or null and its model and task
// read (a key's `only`), as a tree:
// {run: {log_freq: 50, ...}, model: {...}}.
ConfigNode absent_defaults(const Config& cfg);

// docs/config-keys.md: a Markdown table per section (key, type, default, doc).
std::string config_reference_markdown();

}  // namespace cb
