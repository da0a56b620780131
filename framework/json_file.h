// Reading a whole JSON file, with errors that name the file and what it is for.
#pragma once
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace cb {

// The JSON document in `file`; cb::Error "<file>: cannot open the <what>" or "<file>: the <what> is not
// valid JSON: <parser message>". `what` says what the file is for ("workload file", "LLaMA config").
nlohmann::json read_json_file(const std::filesystem::path& file, std::string_view what);

struct JsonRecord {
  nlohmann::json value;
  std::string where;  // "record <i>" of a list, "line <n>" of JSON Lines
};

// The records of an annotation file: a JSON list when its first non-blank character is '[' (the
// original's json.load; errors as read_json_file), else JSON Lines, blank lines skipped. A line that is
// not JSON is left out and "line <n>: not valid JSON" added to `bad_lines`.
std::vector<JsonRecord> read_json_records(const std::filesystem::path& file, std::string_view what,
                                          std::vector<std::string>& bad_lines);

}  // namespace cb
