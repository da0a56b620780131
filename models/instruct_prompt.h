// How a stage-2 conversation is cut into the pieces the LLaMA is fed (process_prompt_instruct of the
// original): the text before each `<query>` marker, the feature slot, then after the last marker
// turns of [prompt up to and including "###Assistant:"] [answer up to and including the next "###"].
// Every text piece is tokenised on its own (its own dummy-prefix '▁'), so the answer's first token
// is the one a whole-string tokenisation would not produce. Training (stage 2), evaluation, chat and
// the tiny stage-0 language model all build their token sequences from these pieces, so what the
// LLaMA learned to continue is what it is asked to continue.
#pragma once
#include <string>
#include <vector>

namespace cb {

// The marker of one feature block in a conversation.
inline constexpr const char* kQuerySlot = "<query>";

struct PromptPiece {
  enum class Kind { text, answer, query };  // answer: a training target; query: one feature block
  Kind kind;
  std::string text;  // empty for a query slot
};

// The pieces of `conversation`, in order; empty text pieces are kept (they tokenise to nothing).
std::vector<PromptPiece> split_instruct_prompt(const std::string& conversation);

}  // namespace cb
