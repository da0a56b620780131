// Typed reads of JSON config objects (HF config.json, BEATs cfg, fixture configs) with errors that
// name the source and the key. Absent or null keys leave the field unchanged (the class default).
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "framework/error.h"

namespace cb {

namespace json_detail {
template <typename T>
struct is_vector : std::false_type {};
template <typename T>
struct is_vector<std::vector<T>> : std::true_type {};

template <typename T>
T convert(const nlohmann::json& v, const char* key, const std::string& source) {
  if constexpr (std::is_same_v<T, bool>) {  // Python configs write 0/1 for flags too
    if (!v.is_boolean() && !v.is_number_integer()) fail("{}: '{}' must be a bool, got {}", source, key, v.dump());
    return v.is_boolean() ? v.get<bool>() : v.get<int64_t>() != 0;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) fail("{}: '{}' must be a string, got {}", source, key, v.dump());
    return v.get<std::string>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) fail("{}: '{}' must be a number, got {}", source, key, v.dump());
    return v.get<T>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) fail("{}: '{}' must be an integer, got {}", source, key, v.dump());
    return v.get<T>();
  } else {
    static_assert(is_vector<T>::value, "unsupported type");
    if (!v.is_array()) fail("{}: '{}' must be a list, got {}", source, key, v.dump());
    T out;
    for (const auto& e : v) out.push_back(convert<typename T::value_type>(e, key, source));
    return out;
  }
}
}  // namespace json_detail

// field = j[key] if present and not null.
template <typename T>
void read_json_key(const nlohmann::json& j, const char* key, T& field, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  field = json_detail::convert<T>(*it, key, source);
}

// An optional value where JSON null means "none" (e.g. HF token ids).
template <typename T>
void read_json_key(const nlohmann::json& j, const char* key, std::optional<T>& field, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end()) return;
  if (it->is_null()) field.reset();
  else field = json_detail::convert<T>(*it, key, source);
}

template <typename T>
T require_json_key(const nlohmann::json& j, const char* key, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) fail("{}: missing key '{}'", source, key);
  return json_detail::convert<T>(*it, key, source);
}

}  // namespace cb
