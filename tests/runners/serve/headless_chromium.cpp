#include "tests/runners/serve/headless_chromium.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

namespace cb::test {

std::string chromium_binary() {
  if (const char* env = std::getenv("CHATBRIDGE_CHROMIUM")) return env;
  for (const char* dir : {"/usr/bin", "/usr/local/bin"})
    for (const char* name : {"chromium", "chromium-browser"}) {
      const auto p = std::filesystem::path(dir) / name;
      if (::access(p.c_str(), X_OK) == 0) return p.string();
    }
  return "";
}

HeadlessChromium::HeadlessChromium(const std::filesystem::path& profile_dir, const std::filesystem::path& log) {
  const std::string binary = chromium_binary();
  if (binary.empty()) throw std::runtime_error("chromium is not installed (scripts/setup installs Debian's chromium)");
  int cmd[2], out[2];
  if (::pipe2(cmd, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  const std::vector<std::string> args = {binary,
                                         "--headless=new",
                                         "--no-sandbox",  // tests may run as root (CI containers)
                                         "--disable-gpu",
                                         "--disable-dev-shm-usage",
                                         "--disable-background-networking",
                                         "--disable-extensions",
                                         "--disable-component-update",
                                         "--no-first-run",
                                         "--no-default-browser-check",
                                         "--remote-debugging-pipe",
                                         "--window-size=1000,760",
                                         "--user-data-dir=" + profile_dir.string(),
                                         "about:blank"};
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open " + log.string());
  pid_ = ::fork();
  if (pid_ == 0) {
    // The protocol wants the command pipe's read end on fd 3 and the reply pipe's write end on fd 4.
    const int in = ::dup(cmd[0]), reply = ::dup(out[1]);
    ::dup2(in, 3);
    ::dup2(reply, 4);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(cmd[0]);
  ::close(out[1]);
  if (pid_ < 0) throw std::runtime_error("fork failed");
  to_browser_ = cmd[1];
  from_browser_ = out[0];
}

HeadlessChromium::~HeadlessChromium() {
  if (pid_ <= 0) return;
  try {
    call("Browser.close", nlohmann::json::object(), "", std::chrono::seconds(10));
  } catch (...) {
  }
  ::close(to_browser_);
  ::close(from_browser_);
  for (int i = 0; i < 100; ++i) {
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

std::string HeadlessChromium::read_message(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (const auto nul = buffer_.find('\0'); nul != std::string::npos) {
      std::string msg = buffer_.substr(0, nul);
      buffer_.erase(0, nul + 1);
      return msg;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("chromium: no reply before the deadline");
    pollfd p{from_browser_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[65536];
    const ssize_t n = ::read(from_browser_, chunk, sizeof chunk);
    if (n <= 0) throw std::runtime_error("chromium closed the DevTools pipe (see its log)");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

nlohmann::json HeadlessChromium::call(const std::string& method, const nlohmann::json& params,
                                      const std::string& session, std::chrono::seconds timeout) {
  const int id = next_id_++;
  nlohmann::json msg = {{"id", id}, {"method", method}, {"params", params}};
  if (!session.empty()) msg["sessionId"] = session;
  const std::string text = msg.dump() + '\0';
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(to_browser_, text.data() + done, text.size() - done);
    if (n <= 0) throw std::runtime_error("chromium: cannot write to the DevTools pipe");
    done += static_cast<size_t>(n);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto reply = nlohmann::json::parse(read_message(deadline));
    if (!reply.contains("id") || reply["id"] != id) continue;  // an event, or another command's reply
    if (reply.contains("error")) throw std::runtime_error("chromium: " + method + ": " + reply["error"].dump());
    return reply.value("result", nlohmann::json::object());
  }
}

std::string HeadlessChromium::attach_page() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const auto targets = call("Target.getTargets");
    for (const auto& t : targets["targetInfos"])
      if (t["type"] == "page")
        return call("Target.attachToTarget", {{"targetId", t["targetId"]}, {"flatten", true}})["sessionId"];
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  throw std::runtime_error("chromium: no page target");
}

nlohmann::json HeadlessChromium::eval(const std::string& session, const std::string& expression) {
  const auto r =
      call("Runtime.evaluate", {{"expression", expression}, {"awaitPromise", true}, {"returnByValue", true}}, session);
  if (r.contains("exceptionDetails")) throw std::runtime_error("page script failed: " + r["exceptionDetails"].dump());
  return r["result"].value("value", nlohmann::json());
}

}  // namespace cb::test
