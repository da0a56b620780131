#include "runners/serve/chat_session.h"

#include <algorithm>
#include <limits>
#include <utility>

#include <spdlog/spdlog.h>

#include "framework/error.h"
#include "models/instruct_prompt.h"

namespace cb {

namespace {

// Cuts `text` at the first occurrence of any of `stops`.
std::string cut_at_stops(std::string text, const std::vector<std::string>& stops) {
  for (const auto& s : stops)
    if (!s.empty()) text = text.substr(0, text.find(s));
  return text;
}

// Length of the longest suffix of `text` that is a proper prefix of `stop`.
size_t partial_stop_suffix(const std::string& text, const std::string& stop) {
  for (size_t n = std::min(text.size(), stop.size() - 1); n > 0; --n)
    if (text.compare(text.size() - n, n, stop, 0, n) == 0) return n;
  return 0;
}

// Bytes of an unfinished UTF-8 sequence at the end of `text` (0 when it ends on a whole character).
size_t unfinished_utf8(const std::string& text) {
  for (size_t back = 1; back <= std::min<size_t>(3, text.size()); ++back) {
    const auto c = static_cast<unsigned char>(text[text.size() - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

// Drops what the end of `text` cannot show yet or ever: byte-fallback pieces still missing their
// partners (U+FFFD) and an unfinished UTF-8 character.
void drop_broken_tail(std::string& text) {
  static const std::string replacement = "\xEF\xBF\xBD";
  while (text.ends_with(replacement)) text.resize(text.size() - replacement.size());
  text.resize(text.size() - unfinished_utf8(text));
}

std::vector<std::string> all_stops(const ChatSettings& s) {
  std::vector<std::string> stops{"###"};
  for (const auto& x : s.stop)
    if (!x.empty()) stops.push_back(x);
  return stops;
}

}  // namespace

std::string visible_answer(const std::string& raw_decoded, const std::vector<std::string>& stops) {
  std::string text = cut_at_stops(raw_decoded, stops);
  const auto a = text.rfind("Assistant:");
  if (a != std::string::npos) text = text.substr(a + std::string_view("Assistant:").size());
  text.erase(0, std::min(text.size(), text.find_first_not_of(" \t\n\r\v\f")));
  size_t hold = 0;
  for (const auto& s : stops) hold = std::max(hold, partial_stop_suffix(text, s));
  text.resize(text.size() - hold);
  drop_broken_tail(text);
  const auto last = text.find_last_not_of(" \t\n\r\v\f");
  text.resize(last == std::string::npos ? 0 : last + 1);
  return text;
}

ChatSession::ChatSession(ChatBridge model) : model_(std::move(model)) { model_->eval(); }

torch::Tensor ChatSession::to_model(const torch::Tensor& t) const {
  return t.to(model_->llama_proj->weight.device(), torch::kFloat);
}

const std::string& ChatSession::checked_text(const std::string& text) {
  for (const char* marker : {kImageSlot, kQuerySlot})
    if (text.find(marker) != std::string::npos)
      fail("the text holds '{}', which stands for an uploaded medium in the prompt; upload the medium instead", marker);
  return text;
}

void ChatSession::upload_image(const torch::Tensor& pixels) {
  if (!(pixels.dim() == 3 || (pixels.dim() == 4 && pixels.size(0) == 1)))
    fail("upload_image: expected pixels [3,S,S] or [1,3,S,S], got {}", c10::str(pixels.sizes()));
  torch::NoGradGuard no_grad;
  features_.push_back(model_->encode_img(to_model(pixels.dim() == 3 ? pixels.unsqueeze(0) : pixels)));
  conv_.upload(UploadKind::image);
}

void ChatSession::upload_audio(const torch::Tensor& fbank) {
  if (fbank.dim() != 3) fail("upload_audio: expected an fbank [n,T,F], got {}", c10::str(fbank.sizes()));
  torch::NoGradGuard no_grad;
  features_.push_back(model_->encode_audio(to_model(fbank.unsqueeze(0))));
  conv_.upload(UploadKind::audio);
}

void ChatSession::upload_video(const torch::Tensor& frames, const std::optional<torch::Tensor>& fbank) {
  if (frames.dim() != 4) fail("upload_video: expected frames [n,3,S,S], got {}", c10::str(frames.sizes()));
  if (fbank && fbank->dim() != 3) fail("upload_video: expected an fbank [n,T,F], got {}", c10::str(fbank->sizes()));
  torch::NoGradGuard no_grad;
  features_.push_back(model_->encode_img(to_model(frames.unsqueeze(0))));
  if (fbank) features_.push_back(model_->encode_audio(to_model(fbank->unsqueeze(0))));
  conv_.upload(fbank ? UploadKind::video : UploadKind::onlyvideo);
}

void ChatSession::upload_image_audio(const torch::Tensor& pixels, const torch::Tensor& fbank) {
  if (pixels.dim() != 3) fail("upload_image_audio: expected pixels [3,S,S], got {}", c10::str(pixels.sizes()));
  if (fbank.dim() != 3) fail("upload_image_audio: expected an fbank [n,T,F], got {}", c10::str(fbank.sizes()));
  torch::NoGradGuard no_grad;
  features_.push_back(model_->encode_img(to_model(pixels.unsqueeze(0))));
  features_.push_back(model_->encode_audio(to_model(fbank.unsqueeze(0))));
  conv_.upload(UploadKind::imageaudio);
}

void ChatSession::reset() {
  conv_.messages.clear();
  features_.clear();
}

GenerateOptions generate_options(const ChatSettings& s, const LlamaTokenizer& tokenizer) {
  if (s.num_beams < 1 || s.num_beams > kMaxChatBeams)
    fail("num_beams must be in 1..{}, got {}", kMaxChatBeams, s.num_beams);
  if (s.max_new_tokens < 1 || s.max_new_tokens >= s.max_length)
    fail("max_new_tokens must be in 1..{} (below max_length, which the prompt shares), got {}", s.max_length - 1,
         s.max_new_tokens);
  if (s.do_sample && !(s.temperature > 0)) fail("temperature must be > 0, got {}", s.temperature);
  if (!(s.top_p > 0 && s.top_p <= 1)) fail("top_p must be in (0, 1], got {}", s.top_p);
  if (s.top_logprobs && (*s.top_logprobs < 0 || *s.top_logprobs > kMaxTopLogprobs))
    fail("top_logprobs must be in 0..{}, got {}", kMaxTopLogprobs, *s.top_logprobs);
  if (s.top_logprobs && s.num_beams > 1)
    fail("log-probabilities are reported for num_beams 1 only (beam search keeps several hypotheses), got {}",
         s.num_beams);
  GenerateOptions o;
  o.max_new_tokens = s.max_new_tokens;
  o.num_beams = s.num_beams;
  o.do_sample = s.do_sample && s.temperature >= kMinSamplingTemperature;
  o.temperature = s.temperature;
  o.top_p = s.top_p;
  o.top_k = s.top_k;
  o.repetition_penalty = s.repetition_penalty;
  o.frequency_penalty = s.frequency_penalty;
  o.presence_penalty = s.presence_penalty;
  o.logit_bias = s.logit_bias;
  // "###" as the demo's StoppingCriteriaSub; the extra stops too, so beam search (which streams no
  // tokens to check the text of) ends on them as well.
  o.stop_sequences = stop_sequences_for(tokenizer);
  for (const auto& x : s.stop)
    if (!x.empty())
      for (auto& seq : stop_sequences_for(tokenizer, x)) o.stop_sequences.push_back(std::move(seq));
  return o;
}

std::string ChatSession::answer(const ChatSettings& s, const TextCallback& on_text,
                                const std::function<void()>& on_start) {
  const auto& tok = model_->tokenizer();
  auto o = generate_options(s, tok);
  conv_.append_message(conv_.roles.second, std::nullopt);
  try {
    torch::NoGradGuard no_grad;
    const int64_t room = s.cut_long_prompt ? s.max_length : std::numeric_limits<int64_t>::max();
    auto embs = get_context_emb(*model_, conv_.get_prompt(), features_, s.max_new_tokens, room);
    if (embs.size(1) + s.max_new_tokens > s.max_length)
      fail(
          "the prompt takes {} positions and the answer up to {} (max_new_tokens): more than the {} of max_length; "
          "shorten the conversation or ask for fewer tokens",
          embs.size(1), s.max_new_tokens, s.max_length);
    // RoPE extends past the trained positions (as HF's does), but a model is only known to answer
    // within them: the tiny LLaMA has 512, Vicuna 2048, max_length 2000.
    const auto trained = model_->llama_model->config().max_position_embeddings;
    if (embs.size(1) + s.max_new_tokens > trained && !std::exchange(warned_positions_, true))
      spdlog::warn(
          "the prompt ({} positions) and up to {} new tokens pass the LLaMA's max_position_embeddings ({}): "
          "answers there may degrade",
          embs.size(1), s.max_new_tokens, trained);
    if (on_start) on_start();
    const auto stops = all_stops(s);
    const auto has_stop = [&](const std::string& raw) {
      return std::any_of(stops.begin(), stops.end(), [&](const auto& x) { return raw.find(x) != std::string::npos; });
    };
    std::vector<int64_t> generated;
    std::string shown;
    size_t visible = 0;      // the visible answer's length after the tokens so far
    bool cancelled = false;  // the caller asked to stop
    logprobs_.clear(), starts_.clear(), released_ = taken_ = 0;
    torch::Tensor step_logits;  // [V], this step's
    if (s.top_logprobs) o.on_logits = [&](const torch::Tensor& logits) { step_logits = logits[0]; };
    if (o.num_beams == 1)  // beam search has no answer before its end: nothing to stream
      o.on_token = [&](const torch::Tensor& next) {
        generated.push_back(next[0].item<int64_t>());
        if (s.top_logprobs) {
          const auto lp = step_logits.to(torch::kCPU, torch::kFloat).log_softmax(-1);
          TokenLogprob t{generated.back(), lp[generated.back()].item<double>(), {}};
          if (*s.top_logprobs > 0) {
            const auto [values, ids] = lp.topk(*s.top_logprobs);
            for (int64_t k = 0; k < values.size(0); ++k)
              t.top.emplace_back(ids[k].item<int64_t>(), values[k].item<double>());
          }
          logprobs_.push_back(std::move(t));
          starts_.push_back(visible);
        }
        const auto raw = tok.decode(generated);
        if (on_text || s.top_logprobs) {
          const auto vis = visible_answer(raw, stops);
          visible = vis.size();
          if (on_text && vis.size() > shown.size() && vis.starts_with(shown)) {
            release_logprobs(vis.size());
            cancelled = on_text(vis.substr(shown.size()));
            shown = vis;
          }
        }
        return cancelled || has_stop(raw);
      };
    if (s.seed) torch::manual_seed(*s.seed);
    const auto autocast = model_->maybe_autocast();
    auto out = generate_from_embeds(model_->llama_model, embs, torch::Tensor(), o);
    auto seq = out.sequences[0].to(torch::kCPU).contiguous();  // [1 + steps]: the bos placeholder first
    std::vector<int64_t> ids(seq.data_ptr<int64_t>(), seq.data_ptr<int64_t>() + seq.numel());
    generated.assign(ids.begin() + 1, ids.begin() + 1 + out.new_tokens[0]);
    stats_.prompt_positions = embs.size(1);
    stats_.generated_tokens = static_cast<int64_t>(generated.size());
    const bool eos = !generated.empty() && generated.back() == tok.eos_id();
    stats_.hit_token_limit =
        stats_.generated_tokens >= s.max_new_tokens && !eos && !cancelled && !has_stop(tok.decode(generated));
    auto text = strip_whitespace(cut_at_stops(postprocess_answer(tok, ids), stops));
    if (stats_.hit_token_limit) {  // the limit may cut a character's bytes apart
      drop_broken_tail(text);
      text = strip_whitespace(text);
    }
    // The streamed pieces end where the final text does; send what was held back (or diverged), or
    // with beams the whole answer.
    release_logprobs(text.size());
    if (on_text && text.size() > shown.size() && text.starts_with(shown)) on_text(text.substr(shown.size()));
    conv_.messages.back().second = text;
    return text;
  } catch (...) {
    conv_.messages.pop_back();
    throw;
  }
}

void ChatSession::release_logprobs(size_t shown) {
  while (released_ < starts_.size() && starts_[released_] < shown) ++released_;
}

std::vector<TokenLogprob> ChatSession::take_logprobs() {
  std::vector<TokenLogprob> out(logprobs_.begin() + static_cast<std::ptrdiff_t>(taken_),
                                logprobs_.begin() + static_cast<std::ptrdiff_t>(released_));
  taken_ = released_;
  return out;
}

}  // namespace cb
