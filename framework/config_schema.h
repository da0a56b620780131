// Every config key the pipeline reads (the original's run keys, read across its runner and tasks;
// model keys, ChatBridge.from_config in chatbridge/models/chatbridge.py; plus keys this
// implementation adds), with the type its value must have.
// A resolved config is checked against it: unknown keys fail with a "did you mean", wrong types fail
// naming file, key and expected type. null is accepted everywhere (it means "absent").
// To read a new key, add it to the table in config_schema.cpp.
#pragma once
#include <string_view>

namespace cb {

struct ConfigNode;

enum class Expect { boolean, integer, number, string, list, mapping, any };
std::string_view describe(Expect e);  // "a boolean", "an integer", "a number", ...

void validate_config_schema(const ConfigNode& root);

}  // namespace cb
