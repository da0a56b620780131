// Python `str` semantics on UTF-8 text, for code that must reproduce the original's string handling
// bit for bit: str.lower(), str.isspace() (= the `\s` class of `re` str patterns), str.split().
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace cb::pystr {

// UTF-8 <-> code points; invalid UTF-8 is an error (the original only ever sees decoded str).
std::u32string decode_utf8(std::string_view s);
std::string encode_utf8(std::u32string_view s);
// The offset of the first byte that starts no valid UTF-8 character, npos when all of `s` is valid.
size_t invalid_utf8_at(std::string_view s);

// str.isspace() of one character; also what `\s` matches in a Python `re` str pattern.
bool is_space(char32_t c);

// str.lower(): Unicode lowercase mapping as in Python 3.11 (Unicode 14), including the one
// multi-character mapping (U+0130 -> "i\u0307"). Not reproduced: the final-sigma context rule
// (a capital sigma always becomes U+03C3).
std::u32string lower(std::u32string_view s);

// str.split() without arguments: split on runs of whitespace, no empty items.
std::vector<std::string> split_whitespace(std::string_view s);

// str.split(sep) for a non-empty separator: every piece, empty ones included.
std::vector<std::string> split(std::string_view s, std::string_view sep);

}  // namespace cb::pystr
