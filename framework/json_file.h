// Reading JSON files, with errors that name the file and what it is for: a whole document, or the
// records of an annotation file (millions of them) as spans read one at a time.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cb {

// The JSON document in `file`; cb::Error "<file>: cannot open the <what>" or "<file>: the <what> is not
// valid JSON: <parser message>". `what` says what the file is for ("workload file", "LLaMA config").
nlohmann::json read_json_file(const std::filesystem::path& file, std::string_view what);

// Where one record lies in its file: the bytes [offset, offset + size), packed in 8 bytes (files up
// to 1 TiB, records up to 16 MiB).
struct JsonSpan {
  uint64_t offset : 40 = 0;
  uint64_t size : 24 = 0;
};

// One record met while scanning an annotation file.
struct ScannedRecord {
  std::string_view text;  // the record's JSON text, valid during the callback only
  JsonSpan span;
  std::string_view label;     // "record" (a list element), "line" (JSON Lines) or the caller's label
  size_t number = 0;          // index in the list, or line number (from 1)
  std::string where() const;  // "record 3", "line 4", "dialog 0"
};

// The records of an annotation file held as byte spans into it (8 bytes a record, kept by the
// caller) and parsed when read, instead of one JSON tree of the whole file: a tree costs several
// hundred bytes a record and seconds per million records to build (docs/data-pipeline.md).
//
// Layouts, as the original's json.load reads them: a JSON list when the first non-blank character is
// '[' (after a UTF-8 byte-order mark, which is skipped), else JSON Lines (blank lines skipped; a line that is not one
// JSON value is left out and "line <n>: not valid JSON" added to `bad_lines`). With `list_key`, the document is an
// object whose `list_key` member is the list of records (AVSD's {"dialogs": [...]}), or also a bare list when
// `bare_list` is set. The scan validates the whole document (RFC 8259 with UTF-8 strings, as the
// parser that reads each record later) without building anything; errors as read_json_file, with the
// line and column. The file stays open until this object is destroyed; records are read with pread,
// so reads may come from several threads and add nothing to the resident set beyond the record.
class JsonRecordFile {
 public:
  struct Layout {
    std::string_view list_key = {};
    bool bare_list = false;
    std::string_view label = "record";
  };
  // Scans `file`, calling `take` for every record in file order (`what` says what the file is for).
  JsonRecordFile(std::filesystem::path file, std::string_view what,
                 const std::function<void(const ScannedRecord&)>& take, std::vector<std::string>& bad_lines,
                 Layout layout);
  JsonRecordFile(std::filesystem::path file, std::string_view what,
                 const std::function<void(const ScannedRecord&)>& take, std::vector<std::string>& bad_lines)
      : JsonRecordFile(std::move(file), what, take, bad_lines, Layout{}) {}
  ~JsonRecordFile();
  JsonRecordFile(const JsonRecordFile&) = delete;
  JsonRecordFile& operator=(const JsonRecordFile&) = delete;

  // The record at `span`, parsed; cb::Error naming the file when it cannot be read or its bytes no
  // longer hold a JSON value (the file changed since the scan).
  nlohmann::json read(JsonSpan span) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

// The raw JSON text of member `key` of a validated object's text (the last one when repeated, as the
// parsers keep), or nullopt. For checks at scan time that need one or two fields of millions of records.
std::optional<std::string_view> json_member(std::string_view object, std::string_view key);
// json_member for several keys in one pass: values[i] is the raw text of keys[i] or nullopt. False when
// `object` is not an object (every value nullopt).
bool json_members(std::string_view object, std::initializer_list<std::string_view> keys,
                  std::optional<std::string_view>* values);

struct JsonRecord {
  nlohmann::json value;
  std::string where;  // "record <i>" of a list, "line <n>" of JSON Lines
};

// Every record of an annotation file as JSON trees (small files: the LM corpus); layouts and errors
// as JsonRecordFile.
std::vector<JsonRecord> read_json_records(const std::filesystem::path& file, std::string_view what,
                                          std::vector<std::string>& bad_lines);

}  // namespace cb
