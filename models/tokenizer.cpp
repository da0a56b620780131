#include "models/tokenizer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "framework/error.h"
#include "framework/json_file.h"
#include "framework/text/python_str.h"

namespace cb {
namespace {

// Code point of the well-formed UTF-8 character starting at s[i] and its length (1 for a stray byte).
std::pair<char32_t, size_t> code_point_at(std::string_view s, size_t i) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  const size_t n = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 1;
  if (n == 1 || i + n > s.size()) return {b0, 1};
  char32_t c = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if ((b & 0xC0) != 0x80) return {b0, 1};
    c = (c << 6) | (b & 0x3F);
  }
  return {c, n};
}

// str.lstrip() / str.rstrip() on UTF-8 (stray bytes count as non-space characters).
std::string_view lstrip(std::string_view s) {
  while (!s.empty()) {
    auto [c, n] = code_point_at(s, 0);
    if (!pystr::is_space(c)) break;
    s.remove_prefix(n);
  }
  return s;
}

std::string_view rstrip(std::string_view s) {
  size_t end = 0;  // one past the last non-space character
  for (size_t i = 0; i < s.size();) {
    auto [c, n] = code_point_at(s, i);
    i += n;
    if (!pystr::is_space(c)) end = i;
  }
  return s.substr(0, end);
}

// added_tokens.json: {"token": id, ...} with ids continuing the sentencepiece vocabulary.
std::vector<std::string> read_added_tokens(const std::filesystem::path& file, int64_t base) {
  const auto j = read_json_file(file, "added tokens file");
  if (!j.is_object()) fail("{}: not a JSON object of token → id", file.string());
  std::vector<std::pair<int64_t, std::string>> by_id;
  for (auto& [token, id] : j.items()) {
    if (!id.is_number_integer()) fail("{}: id of added token '{}' is not an integer", file.string(), token);
    by_id.emplace_back(id.get<int64_t>(), token);
  }
  std::sort(by_id.begin(), by_id.end());
  std::vector<std::string> tokens;
  for (auto& [id, token] : by_id) {
    const int64_t want = base + static_cast<int64_t>(tokens.size());
    if (id != want)
      fail("{}: added token '{}' has id {}, expected {} (ids must continue the sentencepiece vocabulary)",
           file.string(), token, id, want);
    tokens.push_back(token);
  }
  return tokens;
}

}  // namespace

LlamaTokenizer LlamaTokenizer::load(const std::filesystem::path& path) {
  if (!std::filesystem::is_directory(path)) return LlamaTokenizer(SentencePieceModel::load(path));
  const auto model_file = path / "tokenizer.model";
  if (!std::filesystem::exists(model_file))
    fail("{}: no tokenizer.model in this directory (expected an HF LLaMA/Vicuna directory)", path.string());
  auto model = SentencePieceModel::load(model_file);
  std::vector<std::string> added;
  if (const auto added_file = path / "added_tokens.json"; std::filesystem::exists(added_file))
    added = read_added_tokens(added_file, static_cast<int64_t>(model.pieces.size()));
  return LlamaTokenizer(std::move(model), std::move(added));
}

LlamaTokenizer::LlamaTokenizer(SentencePieceModel model, std::vector<std::string> added_tokens)
    : sp_(std::move(model)), added_(std::move(added_tokens)) {
  const auto& spec = sp_.model().trainer_spec;
  const auto& src = sp_.model().source;
  auto special = [&](int32_t id, const char* what) -> int64_t {
    if (id < 0 || id >= sp_.size())
      fail("{}: the LLaMA tokenizer needs a {} piece, but {}_id is {} (vocabulary size {})", src, what, what, id,
           sp_.size());
    return id;
  };
  unk_id_ = special(spec.unk_id, "unk");
  bos_id_ = special(spec.bos_id, "bos");
  eos_id_ = special(spec.eos_id, "eos");
  // LlamaTokenizer wraps unk/bos/eos in AddedToken(lstrip=False, rstrip=False): split out, no stripping.
  for (int64_t id : {unk_id_, bos_id_, eos_id_})
    no_split_.push_back({sp_.id_to_piece(static_cast<int>(id)), id, false});
  for (size_t i = 0; i < added_.size(); ++i)
    no_split_.push_back({added_[i], sp_.size() + static_cast<int64_t>(i), true});
  spdlog::debug("LLaMA tokenizer {}: {} pieces + {} added tokens, unk {} bos {} eos {}", src, sp_.size(), added_.size(),
                unk_id_, bos_id_, eos_id_);
}

std::vector<LlamaTokenizer::Chunk> LlamaTokenizer::split(std::string_view text) const {
  std::vector<Chunk> chunks;
  std::vector<bool> strip;  // per chunk: strip whitespace of both neighbours
  size_t start = 0;
  for (size_t i = 0; i < text.size();) {
    const NoSplitToken* best = nullptr;
    for (const auto& t : no_split_)
      if (text.substr(i).starts_with(t.text) && (!best || t.text.size() > best->text.size())) best = &t;
    if (!best) {
      ++i;
      continue;
    }
    if (i > start) {
      chunks.push_back({text.substr(start, i - start)});
      strip.push_back(false);
    }
    chunks.push_back({{}, best->id});
    strip.push_back(best->strip_neighbours);
    i += best->text.size();
    start = i;
  }
  if (start < text.size()) {
    chunks.push_back({text.substr(start)});
    strip.push_back(false);
  }
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!strip[i]) continue;
    if (i > 0 && chunks[i - 1].token < 0) chunks[i - 1].text = rstrip(chunks[i - 1].text);
    if (i + 1 < chunks.size() && chunks[i + 1].token < 0) chunks[i + 1].text = lstrip(chunks[i + 1].text);
  }
  return chunks;
}

std::vector<int64_t> LlamaTokenizer::encode(std::string_view text, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos) ids.push_back(bos_id_);
  for (const auto& chunk : split(text)) {
    if (chunk.token >= 0) {
      ids.push_back(chunk.token);
    } else if (!chunk.text.empty()) {  // fully stripped chunks are skipped
      for (int id : sp_.encode(chunk.text)) ids.push_back(id);
    }
  }
  return ids;
}

std::string LlamaTokenizer::decode(std::span<const int64_t> ids) const {
  std::string text;
  size_t run = 0;  // start of the current run of sentencepiece ids
  for (size_t i = 0; i <= ids.size(); ++i) {
    if (i < ids.size() && ids[i] < sp_.size()) continue;
    text += sp_.decode(ids.subspan(run, i - run));
    if (i < ids.size()) text += id_to_piece(ids[i]);
    run = i + 1;
  }
  return text;
}

TokenBatch LlamaTokenizer::encode_batch(const std::vector<std::string>& texts, bool add_bos,
                                        std::optional<int64_t> max_length) const {
  std::vector<std::vector<int64_t>> rows;
  int64_t longest = 0;
  for (const auto& t : texts) {
    auto ids = encode(t, false);
    if (max_length) {
      // transformers truncate_sequences (right side): remove len + specials - max_length ids, but
      // only if that leaves at least one id; otherwise it logs an error and keeps the row whole.
      const int64_t specials = add_bos ? 1 : 0;
      const int64_t remove = static_cast<int64_t>(ids.size()) + specials - *max_length;
      if (remove > 0) {
        if (static_cast<int64_t>(ids.size()) > remove) {
          ids.resize(ids.size() - remove);
        } else {
          spdlog::error("tokenizer: cannot truncate a {}-token text to max_length {}; kept whole (as transformers)",
                        ids.size(), *max_length);
        }
      }
    }
    if (add_bos) ids.insert(ids.begin(), bos_id_);
    longest = std::max<int64_t>(longest, static_cast<int64_t>(ids.size()));
    rows.push_back(std::move(ids));
  }
  const auto n = static_cast<int64_t>(rows.size());
  TokenBatch b{torch::full({n, longest}, pad_id(), torch::kInt64), torch::zeros({n, longest}, torch::kInt64)};
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto mask = b.attention_mask.accessor<int64_t, 2>();
  for (int64_t r = 0; r < n; ++r)
    for (size_t c = 0; c < rows[r].size(); ++c) {
      ids[r][c] = rows[r][c];
      mask[r][c] = 1;
    }
  return b;
}

const std::string& LlamaTokenizer::id_to_piece(int64_t id) const {
  if (id >= sp_.size() && id < vocab_size()) return added_[id - sp_.size()];
  if (id < 0 || id >= vocab_size())
    fail("{}: token id {} is outside the vocabulary [0, {})", sp_.model().source, id, vocab_size());
  return sp_.id_to_piece(static_cast<int>(id));
}

int64_t LlamaTokenizer::piece_to_id(std::string_view piece) const {
  for (size_t i = 0; i < added_.size(); ++i)
    if (added_[i] == piece) return sp_.size() + static_cast<int64_t>(i);
  return sp_.piece_to_id(piece);
}

}  // namespace cb
