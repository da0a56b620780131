#include "framework/json_file.h"

#include <spdlog/fmt/fmt.h>

#include <fstream>
#include <sstream>

#include "framework/error.h"

namespace cb {

nlohmann::json read_json_file(const std::filesystem::path& file, std::string_view what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("{}: cannot open the {}", file.string(), what);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the {} is not valid JSON: {}", file.string(), what, e.what());
  }
}

std::vector<JsonRecord> read_json_records(const std::filesystem::path& file, std::string_view what,
                                          std::vector<std::string>& bad_lines) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("{}: cannot open the {}", file.string(), what);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<JsonRecord> out;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    nlohmann::json list;
    try {
      list = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: the {} is not valid JSON: {}", file.string(), what, e.what());
    }
    for (size_t i = 0; i < list.size(); ++i) out.push_back({std::move(list[i]), fmt::format("record {}", i)});
    return out;
  }
  std::istringstream lines(text);
  std::string line;
  for (size_t n = 1; std::getline(lines, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      out.push_back({nlohmann::json::parse(line), fmt::format("line {}", n)});
    } catch (const nlohmann::json::exception&) {
      bad_lines.push_back(fmt::format("line {}: not valid JSON", n));
    }
  }
  return out;
}

}  // namespace cb
