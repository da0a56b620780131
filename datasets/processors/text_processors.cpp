#include "datasets/processors/text_processors.h"

#include <vector>

#include "datasets/processors/processor.h"
#include "framework/text/python_str.h"

namespace cb {

namespace {

using Text = std::u32string;

bool is_one_of(char32_t c, std::u32string_view set) { return set.find(c) != std::u32string_view::npos; }

// re.sub(r"\s{2,}", " ", s)
Text collapse_space_runs(const Text& s) {
  Text out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t j = i;
    while (j < s.size() && pystr::is_space(s[j])) ++j;
    if (j - i >= 2) {
      out.push_back(U' ');
      i = j;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

// s.lstrip(chars) / s.rstrip(chars)
Text lstrip(const Text& s, std::u32string_view chars) {
  size_t b = 0;
  while (b < s.size() && is_one_of(s[b], chars)) ++b;
  return s.substr(b);
}
Text rstrip(const Text& s, std::u32string_view chars) {
  size_t e = s.size();
  while (e > 0 && is_one_of(s[e - 1], chars)) --e;
  return s.substr(0, e);
}

// " ".join(s.split(" ")[:max_words]) when len(s.split(" ")) > max_words (Python slice semantics,
// so a negative max_words drops words from the end).
Text truncate_words(const Text& s, int64_t max_words) {
  std::vector<Text> words(1);
  for (char32_t c : s) {
    if (c == U' ') words.emplace_back();
    else words.back().push_back(c);
  }
  const auto n = int64_t(words.size());
  if (n <= max_words) return s;
  const int64_t keep = max_words >= 0 ? max_words : std::max<int64_t>(0, n + max_words);
  Text out;
  for (int64_t i = 0; i < keep; ++i) {
    if (i) out.push_back(U' ');
    out += words[size_t(i)];
  }
  return out;
}

Text replace_all(Text s, std::u32string_view from, std::u32string_view to) {
  for (size_t pos = s.find(from); pos != Text::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

constexpr std::u32string_view kBlipPunct = U".!\"()*#:;~";

}  // namespace

std::string BlipCaptionProcessor::operator()(std::string_view caption) const {
  Text s = pystr::lower(pystr::decode_utf8(caption));
  for (auto& c : s)
    if (is_one_of(c, kBlipPunct)) c = U' ';
  s = collapse_space_runs(s);
  s = rstrip(s, U"\n");
  s = rstrip(lstrip(s, U" "), U" ");
  return prompt + pystr::encode_utf8(truncate_words(s, max_words));
}

std::string BlipQuestionProcessor::operator()(std::string_view question) const {
  Text s;
  for (char32_t c : pystr::lower(pystr::decode_utf8(question)))
    if (!is_one_of(c, kBlipPunct)) s.push_back(c);
  s = rstrip(s, U" ");
  return pystr::encode_utf8(truncate_words(s, max_words));
}

std::string valor_pre_caption(std::string_view caption, std::optional<int64_t> max_words) {
  Text s = lstrip(pystr::lower(pystr::decode_utf8(caption)), U",.!?*#:;~");
  for (auto& c : s)
    if (c == U'-' || c == U'/') c = U' ';
  s = replace_all(std::move(s), U"<person>", U"person");
  s = collapse_space_runs(s);
  s = rstrip(s, U"\n");
  s = rstrip(lstrip(s, U" "), U" ");
  if (max_words) s = truncate_words(s, *max_words);
  return pystr::encode_utf8(s);
}

// from_config of the originals: prompt "" and max_words 50 unless given.
CB_REGISTER(processor, "blip_caption", [](const Config& cfg) {
  return Processor{.text = BlipCaptionProcessor{cfg.get<std::string>("prompt", ""), cfg.get<int64_t>("max_words", 50)}};
});
CB_REGISTER(processor, "blip_question", [](const Config& cfg) {
  return Processor{.text = BlipQuestionProcessor{cfg.get<int64_t>("max_words", 50)}};
});

}  // namespace cb
