// sentencepiece's BPE encoder/decoder (SentencePieceProcessor::EncodeAsIds / DecodeIds for a
// model_type=BPE model), reimplemented natively and reproducing it exactly: identity normalisation
// with dummy prefix and whitespace escaping to U+2581, user-defined pieces kept whole, greedy merges by
// piece score (ties → leftmost pair), unused-piece resegmentation, byte fallback for pieces not in the
// vocab, and decoding with byte pieces assembled into UTF-8 (invalid bytes → U+FFFD) and the
// leading-whitespace rule.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "models/sentencepiece_model.h"

namespace cb {

class SentencePieceBpe {
 public:
  // Fails (cb::Error naming the model file) for non-BPE models and normalisation rules other than
  // identity (a precompiled charsmap), which this implementation does not reproduce.
  explicit SentencePieceBpe(SentencePieceModel model);

  std::vector<int> encode(std::string_view text) const;
  std::string decode(std::span<const int64_t> ids) const;  // ids outside [0, size) → cb::Error

  int size() const { return static_cast<int>(model_.pieces.size()); }
  int unk_id() const { return unk_id_; }
  int piece_to_id(std::string_view piece) const;  // unk id for pieces not in the vocab
  const std::string& id_to_piece(int id) const;   // cb::Error outside [0, size)
  bool is_control(int id) const { return type(id) == SentencePieceModel::PieceType::Control; }
  bool is_unknown(int id) const { return type(id) == SentencePieceModel::PieceType::Unknown; }
  bool is_byte(int id) const { return type(id) == SentencePieceModel::PieceType::Byte; }
  const SentencePieceModel& model() const { return model_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using PieceMap = std::unordered_map<std::string, int, Hash, std::equal_to<>>;

  SentencePieceModel::PieceType type(int id) const { return model_.pieces[id].type; }
  size_t user_defined_prefix(std::string_view s) const;  // length of the longest user piece at s, or 0
  std::string normalize(std::string_view text) const;
  // BPE over the normalized string: (piece, id) with unk id for symbols outside the vocab.
  std::vector<std::pair<std::string_view, int>> merge(std::string_view normalized) const;

  SentencePieceModel model_;
  PieceMap normal_;    // NORMAL, USER_DEFINED, UNUSED pieces: the ones merges may produce
  PieceMap reserved_;  // CONTROL, UNKNOWN, BYTE pieces
  std::vector<std::string_view> user_defined_;
  size_t user_defined_max_len_ = 0;
  int unk_id_ = 0;
  int byte_ids_[256];  // byte value → id of its <0xXX> piece (byte_fallback models)
};

}  // namespace cb
