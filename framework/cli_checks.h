// CLI11 validators with plain messages: CLI11 2.1's PositiveNumber reports its range with the 309
// digits of DBL_MAX, and NonNegativeNumber likewise.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

namespace cb::cli {

inline CLI::Validator number_at_least(double lowest, bool inclusive, const std::string& name) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        double v = 0;
        if (!CLI::detail::lexical_cast(s, v)) return "'" + s + "' is not a number";
        if (inclusive ? v >= lowest : v > lowest) return {};
        return "must be " + std::string(inclusive ? ">= " : "> ") + CLI::detail::to_string(lowest) + ", got " + s;
      },
      name);
}

inline const CLI::Validator positive = number_at_least(0, false, "POSITIVE");
inline const CLI::Validator non_negative = number_at_least(0, true, "NONNEGATIVE");

}  // namespace cb::cli
