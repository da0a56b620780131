// The demo's conversation (chatbridge/conversation/conversation.py and demo.py):
// the "###"-separated Human/Assistant template, the upload messages that place `<ImageHere>` feature
// slots, the prompt embedding (get_context_emb) and the post-processing of a generated answer.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "models/chatbridge.h"
#include "models/tokenizer.h"

namespace cb {

inline constexpr const char* kImageSlot = "<ImageHere>";

// What an upload adds as a Human turn (one `<ImageHere>` per feature block, in encoding order).
enum class UploadKind {
  image,       // "Given following image: <ImageHere>."
  audio,       // "Given the following audio: <ImageHere>."
  video,       // video + its soundtrack (the gradio demo's mode): two slots, video first
  onlyvideo,   // "Given following video: <ImageHere>."
  imageaudio,  // image slot, then audio slot
};
std::string upload_message(UploadKind kind);
int64_t upload_slots(UploadKind kind);

// Conversation style SINGLE: system "", roles (Human, Assistant), sep "###".
struct Conversation {
  std::string system;
  std::pair<std::string, std::string> roles{"Human", "Assistant"};
  std::string sep = "###";
  std::vector<std::pair<std::string, std::optional<std::string>>> messages;

  // system + sep, then "role: msg" + sep per filled message, "role:" for an empty/pending one.
  std::string get_prompt() const;
  void append_message(const std::string& role, std::optional<std::string> message);
  // The demo's Chat.ask: joins the previous Human message with a space only when it ends with
  // "</Img>" (never the case for the upload templates), else a new Human turn.
  void ask(const std::string& text);
  void upload(UploadKind kind) { append_message(roles.first, upload_message(kind)); }
};

// get_context_emb: the prompt's <ImageHere> slots become <query> markers and the LLaMA inputs are
// built by the model's instruct_inputs, the path training and evaluation take (bos, then each piece
// tokenised on its own, features in their slots) -> [1,L,D]; then the demo's left cut
// begin = max(0, L + max_new_tokens - max_length) (may drop bos; logged as a warning, as the demo
// prints one; an error when nothing of the prompt would be left). For a one-turn prompt the tokens are
// the original demo's; in later turns the answers are their own pieces, as in training.
torch::Tensor get_context_emb(const ChatBridgeImpl& model, const std::string& prompt,
                              const std::vector<Features>& features, int64_t max_new_tokens, int64_t max_length);

// Chat.answer's post-processing of outputs[0]: drop a leading 0, then a leading 1; decode; keep the
// text before the first "###", then after the last "Assistant:"; strip whitespace.
std::string postprocess_answer(const LlamaTokenizer& tokenizer, std::span<const int64_t> ids);

// Python str.strip() whitespace.
std::string strip_whitespace(std::string_view s);

// The demo stops on Vicuna's ids for "###" ([835] "▁###", [2277, 29937] "##"+"#"); those ids belong
// to that tokenizer, so the sequences are derived from the loaded one: "###" and " ###" as encoded
// (with the dummy prefix) and "###" glued to a preceding word (without it). Unique, non-empty.
std::vector<std::vector<int64_t>> stop_sequences_for(const LlamaTokenizer& tokenizer, const std::string& stop = "###");

}  // namespace cb
