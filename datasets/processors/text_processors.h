// Caption/question cleaning of the original, reproduced character for character:
// LAVIS `blip_caption` / `blip_question` (chatbridge/processors/blip_processors.py) and the valor
// `pre_caption` (custom_datasets/valor_data/loader.py) that the stage-1 data actually uses.
// Input and output are UTF-8; lowercasing and whitespace follow Python `str` (framework/text/python_str.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cb {

// `blip_caption`: lowercase, each of .!"()*#:;~ becomes a space, runs of >= 2 whitespace characters
// become one space, trailing '\n' and surrounding ' ' stripped, first max_words space-separated words
// kept, then `prompt` prepended.
struct BlipCaptionProcessor {
  std::string prompt;
  int64_t max_words = 50;
  std::string operator()(std::string_view caption) const;
};

// `blip_question`: lowercase, .!"()*#:;~ deleted, trailing ' ' stripped, first max_words words kept.
// (No whitespace collapsing: inner and leading runs survive, as in the original.)
struct BlipQuestionProcessor {
  int64_t max_words = 50;
  std::string operator()(std::string_view question) const;
};

// valor `pre_caption`: lowercase, leading ,.!?*#:;~ stripped, '-' and '/' become spaces, "<person>"
// becomes "person", runs of >= 2 whitespace characters become one space, trailing '\n' and surrounding
// ' ' stripped, then (if max_words is given) the first max_words words kept. Inner punctuation stays.
std::string valor_pre_caption(std::string_view caption, std::optional<int64_t> max_words = std::nullopt);

}  // namespace cb
