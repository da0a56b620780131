#include "models/instruct_prompt.h"

#include "framework/text/python_str.h"

namespace cb {

std::vector<PromptPiece> split_instruct_prompt(const std::string& conversation) {
  using Kind = PromptPiece::Kind;
  std::vector<PromptPiece> pieces;
  const auto parts = pystr::split(conversation, kQuerySlot);
  for (size_t k = 0; k + 1 < parts.size(); ++k) {
    pieces.push_back({Kind::text, parts[k]});
    pieces.push_back({Kind::query, {}});
  }
  std::string rest = parts.back();
  static const std::string kAssistant = "###Assistant:", kSep = "###";
  while (rest.find(kAssistant) != std::string::npos) {
    const size_t j = rest.find(kAssistant) + kAssistant.size();
    std::string prompt = rest.substr(0, j);
    rest = rest.substr(j);
    if (rest.find(kSep) == std::string::npos) {  // unanswered final turn
      pieces.push_back({Kind::text, std::move(prompt)});
      break;
    }
    const size_t end = rest.find(kSep) + kSep.size();
    pieces.push_back({Kind::text, std::move(prompt)});
    pieces.push_back({Kind::answer, rest.substr(0, end)});  // up to and including the next "###"
    rest = rest.substr(end);
  }
  if (!rest.empty()) pieces.push_back({Kind::text, rest});
  return pieces;
}

}  // namespace cb
