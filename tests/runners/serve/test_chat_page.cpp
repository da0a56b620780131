// The chat page end to end in headless Debian Chromium: load the page served by the tiny model, upload
// an image through the file input, ask a question, read the streamed reply off the page, save a
// screenshot. The page's own fetch is wrapped (test-side only) to pin temperature 0, so the reply it
// assembles from the SSE stream must equal the server's non-streamed answer to the same request.
#include <catch2/catch.hpp>

#include <fstream>
#include <thread>

#include "datasets/media/image_decode.h"
#include "tests/runners/serve/headless_chromium.h"
#include "tests/runners/serve/running_server.h"

using namespace cb;
using json = nlohmann::json;

namespace {

std::vector<uint8_t> base64_decode(const std::string& s) {
  std::vector<uint8_t> out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+'             ? 62
            : c == '/'             ? 63
                                   : -1;
    if (v < 0) continue;
    acc = acc << 6 | static_cast<uint32_t>(v);
    if ((bits += 6) >= 8) out.push_back(static_cast<uint8_t>(acc >> (bits -= 8)));
  }
  return out;
}

// Polls `expression` until it is truthy; returns its last value.
json wait_for(test::HeadlessChromium& b, const std::string& session, const std::string& expression, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (;;) {
    auto v = b.eval(session, expression);
    if (!v.is_null() && v != false) return v;
    if (std::chrono::steady_clock::now() > deadline) FAIL("timed out waiting for: " << expression);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Sets a file on the page's real <input type=file>, as a user's file chooser would.
void upload(test::HeadlessChromium& b, const std::string& session, const std::filesystem::path& file) {
  const auto root = b.call("DOM.getDocument", json::object(), session)["root"]["nodeId"];
  const auto input = b.call("DOM.querySelector", {{"nodeId", root}, {"selector", "#file"}}, session)["nodeId"];
  b.call("DOM.setFileInputFiles", {{"files", {file.string()}}, {"nodeId", input}}, session);
}

// A streamed answer as the server sends it: one delta per piece, with include_usage a usage-only chunk
// (no choices), then [DONE].
std::string sse(const std::vector<std::string>& pieces, bool usage = false) {
  std::string out;
  for (const auto& p : pieces) {
    json delta = {{"content", p}};
    json choice = {{"index", 0}, {"delta", delta}};
    out += "data: " + json{{"choices", json::array({choice})}}.dump() + "\n\n";
  }
  json counts = {{"total_tokens", 3}};
  if (usage) out += "data: " + json{{"choices", json::array()}, {"usage", counts}}.dump() + "\n\n";
  return out + "data: [DONE]\n\n";
}

}  // namespace

TEST_CASE("chat page in headless Chromium: API key, upload an image, ask, streamed reply, beams, screenshot") {
  const std::string key = "page-test-key";
  test::RunningServer rs(key);
  const httplib::Headers auth{{"Authorization", "Bearer " + key}};
  const auto photo = rs.dir.path / "photo.png";
  const auto png = test::encode_png(test::pattern_frame(3, 48, 64), 2 /*PNG_COLOR_TYPE_RGB*/);
  test::write_bytes(photo, png.data(), png.size());

  test::HeadlessChromium browser(rs.dir.path / "profile", rs.dir.path / "chromium.log");
  const auto page = browser.attach_page();
  browser.call("Page.enable", json::object(), page);
  browser.call("Page.navigate", {{"url", "http://127.0.0.1:" + std::to_string(rs.server->port()) + "/"}}, page);
  wait_for(browser, page, "document.readyState === 'complete' && !!document.getElementById('file')", 30);

  // Test-side instrumentation: greedy decoding and a copy of each request body.
  browser.eval(page, R"JS(
    window.__requests = [];
    const realFetch = window.fetch;
    window.fetch = (url, opts) => {
      const body = JSON.parse(opts.body); body.temperature = 0; window.__requests.push(body);
      return realFetch(url, Object.assign({}, opts, {body: JSON.stringify(body)}));
    }; true)JS");
  browser.eval(page, "const m = document.getElementById('max_tokens'); m.value = 12; m.oninput(); true");
  browser.eval(page, "document.getElementById('api_key').value = '" + key + "'; true");  // as a user types it

  upload(browser, page, photo);
  wait_for(browser, page, "document.querySelectorAll('#pending .att').length === 1", 30);

  browser.eval(page,
               "document.getElementById('text').value = 'What is in the picture?';"
               "document.getElementById('bar').requestSubmit(); true");
  // Until the send button is enabled again: the answer streams into the assistant bubble.
  wait_for(browser, page, "window.__requests.length === 1 && !document.getElementById('send').disabled", 180);

  const auto state = browser.eval(page, R"JS(({
      user: document.querySelector('#log .msg.user').textContent,
      userImage: !!document.querySelector('#log .msg.user img.media'),
      reply: document.querySelector('#log .msg:last-child').textContent,
      replyClass: document.querySelector('#log .msg:last-child').className,
      pending: document.getElementById('pending').textContent}))JS");
  INFO(state.dump());
  CHECK(state["user"] == "What is in the picture?");
  CHECK(state["userImage"] == true);
  CHECK(state["replyClass"] == "msg assistant");
  CHECK(state["pending"] == "No media attached.");

  // What the page sent: one user message with the image as a data URL, then the question, streamed.
  auto request = browser.eval(page, "window.__requests[0]");
  REQUIRE(request["stream"] == true);
  CHECK(request["max_tokens"] == 12);
  const auto& content = request["messages"].at(0)["content"];
  REQUIRE(content.size() == 2);
  CHECK(content[0]["type"] == "image_url");
  CHECK(content[0]["image_url"]["url"].get<std::string>().rfind("data:image/png;base64," + test::base64(png), 0) == 0);
  CHECK(content[1]["text"] == "What is in the picture?");

  // The same request, not streamed: the page must have assembled exactly this answer from the stream.
  request["stream"] = false;
  CHECK(request["num_beams"] == 1);
  auto cli = rs.client();
  const auto res = cli.Post("/v1/chat/completions", auth, request.dump(), "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  const std::string answer = json::parse(res->body)["choices"][0]["message"]["content"];
  CHECK(state["reply"] == answer);

  // A second turn with the beams slider at 3: the page sends num_beams and shows the beam-search answer.
  browser.eval(page, "const b = document.getElementById('num_beams'); b.value = 3; b.oninput(); true");
  CHECK(browser.eval(page, "document.getElementById('bv').textContent") == "3");
  browser.eval(page,
               "document.getElementById('text').value = 'And the colours?';"
               "document.getElementById('bar').requestSubmit(); true");
  wait_for(browser, page, "window.__requests.length === 2 && !document.getElementById('send').disabled", 180);
  auto second = browser.eval(page, "window.__requests[1]");
  CHECK(second["num_beams"] == 3);
  REQUIRE(second["messages"].size() == 3);  // the first question, its answer, the second question
  CHECK(second["messages"][1]["content"] == answer);
  second["stream"] = false;
  const auto res2 = cli.Post("/v1/chat/completions", auth, second.dump(), "application/json");
  REQUIRE(res2);
  REQUIRE(res2->status == 200);
  const auto reply2 = browser.eval(page, R"JS(({text: document.querySelector('#log .msg:last-child').textContent,
      cls: document.querySelector('#log .msg:last-child').className}))JS");
  INFO(reply2.dump());
  CHECK(reply2["cls"] == "msg assistant");
  CHECK(reply2["text"] == json::parse(res2->body)["choices"][0]["message"]["content"]);

  // Without the key the page says what is wrong instead of answering.
  browser.eval(page,
               "document.getElementById('api_key').value = ''; document.getElementById('text').value = 'x';"
               "document.getElementById('bar').requestSubmit(); true");
  wait_for(browser, page, "window.__requests.length === 3 && !document.getElementById('send').disabled", 60);
  const auto refused = browser.eval(page, "document.querySelector('#log .msg:last-child').textContent");
  CHECK(refused == "Error: wrong or missing API key: enter it in the API key field");

  const auto shot = base64_decode(browser.call("Page.captureScreenshot", {{"format", "png"}}, page)["data"]);
  const auto shot_path = std::filesystem::current_path() / "chat_page_screenshot.png";
  test::write_bytes(shot_path, shot.data(), shot.size());
  const auto pixels = ImageDecoder().decode_bytes(shot.data(), shot.size(), shot_path.string());
  CHECK(pixels.size(0) > 100);
  CHECK(pixels.size(1) > 100);
  WARN("screenshot: " << shot_path.string());

  // Clear empties the conversation.
  browser.eval(page, "document.getElementById('clear').click(); true");
  CHECK(browser.eval(page, "document.querySelectorAll('#log .msg').length") == 0);
}

// The page's own behaviour with a scripted server: the page's fetch is replaced (test-side) by one that
// records each request and answers only when the test says so, so a request can be left in flight.
struct ScriptedPage {
  test::RunningServer rs;  // serves the page; the model is never asked
  test::HeadlessChromium browser{rs.dir.path / "profile", rs.dir.path / "chromium.log"};
  std::string page = browser.attach_page();

  ScriptedPage() {
    browser.call("Page.enable", json::object(), page);
    browser.call("Page.navigate", {{"url", "http://127.0.0.1:" + std::to_string(rs.server->port()) + "/"}}, page);
    wait_for(browser, page, "document.readyState === 'complete' && !!document.getElementById('file')", 30);
    eval(R"JS(
      window.__calls = [];
      window.fetch = (url, opts) => new Promise(resolve => {
        const call = {body: JSON.parse(opts.body), aborted: false,
                      reply: (status, text) => resolve(new Response(text, {status}))};
        if (opts.signal) opts.signal.addEventListener("abort", () => { call.aborted = true; });  // never rejects
        window.__calls.push(call);
      }); true)JS");
  }
  json eval(const std::string& js) { return browser.eval(page, js); }
  void wait(const std::string& js) { wait_for(browser, page, js, 30); }
  // Uploads `bytes` as `name` and waits until the pending list mentions `kind`.
  void attach(const std::string& name, const std::vector<uint8_t>& bytes, const std::string& kind) {
    test::write_file(rs.dir.path / name, bytes);
    upload(browser, page, rs.dir.path / name);
    wait("document.getElementById('pending').textContent.includes(" + json(kind).dump() + ")");
  }
  // Submits `text` and returns the body of the page's request, the `calls`-th.
  json send(const std::string& text, size_t calls) {
    eval("document.getElementById('text').value = " + json(text).dump() +
         "; document.getElementById('bar').requestSubmit(); true");
    wait("window.__calls.length === " + std::to_string(calls));
    return eval("window.__calls[" + std::to_string(calls - 1) + "].body");
  }
  // Answers request `call` (0-based) and waits until the page is ready for the next message.
  void reply(size_t call, int status, const std::string& body) {
    eval("window.__calls[" + std::to_string(call) + "].reply(" + std::to_string(status) + ", " + json(body).dump() +
         "); true");
    wait("!document.getElementById('send').disabled");
  }
  json last() {
    return eval(R"JS((() => { const m = document.querySelector('#log .msg:last-child');
        return m ? {text: m.textContent, cls: m.className} : null; })())JS");
  }
  json pending() {
    return eval("[...document.querySelectorAll('#pending .att')].map(r => r.firstChild.textContent.trim())");
  }
};

std::vector<uint8_t> test_png() { return test::encode_png(test::pattern_frame(3, 48, 64), 2 /*PNG_COLOR_TYPE_RGB*/); }

TEST_CASE("chat page: Clear during an answer aborts it, and its late answer stays out of the new conversation") {
  ScriptedPage p;
  p.send("A slow question", 1);
  p.eval("document.getElementById('clear').click(); true");
  CHECK(p.eval("window.__calls[0].aborted") == true);
  CHECK(p.eval("document.getElementById('send').disabled") == false);  // usable at once
  p.eval("window.__calls[0].reply(200, " + json(sse({"OLD ANSWER"})).dump() + "); true");
  p.eval("new Promise(ok => setTimeout(() => ok(true), 300))");
  CHECK(p.eval("document.querySelectorAll('#log .msg').length") == 0);
  const auto body = p.send("A fresh start", 2);
  REQUIRE(body["messages"].size() == 1);  // no assistant turn the user never saw
  CHECK(body["messages"][0]["content"] == json::array({{{"type", "text"}, {"text", "A fresh start"}}}));
  p.reply(1, 200, sse({"new"}));
  CHECK(p.eval("[...document.querySelectorAll('#log .msg')].map(m => m.textContent)") ==
        json({"A fresh start", "new"}));
}

TEST_CASE("chat page: image and audio together are both sent and both shown, and a refused request keeps them") {
  ScriptedPage p;
  const auto png = test_png();
  p.attach("photo.png", png, "image");
  p.attach("tone.wav", test::encode_wav_tone(16000, 4000, 440.0), "audio");
  const json content = p.send("Describe both", 1)["messages"].at(0)["content"];
  REQUIRE(content.size() == 3);
  CHECK(content[0]["image_url"]["url"].get<std::string>().rfind("data:image/png;base64," + test::base64(png), 0) == 0);
  CHECK(content[1]["input_audio"]["format"] == "wav");
  CHECK(content[2]["text"] == "Describe both");
  CHECK(p.eval("document.querySelectorAll('#log .msg.user img.media').length") == 1);
  CHECK(p.eval("document.querySelectorAll('#log .msg.user audio.media').length") == 1);
  CHECK(p.eval("document.getElementById('pending').textContent") == "No media attached.");

  // Refused (401): a message for a page user; the attachments stay for the resend.
  p.reply(0, 401, R"({"error":{"message":"missing or wrong API key: send the header","type":"authentication_error"}})");
  CHECK(p.last() ==
        json({{"text", "Error: wrong or missing API key: enter it in the API key field"}, {"cls", "msg error"}}));
  CHECK(p.pending() == json({"image: photo.png", "audio: tone.wav"}));
  const auto body = p.send("Describe both", 2);
  CHECK(body["messages"].size() == 1);  // the refused turn is not in the history
  CHECK(body["messages"][0]["content"] == content);
  p.reply(1, 200, sse({"Two ", "things."}, /*usage=*/true));
  CHECK(p.last() == json({{"text", "Two things."}, {"cls", "msg assistant"}}));
}

TEST_CASE("chat page: each pending attachment has its own remove control") {
  ScriptedPage p;
  p.attach("photo.png", test_png(), "image");
  p.attach("second.jpg", test::encode_jpeg(test::pattern_frame(5, 48, 64)), "second.jpg");
  p.attach("tone.wav", test::encode_wav_tone(16000, 4000, 440.0), "audio");
  CHECK(p.pending() == json({"image: photo.png", "image: second.jpg", "audio: tone.wav"}));
  p.eval("document.querySelectorAll('#pending .att .rm')[1].click(); true");
  CHECK(p.pending() == json({"image: photo.png", "audio: tone.wav"}));
  const auto content = p.send("Which?", 1)["messages"].at(0)["content"];
  REQUIRE(content.size() == 3);
  CHECK(content[0]["type"] == "image_url");
  CHECK(content[1]["type"] == "input_audio");
}

TEST_CASE("chat page: empty answer, no favicon request, accepted file types") {
  ScriptedPage p;
  CHECK(p.eval("document.querySelector('link[rel=icon]').getAttribute('href')") == "data:,");
  CHECK(p.eval("document.getElementById('file').accept") ==
        "image/jpeg,image/png,video/*,.wav,.mp3,.flac,.ogg,.m4a,.webm");
  // A file the server cannot decode: the page names what it accepts and attaches nothing.
  test::write_text(p.rs.dir.path / "notes", "not media");
  upload(p.browser, p.page, p.rs.dir.path / "notes");
  p.wait("document.querySelectorAll('#log .msg.error').length === 1");
  CHECK(p.last()["text"].get<std::string>().rfind("Cannot use 'notes': the server accepts JPEG or PNG images", 0) == 0);
  CHECK(p.eval("document.getElementById('pending').textContent") == "No media attached.");

  p.send("Say nothing", 1);
  p.reply(0, 200, sse({}));
  CHECK(p.last() == json({{"text", "(empty answer)"}, {"cls", "msg assistant empty"}}));
}
