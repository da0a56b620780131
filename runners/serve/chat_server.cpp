#include "runners/serve/chat_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "framework/error.h"
#include "framework/text/parse_number.h"
#include "framework/text/python_str.h"
#include "framework/worker_pool.h"
#include "models/sentencepiece_model.h"
#include "runners/serve/client_socket.h"

namespace cb {

namespace {

using json = nlohmann::json;

// A client mistake: answered 4xx with an OpenAI-style error body.
struct RequestError {
  int status;
  std::string message;
};

[[noreturn]] void bad_request(std::string message) { throw RequestError{400, std::move(message)}; }

// A response body or event. Bytes that are not UTF-8 become U+FFFD instead of failing the response: an
// answer can end inside a character that byte tokens spell, and an error message can quote a file's name.
std::string to_text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_error(httplib::Response& res, int status, const std::string& message) {
  const char* type = status == 413   ? "request_too_large"
                     : status == 401 ? "authentication_error"
                     : status == 404 ? "not_found_error"
                     : status < 500  ? "invalid_request_error"
                                     : "server_error";
  res.status = status;
  res.set_content(to_text(json{{"error", {{"message", message}, {"type", type}}}}), "application/json");
}

// Whether `given` equals `key` (non-empty), in a time that depends on the length of `given` only: no
// early exit at the first wrong byte that would let a client find the key byte by byte.
bool same_key(std::string_view given, std::string_view key) {
  unsigned diff = given.size() != key.size();
  for (size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(given[i]) ^ static_cast<unsigned char>(key[i % key.size()]);
  return diff == 0;
}

// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive, RFC 7235).
std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view scheme = "bearer ";
  if (header.size() < scheme.size()) return {};
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) return {};
  header.remove_prefix(scheme.size());
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  return header;
}

// Strict base64 (RFC 4648, padding optional, no whitespace).
std::vector<uint8_t> decode_base64(std::string_view s, const std::string& what) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(a[i])] = static_cast<int8_t>(i);
    return t;
  }();
  while (!s.empty() && s.back() == '=') s.remove_suffix(1);
  if (s.size() % 4 == 1) bad_request(what + ": invalid base64 length");
  std::vector<uint8_t> out;
  out.reserve(s.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (const char c : s) {
    const int v = table[static_cast<uint8_t>(c)];
    if (v < 0) bad_request(what + ": invalid base64 character");
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((acc >> bits) & 0xFF));
    }
  }
  if (out.empty()) bad_request(what + ": empty data");
  return out;
}

// "data:<mime>;base64,<payload>" -> bytes. Anything else (paths, file://, http://) is refused.
std::vector<uint8_t> decode_data_url(const std::string& url, const std::string& what) {
  if (!url.starts_with("data:"))
    bad_request(what + ": only data: URLs with base64 content are accepted (files and remote URLs are never opened)");
  const auto comma = url.find(',');
  if (comma == std::string::npos || !std::string_view(url).substr(0, comma).ends_with(";base64"))
    bad_request(what + ": expected a data URL of the form data:<type>;base64,<data>");
  return decode_base64(std::string_view(url).substr(comma + 1), what);
}

const json& member(const json& obj, const char* key, json::value_t type, const std::string& where) {
  const auto it = obj.find(key);
  if (it == obj.end()) bad_request(where + ": missing '" + key + "'");
  const bool ok = type == json::value_t::number_float ? it->is_number() : it->type() == type;
  if (!ok) bad_request(where + "." + key + ": wrong type (" + std::string(it->type_name()) + ")");
  return *it;
}

template <typename T>
std::optional<T> optional_number(const json& obj, const char* key) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) bad_request(std::string(key) + ": expected an integer");
  } else {
    if (!it->is_number()) bad_request(std::string(key) + ": expected a number");
  }
  return it->get<T>();
}

// One decoded content part of a user message.
struct MediaPart {
  enum Kind { image, audio, video } kind;
  torch::Tensor tensor;                // pixels [3,S,S] / fbank [1,T,F] / frames [n,3,S,S]
  std::optional<torch::Tensor> fbank;  // video soundtrack
};

struct ParsedMessage {
  std::string role;
  std::string text;
  std::vector<MediaPart> media;
};

struct ParsedRequest {
  std::vector<ParsedMessage> messages;
  ChatSettings settings;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with the usage
};

MediaPart decode_part_media(const json& part, const std::string& type, const std::string& where,
                            const ChatMediaOptions& media) {
  try {
    if (type == "image_url") {
      const auto& iu = part.at("image_url");
      const std::string url = iu.is_string()
                                  ? iu.get<std::string>()
                                  : member(iu, "url", json::value_t::string, where + ".image_url").get<std::string>();
      return {MediaPart::image, image_from_bytes(decode_data_url(url, where + ".image_url"), where, media), {}};
    }
    if (type == "video_url") {
      const auto& vu = part.at("video_url");
      const std::string url = vu.is_string()
                                  ? vu.get<std::string>()
                                  : member(vu, "url", json::value_t::string, where + ".video_url").get<std::string>();
      auto clip = video_from_bytes(decode_data_url(url, where + ".video_url"), where, media);
      return {MediaPart::video, clip.frames, clip.fbank};
    }
    const auto& ia = member(part, "input_audio", json::value_t::object, where);
    const auto& data = member(ia, "data", json::value_t::string, where + ".input_audio");
    if (ia.contains("format")) {
      const auto& f = member(ia, "format", json::value_t::string, where + ".input_audio");
      static const std::vector<std::string> formats{"wav", "mp3", "flac", "ogg", "m4a", "webm"};
      if (std::find(formats.begin(), formats.end(), f.get<std::string>()) == formats.end())
        bad_request(where + ".input_audio.format: unsupported '" + f.get<std::string>() +
                    "' (wav, mp3, flac, ogg, m4a, webm)");
    }
    return {MediaPart::audio,
            audio_from_bytes(decode_base64(data.get<std::string>(), where + ".input_audio.data"), where, media),
            {}};
  } catch (const Error& e) {  // undecodable media
    bad_request(where + ": " + e.what());
  } catch (const json::exception& e) {
    bad_request(where + ": " + e.what());
  }
}

// OpenAI answers an unknown request field with a 400 rather than ignoring it; so does this server, so that
// no client believes a setting took effect. Fields of OpenAI's service that change nothing in an answer
// are accepted; its features this server lacks are refused unless the value asks for nothing.
void check_request_fields(const json& j) {
  static const std::set<std::string> read{"messages", "temperature", "top_p", "max_tokens", "max_completion_tokens",
                                          "stop", "seed", "n", "stream", "stream_options", "frequency_penalty",
                                          "presence_penalty", "logit_bias", "logprobs", "top_logprobs",
                                          // extensions, as vLLM names them
                                          "num_beams", "top_k", "repetition_penalty"};
  static const std::set<std::string> no_effect{
      "model", "user", "metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier"};
  auto off = [](const std::string& key, const json& v) {
    if (v.is_null()) return true;
    if (key == "parallel_tool_calls") return v.is_boolean();
    if (key == "tools" || key == "functions") return v.is_array() && v.empty();
    if (key == "tool_choice" || key == "function_call") return v == "none";
    if (key == "response_format") return v.is_object() && v.value("type", "") == "text";
    if (key == "modalities") return v == json::array({"text"});
    return false;
  };
  for (const auto& [key, value] : j.items()) {
    if (read.count(key) || no_effect.count(key) || off(key, value)) continue;
    static const std::set<std::string> missing{
        "tools",     "tool_choice",        "functions",  "function_call",      "response_format",
        "audio",     "modalities",         "prediction", "web_search_options", "reasoning_effort",
        "verbosity", "parallel_tool_calls"};
    if (missing.count(key)) bad_request(key + ": not supported by this server (value " + value.dump() + ")");
    bad_request("unrecognized request field '" + key + "'");
  }
}

ParsedRequest parse_request(const std::string& body, const ChatSettings& defaults, const ChatMediaOptions& media) {
  // JSON text is UTF-8 (RFC 8259); the parser passes other bytes in strings through, and they would then
  // fail when the conversation or the answer is written out.
  if (const size_t at = pystr::invalid_utf8_at(body); at != std::string::npos)
    bad_request("the request body is not UTF-8 (byte " + std::to_string(at) + ")");
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // a syntax error, or a number out of range (1e400)
    bad_request(std::string("malformed JSON: ") + e.what());
  }
  if (!j.is_object()) bad_request("the request body must be a JSON object");
  check_request_fields(j);
  ParsedRequest r;
  r.settings = defaults;
  r.settings.cut_long_prompt = false;  // a client cannot see a cut: a prompt too long is a 400
  if (auto v = optional_number<double>(j, "temperature")) {
    if (*v < 0 || *v > 2) bad_request("temperature: expected 0..2");
    r.settings.do_sample = *v > 0;  // OpenAI's temperature 0 = greedy
    if (*v > 0) r.settings.temperature = *v;
  }
  if (auto v = optional_number<double>(j, "top_p")) {
    if (!(*v > 0 && *v <= 1)) bad_request("top_p: expected (0, 1]");
    r.settings.top_p = *v;
  }
  for (const char* key : {"max_tokens", "max_completion_tokens"})
    if (auto v = optional_number<int64_t>(j, key)) {
      if (*v < 1 || *v >= r.settings.max_length)
        bad_request(std::string(key) + ": expected 1.." + std::to_string(r.settings.max_length - 1) +
                    " (the prompt and the answer share " + std::to_string(r.settings.max_length) + " positions)");
      r.settings.max_new_tokens = *v;
    }
  if (j.contains("num_beams") && !j["num_beams"].is_null()) {
    const auto& v = j["num_beams"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxChatBeams)
      bad_request("num_beams: expected an integer 1.." + std::to_string(kMaxChatBeams) + ", got " + v.dump());
    r.settings.num_beams = v.get<int64_t>();
  }
  for (auto [key, value] : {std::pair{"frequency_penalty", &r.settings.frequency_penalty},
                            std::pair{"presence_penalty", &r.settings.presence_penalty}})
    if (auto v = optional_number<double>(j, key)) {
      if (*v < -2 || *v > 2) bad_request(std::string(key) + ": expected -2..2");
      *value = *v;
    }
  if (j.contains("logit_bias") && !j["logit_bias"].is_null()) {
    if (!j["logit_bias"].is_object()) bad_request("logit_bias: expected an object of token id -> bias");
    for (const auto& [id, bias] : j["logit_bias"].items()) {
      const auto token = to_number<int64_t>(id);
      if (!token || *token < 0) bad_request("logit_bias: '" + id + "' is not a token id");
      if (!bias.is_number() || bias.get<double>() < -100 || bias.get<double>() > 100)
        bad_request("logit_bias." + id + ": expected a number in -100..100");
      r.settings.logit_bias.emplace_back(*token, bias.get<double>());
    }
  }
  if (auto v = optional_number<int64_t>(j, "top_k")) {
    if (*v < 0) bad_request("top_k: expected an integer >= 0 (0: off)");
    r.settings.top_k = *v;
  }
  if (auto v = optional_number<double>(j, "repetition_penalty")) {
    if (!(*v > 0)) bad_request("repetition_penalty: expected a number > 0 (1: off)");
    r.settings.repetition_penalty = *v;
  }
  if (j.contains("logprobs") && !j["logprobs"].is_null()) {
    if (!j["logprobs"].is_boolean()) bad_request("logprobs: expected a boolean");
    if (j["logprobs"].get<bool>()) r.settings.top_logprobs = 0;
  }
  if (auto v = optional_number<int64_t>(j, "top_logprobs")) {
    if (!r.settings.top_logprobs) bad_request("top_logprobs: needs logprobs: true");
    if (*v < 0 || *v > kMaxTopLogprobs)
      bad_request("top_logprobs: expected an integer 0.." + std::to_string(kMaxTopLogprobs));
    r.settings.top_logprobs = *v;
  }
  if (r.settings.top_logprobs && r.settings.num_beams > 1)
    bad_request("logprobs: reported for num_beams 1 only (beam search keeps several hypotheses)");
  if (auto v = optional_number<int64_t>(j, "seed")) r.settings.seed = static_cast<uint64_t>(*v);
  if (auto v = optional_number<int64_t>(j, "n"); v && *v != 1) bad_request("n: only 1 is supported");
  if (j.contains("stream") && !j["stream"].is_null()) {
    if (!j["stream"].is_boolean()) bad_request("stream: expected a boolean");
    r.stream = j["stream"].get<bool>();
  }
  if (j.contains("stream_options") && !j["stream_options"].is_null()) {
    const auto& so = j["stream_options"];
    if (!so.is_object()) bad_request("stream_options: expected an object");
    if (!r.stream) bad_request("stream_options: only allowed with stream: true");
    if (so.contains("include_usage") && !so["include_usage"].is_null()) {
      if (!so["include_usage"].is_boolean()) bad_request("stream_options.include_usage: expected a boolean");
      r.include_usage = so["include_usage"].get<bool>();
    }
  }
  if (j.contains("stop") && !j["stop"].is_null()) {
    const auto& s = j["stop"];
    if (s.is_string()) {
      r.settings.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const auto& x : s) {
        if (!x.is_string()) bad_request("stop: expected a string or up to 4 strings");
        r.settings.stop.push_back(x.get<std::string>());
      }
    } else {
      bad_request("stop: expected a string or up to 4 strings");
    }
  }
  const auto& messages = member(j, "messages", json::value_t::array, "request");
  if (messages.empty()) bad_request("messages: empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string where = "messages[" + std::to_string(i) + "]";
    const auto& m = messages[i];
    if (!m.is_object()) bad_request(where + ": expected an object");
    ParsedMessage pm;
    pm.role = member(m, "role", json::value_t::string, where).get<std::string>();
    if (pm.role == "developer") pm.role = "system";  // newer OpenAI clients' name for it
    if (pm.role != "system" && pm.role != "user" && pm.role != "assistant")
      bad_request(where + ".role: expected system (or developer), user or assistant");
    const auto it = m.find("content");
    if (it == m.end()) bad_request(where + ": missing 'content'");
    if (it->is_string()) {
      pm.text = it->get<std::string>();
    } else if (it->is_array()) {
      std::vector<std::string> texts;
      for (size_t k = 0; k < it->size(); ++k) {
        const std::string pw = where + ".content[" + std::to_string(k) + "]";
        const auto& part = (*it)[k];
        if (!part.is_object()) bad_request(pw + ": expected an object");
        const auto type = member(part, "type", json::value_t::string, pw).get<std::string>();
        if (type == "text") {
          texts.push_back(member(part, "text", json::value_t::string, pw).get<std::string>());
        } else if (type == "image_url" || type == "input_audio" || type == "video_url") {
          if (pm.role != "user") bad_request(pw + ": media are only accepted in user messages");
          if (type != "input_audio" && !part.contains(type)) bad_request(pw + ": missing '" + type + "'");
          pm.media.push_back(decode_part_media(part, type, pw, media));
        } else {
          bad_request(pw + ".type: unsupported '" + type + "' (text, image_url, input_audio, video_url)");
        }
      }
      for (size_t k = 0; k < texts.size(); ++k) pm.text += (k ? "\n" : "") + texts[k];
    } else {
      bad_request(where + ".content: expected a string or an array of parts");
    }
    r.messages.push_back(std::move(pm));
  }
  if (r.messages.back().role != "user") bad_request("the last message must be a user message");
  return r;
}

// Replays a request's messages into a fresh conversation (the demo's uploads and asks).
void build_conversation(ChatSession& chat, const ParsedRequest& r) {
  for (const auto& m : r.messages) {
    if (m.role == "system") {
      chat.set_system(m.text);
    } else if (m.role == "assistant") {
      chat.add_answer(m.text);
    } else {
      const bool image_audio =
          m.media.size() == 2 && m.media[0].kind == MediaPart::image && m.media[1].kind == MediaPart::audio;
      if (image_audio) {
        chat.upload_image_audio(m.media[0].tensor, m.media[1].tensor);
      } else {
        for (const auto& p : m.media) {
          if (p.kind == MediaPart::image) chat.upload_image(p.tensor);
          if (p.kind == MediaPart::audio) chat.upload_audio(p.tensor);
          if (p.kind == MediaPart::video) chat.upload_video(p.tensor, p.fbank);
        }
      }
      if (!m.text.empty()) chat.ask(m.text);
    }
  }
}

// Server-sent events handed from the worker to the connection thread. Nothing is sent before the first
// event, which comes once the prompt is built: a request that fails before it gets its 4xx instead.
struct EventChannel {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> events;
  bool done = false;
  std::optional<RequestError> refused;  // the job failed before its first event
  std::atomic<bool> cancelled{false};
  void push(std::string e, bool last = false) {
    {
      std::lock_guard lock(mu);
      events.push_back(std::move(e));
      done = done || last;
    }
    cv.notify_one();
  }
  void refuse(RequestError error) {
    {
      std::lock_guard lock(mu);
      refused = std::move(error);
      done = true;
    }
    cv.notify_one();
  }
};

// The status of a failed job: the model's checks (cb::Error: the request's media or prompt) are the
// client's; anything else is the server's.
RequestError job_error(const std::exception& e) {
  if (const auto* t = dynamic_cast<const c10::Error*>(&e)) return {500, t->what_without_backtrace()};
  return {dynamic_cast<const Error*>(&e) ? 400 : 500, e.what()};
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

struct ChatServer::Impl {
  ChatBridge model{nullptr};
  ChatServerOptions opts;
  httplib::Server server;
  std::atomic<int64_t> next_id{1};
  std::atomic<int> admitted{0};  // completions running or waiting for the worker
  int bound_port = -1;
  // The single thread that runs the model, requests in arrival order. Declared last: joined first, before
  // the model goes (serve() has returned by then, so no request waits on it).
  WorkerPool worker{1};

  std::string completion_id() { return "chatcmpl-" + std::to_string(next_id++); }

  static json usage(const AnswerStats& st) {
    return {{"prompt_tokens", st.prompt_positions},
            {"completion_tokens", st.generated_tokens},
            {"total_tokens", st.prompt_positions + st.generated_tokens}};
  }

  // OpenAI's logprobs object: per token its text (sentencepiece's word mark as a space, a byte piece as
  // its byte), log-probability, UTF-8 bytes and the alternatives.
  json logprobs(const std::vector<TokenLogprob>& tokens) const {
    const auto& tok = model->tokenizer();
    auto entry = [&](int64_t id, double logprob) {
      const std::string& piece = tok.id_to_piece(id);
      const int byte = piece_to_byte(piece);
      const std::string text = byte >= 0 ? std::string(1, static_cast<char>(byte)) : unescape_spaces(piece);
      return json{{"token", text}, {"logprob", logprob}, {"bytes", std::vector<uint8_t>(text.begin(), text.end())}};
    };
    json content = json::array();
    for (const auto& t : tokens) {
      json e = entry(t.id, t.logprob);
      e["top_logprobs"] = json::array();
      for (const auto& [id, lp] : t.top) e["top_logprobs"].push_back(entry(id, lp));
      content.push_back(std::move(e));
    }
    return {{"content", std::move(content)}};
  }

  json chunk(const std::string& id, int64_t created, json delta, const json& finish) const {
    return {{"id", id},
            {"object", "chat.completion.chunk"},
            {"created", created},
            {"model", opts.model_name},
            {"choices", json::array({{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", finish}}})}};
  }

  void completions(const httplib::Request& req, httplib::Response& res) {
    auto parsed = std::make_shared<ParsedRequest>(parse_request(req.body, opts.defaults, opts.media));
    // Each admitted request holds a connection thread until its answer is out: past the queue's bound
    // the answer is 503, so threads stay free for /health and the page.
    if (admitted.fetch_add(1) > opts.max_queue) {
      --admitted;
      res.set_header("Retry-After", "5");
      throw RequestError{503, "the server is busy: " + std::to_string(opts.max_queue) +
                                  " requests are waiting for the model (--max-queue); retry later"};
    }
    struct Release {
      std::atomic<int>& n;
      ~Release() { --n; }
    };
    const auto id = completion_id();
    const auto created = unix_time();
    // A client that gives up (a timeout, a closed tab) is not answered: its request is skipped if it
    // still waits, and its answer stops at the next token.
    const auto client = ClientSocket::find(req.remote_addr, req.remote_port, req.local_port);
    if (!parsed->stream) {
      auto result = worker.submit([this, parsed, id, created, client] {
        const Release release{admitted};
        if (client.gone()) {
          spdlog::info("{}: the client left while the request waited: skipped", id);
          return json();
        }
        ChatSession chat(model);
        build_conversation(chat, *parsed);
        bool left = false;
        const auto text = chat.answer(parsed->settings, [&](const std::string&) { return left = client.gone(); });
        if (left) spdlog::info("{}: the client left: stopped after {} tokens", id, chat.last_stats().generated_tokens);
        const auto& st = chat.last_stats();
        json choice = {{"index", 0},
                       {"message", {{"role", "assistant"}, {"content", text}}},
                       {"finish_reason", st.hit_token_limit ? "length" : "stop"}};
        if (parsed->settings.top_logprobs) choice["logprobs"] = logprobs(chat.take_logprobs());
        return json{{"id", id},
                    {"object", "chat.completion"},
                    {"created", created},
                    {"model", opts.model_name},
                    {"choices", json::array({std::move(choice)})},
                    {"usage", usage(st)}};
      });
      try {
        res.set_content(to_text(result.get()), "application/json");
      } catch (const std::exception& e) {
        const auto error = job_error(e);
        send_error(res, error.status, error.message);
      }
      return;
    }
    auto ch = std::make_shared<EventChannel>();
    worker.submit([this, parsed, ch, id, created, client] {
      const Release release{admitted};
      auto event = [](const json& j) { return "data: " + to_text(j) + "\n\n"; };
      if (client.gone()) {
        spdlog::info("{}: the client left while the request waited: skipped", id);
        return ch->refuse({499, "the client closed the connection"});
      }
      bool started = false;
      try {
        ChatSession chat(model);
        build_conversation(chat, *parsed);
        chat.answer(
            parsed->settings,
            [&](const std::string& delta) {
              auto c = chunk(id, created, {{"content", delta}}, nullptr);
              if (parsed->settings.top_logprobs) c["choices"][0]["logprobs"] = logprobs(chat.take_logprobs());
              ch->push(event(c));
              return ch->cancelled.load() || client.gone();
            },
            [&] {
              started = true;
              ch->push(event(chunk(id, created, {{"role", "assistant"}, {"content", ""}}, nullptr)));
            });
        const auto& st = chat.last_stats();
        ch->push(event(chunk(id, created, json::object(), st.hit_token_limit ? "length" : "stop")));
        if (parsed->include_usage) {
          auto last = chunk(id, created, json::object(), nullptr);
          last["choices"] = json::array();
          last["usage"] = usage(st);
          ch->push(event(last));
        }
      } catch (const std::exception& e) {
        auto error = job_error(e);
        if (!started) return ch->refuse(std::move(error));
        spdlog::warn("{}: {}", id, error.message);
        ch->push(event(json{{"error", {{"message", error.message}, {"type", "server_error"}}}}));
      }
      ch->push("data: [DONE]\n\n", /*last=*/true);
    });
    {  // the status line waits for the prompt
      std::unique_lock lock(ch->mu);
      ch->cv.wait(lock, [&] { return !ch->events.empty() || ch->done; });
      if (ch->refused) return send_error(res, ch->refused->status, ch->refused->message);
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [ch](size_t, httplib::DataSink& sink) {
          std::unique_lock lock(ch->mu);
          ch->cv.wait(lock, [&] { return !ch->events.empty() || ch->done; });
          while (!ch->events.empty()) {
            auto e = std::move(ch->events.front());
            ch->events.pop_front();
            if (!sink.write(e.data(), e.size())) {
              ch->cancelled = true;
              return false;
            }
          }
          if (ch->done) sink.done();
          return true;
        },
        [ch](bool success) {
          if (!success) ch->cancelled = true;
        });
  }

  std::string too_large(const httplib::Request& req) const {
    // cpp-httplib parses a form body itself and caps it at 8 KB (curl -d sends one without -H).
    if (req.get_header_value("Content-Type") == "application/x-www-form-urlencoded")
      return "a body sent as application/x-www-form-urlencoded is limited to 8 KB by the HTTP library: send "
             "'Content-Type: application/json'";
    return "request body too large (over " + std::to_string(opts.max_body_bytes >> 20) +
           " MiB; media are sent base64, a third larger than the file)";
  }

  void routes() {
    server.set_payload_max_length(opts.max_body_bytes);
    // One thread per connection: the running request, the waiting ones, and a few for everything else.
    server.new_task_queue = [n = opts.max_queue + 1 + 4] { return new httplib::ThreadPool(n); };
    if (!opts.api_key.empty())
      server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
        if (req.path == "/" || req.path == "/health" ||
            same_key(bearer_token(req.get_header_value("Authorization")), opts.api_key))
          return httplib::Server::HandlerResponse::Unhandled;
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(res, 401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'");
        return httplib::Server::HandlerResponse::Handled;
      });
    server.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(chat_page_html(), "text/html; charset=utf-8");
    });
    server.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    const json model_entry{{"id", opts.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "chatbridge"}};
    server.Get("/v1/models", [model_entry](const httplib::Request&, httplib::Response& res) {
      res.set_content(to_text(json{{"object", "list"}, {"data", json::array({model_entry})}}), "application/json");
    });
    server.Get(R"(/v1/models/(.+))", [this, model_entry](const httplib::Request& req, httplib::Response& res) {
      if (req.matches[1] != opts.model_name) return send_error(res, 404, "no model '" + req.matches[1].str() + "'");
      res.set_content(to_text(model_entry), "application/json");
    });
    server.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
      try {
        completions(req, res);
      } catch (const RequestError& e) {
        send_error(res, e.status, e.message);
      }
    });
    server.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string msg = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        msg = job_error(e).message;
      } catch (...) {
      }
      spdlog::error("request failed: {}", msg);
      send_error(res, 500, msg);
    });
    server.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      send_error(res, res.status,
                 res.status == 413   ? too_large(req)
                 : res.status == 404 ? "no such endpoint: " + req.path
                                     : "HTTP error " + std::to_string(res.status));
    });
  }
};

ChatServer::ChatServer(ChatBridge model, ChatServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->model = std::move(model);
  impl_->model->eval();
  impl_->opts = std::move(options);
  impl_->routes();
}

ChatServer::~ChatServer() = default;

void ChatServer::bind() {
  auto& s = impl_->server;
  const auto& o = impl_->opts;
  impl_->bound_port = o.port == 0 ? s.bind_to_any_port(o.host) : (s.bind_to_port(o.host, o.port) ? o.port : -1);
  if (impl_->bound_port < 0) fail("chat server: cannot listen on {}:{}", o.host, o.port);
}

int ChatServer::port() const { return impl_->bound_port; }

void ChatServer::serve() {
  const auto& o = impl_->opts;
  spdlog::info("chat server on http://{}:{}/{}", o.host, impl_->bound_port,
               o.api_key.empty() ? "" : " (API key required)");
  if (o.api_key.empty() && o.host != "127.0.0.1" && o.host != "localhost" && o.host != "::1")
    spdlog::warn(
        "chat server on {} without an API key: whoever reaches this port can use the model "
        "(set --api-key or CHATBRIDGE_API_KEY)",
        o.host);
  impl_->server.listen_after_bind();
}

void ChatServer::stop() { impl_->server.stop(); }

}  // namespace cb
