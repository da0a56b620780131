#include "runners/eval/metrics/vqa_accuracy.h"

#include <algorithm>
#include <array>
#include <string_view>
#include <unordered_map>

#include "framework/error.h"
#include "framework/text/python_str.h"

namespace cb::metrics {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool has_digit_comma_digit(const std::string& s) {
  for (size_t i = 1; i + 1 < s.size(); ++i)
    if (s[i] == ',' && is_digit(s[i - 1]) && is_digit(s[i + 1])) return true;
  return false;
}

std::string replace_all(std::string s, char from, std::string_view to) {
  std::string out;
  for (char c : s) {
    if (c == from) out += to;
    else out += c;
  }
  return out;
}

const std::unordered_map<std::string, std::string>& contractions() {
  static const std::unordered_map<std::string, std::string> table = {{"aint", "ain't"},
                                                                     {"arent", "aren't"},
                                                                     {"cant", "can't"},
                                                                     {"couldve", "could've"},
                                                                     {"couldnt", "couldn't"},
                                                                     {"couldn'tve", "couldn't've"},
                                                                     {"couldnt've", "couldn't've"},
                                                                     {"didnt", "didn't"},
                                                                     {"doesnt", "doesn't"},
                                                                     {"dont", "don't"},
                                                                     {"hadnt", "hadn't"},
                                                                     {"hadnt've", "hadn't've"},
                                                                     {"hadn'tve", "hadn't've"},
                                                                     {"hasnt", "hasn't"},
                                                                     {"havent", "haven't"},
                                                                     {"hed", "he'd"},
                                                                     {"hed've", "he'd've"},
                                                                     {"he'dve", "he'd've"},
                                                                     {"hes", "he's"},
                                                                     {"howd", "how'd"},
                                                                     {"howll", "how'll"},
                                                                     {"hows", "how's"},
                                                                     {"Id've", "I'd've"},
                                                                     {"I'dve", "I'd've"},
                                                                     {"Im", "I'm"},
                                                                     {"Ive", "I've"},
                                                                     {"isnt", "isn't"},
                                                                     {"itd", "it'd"},
                                                                     {"itd've", "it'd've"},
                                                                     {"it'dve", "it'd've"},
                                                                     {"itll", "it'll"},
                                                                     {"let's", "let's"},
                                                                     {"maam", "ma'am"},
                                                                     {"mightnt", "mightn't"},
                                                                     {"mightnt've", "mightn't've"},
                                                                     {"mightn'tve", "mightn't've"},
                                                                     {"mightve", "might've"},
                                                                     {"mustnt", "mustn't"},
                                                                     {"mustve", "must've"},
                                                                     {"neednt", "needn't"},
                                                                     {"notve", "not've"},
                                                                     {"oclock", "o'clock"},
                                                                     {"oughtnt", "oughtn't"},
                                                                     {"ow's'at", "'ow's'at"},
                                                                     {"'ows'at", "'ow's'at"},
                                                                     {"'ow'sat", "'ow's'at"},
                                                                     {"shant", "shan't"},
                                                                     {"shed've", "she'd've"},
                                                                     {"she'dve", "she'd've"},
                                                                     {"she's", "she's"},
                                                                     {"shouldve", "should've"},
                                                                     {"shouldnt", "shouldn't"},
                                                                     {"shouldnt've", "shouldn't've"},
                                                                     {"shouldn'tve", "shouldn't've"},
                                                                     {"somebody'd", "somebodyd"},
                                                                     {"somebodyd've", "somebody'd've"},
                                                                     {"somebody'dve", "somebody'd've"},
                                                                     {"somebodyll", "somebody'll"},
                                                                     {"somebodys", "somebody's"},
                                                                     {"someoned", "someone'd"},
                                                                     {"someoned've", "someone'd've"},
                                                                     {"someone'dve", "someone'd've"},
                                                                     {"someonell", "someone'll"},
                                                                     {"someones", "someone's"},
                                                                     {"somethingd", "something'd"},
                                                                     {"somethingd've", "something'd've"},
                                                                     {"something'dve", "something'd've"},
                                                                     {"somethingll", "something'll"},
                                                                     {"thats", "that's"},
                                                                     {"thered", "there'd"},
                                                                     {"thered've", "there'd've"},
                                                                     {"there'dve", "there'd've"},
                                                                     {"therere", "there're"},
                                                                     {"theres", "there's"},
                                                                     {"theyd", "they'd"},
                                                                     {"theyd've", "they'd've"},
                                                                     {"they'dve", "they'd've"},
                                                                     {"theyll", "they'll"},
                                                                     {"theyre", "they're"},
                                                                     {"theyve", "they've"},
                                                                     {"twas", "'twas"},
                                                                     {"wasnt", "wasn't"},
                                                                     {"wed've", "we'd've"},
                                                                     {"we'dve", "we'd've"},
                                                                     {"weve", "we've"},
                                                                     {"werent", "weren't"},
                                                                     {"whatll", "what'll"},
                                                                     {"whatre", "what're"},
                                                                     {"whats", "what's"},
                                                                     {"whatve", "what've"},
                                                                     {"whens", "when's"},
                                                                     {"whered", "where'd"},
                                                                     {"wheres", "where's"},
                                                                     {"whereve", "where've"},
                                                                     {"whod", "who'd"},
                                                                     {"whod've", "who'd've"},
                                                                     {"who'dve", "who'd've"},
                                                                     {"wholl", "who'll"},
                                                                     {"whos", "who's"},
                                                                     {"whove", "who've"},
                                                                     {"whyll", "why'll"},
                                                                     {"whyre", "why're"},
                                                                     {"whys", "why's"},
                                                                     {"wont", "won't"},
                                                                     {"wouldve", "would've"},
                                                                     {"wouldnt", "wouldn't"},
                                                                     {"wouldnt've", "wouldn't've"},
                                                                     {"wouldn'tve", "wouldn't've"},
                                                                     {"yall", "y'all"},
                                                                     {"yall'll", "y'all'll"},
                                                                     {"y'allll", "y'all'll"},
                                                                     {"yall'd've", "y'all'd've"},
                                                                     {"y'alld've", "y'all'd've"},
                                                                     {"y'all'dve", "y'all'd've"},
                                                                     {"youd", "you'd"},
                                                                     {"youd've", "you'd've"},
                                                                     {"you'dve", "you'd've"},
                                                                     {"youll", "you'll"},
                                                                     {"youre", "you're"},
                                                                     {"youve", "you've"}};
  return table;
}

const std::unordered_map<std::string, std::string>& number_words() {
  static const std::unordered_map<std::string, std::string> table = {
      {"none", "0"}, {"zero", "0"}, {"one", "1"},   {"two", "2"},   {"three", "3"}, {"four", "4"},
      {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"},  {"ten", "10"}};
  return table;
}

std::string strip(const std::string& s) {
  const auto u = pystr::decode_utf8(s);
  size_t b = 0, e = u.size();
  while (b < e && pystr::is_space(u[b])) ++b;
  while (e > b && pystr::is_space(u[e - 1])) --e;
  return pystr::encode_utf8(std::u32string_view(u).substr(b, e - b));
}

}  // namespace

std::string vqa_process_punctuation(const std::string& in) {
  static constexpr std::array<char, 21> punct = {';',  '/', '[', ']', '"', '{', '}', '(', ')', '=', '+',
                                                 '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'};
  const bool digit_comma = has_digit_comma_digit(in);
  std::string out = in;
  for (char p : punct) {
    const std::string ps{p};
    const bool spaced = in.find(ps + " ") != std::string::npos || in.find(" " + ps) != std::string::npos;
    out = replace_all(out, p, spaced || digit_comma ? "" : " ");
  }
  // periodStrip "(?!<=\d)(\.)(?!\d)": the lookbehind is mistyped as a lookahead that never fires, so
  // every period not followed by a digit goes, at most 32 of them.
  std::string result;
  int removed = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '.' && removed < 32 && !(i + 1 < out.size() && is_digit(out[i + 1]))) {
      ++removed;
      continue;
    }
    result += out[i];
  }
  return result;
}

std::string vqa_process_digit_article(const std::string& in) {
  const auto low = pystr::encode_utf8(pystr::lower(pystr::decode_utf8(in)));
  std::vector<std::string> words;
  for (auto w : pystr::split_whitespace(low)) {
    if (auto it = number_words().find(w); it != number_words().end()) w = it->second;
    if (w != "a" && w != "an" && w != "the") words.push_back(w);
  }
  std::string out;
  for (auto& w : words) {
    if (auto it = contractions().find(w); it != contractions().end()) w = it->second;
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

std::string vqa_normalize_answer(const std::string& answer) {
  std::string a = answer;
  std::replace(a.begin(), a.end(), '\n', ' ');
  std::replace(a.begin(), a.end(), '\t', ' ');
  return vqa_process_digit_article(vqa_process_punctuation(strip(a)));
}

double vqa_accuracy(const std::string& prediction, const std::vector<std::string>& answers) {
  if (answers.empty()) fail("vqa_accuracy: no ground-truth answers");
  const auto pred = vqa_normalize_answer(prediction);
  std::vector<std::string> gts = answers;
  if (std::any_of(gts.begin(), gts.end(), [&](const auto& a) { return a != gts.front(); }))
    for (auto& a : gts) a = vqa_process_punctuation(a);
  double sum = 0;
  for (size_t i = 0; i < gts.size(); ++i) {
    int matches = 0;
    for (size_t j = 0; j < gts.size(); ++j) matches += j != i && gts[j] == pred;
    sum += std::min(1.0, matches / 3.0);
  }
  return sum / static_cast<double>(gts.size());
}

bool vqa_exact_match(const std::string& prediction, const std::vector<std::string>& answers) {
  const auto pred = vqa_normalize_answer(prediction);
  return std::find(answers.begin(), answers.end(), pred) != answers.end();
}

}  // namespace cb::metrics
