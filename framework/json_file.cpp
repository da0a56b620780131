#include "framework/json_file.h"

#include <spdlog/fmt/fmt.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "framework/error.h"
#include "framework/text/utf8.h"

namespace cb {

namespace {

// nlohmann's parse error quotes the whole token it was reading ("last read: '...'"): of a file cut
// inside a long string, kilobytes. Its end, where the parser stopped, is what helps.
std::string short_parse_error(std::string message) {
  constexpr std::string_view kMark = "last read: '";
  constexpr size_t kKeep = 60;
  const size_t at = message.find(kMark), close = message.rfind('\'');
  if (at == std::string::npos || close < at + kMark.size() + kKeep) return message;
  size_t from = close - kKeep;
  while ((static_cast<unsigned char>(message[from]) & 0xC0) == 0x80) ++from;  // not inside a UTF-8 character
  return message.substr(0, at + kMark.size()) + "..." + message.substr(from);
}

}  // namespace

nlohmann::json read_json_file(const std::filesystem::path& file, std::string_view what) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("{}: cannot open the {}", file.string(), what);
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: the {} is not valid JSON: {}", file.string(), what, short_parse_error(e.what()));
  }
}

namespace {

constexpr int kMaxDepth = 512;                      // deeper nesting is refused, not a stack overflow
constexpr size_t kReleaseBytes = size_t{64} << 20;  // scanned pages are dropped from the resident set this often

bool blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// A strict JSON validator over a byte range: it only finds where values end and why they are invalid.
class Scanner {
 public:
  Scanner(const char* begin, const char* end) : p_(begin), end_(end) {}
  const char* pos() const { return p_; }
  void seek(const char* p) { p_ = p; }
  bool at_end() const { return p_ == end_; }
  char peek() const { return p_ < end_ ? *p_ : '\0'; }
  // Skips blanks; within a JSON Lines line, `newline` false stops at '\n'.
  void skip_blank(bool newline = true) {
    while (p_ < end_ && blank(*p_) && (newline || *p_ != '\n')) ++p_;
  }
  // Consumes `c` (after blanks) or records the error.
  bool expect(char c, const char* what) {
    skip_blank();
    if (peek() == c) return ++p_, true;
    return error(what);
  }
  bool value(int depth = 0) {
    skip_blank();
    if (at_end()) return error("unexpected end of input");
    switch (*p_) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }
  bool string() {
    ++p_;  // the opening quote
    while (p_ < end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') return ++p_, true;
      if (c < 0x20) return error("control character in a string");
      if (c == '\\') {
        if (!escape()) return false;
      } else if (c >= 0x80) {
        if (!utf8()) return error("invalid UTF-8 in a string");
      } else ++p_;
    }
    return error("unterminated string");
  }
  bool error(const char* what) {
    if (!error_) error_ = what, error_at_ = p_;
    return false;
  }
  const char* error_message() const { return error_; }
  const char* error_at() const { return error_at_; }

 private:
  bool object(int depth) {
    if (depth >= kMaxDepth) return error("nesting too deep");
    ++p_;
    skip_blank();
    if (peek() == '}') return ++p_, true;
    do {
      skip_blank();
      if (peek() != '"') return error("expected a string key");
      if (!string() || !expect(':', "expected ':'") || !value(depth + 1)) return false;
      skip_blank();
    } while (peek() == ',' && ++p_);
    return expect('}', "expected ',' or '}'");
  }
  bool array(int depth) {
    if (depth >= kMaxDepth) return error("nesting too deep");
    ++p_;
    skip_blank();
    if (peek() == ']') return ++p_, true;
    do {
      if (!value(depth + 1)) return false;
      skip_blank();
    } while (peek() == ',' && ++p_);
    return expect(']', "expected ',' or ']'");
  }
  bool literal(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word)
      return error("invalid literal");
    p_ += word.size();
    return true;
  }
  bool digits() {
    const char* s = p_;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    return p_ > s;
  }
  bool number() {
    if (peek() == '-') ++p_;
    if (peek() == '0') ++p_;
    else if (!digits()) return error("invalid value");
    if (peek() == '.' && (++p_, !digits())) return error("invalid number");
    if (peek() == 'e' || peek() == 'E') {
      ++p_;
      if (peek() == '+' || peek() == '-') ++p_;
      if (!digits()) return error("invalid number");
    }
    return true;
  }
  // \uXXXX -> its code unit, or -1.
  int hex4() {
    if (end_ - p_ < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = *p_++;
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    return v;
  }
  bool escape() {
    ++p_;
    const char c = peek();
    if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't')
      return ++p_, true;
    if (c != 'u') return error("invalid escape");
    ++p_;
    const int u = hex4();
    if (u < 0) return error("invalid \\u escape");
    if (u >= 0xDC00 && u <= 0xDFFF) return error("unpaired UTF-16 surrogate");
    if (u >= 0xD800 && u <= 0xDBFF) {
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return error("unpaired UTF-16 surrogate");
      p_ += 2;
      const int low = hex4();
      if (low < 0xDC00 || low > 0xDFFF) return error("unpaired UTF-16 surrogate");
    }
    return true;
  }
  // One multi-byte UTF-8 character.
  bool utf8() {
    char32_t c = 0;
    const int n = utf8_char_at(std::string_view(p_, static_cast<size_t>(end_ - p_)), 0, &c);
    p_ += n;
    return n != 0;
  }

  const char* p_;
  const char* end_;
  const char* error_ = nullptr;
  const char* error_at_ = nullptr;
};

// "line L, column C" of a byte of `text`.
std::string line_column(std::string_view text, size_t at) {
  const std::string_view before = text.substr(0, at);
  const size_t nl = before.rfind('\n');
  return fmt::format("line {}, column {}", std::count(before.begin(), before.end(), '\n') + 1,
                     at - (nl == std::string_view::npos ? 0 : nl + 1) + 1);
}

// The file mapped read-only for one sequential scan; scanned pages are released as it goes so that
// the scan's resident set stays a window, not the file.
class MappedFile {
 public:
  MappedFile(int fd, size_t size) : size_(size) {
    if (size_ == 0) return;
    void* m = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) return;
    data_ = released_ = static_cast<const char*>(m);
    madvise(m, size_, MADV_SEQUENTIAL);
  }
  ~MappedFile() {
    if (data_) munmap(const_cast<char*>(data_), size_);
  }
  bool ok() const { return data_ || size_ == 0; }
  std::string_view text() const { return {data_ ? data_ : "", size_}; }
  // Every whole page before `upto` leaves the resident set (the page cache keeps it).
  void release_before(const char* upto) {
    if (static_cast<size_t>(upto - released_) < kReleaseBytes) return;
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const char* end = data_ + (static_cast<size_t>(upto - data_) / page) * page;
    madvise(const_cast<char*>(released_), static_cast<size_t>(end - released_), MADV_DONTNEED);
    released_ = end;
  }

 private:
  const char* data_ = nullptr;
  const char* released_ = nullptr;
  size_t size_;
};

}  // namespace

std::string ScannedRecord::where() const { return fmt::format("{} {}", label, number); }

JsonRecordFile::JsonRecordFile(std::filesystem::path file, std::string_view what,
                               const std::function<void(const ScannedRecord&)>& take,
                               std::vector<std::string>& bad_lines, Layout layout)
    : path_(std::move(file)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st {};
  if (fd_ < 0 || fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    if (fd_ >= 0) ::close(fd_);
    fail("{}: cannot open the {}", path_.string(), what);
  }
  MappedFile map(fd_, static_cast<size_t>(st.st_size));
  if (!map.ok()) {
    ::close(fd_);
    fail("{}: cannot map the {} ({})", path_.string(), what, std::strerror(errno));
  }
  // The destructor does not run when the constructor throws: close here on the way out.
  struct CloseOnThrow {
    int& fd;
    bool armed = true;
    ~CloseOnThrow() {
      if (armed) ::close(fd), fd = -1;
    }
  } guard{fd_};
  const std::string_view text = map.text();
  const char* base = text.data();
  Scanner sc(base, base + text.size());
  const auto invalid = [&] {
    fail("{}: the {} is not valid JSON: {} at {}", path_.string(), what, sc.error_message(),
         line_column(text, static_cast<size_t>(sc.error_at() - base)));
  };
  const auto emit = [&](const char* begin, std::string_view label, size_t number) {
    const auto size = static_cast<uint64_t>(sc.pos() - begin), offset = static_cast<uint64_t>(begin - base);
    if (size >> 24 || offset >> 40)
      fail("{}: {} {} is past 1 TiB or larger than 16 MiB: too large for an annotation record", path_.string(), label,
           number);
    take(ScannedRecord{.text = std::string_view(begin, size),
                       .span = {.offset = offset, .size = size},
                       .label = label,
                       .number = number});
    map.release_before(begin);
  };
  // The elements of the list at the scanner (its '['), each one a record.
  const auto list = [&](std::string_view label) {
    sc.seek(sc.pos() + 1);
    sc.skip_blank();
    if (sc.peek() == ']') return sc.seek(sc.pos() + 1);
    size_t i = 0;
    do {
      sc.skip_blank();
      const char* begin = sc.pos();
      if (!sc.value(1)) invalid();
      emit(begin, label, i++);
      sc.skip_blank();
    } while (sc.peek() == ',' && (sc.seek(sc.pos() + 1), true));
    if (!sc.expect(']', "expected ',' or ']'")) invalid();
  };

  // A leading UTF-8 byte-order mark (Windows editors write one) is not part of the document.
  if (text.starts_with("\xEF\xBB\xBF")) sc.seek(base + 3);
  sc.skip_blank();
  const char first = sc.peek();
  if (layout.list_key.empty() && first != '[') {
    // JSON Lines: each line one value, blanks around it allowed.
    for (size_t n = 1; !sc.at_end(); ++n) {
      sc.skip_blank(false);
      const char* line_end = std::find(sc.pos(), base + text.size(), '\n');
      if (sc.pos() == line_end) {
        sc.seek(std::min(line_end + 1, base + text.size()));
        continue;
      }
      Scanner one(sc.pos(), line_end);
      const char* begin = sc.pos();
      bool ok = one.value();
      one.skip_blank();
      if (ok && one.at_end()) {
        const auto size = static_cast<size_t>(one.pos() - begin);
        sc.seek(begin + size);
        emit(begin, "line", n);
      } else bad_lines.push_back(fmt::format("line {}: not valid JSON", n));
      sc.seek(std::min(line_end + 1, base + text.size()));
    }
    guard.armed = false;
    return;
  }
  bool listed = false;  // the records' list was found
  if (first == '[' && (layout.list_key.empty() || layout.bare_list)) list(layout.label), listed = true;
  else if (first == '{' && !layout.list_key.empty()) {
    // The object's members: the records are the list under list_key; the rest is validated and skipped.
    sc.seek(sc.pos() + 1);
    sc.skip_blank();
    if (sc.peek() != '}') do {
        sc.skip_blank();
        const char* key = sc.pos();
        if (sc.peek() != '"' || !sc.string() || !sc.expect(':', "expected ':'"))
          sc.error("expected a string key"), invalid();
        const bool match = nlohmann::json::parse(key, sc.pos() - 1).get<std::string>() == layout.list_key;
        sc.skip_blank();
        if (match && !listed && sc.peek() == '[') list(layout.label), listed = true;
        else if (!sc.value(1)) invalid();
        sc.skip_blank();
      } while (sc.peek() == ',' && (sc.seek(sc.pos() + 1), true));
    if (!sc.expect('}', "expected ',' or '}'")) invalid();
  } else if (!sc.value()) invalid();
  sc.skip_blank();
  if (!sc.at_end()) sc.error("unexpected content after the document"), invalid();
  if (!listed)
    fail("{}: expected {}{{\"{}\": [...]}}", path_.string(), layout.bare_list ? "a list of records or " : "an object ",
         layout.list_key);
  guard.armed = false;
}

JsonRecordFile::~JsonRecordFile() {
  if (fd_ >= 0) ::close(fd_);
}

nlohmann::json JsonRecordFile::read(JsonSpan span) const {
  const uint64_t offset = span.offset;
  std::string buf(span.size, '\0');
  size_t got = 0;
  while (got < buf.size()) {
    const ssize_t k = pread(fd_, buf.data() + got, buf.size() - got, static_cast<off_t>(offset + got));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      fail("{}: cannot read the record at byte {} ({})", path_.string(), offset,
           k < 0 ? std::strerror(errno) : "the file is shorter than when it was scanned");
    got += static_cast<size_t>(k);
  }
  try {
    return nlohmann::json::parse(buf);
  } catch (const nlohmann::json::exception&) {
    fail("{}: the record at byte {} is no longer valid JSON (was the file changed during the run?)", path_.string(),
         offset);
  }
}

bool json_members(std::string_view object, std::initializer_list<std::string_view> keys,
                  std::optional<std::string_view>* values) {
  std::fill(values, values + keys.size(), std::nullopt);
  Scanner sc(object.data(), object.data() + object.size());
  sc.skip_blank();
  if (sc.peek() != '{') return false;
  sc.seek(sc.pos() + 1);
  sc.skip_blank();
  if (sc.peek() == '}') return true;
  do {
    sc.skip_blank();
    const char* k = sc.pos();
    sc.string();
    const std::string_view raw(k + 1, static_cast<size_t>(sc.pos() - k - 2));
    // Keys with escapes are rare: decoded by the parser.
    const std::string decoded = raw.find('\\') == std::string_view::npos
                                    ? std::string()
                                    : nlohmann::json::parse(k, sc.pos()).get<std::string>();
    const std::string_view name = decoded.empty() ? raw : std::string_view(decoded);
    sc.expect(':', "");
    sc.skip_blank();
    const char* v = sc.pos();
    sc.value();
    size_t i = 0;
    for (const std::string_view key : keys) {
      if (name == key) values[i] = std::string_view(v, static_cast<size_t>(sc.pos() - v));
      ++i;
    }
    sc.skip_blank();
  } while (sc.peek() == ',' && (sc.seek(sc.pos() + 1), true));
  return true;
}

std::optional<std::string_view> json_member(std::string_view object, std::string_view key) {
  std::optional<std::string_view> found;
  json_members(object, {key}, &found);
  return found;
}

std::vector<JsonRecord> read_json_records(const std::filesystem::path& file, std::string_view what,
                                          std::vector<std::string>& bad_lines) {
  std::vector<JsonRecord> out;
  JsonRecordFile(
      file, what,
      [&](const ScannedRecord& r) {
        out.push_back({nlohmann::json::parse(r.text), r.where()});
      },
      bad_lines);
  return out;
}

}  // namespace cb
