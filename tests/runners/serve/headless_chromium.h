// Debian's Chromium, headless, driven through the DevTools protocol over pipes
// (--remote-debugging-pipe: commands are NUL-terminated JSON written to the browser's fd 3, replies and
// events come back on its fd 4). No websocket client and no Python are needed.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace cb::test {

class HeadlessChromium {
 public:
  // Starts the browser with a fresh profile in `profile_dir`; its own output goes to `log`.
  HeadlessChromium(const std::filesystem::path& profile_dir, const std::filesystem::path& log);
  ~HeadlessChromium();
  HeadlessChromium(const HeadlessChromium&) = delete;
  HeadlessChromium& operator=(const HeadlessChromium&) = delete;

  // Sends one command and returns its `result`; throws on a protocol error or after `timeout`.
  nlohmann::json call(const std::string& method, const nlohmann::json& params = nlohmann::json::object(),
                      const std::string& session = "", std::chrono::seconds timeout = std::chrono::seconds(60));
  // Attaches to the browser's first page and returns the session id for page-level commands.
  std::string attach_page();
  // Runtime.evaluate of a JavaScript expression in the page (promises awaited); its value as JSON.
  nlohmann::json eval(const std::string& session, const std::string& expression);

 private:
  std::string read_message(std::chrono::steady_clock::time_point deadline);

  pid_t pid_ = -1;
  int to_browser_ = -1, from_browser_ = -1;
  int next_id_ = 1;
  std::string buffer_;
};

// The Chromium binary (CHATBRIDGE_CHROMIUM, else chromium on PATH); empty when none is installed.
std::string chromium_binary();

}  // namespace cb::test
