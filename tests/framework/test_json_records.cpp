// JsonRecordFile (framework/json_file.h): the streaming scan must find the same records as a JSON tree
// of the file, refuse what the tree parser refuses (with the file, line and column), and read each
// record back from its span.
#include <catch2/catch.hpp>

#include "framework/error.h"
#include "framework/json_file.h"
#include "tests/support/make_media.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using nlohmann::json;

namespace {

struct Scanned {
  std::vector<json> values;
  std::vector<std::string> where;
  std::vector<cb::JsonSpan> spans;
  std::vector<std::string> bad_lines;
  std::unique_ptr<cb::JsonRecordFile> file;
};

Scanned scan(const fs::path& path, cb::JsonRecordFile::Layout layout = {}) {
  Scanned s;
  s.file = std::make_unique<cb::JsonRecordFile>(
      path, "annotation file",
      [&](const cb::ScannedRecord& r) {
        s.values.push_back(json::parse(r.text));
        s.where.push_back(r.where());
        s.spans.push_back(r.span);
      },
      s.bad_lines, layout);
  return s;
}

}  // namespace

TEST_CASE("a JSON list: the records of the tree, in order, each read back from its span", "[json]") {
  cb::test::TempDir dir;
  const std::string doc =
      " \n[{\"video_id\": \"a\\\"b\", \"caption\": \"caf\xc3\xa9 \\u00e9 \\ud83d\\ude00\"},\r\n"
      "  {\"n\": [1, -0.5e+3, 0, true, false, null, {}], \"m\": {\"x\": []}}, 7, \"s\", [[]] ]\n";
  cb::test::write_text(dir.path / "list.json", doc);
  const json tree = json::parse(doc);
  Scanned s = scan(dir.path / "list.json");
  REQUIRE(s.values.size() == tree.size());
  for (size_t i = 0; i < tree.size(); ++i) {
    CHECK(s.values[i] == tree[i]);
    CHECK(s.file->read(s.spans[i]) == tree[i]);
    CHECK(s.where[i] == "record " + std::to_string(i));
  }
  CHECK(s.bad_lines.empty());
  CHECK(sizeof(cb::JsonSpan) == 8);
}

TEST_CASE("JSON Lines: blank lines skipped, a line that is not one value reported by number", "[json]") {
  cb::test::TempDir dir;
  cb::test::write_text(dir.path / "lines.json",
                       "{\"a\": 1}\r\n\n  \t\n{\"a\": 2}  \n{\"a\": \n{\"a\": 3} {\"a\": 4}\n\"tail\"");
  Scanned s = scan(dir.path / "lines.json");
  REQUIRE(s.values == std::vector<json>{{{"a", 1}}, {{"a", 2}}, "tail"});
  CHECK(s.where == std::vector<std::string>{"line 1", "line 4", "line 7"});
  CHECK(s.bad_lines == std::vector<std::string>{"line 5: not valid JSON", "line 6: not valid JSON"});
  CHECK(s.file->read(s.spans[1]) == json{{"a", 2}});

  cb::test::write_text(dir.path / "empty.json", "");
  CHECK(scan(dir.path / "empty.json").values.empty());
}

TEST_CASE("documents the tree parser refuses are refused, naming the file, line and column", "[json]") {
  cb::test::TempDir dir;
  const std::vector<std::string> broken = {
      "[{\"a\": 1},\n {\"a\": 2}",  // unterminated
      "[1, 2,]",                    // trailing comma
      "[\"\\x\"]",                  // bad escape
      "[\"\xff\"]",                 // invalid UTF-8
      "[\"\xc0\xaf\"]",             // overlong UTF-8
      "[\"\\udc00\"]",              // lone low surrogate
      "[\"\\ud800x\"]",             // high surrogate without its pair
      "[\"a\tb\"]",                 // control character
      "[01]",                       // leading zero
      "[1.]",                       // no fraction digits
      "[1] 2",                      // content after the document
      "[{\"a\" 1}]",                // no colon
      "[{1: 2}]",                   // key not a string
      "[tru]",                      // bad literal
  };
  for (const std::string& doc : broken) {
    INFO(doc);
    REQUIRE_THROWS(json::parse(doc));
    cb::test::write_text(dir.path / "broken.json", doc);
    REQUIRE_THROWS_WITH(scan(dir.path / "broken.json"),
                        Contains("broken.json") && Contains("not valid JSON") && Contains(", column"));
  }
  cb::test::write_text(dir.path / "second.json", "[1,\n  x]");
  REQUIRE_THROWS_WITH(scan(dir.path / "second.json"), Contains("line 2, column 3"));
  REQUIRE_THROWS_WITH(scan(dir.path / "absent.json"), Contains("absent.json") && Contains("cannot open"));
}

TEST_CASE("records under a key: {\"dialogs\": [...]}, a bare list only when allowed", "[json]") {
  cb::test::TempDir dir;
  cb::test::write_text(dir.path / "avsd.json",
                       R"({"version": [1, {"dialogs": 0}], "dialogs": [{"id": 1}, {"id": 2}]})");
  const cb::JsonRecordFile::Layout dialogs{.list_key = "dialogs", .label = "dialog"};
  Scanned s = scan(dir.path / "avsd.json", dialogs);
  CHECK(s.values == std::vector<json>{{{"id", 1}}, {{"id", 2}}});
  CHECK(s.where == std::vector<std::string>{"dialog 0", "dialog 1"});

  cb::test::write_text(dir.path / "list.json", R"([{"id": 1}])");
  REQUIRE_THROWS_WITH(scan(dir.path / "list.json", dialogs), Contains("list.json") && Contains("\"dialogs\""));
  CHECK(scan(dir.path / "list.json", {.list_key = "annotations", .bare_list = true}).values.size() == 1);
  cb::test::write_text(dir.path / "other.json", R"({"dialogs": 3})");
  REQUIRE_THROWS_WITH(scan(dir.path / "other.json", dialogs), Contains("other.json") && Contains("\"dialogs\""));
}

TEST_CASE("json_member: the raw text of a member, the last one when repeated", "[json]") {
  const std::string record = R"({"video_id": 12, "caption": "a", "c\u0061ption": "b", "x": {"caption": 1}})";
  CHECK(cb::json_member(record, "video_id") == "12");
  CHECK(cb::json_member(record, "caption") == "\"b\"");  // as the tree keeps it
  CHECK(json::parse(record)["caption"] == "b");
  CHECK(!cb::json_member(record, "desc"));
  CHECK(!cb::json_member("[1]", "caption"));
}

TEST_CASE("a record read after its file changed is an error naming the file", "[json]") {
  cb::test::TempDir dir;
  cb::test::write_text(dir.path / "a.json", R"([{"caption": "one"}, {"caption": "two"}])");
  Scanned s = scan(dir.path / "a.json");
  cb::test::write_text(dir.path / "a.json", R"([{"caption": "one"}])");
  REQUIRE_THROWS_WITH(s.file->read(s.spans[1]), Contains("a.json") && Contains("byte"));
}

TEST_CASE("a leading UTF-8 byte-order mark is skipped: a list stays a list, JSON Lines keep line 1", "[json]") {
  cb::test::TempDir dir;
  const std::string bom = "\xEF\xBB\xBF";
  cb::test::write_text(dir.path / "list.json", bom + "[{\"a\": 1},\n {\"a\": 2}]\n");
  Scanned list = scan(dir.path / "list.json");
  CHECK(list.values == std::vector<json>{{{"a", 1}}, {{"a", 2}}});
  CHECK(list.where == std::vector<std::string>{"record 0", "record 1"});
  CHECK(list.bad_lines.empty());
  CHECK(list.file->read(list.spans[0]) == json{{"a", 1}});

  cb::test::write_text(dir.path / "lines.json", bom + "{\"a\": 1}\n{\"a\": 2}\n");
  Scanned lines = scan(dir.path / "lines.json");
  CHECK(lines.values == std::vector<json>{{{"a", 1}}, {{"a", 2}}});
  CHECK(lines.where == std::vector<std::string>{"line 1", "line 2"});
  CHECK(lines.bad_lines.empty());

  cb::test::write_text(dir.path / "dialogs.json", bom + "{\"dialogs\": [{\"a\": 1}]}");
  Scanned dialogs = scan(dir.path / "dialogs.json", {.list_key = "dialogs", .label = "dialog"});
  CHECK(dialogs.values == std::vector<json>{{{"a", 1}}});

  std::vector<std::string> bad;
  const auto records = cb::read_json_records(dir.path / "list.json", "annotation file", bad);
  CHECK(records.size() == 2);
  CHECK(bad.empty());
  CHECK(cb::read_json_file(dir.path / "list.json", "annotation file") == json::parse("[{\"a\": 1}, {\"a\": 2}]"));
}
