// The tiny chat model behind a ChatServer on a free loopback port, served from a background thread
// for the life of the object; shared by the HTTP API test and the browser test.
#pragma once
#include <httplib.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runners/serve/chat_server.h"
#include "tests/runners/serve/chat_fixture.h"
#include "tests/support/make_media.h"

namespace cb::test {

inline std::string base64(const std::vector<uint8_t>& bytes) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = bytes[i] << 16 | bytes[i + 1] << 8 | bytes[i + 2];
    for (int k = 3; k >= 0; --k) out += a[(v >> (6 * k)) & 63];
  }
  if (i < bytes.size()) {
    const uint32_t v = bytes[i] << 16 | (i + 1 < bytes.size() ? bytes[i + 1] << 8 : 0);
    out += a[(v >> 18) & 63];
    out += a[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? a[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

struct RunningServer {
  TempDir dir;
  std::unique_ptr<ChatServer> server;
  std::thread thread;
  explicit RunningServer(std::string api_key = "", int max_queue = ChatServerOptions{}.max_queue) {
    auto model = tiny_chat_model(dir.path);
    ChatServerOptions o;
    o.port = 0;
    o.api_key = std::move(api_key);
    o.max_queue = max_queue;
    o.media = ChatMediaOptions::for_model(model->config());
    o.media.audio.target_length = 256;  // a short clip is enough for the tiny BEATs
    server = std::make_unique<ChatServer>(model, o);
    server->bind();
    thread = std::thread([this] { server->serve(); });
    httplib::Client c("127.0.0.1", server->port());
    for (int i = 0; i < 200 && !c.Get("/health"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ~RunningServer() {
    server->stop();
    thread.join();
  }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", server->port());
    c.set_read_timeout(300, 0);
    return c;
  }
};

}  // namespace cb::test
