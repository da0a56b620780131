// The one checked number parser for command-line values, environment variables and typed commands
// (rendezvous.cpp's environment, app_options.cpp's RANK/WORLD_SIZE, chatbridge-launch's options,
// the chat terminal's /beams and /top-p). std::from_chars underneath: the whole text must be the
// number (no sign but '-', no blanks, no trailing characters), and a value outside the type's
// range is refused rather than wrapped, which std::stoi and atoi do not guarantee.
// YAML integers (bases, '_' separators) are framework/config_node.cpp's own syntax.
#pragma once
#include <charconv>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>

#include "framework/error.h"

namespace cb {

// All of `text` as a T (an integer in base 10, or a floating-point number in from_chars' general
// format); nullopt when it is empty, holds anything else, or is outside T's range.
template <typename T>
std::optional<T> to_number(std::string_view text) {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>);
  T v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

// to_number, or fails with "<what>: '<text>' is not a number".
template <typename T>
T parse_number(std::string_view text, std::string_view what) {
  if (auto v = to_number<T>(text)) return *v;
  fail("{}: '{}' is not a number", what, text);
}

// All of `text` as an integer in [min, max], or fails with "<what>='<text>': expected an integer in
// [min, max]" (">= min" when max is T's largest value), as the environment's NAME=value reads.
template <typename T>
T parse_int(std::string_view text, std::string_view what, T min = std::numeric_limits<T>::lowest(),
            T max = std::numeric_limits<T>::max()) {
  static_assert(std::is_integral_v<T>);
  if (auto v = to_number<T>(text); v && *v >= min && *v <= max) return *v;
  if (max == std::numeric_limits<T>::max() && min == std::numeric_limits<T>::lowest())
    fail("{}='{}': expected an integer", what, text);
  if (max == std::numeric_limits<T>::max()) fail("{}='{}': expected an integer >= {}", what, text, min);
  fail("{}='{}': expected an integer in [{}, {}]", what, text, min, max);
}

}  // namespace cb
