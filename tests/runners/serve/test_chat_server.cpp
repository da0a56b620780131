// chatbridge-chat --serve on the tiny model, driven by a real HTTP client: health, models, the page,
// non-streaming and streaming completions with an image data URL, concurrent requests, then 200
// malformed requests that must all be answered 4xx with a JSON error while the server keeps serving.
#include <httplib.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "framework/text/python_str.h"
#include "models/conversation.h"
#include "models/generation.h"
#include "runners/serve/chat_server.h"
#include "tests/runners/serve/running_server.h"
#include "tests/support/make_media.h"

using namespace cb;
using cb::test::base64;
using cb::test::RunningServer;
using cb::test::TempDir;
using json = nlohmann::json;

namespace {

json image_request(bool stream) {
  const auto png = test::encode_png(test::pattern_frame(0, 40, 48), 2 /*PNG_COLOR_TYPE_RGB*/);
  return {{"model", "chatbridge"},
          {"messages",
           json::array({{{"role", "user"},
                         {"content", json::array({{{"type", "image_url"},
                                                   {"image_url", {{"url", "data:image/png;base64," + base64(png)}}}},
                                                  {{"type", "text"}, {"text", "What is in the image?"}}})}}})},
          {"temperature", 0},
          {"max_tokens", 8},
          {"stream", stream}};
}

// The content of a streamed answer, checking the SSE framing on the way.
std::string streamed_content(const std::string& body) {
  std::string content;
  size_t pos = 0;
  bool done = false, first = true;
  std::string finish;
  while (pos < body.size()) {
    const auto end = body.find("\n\n", pos);
    REQUIRE(end != std::string::npos);
    const auto ev = body.substr(pos, end - pos);
    pos = end + 2;
    REQUIRE(ev.rfind("data: ", 0) == 0);
    REQUIRE(!done);
    if (ev == "data: [DONE]") {
      done = true;
      continue;
    }
    const auto j = json::parse(ev.substr(6));
    REQUIRE(j.at("object") == "chat.completion.chunk");
    const auto& ch = j.at("choices").at(0);
    if (first) CHECK(ch.at("delta").at("role") == "assistant");
    first = false;
    if (ch.at("delta").contains("content")) content += ch.at("delta").at("content").get<std::string>();
    if (!ch.at("finish_reason").is_null()) finish = ch.at("finish_reason");
  }
  CHECK(done);
  CHECK((finish == "stop" || finish == "length"));
  return content;
}

}  // namespace

TEST_CASE(
    "chat server: health, models, page, completions (plain, streamed, concurrent, text alone), 200 bad requests") {
  RunningServer rs;
  auto cli = rs.client();

  auto health = cli.Get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(json::parse(health->body).at("status") == "ok");
  auto models = cli.Get("/v1/models");
  REQUIRE(models);
  CHECK(json::parse(models->body).at("data").at(0).at("id") == "chatbridge");
  auto page = cli.Get("/");
  REQUIRE(page);
  CHECK(page->body.find("/v1/chat/completions") != std::string::npos);

  auto plain = cli.Post("/v1/chat/completions", image_request(false).dump(), "application/json");
  REQUIRE(plain);
  INFO(plain->body);
  REQUIRE(plain->status == 200);
  const auto pj = json::parse(plain->body);
  CHECK(pj.at("object") == "chat.completion");
  const auto answer = pj.at("choices").at(0).at("message").at("content").get<std::string>();
  CHECK(pj.at("usage").at("completion_tokens").get<int64_t>() >= 1);
  CHECK(pj.at("usage").at("completion_tokens").get<int64_t>() <= 8);

  auto streamed = cli.Post("/v1/chat/completions", image_request(true).dump(), "application/json");
  REQUIRE(streamed);
  REQUIRE(streamed->status == 200);
  CHECK(streamed->get_header_value("Content-Type").rfind("text/event-stream", 0) == 0);
  CHECK(streamed_content(streamed->body) == answer);  // greedy: the same answer either way

  // Requests from several connections at once run one after the other on the model worker.
  std::vector<std::string> answers(3);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < answers.size(); ++i)
    threads.emplace_back([&, i] {
      auto c = rs.client();
      auto r = c.Post("/v1/chat/completions", image_request(i % 2 == 1).dump(), "application/json");
      if (r && r->status == 200)
        answers[i] = i % 2 ? streamed_content(r->body)
                           : json::parse(r->body)["choices"][0]["message"]["content"].get<std::string>();
      else answers[i] = "<failed>";
    });
  for (auto& t : threads) t.join();
  for (const auto& a : answers) CHECK(a == answer);

  // Audio through input_audio.
  json audio = {
      {"messages",
       json::array({{{"role", "user"},
                     {"content",
                      json::array({{{"type", "input_audio"},
                                    {"input_audio",
                                     {{"data", base64(test::encode_wav_tone(16000, 16000, 440))}, {"format", "wav"}}}},
                                   {{"type", "text"}, {"text", "What do you hear?"}}})}}})},
      {"max_tokens", 4},
      {"seed", 3}};
  auto ar = cli.Post("/v1/chat/completions", audio.dump(), "application/json");
  REQUIRE(ar);
  INFO(ar->body);
  CHECK(ar->status == 200);

  // A silent MP4 through the video_url extension (the onlyvideo template).
  test::write_mp4(rs.dir.path / "clip.mp4", 8, 32, 32, 4, 8);
  json video = {
      {"messages",
       json::array(
           {{{"role", "user"},
             {"content",
              json::array({{{"type", "video_url"},
                            {"video_url",
                             {{"url", "data:video/mp4;base64," + base64(test::read_bytes(rs.dir.path / "clip.mp4"))}}}},
                           {{"type", "text"}, {"text", "What happens?"}}})}}})},
      {"max_tokens", 4},
      {"temperature", 0}};
  auto vr = cli.Post("/v1/chat/completions", video.dump(), "application/json");
  REQUIRE(vr);
  INFO(vr->body);
  CHECK(vr->status == 200);

  // Text alone, before any media (as an OpenAI client's first message usually is).
  json text = {{"messages", json::array({{{"role", "user"}, {"content", "Hello, who are you?"}}})}, {"max_tokens", 4}};
  auto tr = cli.Post("/v1/chat/completions", text.dump(), "application/json");
  REQUIRE(tr);
  INFO(tr->body);
  CHECK(tr->status == 200);
  CHECK(json::parse(tr->body).at("choices").at(0).at("message").at("content").is_string());

  // Malformed requests.
  auto with_part = [](json part) {
    return json{{"messages", json::array({{{"role", "user"},
                                           {"content", json::array({part, {{"type", "text"}, {"text", "hi"}}})}}})}}
        .dump();
  };
  auto image_url = [&](const std::string& url) {
    return with_part({{"type", "image_url"}, {"image_url", {{"url", url}}}});
  };
  const std::string hello = base64(std::vector<uint8_t>{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'});
  const std::vector<std::string> bad{
      "{",
      "not json",
      "[1,2,3]",
      "",
      R"({"messages": "hello"})",
      R"({"messages": []})",
      R"({"messages": [{"role": 1, "content": "x"}]})",
      R"({"messages": [{"role": "wizard", "content": "x"}]})",
      R"({"messages": [{"role": "user"}]})",
      R"({"messages": [{"role": "user", "content": 5}]})",
      R"({"messages": [{"role": "user", "content": [5]}]})",
      R"({"messages": [{"role": "user", "content": [{"type": "hologram"}]}]})",
      R"({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]})",
      R"({"messages": [{"role": "assistant", "content": "last"}]})",
      R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})",
      R"({"messages": [{"role": "user", "content": "x"}], "top_p": 2})",
      R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5})",
      R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": -4})",
      R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})",
      R"({"messages": [{"role": "user", "content": "x"}], "stop": 5})",
      R"({"messages": [{"role": "user", "content": "x"}], "seed": "s"})",
      R"({"messages": [{"role": "user", "content": "x"}], "n": 2})",
      R"({"messages": [{"role": "user", "content": "x"}], "num_beams": 0})",
      R"({"messages": [{"role": "user", "content": "x"}], "num_beams": 11})",
      R"({"messages": [{"role": "user", "content": "x"}], "num_beams": 2.5})",
      R"({"messages": [{"role": "user", "content": "x"}], "num_beams": "3"})",
      R"({"messages": [{"role": "user", "content": "x"}], "num_beams": true})",
      R"({"messages": [{"role": "user", "content": "x"}], "temperature": 1e400})",  // overflows a double
      R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999999})",
      "{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}",  // not UTF-8
      std::string(100000, '[') + std::string(100000, ']'),                  // deeply nested
      image_url("data:image/png;base64,@@@@"),
      image_url("data:image/png;base64,"),
      image_url("data:image/png," + hello),
      image_url("data:image/png;base64," + hello),
      image_url("data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ"),
      image_url("file:///etc/passwd"),
      image_url("/etc/passwd"),
      image_url("http://127.0.0.1/x.png"),
      with_part({{"type", "image_url"}, {"image_url", 7}}),
      with_part({{"type", "image_url"}}),
      with_part({{"type", "input_audio"}, {"input_audio", {{"data", "!!"}, {"format", "wav"}}}}),
      with_part({{"type", "input_audio"}, {"input_audio", {{"data", hello}, {"format", "wav"}}}}),
      with_part({{"type", "input_audio"}, {"input_audio", {{"data", hello}, {"format", "exe"}}}}),
      with_part({{"type", "input_audio"}, {"input_audio", {{"data", 1}}}}),
      with_part({{"type", "video_url"}, {"video_url", {{"url", "data:video/mp4;base64," + hello}}}}),
      with_part({{"type", "video_url"}, {"video_url", {{"url", "file:///dev/zero"}}}}),
  };
  int answered = 0;
  for (int i = 0; i < 200; ++i) {
    const bool huge = i % 50 == 49;  // over the 32 MB limit
    const std::string body = huge ? std::string(33u << 20, 'x') : bad[static_cast<size_t>(i) % bad.size()];
    auto r = cli.Post("/v1/chat/completions", body, "application/json");
    INFO("request " << i << ": " << body.substr(0, 120));
    REQUIRE(r);
    CHECK(r->status >= 400);
    CHECK(r->status < 500);
    json e;
    REQUIRE_NOTHROW(e = json::parse(r->body));
    CHECK(e.at("error").at("message").is_string());
    CHECK(e.at("error").at("type").is_string());
    ++answered;
  }
  CHECK(answered == 200);
  auto after = cli.Get("/health");
  REQUIRE(after);
  CHECK(after->status == 200);
  auto missing = cli.Get("/v1/nothing");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(json::parse(missing->body).contains("error"));
}

TEST_CASE(
    "chat server: request fields as OpenAI's (unknown ones 400, missing features 400 unless off), penalties, "
    "logit_bias, top_k and repetition_penalty take effect") {
  RunningServer rs;
  auto cli = rs.client();
  auto post = [&](const json& body) {
    auto r = cli.Post("/v1/chat/completions", body.dump(), "application/json");
    REQUIRE(r);
    return std::pair{r->status, json::parse(r->body)};
  };
  auto with = [](json fields) {
    json body = {{"messages", json::array({{{"role", "user"}, {"content", "Hello there"}}})},
                 {"max_tokens", 6},
                 {"temperature", 0}};
    if (fields.is_object()) body.update(fields);
    return body;
  };
  auto refused = [&](const json& fields, const std::string& message) {
    auto [status, j] = post(with(fields));
    INFO(fields.dump() << " -> " << j.dump());
    CHECK(status == 400);
    CHECK_THAT(j.at("error").at("message").get<std::string>(), Catch::Contains(message));
  };
  refused({{"temprature", 0.5}}, "unrecognized request field 'temprature'");
  refused({{"tools", json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}})}}, "tools: not supported");
  refused({{"logprobs", "yes"}}, "logprobs: expected a boolean");
  refused({{"top_logprobs", 2}}, "top_logprobs: needs logprobs: true");
  refused({{"logprobs", true}, {"top_logprobs", 21}}, "top_logprobs: expected an integer 0..20");
  refused({{"logprobs", true}, {"num_beams", 2}}, "logprobs: reported for num_beams 1 only");
  refused({{"response_format", {{"type", "json_object"}}}}, "response_format: not supported");
  refused({{"frequency_penalty", 3}}, "frequency_penalty: expected -2..2");
  refused({{"logit_bias", {{"abc", 1}}}}, "logit_bias: 'abc' is not a token id");
  refused({{"logit_bias", {{"5", 101}}}}, "logit_bias.5: expected a number in -100..100");
  refused({{"logit_bias", {{"99999999", 1}}}}, "logit_bias: token id 99999999");
  refused({{"top_k", -1}}, "top_k");
  refused({{"repetition_penalty", 0}}, "repetition_penalty");

  // What clients send by default, and OpenAI's bookkeeping fields: accepted, same answer.
  auto [status, plain] = post(with({}));
  REQUIRE(status == 200);
  const auto text = [](const json& j) { return j.at("choices").at(0).at("message").at("content").get<std::string>(); };
  auto [s2, defaults] = post(with({{"model", "gpt-4o"},
                                   {"user", "u1"},
                                   {"store", false},
                                   {"n", 1},
                                   {"frequency_penalty", 0},
                                   {"presence_penalty", 0},
                                   {"logit_bias", json::object()},
                                   {"tools", json::array()},
                                   {"tool_choice", "none"},
                                   {"logprobs", false},
                                   {"response_format", {{"type", "text"}}},
                                   {"top_k", 50},
                                   {"repetition_penalty", 1.0}}));
  REQUIRE(s2 == 200);
  CHECK(text(defaults) == text(plain));

  // logit_bias +100 on one word piece makes greedy decoding repeat it.
  LlamaTokenizer tok = LlamaTokenizer::load(test::golden_tokenizer());
  const int64_t cat = tok.piece_to_id("\u2581cat");
  REQUIRE(cat != tok.unk_id());
  auto [s3, forced] = post(with({{"logit_bias", {{std::to_string(cat), 100}}}, {"max_tokens", 3}}));
  REQUIRE(s3 == 200);
  CHECK(text(forced) == "cat cat cat");
  // The tiny model's greedy answer repeats itself; the penalties change it (their arithmetic is
  // test_llama_generation's).
  auto [s4, long_plain] = post(with({{"max_tokens", 16}}));
  auto [s5, penalised] = post(with({{"max_tokens", 16}, {"frequency_penalty", 2}, {"presence_penalty", 2}}));
  REQUIRE(s4 == 200);
  REQUIRE(s5 == 200);
  INFO(text(long_plain) << " | " << text(penalised));
  CHECK(text(penalised) != text(long_plain));
}

TEST_CASE("chat server: logprobs cover the answer's tokens, streamed or not, greedy picks the best") {
  RunningServer rs;
  auto cli = rs.client();
  auto request = [](json fields) {
    json body = {{"messages", json::array({{{"role", "user"}, {"content", "Hello there"}}})},
                 {"max_tokens", 10},
                 {"temperature", 0},
                 {"logprobs", true},
                 {"top_logprobs", 3}};
    body.update(fields);
    return body;
  };
  auto strip = [](std::string s) {
    s.erase(0, s.find_first_not_of(' '));
    s.erase(s.find_last_not_of(' ') + 1);
    return s;
  };
  auto tokens_text = [](const json& content) {
    std::string t;
    for (const auto& e : content) t += e.at("token").get<std::string>();
    return t;
  };
  auto r = cli.Post("/v1/chat/completions", request(json::object()).dump(), "application/json");
  REQUIRE(r);
  INFO(r->body);
  REQUIRE(r->status == 200);
  const auto j = json::parse(r->body);
  const auto answer = j["choices"][0]["message"]["content"].get<std::string>();
  const json content = j["choices"][0]["logprobs"]["content"];
  REQUIRE(!answer.empty());
  CHECK(strip(tokens_text(content)) == answer);
  for (const auto& e : content) {
    const auto& top = e.at("top_logprobs");
    REQUIRE(top.size() == 3);
    CHECK(e.at("logprob").get<double>() <= 0);
    CHECK(top[0].at("logprob").get<double>() >= top[1].at("logprob").get<double>());
    CHECK(top[1].at("logprob").get<double>() >= top[2].at("logprob").get<double>());
    CHECK(e.at("token") == top[0].at("token"));  // greedy
    CHECK(e.at("logprob").get<double>() == top[0].at("logprob").get<double>());
    const auto text = e.at("token").get<std::string>();
    CHECK(e.at("bytes") == std::vector<uint8_t>(text.begin(), text.end()));
  }
  CHECK(j["usage"]["completion_tokens"].get<size_t>() >= content.size());

  // Streamed: the chunks' entries together are the same tokens and values.
  auto s = cli.Post("/v1/chat/completions", request({{"stream", true}}).dump(), "application/json");
  REQUIRE(s);
  REQUIRE(s->status == 200);
  json streamed = json::array();
  for (size_t pos = 0; (pos = s->body.find("data: {", pos)) != std::string::npos; ++pos) {
    const auto c = json::parse(s->body.substr(pos + 6, s->body.find("\n\n", pos) - pos - 6));
    const auto& choice = c.at("choices").at(0);
    if (choice.contains("logprobs"))
      for (const auto& e : choice["logprobs"]["content"]) streamed.push_back(e);
  }
  CHECK(streamed == content);

  // A stop string cuts the answer and its tokens: none after the cut is reported.
  const auto words = pystr::split(answer, " ");
  REQUIRE(words.size() >= 2);
  auto cut = cli.Post("/v1/chat/completions", request({{"stop", " " + words[1]}}).dump(), "application/json");
  REQUIRE(cut);
  REQUIRE(cut->status == 200);
  const auto cj = json::parse(cut->body);
  CHECK(cj["choices"][0]["message"]["content"] == words[0]);
  CHECK(strip(tokens_text(cj["choices"][0]["logprobs"]["content"])) == words[0]);
}

TEST_CASE("chat server: num_beams 3 answers what generate() answers, streamed in one piece, bad values 400") {
  RunningServer rs;
  auto cli = rs.client();
  auto request = image_request(false);
  request["num_beams"] = 3;
  request["max_tokens"] = 10;

  // The same answer computed directly: the server's image path, the demo's prompt, generate() with 3 beams.
  TempDir dir;
  auto model = test::tiny_chat_model(dir.path);
  auto media = ChatMediaOptions::for_model(model->config());
  const auto png = test::encode_png(test::pattern_frame(0, 40, 48), 2 /*PNG_COLOR_TYPE_RGB*/);
  std::string expected, greedy;
  int64_t expected_tokens = 0, stopped_tokens = 0;
  {
    torch::NoGradGuard no_grad;
    Conversation c;
    c.upload(UploadKind::image);
    c.ask("What is in the image?");
    c.append_message(c.roles.second, std::nullopt);
    const auto embs = get_context_emb(*model, c.get_prompt(),
                                      {model->encode_img(image_from_bytes(png, "png", media).unsqueeze(0))}, 10, 2000);
    GenerateOptions o;
    o.max_new_tokens = 10;
    o.num_beams = 3;
    o.top_p = 0.9;
    o.stop_sequences = stop_sequences_for(model->tokenizer());
    auto text = [&](const GenerateOptions& g) {
      const auto out = generate_from_embeds(model->llama_model, embs, torch::Tensor(), g);
      if (g.num_beams > 1) expected_tokens = out.new_tokens[0];
      auto seq = out.sequences[0].contiguous();
      return postprocess_answer(model->tokenizer(),
                                std::vector<int64_t>(seq.data_ptr<int64_t>(), seq.data_ptr<int64_t>() + seq.numel()));
    };
    expected = text(o);
    REQUIRE(expected_tokens > 0);
    auto stopped = o;  // a stop string inside the beam answer ends the search early
    for (auto& seq : stop_sequences_for(model->tokenizer(), " of")) stopped.stop_sequences.push_back(seq);
    stopped_tokens = generate_from_embeds(model->llama_model, embs, torch::Tensor(), stopped).new_tokens[0];
    o.num_beams = 1;
    greedy = text(o);
  }
  CHECK(greedy != expected);  // beams matter here: a server ignoring num_beams fails below

  auto plain = cli.Post("/v1/chat/completions", request.dump(), "application/json");
  REQUIRE(plain);
  INFO(plain->body);
  REQUIRE(plain->status == 200);
  CHECK(json::parse(plain->body)["choices"][0]["message"]["content"] == expected);
  // the tokens the search generated, not the eos that beam finalize appends to a cut hypothesis
  CHECK(json::parse(plain->body)["usage"]["completion_tokens"] == expected_tokens);
  {  // cut by a stop string: finalize appends an eos that the search did not generate
    auto cut = request;
    cut["stop"] = " of";
    auto r = cli.Post("/v1/chat/completions", cut.dump(), "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    INFO(r->body);
    REQUIRE(stopped_tokens < expected_tokens);
    CHECK(json::parse(r->body)["usage"]["completion_tokens"] == stopped_tokens);
  }

  request["stream"] = true;
  auto streamed = cli.Post("/v1/chat/completions", request.dump(), "application/json");
  REQUIRE(streamed);
  REQUIRE(streamed->status == 200);
  CHECK(streamed_content(streamed->body) == expected);
  // role chunk, the whole answer, the finish chunk, [DONE]
  size_t events = 0;
  for (size_t p = 0; (p = streamed->body.find("data: ", p)) != std::string::npos; ++p) ++events;
  CHECK(events == 4);

  for (const auto& bad : {json(0), json(11), json(-1), json(2.5), json("3"), json(true), json::array({3})}) {
    request["num_beams"] = bad;
    auto r = cli.Post("/v1/chat/completions", request.dump(), "application/json");
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 400);
    CHECK(json::parse(r->body)["error"]["message"] == "num_beams: expected an integer 1..10, got " + bad.dump());
  }
}

TEST_CASE("chat server with an API key: 401 with an OpenAI-style error on every route but / and /health") {
  const std::string key = "s3cret-Key_42";
  RunningServer rs(key);
  auto cli = rs.client();
  const auto body = image_request(false).dump();
  const auto stream_body = image_request(true).dump();

  auto get = [&](const std::string& path, const httplib::Headers& h) { return cli.Get(path.c_str(), h); };
  auto post = [&](const std::string& b, const httplib::Headers& h) {
    return cli.Post("/v1/chat/completions", h, b, "application/json");
  };
  auto require_401 = [](const httplib::Result& r) {
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 401);
    CHECK(r->get_header_value("WWW-Authenticate") == "Bearer");
    const auto e = json::parse(r->body);
    CHECK(e["error"]["type"] == "authentication_error");
    CHECK(e["error"]["message"].get<std::string>().find("Authorization: Bearer") != std::string::npos);
  };

  // Open: the health check and the page (static; it sends the key the user types).
  for (const std::string path : {"/health", "/"}) {
    auto r = get(path, {});
    REQUIRE(r);
    CHECK(r->status == 200);
  }
  CHECK(get("/", {})->body.find("id=\"api_key\"") != std::string::npos);

  const std::vector<httplib::Headers> wrong{
      {},
      {{"Authorization", "Bearer "}},
      {{"Authorization", "Bearer wrong"}},
      {{"Authorization", "Bearer " + key.substr(0, key.size() - 1)}},  // a prefix
      {{"Authorization", "Bearer " + key + "x"}},                      // longer
      {{"Authorization", key}},                                        // no scheme
      {{"Authorization", "Basic " + key}},
      {{"X-Api-Key", key}},
  };
  for (const auto& h : wrong) {
    INFO((h.empty() ? "no header" : h.begin()->first + ": " + h.begin()->second));
    require_401(get("/v1/models", h));
    require_401(post(body, h));
    require_401(post(stream_body, h));
    require_401(get("/v1/nothing", h));  // unknown paths say nothing without the key either
  }

  for (const auto& h :
       std::vector<httplib::Headers>{{{"Authorization", "Bearer " + key}}, {{"Authorization", "bearer " + key}}}) {
    auto models = get("/v1/models", h);
    REQUIRE(models);
    CHECK(models->status == 200);
    auto plain = post(body, h);
    REQUIRE(plain);
    INFO(plain->body);
    CHECK(plain->status == 200);
    auto streamed = post(stream_body, h);
    REQUIRE(streamed);
    CHECK(streamed->status == 200);
    CHECK(streamed_content(streamed->body) ==
          json::parse(plain->body)["choices"][0]["message"]["content"].get<std::string>());
    auto missing = get("/v1/nothing", h);
    REQUIRE(missing);
    CHECK(missing->status == 404);
  }
}

TEST_CASE("chat server: the context limit is a 400 (streamed too, before any event), usage chunk, a full queue 503") {
  RunningServer rs("", /*max_queue=*/1);
  auto cli = rs.client();
  auto post = [&](const json& j) { return cli.Post("/v1/chat/completions", j.dump(), "application/json"); };
  auto require_400 = [](const httplib::Result& r, const std::string& says) {
    REQUIRE(r);
    INFO(r->body);
    CHECK(r->status == 400);
    CHECK(r->get_header_value("Content-Type") == "application/json");
    CHECK_THAT(json::parse(r->body)["error"]["message"].get<std::string>(), Catch::Contains(says));
  };

  // max_tokens must leave the prompt some of the 2000 positions (it used to reach generate() as an
  // empty prompt).
  auto req = image_request(false);
  req["max_tokens"] = 2000;
  require_400(post(req), "expected 1..1999");
  // A prompt that does not fit beside max_tokens: a 400, where the demo would silently cut its start
  // (here the image), streamed or not.
  req["max_tokens"] = 1990;
  for (const bool stream : {false, true}) {
    req["stream"] = stream;
    require_400(post(req), "shorten the conversation or ask for fewer tokens");
  }
  std::string words;
  for (int i = 0; i < 2500; ++i) words += "word ";
  require_400(post({{"messages", json::array({{{"role", "user"}, {"content", words}}})}, {"max_tokens", 4}}),
              "more than the 2000 of max_length");
  // A marker that stands for a medium, typed as text: a 400 before the stream starts.
  for (const std::string role : {"user", "system", "developer"}) {
    json marker = {{"messages", json::array({{{"role", role}, {"content", "what is <ImageHere>?"}},
                                             {{"role", "user"}, {"content", "hi"}}})},
                   {"stream", true}};
    require_400(post(marker), "stands for an uploaded medium");
  }

  // stream_options.include_usage: after the finish chunk, one chunk without choices holding the usage
  // of the same answer unstreamed.
  auto plain = post(image_request(false));
  REQUIRE(plain);
  REQUIRE(plain->status == 200);
  const auto usage = json::parse(plain->body).at("usage");
  req = image_request(true);
  req["stream_options"] = {{"include_usage", true}};
  auto streamed = post(req);
  REQUIRE(streamed);
  REQUIRE(streamed->status == 200);
  std::vector<json> events;
  for (size_t p = 0, e; (e = streamed->body.find("\n\n", p)) != std::string::npos; p = e + 2)
    events.push_back(streamed->body.substr(p + 6, e - p - 6) == "[DONE]"
                         ? json("[DONE]")
                         : json::parse(streamed->body.substr(p + 6, e - p - 6)));
  REQUIRE(events.size() >= 4);
  CHECK(events.back() == "[DONE]");
  const auto& last = events[events.size() - 2];
  CHECK(last.at("choices").empty());
  CHECK(last.at("usage") == usage);
  CHECK(!events[events.size() - 3].at("choices").at(0).at("finish_reason").is_null());
  req.erase("stream_options");
  req["stream"] = false;
  req["stream_options"] = {{"include_usage", true}};
  require_400(post(req), "only allowed with stream: true");

  // A temperature too small to divide the logits by is greedy (it was a 500 quoting LibTorch's
  // backtrace: inf logits, nan probabilities).
  auto greedy = image_request(false);
  auto tiny_t = greedy;
  tiny_t["temperature"] = 1e-300;
  auto g = post(greedy), t = post(tiny_t);
  REQUIRE(g);
  REQUIRE(t);
  INFO(t->body);
  REQUIRE(t->status == 200);
  CHECK(json::parse(t->body)["choices"][0]["message"]["content"] ==
        json::parse(g->body)["choices"][0]["message"]["content"]);
  // curl -d without -H sends a form body, which cpp-httplib caps at 8 KB: the 413 says so.
  auto form = cli.Post("/v1/chat/completions", image_request(false).dump() + std::string(9000, ' '),
                       "application/x-www-form-urlencoded");
  REQUIRE(form);
  CHECK(form->status == 413);
  CHECK_THAT(form->body, Catch::Contains("Content-Type: application/json"));

  auto one = cli.Get("/v1/models/chatbridge");
  REQUIRE(one);
  CHECK(json::parse(one->body).at("id") == "chatbridge");
  auto other = cli.Get("/v1/models/gpt-4");
  REQUIRE(other);
  CHECK(other->status == 404);

  // A queue of 1 behind the running request: of 8 slow requests at once, those past it get 503 with a
  // Retry-After, and /health still answers meanwhile (each waiting request holds a connection thread).
  json slow = image_request(false);
  slow["num_beams"] = 10;
  slow["max_tokens"] = 64;
  std::vector<int> status(8, 0);
  std::vector<std::string> retry(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < status.size(); ++i)
    threads.emplace_back([&, i] {
      auto c = rs.client();
      auto r = c.Post("/v1/chat/completions", slow.dump(), "application/json");
      status[i] = r ? r->status : -1;
      if (r) retry[i] = r->get_header_value("Retry-After");
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto health = rs.client();
  health.set_read_timeout(5, 0);
  auto h = health.Get("/health");
  for (auto& t : threads) t.join();
  REQUIRE(h);
  CHECK(h->status == 200);
  int ok = 0, busy = 0;
  for (size_t i = 0; i < status.size(); ++i) {
    INFO("request " << i << ": " << status[i]);
    CHECK((status[i] == 200 || status[i] == 503));
    if (status[i] == 200) ++ok;
    if (status[i] == 503) {
      ++busy;
      CHECK(retry[i] == "5");
    }
  }
  CHECK(ok >= 2);
  CHECK(busy >= 1);
}

TEST_CASE("chat server: a request whose client left while it waited is skipped, streamed or not") {
  RunningServer rs;
  std::ostringstream log;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  // A long request holds the model; behind it, two clients give up (read timeout, connection closed)
  // before their turn comes.
  json slow = image_request(false);
  slow["num_beams"] = 10;
  slow["max_tokens"] = 100;
  std::string words;
  for (int i = 0; i < 500; ++i) words += "word ";
  slow["messages"][0]["content"][1]["text"] = words;
  int slow_status = 0;
  std::string slow_body;
  std::thread first([&] {
    auto c = rs.client();
    auto r = c.Post("/v1/chat/completions", slow.dump(), "application/json");
    slow_status = r ? r->status : -1;
    if (r) slow_body = r->body;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (const bool stream : {false, true}) {
    httplib::Client impatient("127.0.0.1", rs.server->port());
    impatient.set_read_timeout(0, 100000);
    CHECK_FALSE(impatient.Post("/v1/chat/completions", image_request(stream).dump(), "application/json"));
  }
  first.join();
  // The next request runs once the abandoned ones are passed over.
  auto after = rs.client().Post("/v1/chat/completions", image_request(false).dump(), "application/json");
  spdlog::default_logger()->sinks().pop_back();
  INFO(slow_body);
  CHECK(slow_status == 200);
  REQUIRE(after);
  CHECK(after->status == 200);
  const auto text = log.str();
  INFO(text);
  size_t skipped = 0;
  for (size_t p = 0; (p = text.find("the client left while the request waited: skipped", p)) != std::string::npos; ++p)
    ++skipped;
  CHECK(skipped == 2);
}
