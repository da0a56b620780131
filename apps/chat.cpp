// The demo (demo.py) in a terminal or behind an HTTP server:
//   chatbridge-chat --cfg-path eval_configs/chatbridge_eval.yaml [--device cpu|cuda|cuda:N | --gpu-id N]
//                   [--num-beams N] [--options k=v ...]
//   chatbridge-chat --cfg-path ... --serve [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--max-queue N]
//   chatbridge-chat --cfg-path ... [--image F] [--audio F] [--video F] --ask "TEXT" [--greedy]
//                   [--max-new-tokens N]      (one question, the answer on stdout, then exit)
// The terminal's commands: runners/serve/chat_terminal.h. --options takes the rest of the command line,
// as in chatbridge-train.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "framework/app_options.h"
#include "framework/config.h"
#include "framework/error.h"
#include "runners/serve/chat_device.h"
#include "runners/serve/chat_media.h"
#include "runners/serve/chat_server.h"
#include "runners/serve/chat_session.h"
#include "runners/serve/chat_terminal.h"

namespace {

// One-shot mode: the media uploaded in the order image, audio, video, one question, its answer.
struct OneShot {
  std::string image, audio, video, question;
  bool greedy = false;
  std::optional<int64_t> max_new_tokens;  // unset: the demo's default
};

int one_shot(cb::ChatBridge model, const OneShot& q, cb::ChatSettings settings) {
  const auto media = cb::ChatMediaOptions::for_model(model->config());
  cb::ChatSession chat(std::move(model));
  settings.do_sample = !q.greedy;
  std::ostringstream quiet;  // stdout carries the question and its answer only
  if (q.max_new_tokens)
    cb::terminal_command(chat, settings, media, "/max-new-tokens", std::to_string(*q.max_new_tokens), quiet);
  if (!q.image.empty()) cb::terminal_command(chat, settings, media, "/image", q.image, quiet);
  if (!q.audio.empty()) cb::terminal_command(chat, settings, media, "/audio", q.audio, quiet);
  if (!q.video.empty()) cb::terminal_command(chat, settings, media, "/video", q.video, quiet);
  chat.ask(q.question);
  std::cout << "Human: " << q.question << "\nAssistant: " << chat.answer(settings) << std::endl;
  return 0;
}

int run(int argc, char** argv) {
  int cli_argc = argc;
  const std::vector<std::string> options = cb::take_options_remainder(argc, argv, cli_argc);
  CLI::App app{
      "ChatBridge chat: terminal conversation, or an HTTP server with a web page and an OpenAI-compatible API"};
  std::string cfg_path;
  bool serve = false;
  cb::ChatServerOptions server;
  cb::AppOptions opts;
  app.add_option("--cfg-path", cfg_path, "eval yaml (eval_configs/chatbridge_eval.yaml)")->required();
  app.add_flag("--serve", serve, "serve the web page and the API instead of the terminal chat");
  app.add_option("--host", server.host, "address to listen on (--serve)")->capture_default_str();
  app.add_option("--port", server.port, "port to listen on (--serve; 0 = any free port)")->capture_default_str();
  app.add_option("--max-queue", server.max_queue, "--serve: requests that may wait while one runs; more get 503")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--api-key", server.api_key,
                 "--serve: every route but / and /health needs 'Authorization: Bearer KEY' (prefer the "
                 "environment variable, which ps does not show)")
      ->envname("CHATBRIDGE_API_KEY");
  std::optional<std::string> device;
  std::optional<int> gpu_id;
  app.add_option("--device", device, "cpu (default), cuda or cuda:N: where the model and its inputs go");
  app.add_option("--gpu-id", gpu_id, "the demo's spelling of --device cuda:N");
  int64_t num_beams = 1;
  app.add_option("--num-beams", num_beams, "beams of beam search, 1..10 (the demo's slider; /beams N in the terminal)")
      ->capture_default_str();
  OneShot q;
  app.add_option("--ask", q.question,
                 "one-shot: ask this question (after uploading --image/--audio/--video), print the answer, exit");
  app.add_option("--image", q.image, "one-shot: image file to upload");
  app.add_option("--audio", q.audio, "one-shot: audio file to upload");
  app.add_option("--video", q.video, "one-shot: video file to upload");
  app.add_flag("--greedy", q.greedy, "one-shot: greedy decoding instead of the demo's sampling");
  app.add_option("--max-new-tokens", q.max_new_tokens, "one-shot: answer length limit (default: the demo's)");
  if (const auto exit_code = cb::parse_config_app(app, opts, cli_argc, argv)) return *exit_code;
  const bool one_shot_flags = !q.image.empty() || !q.audio.empty() || !q.video.empty() || q.greedy || q.max_new_tokens;
  if (one_shot_flags && q.question.empty())
    cb::fail("--image/--audio/--video/--greedy/--max-new-tokens belong to the one-shot mode: add --ask TEXT");
  if (!q.question.empty() && serve) cb::fail("--ask and --serve exclude each other");
  if (num_beams < 1 || num_beams > cb::kMaxChatBeams)
    cb::fail("--num-beams {}: expected 1..{}", num_beams, cb::kMaxChatBeams);
  const auto dev = cb::chat_device(device, gpu_id);  // before the model loads: a missing GPU fails at once
  cb::apply_app_options(opts);
  if (!server.api_key.empty() && !serve)  // the variable may be set for a server elsewhere: say, don't stop
    spdlog::warn("--api-key / CHATBRIDGE_API_KEY only applies to --serve; ignored");
  const cb::Config cfg = cb::resolve_config(cfg_path, options);
  // As chatbridge-train and chatbridge-eval: a tiny model's randomly initialised frozen encoders are in
  // no checkpoint and come out as they were in training only from the same seed (LibTorch's default
  // generator starts from a random seed).
  torch::manual_seed(cfg.get<int64_t>("run.seed", 42));  // required only for training
  auto model = cb::build_chatbridge(cfg.sub("model"));
  model->eval();
  model->place(dev);
  spdlog::info("chat model on {}", dev.str());
  cb::ChatSettings settings;
  settings.num_beams = num_beams;
  if (!q.question.empty()) return one_shot(std::move(model), q, settings);
  if (!serve) {
    const auto media = cb::ChatMediaOptions::for_model(model->config());
    cb::ChatSession chat(std::move(model));
    cb::terminal_chat(chat, settings, media, std::cin, std::cout);
    return 0;
  }
  server.defaults = settings;
  server.media = cb::ChatMediaOptions::for_model(model->config());
  cb::ChatServer s(std::move(model), server);
  s.bind();
  std::cout << "listening on http://" << server.host << ":" << s.port() << "/" << std::endl;
  s.serve();
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return cb::run_main("chatbridge-chat", run, argc, argv); }
