// `chatbridge-chat --serve`: one ChatBridge behind an HTTP server (cpp-httplib).
//   GET  /                      self-contained chat page (uses the API below, streamed)
//   GET  /health                {"status":"ok"}
//   GET  /v1/models             OpenAI model list
//   POST /v1/chat/completions   OpenAI chat completions: text parts, `image_url` (data: URL), `input_audio`
//                               {data, format}, and the extension `video_url` (data: URL); `stream`
//                               answers as server-sent `chat.completion.chunk` events ending in [DONE].
// Media are only ever read from data: URLs (no file paths, no downloads). Every request builds its own
// conversation; the model runs them one at a time on a single worker thread. Client errors are 4xx
// {"error": {"message", "type"}}.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "runners/serve/chat_media.h"
#include "runners/serve/chat_session.h"

namespace cb {

struct ChatServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (see ChatServer::port)
  size_t max_body_bytes = 32u << 20;
  std::string model_name = "chatbridge";
  ChatSettings defaults;  // generation settings a request does not override
  ChatMediaOptions media;
};

class ChatServer {
 public:
  ChatServer(ChatBridge model, ChatServerOptions options);
  ~ChatServer();
  // Binds (fails naming host:port), then serves until stop(). Returns when stopped.
  void bind();
  int port() const;
  void serve();
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The chat page served at `/`.
const std::string& chat_page_html();

}  // namespace cb
