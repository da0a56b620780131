#include "runners/eval/metrics/ptb_tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

#include "framework/text/python_str.h"

namespace cb::metrics {
namespace {

// Non-ASCII code points count as letters (accented words stay whole).
bool is_alnum(char32_t c) { return c >= 0x80 || (c < 0x80 && std::isalnum(static_cast<int>(c))); }
bool is_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_alpha(char32_t c) { return c >= 0x80 || (c < 0x80 && std::isalpha(static_cast<int>(c))); }

char32_t lower_ascii(char32_t c) { return c >= U'A' && c <= U'Z' ? c + 32 : c; }

// A clitic ('s 'm 'd 're 've 'll) starts at s[i] (the apostrophe) and ends the word.
size_t clitic_length(const std::u32string& s, size_t i) {
  if (s[i] != U'\'') return 0;
  static const std::array<std::u32string_view, 6> clitics = {U"s", U"m", U"d", U"re", U"ve", U"ll"};
  for (auto c : clitics) {
    if (i + 1 + c.size() > s.size()) continue;
    bool same = true;
    for (size_t k = 0; k < c.size(); ++k) same = same && lower_ascii(s[i + 1 + k]) == c[k];
    const size_t end = i + 1 + c.size();
    if (same && (end == s.size() || !is_alnum(s[end]))) return 1 + c.size();
  }
  return 0;
}

// "n't" at s[i] ending the word.
bool is_nt(const std::u32string& s, size_t i) {
  return i + 3 <= s.size() && lower_ascii(s[i]) == U'n' && s[i + 1] == U'\'' && lower_ascii(s[i + 2]) == U't' &&
         (i + 3 == s.size() || !is_alnum(s[i + 3]));
}

// The end of the word starting at s[i] (an alphanumeric character).
size_t word_end(const std::u32string& s, size_t i) {
  size_t j = i;
  while (j < s.size()) {
    const char32_t c = s[j];
    const bool next_alnum = j + 1 < s.size() && is_alnum(s[j + 1]);
    if (is_alnum(c)) {
      if (is_nt(s, j) && j > i) return j;  // "do|n't"; a word that is only "n't" is the clitic
      ++j;
    } else if ((c == U'-' || c == U'/' || c == U'&') && next_alnum && j > i) {
      ++j;
    } else if ((c == U',' || c == U':') && j > i && is_digit(s[j - 1]) && j + 1 < s.size() && is_digit(s[j + 1])) {
      ++j;
    } else if (c == U'.' && j > i && next_alnum) {
      ++j;
    } else if (c == U'\'' && next_alnum && clitic_length(s, j) == 0 && !is_nt(s, j - 1)) {
      ++j;  // o'clock, rock'n'roll
    } else {
      break;
    }
  }
  // An acronym (u.s.) keeps its final period.
  if (j < s.size() && s[j] == U'.' && j - i >= 3) {
    bool acronym = true;
    for (size_t k = i; k < j; ++k) acronym = acronym && ((k - i) % 2 == 0 ? is_alpha(s[k]) : s[k] == U'.');
    if (acronym && (j - i) % 2 == 1) ++j;
  }
  return j;
}

void push_word(std::vector<std::u32string>& out, std::u32string w) {
  static const std::array<std::pair<std::u32string_view, size_t>, 6> assimilations = {
      {{U"cannot", 3}, {U"gonna", 3}, {U"gotta", 3}, {U"wanna", 3}, {U"lemme", 3}, {U"gimme", 3}}};
  std::u32string low;
  for (auto c : w) low.push_back(lower_ascii(c));
  for (auto [a, cut] : assimilations) {
    if (low == a) {
      out.push_back(w.substr(0, cut));
      out.push_back(w.substr(cut));
      return;
    }
  }
  out.push_back(std::move(w));
}

std::vector<std::u32string> lex_chunk(const std::u32string& s) {
  std::vector<std::u32string> out;
  size_t i = 0;
  auto run_of = [&](char32_t c) {
    size_t j = i;
    while (j < s.size() && s[j] == c) ++j;
    return j - i;
  };
  while (i < s.size()) {
    const char32_t c = s[i];
    if (is_alnum(c)) {
      if (is_nt(s, i)) {
        out.push_back(s.substr(i, 3));
        i += 3;
        continue;
      }
      const size_t j = word_end(s, i);
      push_word(out, s.substr(i, j - i));
      i = j;
    } else if (c == U'\'') {
      if (const size_t n = clitic_length(s, i); n > 0 && i > 0 && is_alnum(s[i - 1])) {
        out.push_back(s.substr(i, n));
        i += n;
      } else {
        const size_t n2 = std::min<size_t>(run_of(U'\''), 2);
        out.push_back(n2 == 2 ? U"''" : (i == 0 ? U"`" : U"'"));  // PTB3 opening/closing single quote
        i += n2;
      }
    } else if (c == U'"') {
      out.push_back(i == 0 ? U"``" : U"''");
      ++i;
    } else if (c == U'`') {
      const size_t n = std::min<size_t>(run_of(U'`'), 2);
      out.push_back(n == 2 ? U"``" : U"`");
      i += n;
    } else if (c == U'.') {
      const size_t n = run_of(U'.');
      out.push_back(n >= 3 ? U"..." : U".");
      i += n >= 3 ? n : 1;
    } else if (c == U'-') {
      const size_t n = run_of(U'-');
      out.push_back(n >= 2 ? U"--" : U"-");
      i += n;
    } else if (c == U'?' || c == U'!') {
      size_t j = i;
      while (j < s.size() && (s[j] == U'?' || s[j] == U'!')) ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
    } else {
      switch (c) {
        case U'(': out.push_back(U"-LRB-"); break;
        case U')': out.push_back(U"-RRB-"); break;
        case U'[': out.push_back(U"-LSB-"); break;
        case U']': out.push_back(U"-RSB-"); break;
        case U'{': out.push_back(U"-LCB-"); break;
        case U'}': out.push_back(U"-RCB-"); break;
        default: out.push_back(std::u32string(1, c));
      }
      ++i;
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> ptb_tokens(const std::string& caption) {
  std::vector<std::string> tokens;
  for (const auto& chunk : pystr::split_whitespace(caption)) {
    for (const auto& t : lex_chunk(pystr::decode_utf8(chunk))) tokens.push_back(pystr::encode_utf8(pystr::lower(t)));
  }
  return tokens;
}

std::string ptb_tokenize(const std::string& caption) {
  static const std::array<std::string_view, 17> punctuations = {
      "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"};
  std::string out;
  for (const auto& t : ptb_tokens(caption)) {
    if (std::find(punctuations.begin(), punctuations.end(), t) != punctuations.end()) continue;
    if (!out.empty()) out += ' ';
    out += t;
  }
  return out;
}

}  // namespace cb::metrics
