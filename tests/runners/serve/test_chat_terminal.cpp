// The terminal chat (runners/serve/chat_terminal) on the tiny chat model, its input and output as
// strings: setting commands confirm what they set, bad commands change nothing, and a question whose
// answer fails leaves no trace in the history.
#include <catch2/catch.hpp>

#include <sstream>

#include "runners/serve/chat_terminal.h"
#include "tests/runners/serve/chat_fixture.h"
#include "tests/support/make_media.h"

using namespace cb;
using Catch::Matchers::Contains;

namespace {

struct Terminal {
  test::TempDir dir;
  ChatSession chat{test::tiny_chat_model(dir.path)};
  ChatMediaOptions media = ChatMediaOptions::for_model(chat.model().config());

  std::string run(const std::string& input, const ChatSettings& settings = {}) {
    std::istringstream in(input);
    std::ostringstream out;
    terminal_chat(chat, settings, media, in, out);
    return out.str();
  }
};

}  // namespace

TEST_CASE("terminal chat: setting commands confirm, bad ones are errors that change nothing") {
  Terminal t;
  const auto out = t.run(
      "/temperature 0.5\n/top-p 0.8\n/beams 3\n/max-new-tokens 20\n"
      "/beams 11\n/temperature 0\n/top-p abc\n/max-new-tokens 2000\n/reset now\n/frobnicate\n/image\n/settings\n");
  CHECK_THAT(out, Contains("settings: temperature 0.5, top_p 0.9, beams 1, max_new_tokens 300\n"));
  CHECK_THAT(out, Contains("settings: temperature 0.5, top_p 0.8, beams 3, max_new_tokens 20\n"));
  CHECK_THAT(out, Contains("error: /beams must be in 1..10\n"));
  CHECK_THAT(out, Contains("error: /temperature must be > 0\n"));
  CHECK_THAT(out, Contains("error: /top-p: 'abc' is not a number\n"));
  CHECK_THAT(out, Contains("error: /max-new-tokens must be in 1..1999\n"));
  CHECK_THAT(out, Contains("error: /reset takes no argument, got 'now'\n"));
  CHECK_THAT(out, Contains("error: unknown command /frobnicate (see /help)\n"));
  CHECK_THAT(out, Contains("error: /image needs an argument (see /help)\n"));
  // /settings at the end: the refused values left the last good ones
  const auto last = out.rfind("settings: ");
  CHECK(out.substr(last, out.find('\n', last) - last) ==
        "settings: temperature 0.5, top_p 0.8, beams 3, max_new_tokens 20");
}

TEST_CASE("terminal chat: a failed answer drops its question, /quit ends the loop") {
  Terminal t;
  ChatSettings bad;
  bad.max_new_tokens = bad.max_length;  // answer() refuses it
  bad.do_sample = false;
  const auto out = t.run("What is this?\n/max-new-tokens 4\nWhat is this?\n/quit\nnot read\n", bad);
  CHECK_THAT(out, Contains("error: max_new_tokens must be in 1..1999"));
  const auto& messages = t.chat.conversation().messages;
  REQUIRE(messages.size() == 2);  // the second question and its answer, not the failed first one
  CHECK(messages[0].first == "Human");
  CHECK(messages[0].second == "What is this?");
  CHECK(messages[1].first == "Assistant");
  CHECK(out.find("not read") == std::string::npos);
  CHECK(t.chat.last_stats().generated_tokens <= 4);
}
