// One UTF-8 character, by RFC 3629: the one decoder behind every place that reads UTF-8 (Python str
// semantics, the annotation scanner, the tokenizer's byte fallback), which differ only in what they do
// with an invalid byte.
#pragma once
#include <string_view>

namespace cb {

// The character at s[i]: its length in bytes with its code point in *out, or 0 where s[i] starts no
// valid UTF-8 sequence (a bad lead or continuation byte, a sequence cut short, an overlong form, a
// surrogate, or past U+10FFFF).
inline int utf8_char_at(std::string_view s, size_t i, char32_t* out) {
  const auto b = static_cast<unsigned char>(s[i]);
  const int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  char32_t c = len == 1 ? b : b & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    const auto cont = static_cast<unsigned char>(s[i + k]);
    if ((cont >> 6) != 0x2) return 0;
    c = (c << 6) | (cont & 0x3F);
  }
  static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (c < kMin[len] || c > 0x10FFFF || (c >= 0xD800 && c < 0xE000)) return 0;
  *out = c;
  return len;
}

}  // namespace cb
