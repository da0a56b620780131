#include "models/sentencepiece_model.h"

#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "framework/error.h"

namespace cb {
namespace {

// Protobuf wire format (https://protobuf.dev/programming-guides/encoding/): a message is a sequence
// of (tag varint = field << 3 | wire type, value). Every read checks the remaining length.
enum WireType {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kFixed32 = 5
};  // groups (3, 4) are unused by sentencepiece

class WireReader {
 public:
  WireReader(std::string_view buf, const std::string& source, size_t base_offset = 0)
      : buf_(buf), source_(source), base_(base_offset) {}

  bool done() const { return pos_ == buf_.size(); }

  // Next field: (field number, wire type).
  std::pair<uint32_t, int> tag() {
    const size_t at = pos_;
    const uint64_t t = varint();
    const auto field = static_cast<uint32_t>(t >> 3);
    if (field == 0 || t >> 32) corrupt(at, "invalid field tag");
    return {field, static_cast<int>(t & 7)};
  }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= buf_.size()) corrupt(pos_, "truncated varint");
      const auto b = static_cast<uint8_t>(buf_[pos_++]);
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    corrupt(pos_, "varint longer than 10 bytes");
  }

  // int32/enum fields: negative values are sign-extended to 64 bits on the wire.
  int32_t int32() { return static_cast<int32_t>(static_cast<int64_t>(varint())); }
  bool boolean() { return varint() != 0; }

  float fixed32_float() {
    need(4, "truncated fixed32");
    uint32_t u = 0;
    for (int i = 0; i < 4; ++i) u |= uint32_t(static_cast<uint8_t>(buf_[pos_ + i])) << (8 * i);
    pos_ += 4;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }

  std::string_view bytes() {
    const uint64_t n = varint();
    if (n > buf_.size() - pos_) corrupt(pos_, "length-delimited field runs past the end");
    auto s = buf_.substr(pos_, n);
    pos_ += n;
    return s;
  }

  // A nested message: a reader over its bytes, reporting offsets relative to the whole file.
  WireReader message() {
    auto s = bytes();
    return WireReader(s, source_, base_ + static_cast<size_t>(s.data() - buf_.data()));
  }

  // Checks that a known field has the wire type its declaration implies.
  void expect(int got, int want, const char* field) {
    if (got != want) corrupt(fmt::format("field {} has wire type {}, expected {}", field, got, want));
  }
  // Skips an unknown field (newer sentencepiece versions add fields; extensions too).
  void skip(int wire_type) {
    switch (wire_type) {
      case kVarint: varint(); break;
      case kFixed64:
        need(8, "truncated fixed64");
        pos_ += 8;
        break;
      case kLengthDelimited: bytes(); break;
      case kFixed32:
        need(4, "truncated fixed32");
        pos_ += 4;
        break;
      default: corrupt(pos_, fmt::format("unsupported wire type {}", wire_type));
    }
  }

  [[noreturn]] void corrupt(const std::string& what) const { corrupt(pos_, what); }
  [[noreturn]] void corrupt(size_t at, const std::string& what) const {
    fail("{}: corrupt sentencepiece model: {} at byte {}", source_, what, base_ + at);
  }

 private:
  void need(size_t n, const char* what) {
    if (buf_.size() - pos_ < n) corrupt(pos_, what);
  }

  std::string_view buf_;
  const std::string& source_;
  size_t base_;
  size_t pos_ = 0;
};

SentencePieceModel::Piece read_piece(WireReader r) {
  SentencePieceModel::Piece p;
  while (!r.done()) {
    auto [field, wt] = r.tag();
    switch (field) {
      case 1:
        r.expect(wt, kLengthDelimited, "SentencePiece.piece");
        p.piece = std::string(r.bytes());
        break;
      case 2:
        r.expect(wt, kFixed32, "SentencePiece.score");
        p.score = r.fixed32_float();
        break;
      case 3: {
        r.expect(wt, kVarint, "SentencePiece.type");
        const int32_t t = r.int32();
        if (t < 1 || t > 6) r.corrupt(fmt::format("unknown piece type {} for piece '{}'", t, p.piece));
        p.type = static_cast<SentencePieceModel::PieceType>(t);
        break;
      }
      default: r.skip(wt);
    }
  }
  return p;
}

SentencePieceModel::TrainerSpec read_trainer_spec(WireReader r) {
  SentencePieceModel::TrainerSpec s;
  while (!r.done()) {
    auto [field, wt] = r.tag();
    auto str = [&](std::string& out) {
      r.expect(wt, kLengthDelimited, "TrainerSpec string");
      out = std::string(r.bytes());
    };
    auto i32 = [&](int32_t& out) {
      r.expect(wt, kVarint, "TrainerSpec int32");
      out = r.int32();
    };
    auto flag = [&](bool& out) {
      r.expect(wt, kVarint, "TrainerSpec bool");
      out = r.boolean();
    };
    switch (field) {
      case 3: {
        int32_t t = 0;
        i32(t);
        if (t < 1 || t > 4) r.corrupt(fmt::format("unknown model_type {}", t));
        s.model_type = static_cast<SentencePieceModel::ModelType>(t);
        break;
      }
      case 4: i32(s.vocab_size); break;
      case 24: flag(s.treat_whitespace_as_suffix); break;
      case 25: flag(s.split_digits); break;
      case 26: flag(s.allow_whitespace_only_pieces); break;
      case 35: flag(s.byte_fallback); break;
      case 40: i32(s.unk_id); break;
      case 41: i32(s.bos_id); break;
      case 42: i32(s.eos_id); break;
      case 43: i32(s.pad_id); break;
      case 44: str(s.unk_surface); break;
      case 45: str(s.unk_piece); break;
      case 46: str(s.bos_piece); break;
      case 47: str(s.eos_piece); break;
      case 48: str(s.pad_piece); break;
      default: r.skip(wt);
    }
  }
  return s;
}

SentencePieceModel::NormalizerSpec read_normalizer_spec(WireReader r) {
  SentencePieceModel::NormalizerSpec s;
  s.present = true;
  while (!r.done()) {
    auto [field, wt] = r.tag();
    switch (field) {
      case 1:
        r.expect(wt, kLengthDelimited, "NormalizerSpec.name");
        s.name = std::string(r.bytes());
        break;
      case 2:
        r.expect(wt, kLengthDelimited, "NormalizerSpec.precompiled_charsmap");
        s.precompiled_charsmap = std::string(r.bytes());
        break;
      case 3:
        r.expect(wt, kVarint, "NormalizerSpec.add_dummy_prefix");
        s.add_dummy_prefix = r.boolean();
        break;
      case 4:
        r.expect(wt, kVarint, "NormalizerSpec.remove_extra_whitespaces");
        s.remove_extra_whitespaces = r.boolean();
        break;
      case 5:
        r.expect(wt, kVarint, "NormalizerSpec.escape_whitespaces");
        s.escape_whitespaces = r.boolean();
        break;
      default: r.skip(wt);
    }
  }
  return s;
}

}  // namespace

int piece_to_byte(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const int hi = hex(p[3]), lo = hex(p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string unescape_spaces(std::string_view piece) {
  std::string text;
  for (size_t p = 0; p < piece.size();) {
    if (piece.substr(p).starts_with(kSpaceSymbol)) {
      text += ' ';
      p += kSpaceSymbol.size();
    } else {
      text += piece[p++];
    }
  }
  return text;
}

namespace {

// The invariants sentencepiece checks when it loads a model (model_interface.cc InitializePieces).
void validate(const SentencePieceModel& m) {
  using T = SentencePieceModel::PieceType;
  if (m.pieces.empty()) fail("{}: not a sentencepiece model (no pieces)", m.source);
  std::set<std::string_view> normal, reserved;
  int unk_count = 0;
  std::array<bool, 256> byte_seen{};
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const auto& p = m.pieces[i];
    if (p.piece.empty()) fail("{}: sentencepiece model piece {} is empty", m.source, i);
    const bool is_normal = p.type == T::Normal || p.type == T::UserDefined || p.type == T::Unused;
    if (!(is_normal ? normal : reserved).insert(p.piece).second)
      fail("{}: sentencepiece model piece '{}' is defined twice", m.source, p.piece);
    if (p.type == T::Unknown) ++unk_count;
    if (p.type == T::Byte) {
      if (!m.trainer_spec.byte_fallback)
        fail("{}: byte piece '{}' found although byte_fallback is false", m.source, p.piece);
      const int b = piece_to_byte(p.piece);
      if (b < 0) fail("{}: invalid byte piece '{}'", m.source, p.piece);
      byte_seen[b] = true;
    }
  }
  if (unk_count != 1)
    fail("{}: sentencepiece model must define exactly one unknown piece, found {}", m.source, unk_count);
  if (m.trainer_spec.byte_fallback)
    for (int b = 0; b < 256; ++b)
      if (!byte_seen[b]) fail("{}: byte_fallback is set but byte piece <0x{:02X}> is missing", m.source, b);
}

}  // namespace

const char* to_string(SentencePieceModel::ModelType t) {
  switch (t) {
    case SentencePieceModel::ModelType::Unigram: return "UNIGRAM";
    case SentencePieceModel::ModelType::Bpe: return "BPE";
    case SentencePieceModel::ModelType::Word: return "WORD";
    case SentencePieceModel::ModelType::Char: return "CHAR";
  }
  return "?";
}

SentencePieceModel SentencePieceModel::parse(std::string_view bytes, const std::string& source) {
  SentencePieceModel m;
  m.source = source;
  WireReader r(bytes, m.source);
  while (!r.done()) {
    auto [field, wt] = r.tag();
    switch (field) {
      case 1:
        r.expect(wt, kLengthDelimited, "ModelProto.pieces");
        m.pieces.push_back(read_piece(r.message()));
        break;
      case 2:
        r.expect(wt, kLengthDelimited, "ModelProto.trainer_spec");
        m.trainer_spec = read_trainer_spec(r.message());
        break;
      case 3:
        r.expect(wt, kLengthDelimited, "ModelProto.normalizer_spec");
        m.normalizer_spec = read_normalizer_spec(r.message());
        break;
      case 5:
        r.expect(wt, kLengthDelimited, "ModelProto.denormalizer_spec");
        m.denormalizer_spec = read_normalizer_spec(r.message());
        break;
      default: r.skip(wt);
    }
  }
  validate(m);
  return m;
}

SentencePieceModel SentencePieceModel::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open sentencepiece model", path.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("{}: error reading sentencepiece model", path.string());
  return parse(bytes, path.string());
}

}  // namespace cb
