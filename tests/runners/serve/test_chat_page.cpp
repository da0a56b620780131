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

  // Upload through the real <input type=file>, as a user's file chooser would.
  const auto root = browser.call("DOM.getDocument", json::object(), page)["root"]["nodeId"];
  const auto input = browser.call("DOM.querySelector", {{"nodeId", root}, {"selector", "#file"}}, page)["nodeId"];
  browser.call("DOM.setFileInputFiles", {{"files", {photo.string()}}, {"nodeId", input}}, page);
  wait_for(browser, page, "document.getElementById('pending').textContent.startsWith('image attached')", 30);

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
  CHECK(refused.get<std::string>().rfind("Error: missing or wrong API key", 0) == 0);

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
