#include "models/conversation.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "framework/error.h"
#include "framework/text/python_str.h"
#include "models/instruct_prompt.h"

namespace cb {

std::string upload_message(UploadKind kind) {
  switch (kind) {
    case UploadKind::image: return "Given following image: <ImageHere>.";
    case UploadKind::audio: return "Given the following audio: <ImageHere>.";
    case UploadKind::video: return "Given following video: <ImageHere> and its background audio: <ImageHere>.";
    case UploadKind::onlyvideo: return "Given following video: <ImageHere>.";
    case UploadKind::imageaudio: return "Given following image: <ImageHere> and audio: <ImageHere>.";
  }
  fail("upload_message: unknown upload kind");
}

int64_t upload_slots(UploadKind kind) { return (kind == UploadKind::video || kind == UploadKind::imageaudio) ? 2 : 1; }

std::string Conversation::get_prompt() const {
  std::string ret = system + sep;
  for (const auto& [role, msg] : messages) {
    if (msg && !msg->empty()) ret += role + ": " + *msg + sep;
    else ret += role + ":";
  }
  return ret;
}

void Conversation::append_message(const std::string& role, std::optional<std::string> message) {
  messages.emplace_back(role, std::move(message));
}

void Conversation::ask(const std::string& text) {
  if (!messages.empty() && messages.back().first == roles.first && messages.back().second &&
      messages.back().second->ends_with("</Img>")) {
    *messages.back().second += " " + text;
  } else {
    append_message(roles.first, text);
  }
}

torch::Tensor get_context_emb(const ChatBridgeImpl& model, const std::string& prompt,
                              const std::vector<Features>& features, int64_t max_new_tokens, int64_t max_length) {
  const auto slots = pystr::split(prompt, kImageSlot);
  if (slots.size() != features.size() + 1)
    fail("get_context_emb: the prompt has {} <ImageHere> slots but {} feature blocks were given", slots.size() - 1,
         features.size());
  std::string conversation = slots[0];
  for (size_t i = 1; i < slots.size(); ++i) conversation += kQuerySlot + slots[i];
  for (size_t i = 0; i < features.size(); ++i) {
    const auto& f = features[i].embeds;
    const int64_t d = model.config().llama.hidden_size;
    if (f.dim() != 3 || f.size(0) != 1 || f.size(2) != d)
      fail("get_context_emb: feature block {} has shape {}, expected [1, Nq, {}]", i, c10::str(f.sizes()), d);
  }
  torch::NoGradGuard no_grad;
  const auto embs = model.instruct_inputs(features, {conversation}).inputs_embeds;  // [1,L,D]
  const int64_t begin = std::max<int64_t>(0, embs.size(1) + max_new_tokens - max_length);
  if (begin >= embs.size(1))
    fail("get_context_emb: max_new_tokens {} leaves no room for the prompt in max_length {}", max_new_tokens,
         max_length);
  if (begin > 0)
    spdlog::warn(
        "the conversation ({} positions) and max_new_tokens {} exceed max_length {}: the model will not see "
        "its first {} positions",
        embs.size(1), max_new_tokens, max_length, begin);
  return embs.slice(1, begin);
}

std::string strip_whitespace(std::string_view s) {
  constexpr std::string_view ws = " \t\n\r\v\f";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  const auto e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

std::string postprocess_answer(const LlamaTokenizer& tokenizer, std::span<const int64_t> ids) {
  if (!ids.empty() && ids.front() == 0) ids = ids.subspan(1);  // the pad placeholder of some versions
  if (!ids.empty() && ids.front() == 1) ids = ids.subspan(1);  // bos
  auto text = tokenizer.decode(ids);
  text = text.substr(0, text.find("###"));
  const auto a = text.rfind("Assistant:");
  if (a != std::string::npos) text = text.substr(a + std::string_view("Assistant:").size());
  return strip_whitespace(text);
}

std::vector<std::vector<int64_t>> stop_sequences_for(const LlamaTokenizer& tokenizer, const std::string& stop) {
  std::vector<std::vector<int64_t>> out;
  auto add = [&](std::vector<int64_t> seq) {
    if (!seq.empty() && std::find(out.begin(), out.end(), seq) == out.end()) out.push_back(std::move(seq));
  };
  add(tokenizer.encode(stop, false));
  add(tokenizer.encode(" " + stop, false));
  // Glued to a word: the tokens of "a###" after those of "a", when "a" tokenises as a prefix.
  const auto word = tokenizer.encode("a", false);
  const auto glued = tokenizer.encode("a" + stop, false);
  if (glued.size() > word.size() && std::equal(word.begin(), word.end(), glued.begin()))
    add(std::vector<int64_t>(glued.begin() + static_cast<std::ptrdiff_t>(word.size()), glued.end()));
  return out;
}

}  // namespace cb
