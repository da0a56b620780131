#include <catch2/catch.hpp>

#include "datasets/processors/processor.h"
#include "datasets/processors/text_processors.h"
#include "framework/error.h"
#include "framework/text/python_str.h"
#include "tests/support/golden.h"

namespace {

// Compares every string of output.<prefix> with `fn(input)`; reports the first mismatch verbatim.
template <typename Fn>
void check_strings(const cb::test::Fixture& f, const std::string& prefix, const std::vector<std::string>& inputs,
                   Fn fn) {
  const auto ref = f.strings("output." + prefix);
  REQUIRE(ref.size() == inputs.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string out = fn(inputs[i]);
    INFO(prefix << "[" << i << "] input '" << inputs[i] << "'");
    CHECK(out == ref[i]);
    mismatches += out != ref[i];
  }
  std::printf("[golden] processors %s: %zu/%zu strings exact\n", prefix.c_str(), inputs.size() - mismatches,
              inputs.size());
}

}  // namespace

TEST_CASE("golden processors (text): blip_caption, blip_question, valor pre_caption") {
  cb::test::Fixture f("processors");
  const auto inputs = f.strings("input.text");
  REQUIRE(!inputs.empty());
  const auto& text_cfg = f.config().at("text");
  REQUIRE(!text_cfg.empty());
  for (const auto& [name, c] : text_cfg.items()) {
    if (name.rfind("blip_caption", 0) == 0) {
      cb::BlipCaptionProcessor p{c.at("prompt").get<std::string>(), c.at("max_words").get<int64_t>()};
      check_strings(f, name, inputs, p);
    } else if (name.rfind("blip_question", 0) == 0) {
      cb::BlipQuestionProcessor p{c.at("max_words").get<int64_t>()};
      check_strings(f, name, inputs, p);
    } else if (name.rfind("valor_pre_caption", 0) == 0) {
      std::optional<int64_t> max_words;
      if (!c.at("max_words").is_null()) max_words = c.at("max_words").get<int64_t>();
      check_strings(f, name, inputs, [&](const std::string& s) { return cb::valor_pre_caption(s, max_words); });
    } else {
      FAIL("processors fixture: unknown text processor setting '" << name << "'");
    }
  }
}

TEST_CASE("text processors: edge cases") {
  cb::BlipCaptionProcessor cap{"", 3};
  CHECK(cap("") == "");
  CHECK(cap("...") == "");     // all punctuation -> spaces -> collapsed -> stripped
  CHECK(cap("A.B") == "a b");  // a single space from one punctuation mark is kept
  CHECK(cap("a  b c d e") == "a b c");
  CHECK(cap("a\u00a0\u00a0b") == "a b");           // NBSP is Python whitespace: a run of 2 collapses
  CHECK(cap("x\u00a0y") == "x\u00a0y");            // a single one stays
  CHECK(cap("\u00c9T\u00c9") == "\u00e9t\u00e9");  // Unicode lowercase
  CHECK(cap("I\u0307") == "i\u0307");
  CHECK(cb::BlipCaptionProcessor{"p ", 0}("a b") == "p ");
  CHECK(cb::BlipCaptionProcessor{"", -1}("a b c") == "a b");  // Python slice [: -1]

  cb::BlipQuestionProcessor q{2};
  CHECK(q("What is it?") == "what is");
  CHECK(q("  Why.  ") == " ");  // split(" ") makes leading spaces empty words: ["", "", "why"][:2]
  CHECK(cb::BlipQuestionProcessor{50}("  Why.  ") == "  why");
  CHECK(q("\u0130s") == "i\u0307s");

  CHECK(cb::valor_pre_caption("  ,Hello") == ",hello");  // lstrip runs before the space strip
  CHECK(cb::valor_pre_caption("<PERSON> x") == "person x");
  CHECK(cb::valor_pre_caption("a - b", 2) == "a b");
  CHECK(cb::valor_pre_caption("a b c", 0) == "");
  CHECK_THROWS_AS(cb::valor_pre_caption("\xff"), cb::Error);
}

TEST_CASE("python_str: split_whitespace, split and lower") {
  using V = std::vector<std::string>;
  CHECK(cb::pystr::split_whitespace("  a\tb\u3000c\n") == V{"a", "b", "c"});
  CHECK(cb::pystr::split_whitespace("").empty());
  CHECK(cb::pystr::split("a.b..c", ".") == V{"a", "b", "", "c"});  // str.split(sep) keeps empty pieces
  CHECK(cb::pystr::split("x<q>", "<q>") == V{"x", ""});
  CHECK(cb::pystr::split("", "%") == V{""});
  CHECK(cb::pystr::encode_utf8(cb::pystr::lower(cb::pystr::decode_utf8("ÀÖØÞĀĲŸΣДЀ"))) == "àöøþāĳÿσдѐ");
}

TEST_CASE("python_str: invalid_utf8_at finds the first byte that starts no valid character") {
  using cb::pystr::invalid_utf8_at;
  constexpr auto none = std::string_view::npos;
  CHECK(invalid_utf8_at("") == none);
  CHECK(invalid_utf8_at("a€𝄞ß") == none);
  CHECK(invalid_utf8_at("ab\xff") == 2);            // not a lead byte
  CHECK(invalid_utf8_at("x\xe2\x82") == 1);         // cut short
  CHECK(invalid_utf8_at("\xe2\x28\xa1") == 0);      // a bad continuation byte
  CHECK(invalid_utf8_at("ok\xc0\xaf") == 2);        // overlong '/'
  CHECK(invalid_utf8_at("\xed\xa0\x80") == 0);      // a surrogate
  CHECK(invalid_utf8_at("\xf4\x90\x80\x80") == 0);  // past U+10FFFF
  CHECK_THROWS_WITH(cb::pystr::decode_utf8("ab\xff"), Catch::Contains("invalid UTF-8 at byte 2"));
}

TEST_CASE("text processors: registered under the original names, from_config defaults") {
  auto cfg = [](const std::string& yaml) { return cb::Config(cb::parse_yaml(yaml, "proc.yaml"), "proc.yaml"); };
  auto cap = cb::make_processor(cfg("name: blip_caption\nprompt: 'a picture of '\nmax_words: 2\n"));
  REQUIRE(cap.text);
  CHECK(!cap.media);
  CHECK(cap.text("A Dog. Runs fast") == "a picture of a dog");
  auto cap_default = cb::make_processor(cfg("name: blip_caption\n"));
  CHECK(cap_default.text("Hi!") == "hi");
  auto q = cb::make_processor(cfg("name: blip_question\nmax_words: 1\n"));
  CHECK(q.text("What? Now") == "what?");  // ? is not among the deleted characters
  CHECK_THROWS_AS(cb::make_processor(cfg("name: blip_captions\n")), cb::Error);
}
