// `chatbridge-chat --serve`: one ChatBridge behind an HTTP server (cpp-httplib).
//   GET  /                      self-contained chat page (uses the API below, streamed)
//   GET  /health                {"status":"ok"}
//   GET  /v1/models             OpenAI model list; /v1/models/<id> the one model
//   POST /v1/chat/completions   OpenAI chat completions: text parts, `image_url` (data: URL), `input_audio`
//                               {data, format}, and the extension `video_url` (data: URL); `stream`
//                               answers as server-sent `chat.completion.chunk` events ending in [DONE]
//                               (with `stream_options.include_usage`, a last chunk holds the usage).
//                               Extension `num_beams` (integer 1..10, default 1): beam search (beam
//                               sampling when temperature > 0), as the demo's beams slider; a streamed
//                               answer with beams arrives whole when the search ends.
// Media are only ever read from data: URLs (no file paths, no downloads). Every request builds its own
// conversation; the model runs them one at a time on a single worker thread, max_queue waiting (more
// get 503). A prompt that does not fit max_length with max_tokens is a 400, not the demo's silent left
// cut. Client errors are 4xx {"error": {"message", "type"}}; a streamed request's errors found before
// its first token (media, prompt) too.
// With an API key, every route but /health and the page (static HTML that holds no data; it sends the
// key the user types) answers 401 unless the request has `Authorization: Bearer <key>`, as llama.cpp's
// and vLLM's servers.
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
  int max_queue = 8;  // completions that may wait while one runs; more are answered 503
  std::string model_name = "chatbridge";
  std::string api_key;    // empty: no authentication (then keep host on loopback)
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
