// A sentencepiece `.model` file (a serialized `sentencepiece.ModelProto`), read with a small
// bounds-checked protobuf wire-format reader so that no protobuf/libsentencepiece runtime is linked
// (Debian's libsentencepiece and LibTorch carry incompatible protobufs). Only the fields the encoder
// and decoder need are kept; defaults are those of sentencepiece_model.proto.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace cb {

struct SentencePieceModel {
  enum class PieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
  enum class ModelType { Unigram = 1, Bpe = 2, Word = 3, Char = 4 };

  struct Piece {
    std::string piece;
    float score = 0.f;
    PieceType type = PieceType::Normal;
  };

  struct TrainerSpec {
    ModelType model_type = ModelType::Unigram;
    int32_t vocab_size = 8000;
    bool byte_fallback = false;
    bool split_digits = false;
    bool treat_whitespace_as_suffix = false;
    bool allow_whitespace_only_pieces = false;
    int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
    std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>", pad_piece = "<pad>";
    std::string unk_surface = " \xE2\x81\x87 ";  // " ⁇ ", what decode prints for <unk>
  };

  struct NormalizerSpec {
    bool present = false;  // the field was in the file
    std::string name;
    std::string precompiled_charsmap;  // empty for the identity rule (LLaMA)
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = true;
    bool escape_whitespaces = true;
  };

  std::vector<Piece> pieces;  // id = index
  TrainerSpec trainer_spec;
  NormalizerSpec normalizer_spec;
  NormalizerSpec denormalizer_spec;
  std::string source;  // file the model came from, for error messages

  // Reads and validates the file; any malformed or truncated content → cb::Error naming the file.
  static SentencePieceModel load(const std::filesystem::path& path);
  // Parses serialized ModelProto bytes; `source` names them in errors.
  static SentencePieceModel parse(std::string_view bytes, const std::string& source);
};

const char* to_string(SentencePieceModel::ModelType t);

// "<0xAB>" → 0xAB, or -1 if `piece` is not a byte-fallback piece.
int piece_to_byte(std::string_view piece);

// sentencepiece's whitespace mark U+2581 '▁' in a piece, as Decode shows it: a space.
inline constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";
std::string unescape_spaces(std::string_view piece);

}  // namespace cb
