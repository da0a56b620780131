// The LLaMA tokenizer as ChatBridge uses it: transformers-4.28 slow `LlamaTokenizer`
// (legacy behaviour) on top of sentencepiece BPE.
//  * encode: the text is first split around "no-split" tokens (the unk/bos/eos pieces and any
//    tokens of an HF directory's added_tokens.json); every other chunk is encoded by sentencepiece on
//    its own (so each chunk gets its own dummy-prefix '▁'); bos is prepended when special tokens are
//    requested, eos never is.
//  * decode: sentencepiece decode.
//  * batches: right padding to the longest row with the pad id (ChatBridge sets pad = eos) and
//    transformers' truncation to max_length.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "models/sentencepiece_bpe.h"

namespace cb {

struct TokenBatch {
  torch::Tensor input_ids;       // [B, L] int64, right padded with the pad id
  torch::Tensor attention_mask;  // [B, L] int64, 1 on tokens, 0 on padding
};

class LlamaTokenizer {
 public:
  // `path`: a sentencepiece .model file, or an HF directory holding tokenizer.model (and optionally
  // added_tokens.json).
  static LlamaTokenizer load(const std::filesystem::path& path);
  explicit LlamaTokenizer(SentencePieceModel model, std::vector<std::string> added_tokens = {});

  // tokenizer(text, add_special_tokens=add_bos).input_ids
  std::vector<int64_t> encode(std::string_view text, bool add_bos) const;
  // sentencepiece decode (special tokens print nothing); added-token ids print their text.
  std::string decode(std::span<const int64_t> ids) const;
  // tokenizer(texts, padding="longest", truncation=max_length.has_value(), max_length=...,
  //           add_special_tokens=add_bos, return_tensors="pt")
  TokenBatch encode_batch(const std::vector<std::string>& texts, bool add_bos,
                          std::optional<int64_t> max_length = std::nullopt) const;

  int64_t vocab_size() const { return sp_.size() + static_cast<int64_t>(added_.size()); }
  const std::string& id_to_piece(int64_t id) const;
  int64_t piece_to_id(std::string_view piece) const;  // unk id for unknown pieces
  int64_t unk_id() const { return unk_id_; }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t pad_id() const { return eos_id_; }  // ChatBridge: llama_tokenizer.pad_token = eos_token
  const SentencePieceBpe& sentencepiece() const { return sp_; }

 private:
  struct NoSplitToken {
    std::string text;
    int64_t id;
    bool strip_neighbours;  // plain added tokens: transformers strips whitespace around them
  };
  struct Chunk {
    std::string_view text;  // plain text for sentencepiece, or
    int64_t token = -1;     // the id of a no-split token
  };
  // transformers' Trie.split (leftmost-longest) and the neighbour stripping of tokenize().
  std::vector<Chunk> split(std::string_view text) const;

  SentencePieceBpe sp_;
  std::vector<std::string> added_;  // id = sp_.size() + index
  std::vector<NoSplitToken> no_split_;
  int64_t unk_id_, bos_id_, eos_id_;
};

}  // namespace cb
