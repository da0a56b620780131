// One conversation with a ChatBridge (the demo's Chat + its gradio state): uploaded media become
// feature blocks and upload messages, questions become Human turns, and answer() generates with the
// demo's settings, streaming the visible text as it grows.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/chatbridge.h"
#include "models/conversation.h"
#include "models/generation.h"

namespace cb {

// The demo's generate call (Chat.answer in chatbridge/conversation/conversation.py); defaults are the gradio handler's.
struct ChatSettings {
  int64_t max_new_tokens = 300;
  int64_t max_length = 2000;  // positions for the prompt and the answer together
  // The demo's left cut: a prompt that does not fit max_length with max_new_tokens loses its start (with
  // a warning). false: that is an error instead (the API, whose clients cannot see a cut).
  bool cut_long_prompt = true;
  int64_t num_beams = 1;  // 1..10 (the demo's slider); > 1: beam search, or beam sampling with do_sample
  bool do_sample = true;
  double temperature = 1.0;
  double top_p = 0.9;
  int64_t top_k = 50;  // transformers' GenerationConfig default, not passed by the demo
  double repetition_penalty = 1.0;
  double frequency_penalty = 0.0;  // OpenAI's, over the answer's tokens (GenerateOptions)
  double presence_penalty = 0.0;
  std::vector<std::pair<int64_t, double>> logit_bias;  // token id -> added to its logit
  std::vector<std::string> stop;                       // extra stop strings besides "###"
  // Set: each answer token's log-probability and this many most likely alternatives (0..kMaxTopLogprobs) are
  // recorded (ChatSession::take_logprobs); num_beams 1 only.
  std::optional<int64_t> top_logprobs;
  std::optional<uint64_t> seed;  // seeds LibTorch's generator before sampling
};

// The demo's beams slider range.
constexpr int64_t kMaxChatBeams = 10;
// OpenAI's bound on top_logprobs.
constexpr int64_t kMaxTopLogprobs = 20;
// Below this temperature a sample is greedy (vLLM's epsilon): logits / T overflow to inf, and sampling
// tends to the argmax as T goes to 0.
constexpr double kMinSamplingTemperature = 1e-5;

// Streamed text: each call gets the next piece of the answer; returning true stops generation. With
// beams the search only knows its answer at the end: one call with the whole text.
using TextCallback = std::function<bool(const std::string& delta)>;

// One answer token's log-probability under the model (log_softmax of its logits before penalties,
// temperature or top-p, as OpenAI and vLLM report it) and the most likely ids at that step, best first.
struct TokenLogprob {
  int64_t id = 0;
  double logprob = 0;
  std::vector<std::pair<int64_t, double>> top;
};

// Token counts of the last answer (for API usage reports).
struct AnswerStats {
  int64_t prompt_positions = 0;  // context length after the left cut
  int64_t generated_tokens = 0;
  bool hit_token_limit = false;  // max_new_tokens reached without a stop
};

class ChatSession {
 public:
  explicit ChatSession(ChatBridge model);

  // Media already preprocessed: image [3,S,S] or [1,3,S,S]; video frames [n,3,S,S]; audio fbank
  // [n,T,F]. Each adds its features and the upload message of its kind.
  void upload_image(const torch::Tensor& pixels);
  void upload_audio(const torch::Tensor& fbank);
  // With a soundtrack: the demo's "video" template; without: "onlyvideo".
  void upload_video(const torch::Tensor& frames, const std::optional<torch::Tensor>& fbank);
  void upload_image_audio(const torch::Tensor& pixels, const torch::Tensor& fbank);

  // Text from the user (questions, earlier answers, a system prompt) may not hold the markers that
  // stand for media in the prompt (<ImageHere>, <query>): it would take a medium's slot.
  void ask(const std::string& text) { conv_.ask(checked_text(text)); }
  void add_answer(const std::string& text) { conv_.append_message(conv_.roles.second, checked_text(text)); }
  void set_system(const std::string& text) { conv_.system = checked_text(text); }
  // Generates the pending Assistant turn, stores and returns the post-processed answer: the text of
  // generate_from_embeds with `generate_options(settings)` on the prompt's embeddings. on_start runs
  // once the prompt is built and fits, before generation: errors before it are the request's.
  std::string answer(const ChatSettings& settings, const TextCallback& on_text = nullptr,
                     const std::function<void()>& on_start = nullptr);
  void reset();

  Conversation& conversation() { return conv_; }
  const Conversation& conversation() const { return conv_; }
  const std::vector<Features>& features() const { return features_; }
  const AnswerStats& last_stats() const { return stats_; }
  // With settings.top_logprobs: the answer's tokens whose text begins within what the answer shows so
  // far, not taken before; inside an on_text callback, those of that piece. Tokens cut away with a
  // stop string or after the answer's end (eos) are never handed out.
  std::vector<TokenLogprob> take_logprobs();
  ChatBridgeImpl& model() { return *model_; }

 private:
  torch::Tensor to_model(const torch::Tensor& t) const;
  static const std::string& checked_text(const std::string& text);

  ChatBridge model_;
  Conversation conv_;
  std::vector<Features> features_;
  AnswerStats stats_;
  bool warned_positions_ = false;
  std::vector<TokenLogprob> logprobs_;  // the last answer's tokens
  std::vector<size_t> starts_;          // per token, the visible answer's length before it
  size_t released_ = 0, taken_ = 0;     // logprobs_[taken_, released_) await take_logprobs
  void release_logprobs(size_t shown);  // the tokens that begin before `shown`
};

// The generate() settings of a chat answer (the demo's Chat.answer call); throws cb::Error naming the
// setting when one is out of range. on_token is left to the caller.
GenerateOptions generate_options(const ChatSettings& settings, const LlamaTokenizer& tokenizer);

// The prefix of a growing answer that can be shown now: the post-processed text with a trailing
// part that may still turn into a stop string ('#'s, a prefix of a stop), trailing whitespace (strip)
// and an unfinished UTF-8 character held back.
std::string visible_answer(const std::string& raw_decoded, const std::vector<std::string>& stops);

}  // namespace cb
