#include "models/sentencepiece_bpe.h"

#include <algorithm>
#include <functional>
#include <queue>

#include "framework/error.h"
#include "framework/text/utf8.h"

namespace cb {
namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// sentencepiece's UTF-8 decoder (string_util::DecodeUTF8): the code point and its byte length, or
// (U+FFFD, 1) for a malformed, overlong, surrogate or truncated sequence.
std::pair<char32_t, size_t> decode_utf8(std::string_view s) {
  char32_t c = 0;
  const int n = utf8_char_at(s, 0, &c);
  if (n == 0) return {0xFFFD, 1};
  return {c, static_cast<size_t>(n)};
}

// string_util::IsValidDecodeUTF8: a literal U+FFFD (3 bytes) counts as valid.
bool valid_utf8_prefix(std::string_view s, size_t* len) {
  const auto [c, n] = decode_utf8(s);
  *len = n;
  return c != 0xFFFD || n == 3;
}

// Length of one character judged by its lead byte only (string_util::OneCharLen), clipped to `s`.
size_t one_char_len(std::string_view s) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return std::min<size_t>(s.size(), kLen[static_cast<uint8_t>(s[0]) >> 4]);
}

}  // namespace

SentencePieceBpe::SentencePieceBpe(SentencePieceModel model) : model_(std::move(model)) {
  using T = SentencePieceModel::PieceType;
  const auto& src = model_.source;
  if (model_.trainer_spec.model_type != SentencePieceModel::ModelType::Bpe)
    fail("{}: sentencepiece model_type {} is not supported: only BPE models (LLaMA/Vicuna) are implemented", src,
         to_string(model_.trainer_spec.model_type));
  for (const auto* spec : {&model_.normalizer_spec, &model_.denormalizer_spec})
    if (!spec->precompiled_charsmap.empty())
      fail("{}: sentencepiece normalization rule '{}' (precompiled charsmap) is not supported; only identity", src,
           spec->name);

  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  for (int i = 0; i < size(); ++i) {
    const auto& p = model_.pieces[i];
    const bool normal = p.type == T::Normal || p.type == T::UserDefined || p.type == T::Unused;
    (normal ? normal_ : reserved_).emplace(p.piece, i);
    if (p.type == T::UserDefined) user_defined_max_len_ = std::max(user_defined_max_len_, p.piece.size());
    if (p.type == T::Unknown) unk_id_ = i;
    if (p.type == T::Byte) byte_ids_[piece_to_byte(p.piece)] = i;
  }
}

int SentencePieceBpe::piece_to_id(std::string_view piece) const {
  if (auto it = reserved_.find(piece); it != reserved_.end()) return it->second;
  if (auto it = normal_.find(piece); it != normal_.end()) return it->second;
  return unk_id_;
}

const std::string& SentencePieceBpe::id_to_piece(int id) const {
  if (id < 0 || id >= size()) fail("{}: token id {} is outside the vocabulary [0, {})", model_.source, id, size());
  return model_.pieces[id].piece;
}

size_t SentencePieceBpe::user_defined_prefix(std::string_view s) const {
  for (size_t len = std::min(user_defined_max_len_, s.size()); len > 0; --len) {
    auto it = normal_.find(s.substr(0, len));
    if (it != normal_.end() && type(it->second) == SentencePieceModel::PieceType::UserDefined) return len;
  }
  return 0;
}

// Normalizer::Normalize without a charsmap (identity rule): user pieces pass through, malformed
// bytes become U+FFFD one byte at a time, ' ' → '▁', optional dummy prefix and whitespace squeezing.
std::string SentencePieceBpe::normalize(std::string_view input) const {
  const auto& spec = model_.normalizer_spec;
  const bool suffix = model_.trainer_spec.treat_whitespace_as_suffix;
  std::string out;
  if (input.empty()) return out;
  // The next normalisation unit at the front of `s` and the number of input bytes it consumes.
  auto next_unit = [&](std::string_view s) -> std::pair<std::string_view, size_t> {
    if (size_t n = user_defined_prefix(s)) return {s.substr(0, n), n};
    size_t n = 0;
    if (!valid_utf8_prefix(s, &n)) return {kReplacementChar, 1};
    return {s.substr(0, n), n};
  };
  if (spec.remove_extra_whitespaces)
    while (!input.empty() && next_unit(input).first == " ") input.remove_prefix(1);
  if (input.empty()) return out;

  const std::string_view space = spec.escape_whitespaces ? kSpaceSymbol : " ";
  out.reserve(input.size() * 3);
  if (!suffix && spec.add_dummy_prefix) out += space;
  bool prev_space = spec.remove_extra_whitespaces;
  while (!input.empty()) {
    auto [unit, consumed] = next_unit(input);
    if (prev_space)
      while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
    if (!unit.empty()) {
      for (char c : unit) {
        if (c == ' ') out += space;
        else out += c;
      }
      prev_space = unit.back() == ' ';
    }
    input.remove_prefix(consumed);
    if (!spec.remove_extra_whitespaces) prev_space = false;
  }
  if (spec.remove_extra_whitespaces)
    while (out.size() >= space.size() && std::string_view(out).substr(out.size() - space.size()) == space)
      out.resize(out.size() - space.size());
  if (suffix && spec.add_dummy_prefix) out += space;
  return out;
}

// bpe::Model::SampleEncode with alpha = 0: start from characters (user pieces frozen whole) and
// repeatedly merge the adjacent pair whose concatenation is the highest-scoring vocabulary piece,
// ties broken towards the leftmost pair. A max-heap of candidate pairs with lazy invalidation
// keeps this O(n log n).
std::vector<std::pair<std::string_view, int>> SentencePieceBpe::merge(std::string_view normalized) const {
  struct Symbol {
    int prev, next;
    bool freeze;
    std::string_view piece;
  };
  struct Pair {
    float score;
    int left, right;
    size_t size;  // byte length of the merged piece; a mismatch marks the entry stale
  };
  auto lower = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(lower)> agenda(lower);
  std::vector<Symbol> symbols;
  // merged UNUSED piece → the two symbols it came from, to split it again afterwards
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;

  auto add_pair = [&](int left, int right) {
    if (left < 0 || right < 0 || symbols[left].freeze || symbols[right].freeze) return;
    const std::string_view piece(symbols[left].piece.data(), symbols[left].piece.size() + symbols[right].piece.size());
    auto it = normal_.find(piece);
    if (it == normal_.end()) return;
    agenda.push({model_.pieces[it->second].score, left, right, piece.size()});
    if (type(it->second) == SentencePieceModel::PieceType::Unused)
      rev_merge[piece] = {symbols[left].piece, symbols[right].piece};
  };

  for (std::string_view rest = normalized; !rest.empty();) {
    const size_t user = user_defined_prefix(rest);
    const size_t len = user ? user : one_char_len(rest);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, len == rest.size() ? -1 : index + 1, user > 0, rest.substr(0, len)});
    rest.remove_prefix(len);
  }
  if (symbols.empty()) return {};
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) add_pair(i - 1, i);

  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = symbols[top.left];
    Symbol& r = symbols[top.right];
    if (l.piece.empty() || r.piece.empty() || l.piece.size() + r.piece.size() != top.size) continue;
    l.piece = std::string_view(l.piece.data(), top.size);
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = top.left;
    r.piece = {};
    add_pair(l.prev, top.left);
    add_pair(top.left, l.next);
  }

  std::vector<std::pair<std::string_view, int>> out;
  std::function<void(std::string_view)> resegment = [&](std::string_view w) {
    const int id = piece_to_id(w);
    auto it = type(id) == SentencePieceModel::PieceType::Unused ? rev_merge.find(w) : rev_merge.end();
    if (it == rev_merge.end()) {
      out.emplace_back(w, id);
      return;
    }
    resegment(it->second.first);
    resegment(it->second.second);
  };
  for (int i = 0; i != -1; i = symbols[i].next) resegment(symbols[i].piece);
  return out;
}

// SentencePieceProcessor::Encode → ids: an unknown piece becomes its UTF-8 bytes as <0xXX> pieces
// with byte_fallback, otherwise a run of unknown pieces collapses into one unk id.
std::vector<int> SentencePieceBpe::encode(std::string_view text) const {
  const std::string normalized = normalize(text);
  std::vector<int> ids;
  bool prev_unk = false;
  for (const auto& [piece, id] : merge(normalized)) {
    const bool unk = is_unknown(id);
    if (unk && model_.trainer_spec.byte_fallback) {
      for (char c : piece) ids.push_back(byte_ids_[static_cast<uint8_t>(c)]);
    } else if (!(unk && prev_unk)) {
      ids.push_back(id);
    }
    prev_unk = unk;
  }
  return ids;
}

// SentencePieceProcessor::Decode: control pieces vanish, <unk> prints unk_surface, runs of byte
// pieces are reassembled into UTF-8 (each malformed byte → U+FFFD), '▁' → ' ', and the first
// piece's leading '▁' (the dummy prefix) is dropped — only once, and only while nothing visible
// has been produced yet.
std::string SentencePieceBpe::decode(std::span<const int64_t> ids) const {
  const auto& norm = model_.normalizer_spec;
  std::string text;
  auto flush_bytes = [&](size_t begin, size_t end) {
    std::string bytes;
    for (size_t i = begin; i < end; ++i) bytes += static_cast<char>(piece_to_byte(model_.pieces[ids[i]].piece));
    for (size_t off = 0; off < bytes.size();) {
      size_t n = 0;
      if (valid_utf8_prefix(std::string_view(bytes).substr(off), &n)) text.append(bytes, off, n);
      else text += kReplacementChar;
      off += n;
    }
  };

  bool is_bos_ws = true;  // a leading '▁' may still be consumed
  bool bos_ws_seen = false;
  size_t byte_start = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= size())
      fail("{}: cannot decode token id {}: outside the vocabulary [0, {})", model_.source, ids[i], size());
    const int id = static_cast<int>(ids[i]);
    if (is_byte(id)) continue;
    flush_bytes(byte_start, i);
    byte_start = i + 1;
    if (bos_ws_seen || !text.empty()) is_bos_ws = false;
    bos_ws_seen = false;
    if (is_control(id)) continue;
    if (is_unknown(id)) {
      text += model_.trainer_spec.unk_surface;
      continue;
    }
    std::string_view piece = model_.pieces[id].piece;
    if (is_bos_ws && (norm.add_dummy_prefix || norm.remove_extra_whitespaces) && piece.starts_with(kSpaceSymbol)) {
      piece.remove_prefix(kSpaceSymbol.size());
      bos_ws_seen = !norm.remove_extra_whitespaces;
    }
    text += unescape_spaces(piece);
  }
  flush_bytes(byte_start, ids.size());
  return text;
}

}  // namespace cb
