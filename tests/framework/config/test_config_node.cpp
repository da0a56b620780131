// OmegaConf typing of YAML scalars, merging, and the YAML dump round trip.
#include <catch2/catch.hpp>
#include <cmath>

#include "framework/config_node.h"
#include "framework/error.h"

using cb::ConfigNode;
using T = ConfigNode::Type;

namespace {
ConfigNode scalar(const std::string& text) { return cb::parse_yaml("v: " + text, "test.yaml").entries.at(0).second; }
}  // namespace

TEST_CASE("plain scalars are typed as OmegaConf types them") {
  CHECK(scalar("1e-4").type == T::floating);
  CHECK(scalar("1e-4").floating == 1e-4);
  CHECK(scalar("1E5").floating == 1e5);
  CHECK(scalar("8e-7").floating == 8e-7);
  CHECK(scalar("0.05").floating == 0.05);
  CHECK(scalar("1.").floating == 1.0);
  CHECK(scalar(".5").floating == 0.5);
  CHECK(std::isinf(scalar("-.inf").floating));
  CHECK(std::isnan(scalar(".nan").floating));
  CHECK(scalar("-.5").type == T::string);  // PyYAML's rule has no sign before a leading dot

  CHECK(scalar("10000").type == T::integer);
  CHECK(scalar("10000").integer == 10000);
  CHECK(scalar("-1").integer == -1);
  CHECK(scalar("1_000").integer == 1000);
  CHECK(scalar("0x1f").integer == 31);
  CHECK(scalar("0b101").integer == 5);
  CHECK(scalar("017").integer == 15);  // YAML 1.1 octal
  CHECK_THROWS_WITH(scalar("99999999999999999999"), Catch::Contains("out of the 64-bit range"));

  for (auto t : {"True", "true", "TRUE", "yes", "On"}) CHECK((scalar(t).type == T::boolean && scalar(t).boolean));
  for (auto f : {"False", "false", "no", "OFF"}) CHECK((scalar(f).type == T::boolean && !scalar(f).boolean));
  for (auto n : {"null", "~", "Null", ""}) CHECK(scalar(n).is_null());

  CHECK(scalar("'1e-4'").type == T::string);
  CHECK(scalar("\"True\"").string == "True");
  CHECK(scalar("!!str 12").string == "12");
  CHECK(scalar("linear_warmup_cosine_lr").string == "linear_warmup_cosine_lr");
  CHECK(scalar("WANDBKEY").type == T::string);
  CHECK(scalar("1:30").type == T::string);

  auto list = scalar("[train, 1, 2.5, null]");
  REQUIRE(list.type == T::list);
  CHECK(list.items[0].string == "train");
  CHECK(list.items[1].integer == 1);
  CHECK(list.items[2].floating == 2.5);
  CHECK(list.items[3].is_null());
}

TEST_CASE("YAML errors name the file and line") {
  CHECK_THROWS_WITH(cb::parse_yaml("a: 1\na: 2\n", "x.yaml"), Catch::Contains("x.yaml (line 2): duplicate key 'a'"));
  CHECK_THROWS_WITH(cb::parse_yaml("a: [1, 2\n", "x.yaml"),
                    Catch::Contains("x.yaml (line") && Catch::Contains("invalid YAML"));
  CHECK_THROWS_WITH(cb::parse_yaml("a: !!python/tuple [1]\n", "x.yaml"), Catch::Contains("unsupported YAML tag"));
  CHECK_THROWS_WITH(cb::load_yaml_file("/nonexistent/x.yaml", "x.yaml"), Catch::Contains("x.yaml: cannot open"));
}

TEST_CASE("the merge key '<<' brings in an anchor's keys, as PyYAML does") {
  auto tree = cb::parse_yaml(
      "a: &a {x: 1, y: 2}\nb: &b {y: 3, z: 4}\n"
      "one:\n  w: 0\n  <<: *a\n  x: 5\n"  // own keys win, wherever they stand
      "two:\n  <<: [*a, *b]\n",           // an earlier mapping wins over a later one
      "m.yaml");
  const auto& one = *tree.find("one");
  CHECK(one.find("<<") == nullptr);
  CHECK(one.find("x")->integer == 5);
  CHECK(one.find("y")->integer == 2);
  CHECK(one.find("w")->integer == 0);
  const auto& two = *tree.find("two");
  CHECK(two.find("y")->integer == 2);
  CHECK(two.find("z")->integer == 4);
  CHECK(two.find("y")->where() == "m.yaml (line 1)");                     // errors point at the anchor's value
  CHECK(cb::parse_yaml("'<<': 1\n", "m.yaml").find("<<")->integer == 1);  // quoted: an ordinary key
  CHECK_THROWS_WITH(cb::parse_yaml("a: &s 1\nb:\n  <<: *s\n", "m.yaml"),
                    Catch::Contains("m.yaml (line 1): the merge key '<<' takes a mapping"));
}

TEST_CASE("quoted strings over several lines are refused (yaml-cpp folds them unlike PyYAML)") {
  // PyYAML writes "\n" as '<newline><newline>    '; yaml-cpp would read it as "".
  CHECK_THROWS_WITH(cb::parse_yaml("model:\n  end_sym: '\n\n    '\n  x: 1\n", "t.yaml"),
                    Catch::Contains("t.yaml (line 2): a quoted string continues on the next line"));
  CHECK_THROWS_WITH(cb::parse_yaml("- k: \"a\n  b\"\n", "t.yaml"), Catch::Contains("t.yaml (line 1)"));
  // One-line quoted values, escapes and quotes inside other quotes or comments stay accepted.
  const auto ok =
      cb::parse_yaml("a: \"\\n\"\nb: 'it''s'\nc: \"say \\\"hi\\\"\"\nd: x  # it's fine\n'e': 'v'\n", "t.yaml");
  CHECK(ok.entries.at(0).second.string == "\n");
  CHECK(ok.entries.at(1).second.string == "it's");
  CHECK(ok.entries.at(2).second.string == "say \"hi\"");
}

TEST_CASE("merge: mappings merge key by key, everything else is replaced") {
  auto dst = cb::parse_yaml("a: {x: 1, y: [1, 2]}\nb: 1\n", "base.yaml");
  auto src = cb::parse_yaml("a: {y: [3], z: s}\nb: {c: 2}\n", "user.yaml");
  cb::merge_into(dst, src);
  const auto& a = *dst.find("a");
  CHECK(a.find("x")->integer == 1);
  CHECK(a.find("x")->source == "base.yaml");
  REQUIRE(a.find("y")->items.size() == 1);
  CHECK(a.find("y")->items[0].integer == 3);
  CHECK(a.find("y")->source == "user.yaml");
  CHECK(a.find("z")->string == "s");
  CHECK(dst.find("b")->find("c")->integer == 2);
  // Key order: base keys first, new keys appended (as OmegaConf).
  CHECK(a.entries[2].first == "z");
}

TEST_CASE("the YAML dump reads back to the same typed tree") {
  auto tree = cb::parse_yaml(
      "run:\n  init_lr: 1e-4\n  min_lr: 8e-7\n  one: 1.0\n  n: 20\n  flag: True\n  none: null\n"
      "  s1: 'True'\n  s2: '1e-4'\n  s3: 'null'\n  s4: ''\n  s5: '0x10'\n  s6: 'a: b'\n  s7: \"#x\"\n"
      "  s8: '###Human: {} ###Assistant: '\n  splits: [train, '2']\n  inf: .inf\n  nested: [{a: 1}]\n  empty: {}\n",
      "x.yaml");
  auto text = cb::to_yaml(tree);
  auto back = cb::parse_yaml(text, "dump.yaml");
  std::function<void(const ConfigNode&, const ConfigNode&, const std::string&)> same =
      [&](const ConfigNode& a, const ConfigNode& b, const std::string& path) {
        INFO(path << "\n" << text);
        REQUIRE(a.type == b.type);
        CHECK(a.boolean == b.boolean);
        CHECK(a.integer == b.integer);
        CHECK((a.floating == b.floating || (std::isnan(a.floating) && std::isnan(b.floating))));
        CHECK(a.string == b.string);
        REQUIRE(a.items.size() == b.items.size());
        for (size_t i = 0; i < a.items.size(); ++i) same(a.items[i], b.items[i], path + "[]");
        REQUIRE(a.entries.size() == b.entries.size());
        for (size_t i = 0; i < a.entries.size(); ++i) {
          CHECK(a.entries[i].first == b.entries[i].first);
          same(a.entries[i].second, b.entries[i].second, path + "." + a.entries[i].first);
        }
      };
  same(tree, back, "");
  CHECK_THAT(text, Catch::Contains("init_lr: 0.0001"));
  CHECK_THAT(text, Catch::Contains("one: 1.0"));
  CHECK_THAT(text, Catch::Contains("splits: [train, \"2\"]"));
}
