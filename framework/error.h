// One exception type for user-facing failures: the message names the file/key and the problem.
#pragma once
#include <spdlog/fmt/fmt.h>
#include <stdexcept>
#include <string>

namespace cb {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace cb
