// Unit tests of the native sentencepiece/LLaMA tokenizer: .model parsing errors, BPE merge order,
// user-defined/unused/unknown pieces on small hand-built models, transformers' special-token
// splitting and batch padding/truncation, and LibTorch + tokenizer in one process.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>

#include "framework/error.h"
#include "models/tokenizer.h"
#include "tests/support/golden.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;
using cb::SentencePieceModel;
using Type = SentencePieceModel::PieceType;

namespace {

// --- a minimal protobuf writer for hand-built ModelProto files ---------------------------------
std::string varint(uint64_t v) {
  std::string s;
  do {
    s += static_cast<char>((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return s;
}
std::string key(int field, int wire_type) { return varint(uint64_t(field) << 3 | wire_type); }
std::string bytes_field(int field, const std::string& b) { return key(field, 2) + varint(b.size()) + b; }
std::string int_field(int field, int64_t v) { return key(field, 0) + varint(static_cast<uint64_t>(v)); }
std::string float_field(int field, float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  std::string s = key(field, 5);
  for (int i = 0; i < 4; ++i) s += static_cast<char>((u >> (8 * i)) & 0xff);
  return s;
}

struct P {
  std::string piece;
  float score;
  Type type = Type::Normal;
};

// A BPE ModelProto: pieces as given, trainer/normalizer specs LLaMA-like unless overridden.
std::string model_proto(const std::vector<P>& pieces, bool byte_fallback = false, int model_type = 2,
                        bool add_dummy_prefix = true) {
  std::string m;
  for (const auto& p : pieces)
    m += bytes_field(1, bytes_field(1, p.piece) + float_field(2, p.score) + int_field(3, static_cast<int>(p.type)));
  m += bytes_field(2, int_field(3, model_type) + int_field(35, byte_fallback) + int_field(43, -1));
  m += bytes_field(3, bytes_field(1, "identity") + int_field(3, add_dummy_prefix) + int_field(4, 0));
  return m;
}

const std::string kSp = "\xE2\x96\x81";  // '▁'

std::vector<P> base_pieces() {
  return {{"<unk>", 0, Type::Unknown}, {"<s>", 0, Type::Control}, {"</s>", 0, Type::Control}};
}

fs::path scratch(const std::string& name) {
  static const auto d = cb::test::fresh_dir("tok");
  return d / name;
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<std::string> pieces_of(const cb::SentencePieceBpe& sp, const std::string& text) {
  std::vector<std::string> out;
  for (int id : sp.encode(text)) out.push_back(sp.id_to_piece(id));
  return out;
}

cb::SentencePieceBpe bpe(const std::vector<P>& extra, bool byte_fallback = false) {
  auto pieces = base_pieces();
  pieces.insert(pieces.end(), extra.begin(), extra.end());
  return cb::SentencePieceBpe(SentencePieceModel::parse(model_proto(pieces, byte_fallback), "test.model"));
}

}  // namespace

// --- .model parsing ---------------------------------------------------------------------------

TEST_CASE("sentencepiece model: a hand-built file parses field by field") {
  auto pieces = base_pieces();
  pieces.push_back({"a", -1.5f});
  pieces.push_back({"<q>", 0, Type::UserDefined});
  const auto m = SentencePieceModel::parse(model_proto(pieces), "hand.model");
  REQUIRE(m.pieces.size() == 5);
  CHECK(m.pieces[0].type == Type::Unknown);
  CHECK(m.pieces[3].piece == "a");
  CHECK(m.pieces[3].score == -1.5f);
  CHECK(m.pieces[4].type == Type::UserDefined);
  CHECK(m.trainer_spec.model_type == SentencePieceModel::ModelType::Bpe);
  CHECK(m.trainer_spec.pad_id == -1);  // negative int32: 10-byte varint
  CHECK(m.trainer_spec.bos_id == 1);   // proto default when absent
  CHECK(m.normalizer_spec.name == "identity");
  CHECK(m.normalizer_spec.add_dummy_prefix);
  CHECK_FALSE(m.normalizer_spec.remove_extra_whitespaces);
  CHECK(m.normalizer_spec.escape_whitespaces);  // default
}

TEST_CASE("sentencepiece model: the fixture model reads as LLaMA-style BPE") {
  const auto m = SentencePieceModel::load(cb::test::golden_tokenizer());
  CHECK(m.trainer_spec.model_type == SentencePieceModel::ModelType::Bpe);
  CHECK(m.trainer_spec.byte_fallback);
  CHECK(m.normalizer_spec.add_dummy_prefix);
  CHECK_FALSE(m.normalizer_spec.remove_extra_whitespaces);
  CHECK(m.pieces.at(m.trainer_spec.unk_id).type == Type::Unknown);
  CHECK(m.pieces.at(m.trainer_spec.bos_id).type == Type::Control);
  CHECK(m.pieces.at(m.trainer_spec.eos_id).type == Type::Control);
}

TEST_CASE("sentencepiece model: every truncation of a real file fails with the file named") {
  const auto bytes = read_bytes(cb::test::golden_tokenizer());
  REQUIRE(bytes.size() > 100);
  // Cutting inside any field must be detected (cutting exactly between top-level fields yields a
  // shorter but well-formed proto, which must still fail validation or parse cleanly).
  size_t errors = 0, checked = 0;
  for (size_t n = 1; n < bytes.size(); n += std::max<size_t>(1, bytes.size() / 997)) {
    ++checked;
    try {
      cb::SentencePieceBpe(SentencePieceModel::parse(bytes.substr(0, n), "cut.model"));
    } catch (const cb::Error& e) {
      ++errors;
      CHECK_THAT(e.what(), Catch::Contains("cut.model"));
    }
  }
  CHECK(errors >= checked * 9 / 10);
  const auto p = scratch("truncated.model");
  write_bytes(p, bytes.substr(0, bytes.size() - 3));
  CHECK_THROWS_WITH(cb::LlamaTokenizer::load(p), Catch::Contains(p.string()) && Catch::Contains("corrupt"));
}

TEST_CASE("sentencepiece model: corrupt and unsupported files give clear errors") {
  CHECK_THROWS_WITH(SentencePieceModel::load(scratch("does_not_exist.model")), Catch::Contains("cannot open"));
  CHECK_THROWS_WITH(SentencePieceModel::parse("", "empty.model"),
                    Catch::Contains("empty.model") && Catch::Contains("no pieces"));
  CHECK_THROWS_WITH(SentencePieceModel::parse("this is a text file, not a model", "text.model"),
                    Catch::Contains("text.model"));
  CHECK_THROWS_WITH(SentencePieceModel::parse(std::string("\x0a\xff\xff\xff\xff\x0f", 6), "len.model"),
                    Catch::Contains("len.model") && Catch::Contains("past the end"));
  CHECK_THROWS_WITH(SentencePieceModel::parse(std::string(11, '\xff'), "varint.model"), Catch::Contains("varint"));

  auto pieces = base_pieces();
  pieces.push_back({"a", 0});
  pieces.push_back({"a", -1});
  CHECK_THROWS_WITH(SentencePieceModel::parse(model_proto(pieces), "dup.model"), Catch::Contains("defined twice"));
  CHECK_THROWS_WITH(SentencePieceModel::parse(model_proto({{"<s>", 0, Type::Control}, {"a", 0}}), "nounk.model"),
                    Catch::Contains("unknown piece"));
  CHECK_THROWS_WITH(SentencePieceModel::parse(model_proto(base_pieces(), true), "bytes.model"),
                    Catch::Contains("<0x00> is missing"));
  auto with_byte = base_pieces();
  with_byte.push_back({"<0x41>", 0, Type::Byte});
  CHECK_THROWS_WITH(SentencePieceModel::parse(model_proto(with_byte, false), "fb.model"),
                    Catch::Contains("byte_fallback is false"));

  const auto unigram = SentencePieceModel::parse(model_proto(base_pieces(), false, /*UNIGRAM*/ 1), "uni.model");
  CHECK_THROWS_WITH(cb::SentencePieceBpe(unigram),
                    Catch::Contains("uni.model") && Catch::Contains("UNIGRAM") && Catch::Contains("only BPE"));
}

// --- BPE encoding on hand-built vocabularies ----------------------------------------------------

TEST_CASE("bpe: merges follow piece scores, ties go to the leftmost pair") {
  // "abc": ab and bc tie → leftmost (ab) wins; then nothing merges with c.
  auto tie = bpe({{kSp, -10}, {"a", -10}, {"b", -10}, {"c", -10}, {"ab", -1}, {"bc", -1}});
  CHECK(pieces_of(tie, "abc") == std::vector<std::string>{kSp, "ab", "c"});
  // bc scores higher → it merges first even though ab is to its left.
  auto higher = bpe({{kSp, -10}, {"a", -10}, {"b", -10}, {"c", -10}, {"ab", -2}, {"bc", -1}});
  CHECK(pieces_of(higher, "abc") == std::vector<std::string>{kSp, "a", "bc"});
  // "aaaa" with "aa": leftmost pairs merge first → aa aa, then "aaaa" if known.
  auto runs = bpe({{"a", -10}, {"aa", -1}, {"aaaa", -2}});
  CHECK(pieces_of(runs, "aaaaa") == std::vector<std::string>{"<unk>", "aaaa", "a"});  // '▁' is not a piece
}

TEST_CASE("bpe: unknown characters without byte fallback collapse into one unk") {
  auto sp = bpe({{kSp, -1}, {"a", -1}});
  const auto ids = sp.encode("a xyz a");
  std::vector<std::string> pieces;
  for (int id : ids) pieces.push_back(sp.id_to_piece(id));
  CHECK(pieces == std::vector<std::string>{kSp, "a", kSp, "<unk>", kSp, "a"});
  CHECK(sp.decode(std::vector<int64_t>(ids.begin(), ids.end())) == "a  \xE2\x81\x87  a");  // unk_surface " ⁇ "
}

TEST_CASE("bpe: user-defined pieces stay whole and never merge") {
  auto sp = bpe({{kSp, -1}, {"<q>", 0, Type::UserDefined}, {"a", -1}, {"<", -1}, {"q", -1}, {">", -1}, {"a<", -0.5f}});
  CHECK(pieces_of(sp, "a<q>a") == std::vector<std::string>{kSp, "a", "<q>", "a"});
  CHECK(pieces_of(sp, "a<qa") == std::vector<std::string>{kSp, "a<", "q", "a"});
}

TEST_CASE("bpe: merges through an unused piece are split back unless merged further") {
  auto sp = bpe({{"a", -1}, {"b", -1}, {"c", -1}, {"ab", -2, Type::Unused}, {"abc", -3}});
  auto no_prefix = [&](const std::string& t) {
    auto p = pieces_of(sp, t);
    p.erase(p.begin());  // the dummy prefix '▁' (unknown here)
    return p;
  };
  CHECK(no_prefix("ab") == std::vector<std::string>{"a", "b"});
  CHECK(no_prefix("abc") == std::vector<std::string>{"abc"});
}

// --- the fixture model through the LLaMA layer ------------------------------------------------

TEST_CASE("llama tokenizer: special-token strings are split out and never merged") {
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  const auto& eos = tok.id_to_piece(tok.eos_id());
  const auto& bos = tok.id_to_piece(tok.bos_id());
  auto cat = [](std::vector<int64_t> a, const std::vector<int64_t>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  // transformers 4.28: each side is encoded separately (own dummy prefix), no whitespace stripping.
  CHECK(tok.encode("a dog" + eos + " runs", false) ==
        cat(cat(tok.encode("a dog", false), {tok.eos_id()}), tok.encode(" runs", false)));
  CHECK(tok.encode(bos, true) == std::vector<int64_t>{tok.bos_id(), tok.bos_id()});
  CHECK(tok.encode("", true) == std::vector<int64_t>{tok.bos_id()});
  CHECK(tok.encode("", false).empty());
  CHECK(tok.decode(tok.encode(bos + "x" + eos, true)) == "x");  // control pieces decode to nothing
}

TEST_CASE("llama tokenizer: added_tokens.json tokens get ids after the vocabulary and strip neighbours") {
  const auto dir = scratch("hf_dir");
  fs::create_directories(dir);
  fs::copy_file(cb::test::golden_tokenizer(), dir / "tokenizer.model", fs::copy_options::overwrite_existing);
  const auto base = cb::LlamaTokenizer::load(dir);
  const int64_t n = base.vocab_size();
  std::ofstream(dir / "added_tokens.json") << "{\"[PAD]\": " << n << "}";
  const auto tok = cb::LlamaTokenizer::load(dir);
  CHECK(tok.vocab_size() == n + 1);
  CHECK(tok.piece_to_id("[PAD]") == n);
  CHECK(tok.id_to_piece(n) == "[PAD]");
  auto expected = tok.encode("a dog", false);
  expected.push_back(n);
  const auto rest = tok.encode("runs", false);
  expected.insert(expected.end(), rest.begin(), rest.end());
  CHECK(tok.encode("a dog  [PAD]\t runs", false) == expected);

  std::ofstream(dir / "added_tokens.json") << "{\"[PAD]\": " << n + 5 << "}";
  CHECK_THROWS_WITH(cb::LlamaTokenizer::load(dir), Catch::Contains("added_tokens.json") && Catch::Contains("expected"));
  fs::remove(dir / "added_tokens.json");
}

TEST_CASE("llama tokenizer: malformed UTF-8 input is encoded as U+FFFD bytes and decodes back to it") {
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  const auto ids = tok.encode("a\xff", false);
  REQUIRE(ids.size() >= 3);
  std::vector<std::string> tail;
  for (size_t i = ids.size() - 3; i < ids.size(); ++i) tail.push_back(tok.id_to_piece(ids[i]));
  CHECK(tail == std::vector<std::string>{"<0xEF>", "<0xBF>", "<0xBD>"});
  CHECK(tok.decode(ids) == "a\xEF\xBF\xBD");
  CHECK_THROWS_WITH(tok.decode(std::vector<int64_t>{tok.vocab_size()}), Catch::Contains("outside the vocabulary"));
}

TEST_CASE("llama tokenizer: long texts round-trip through encode/decode") {
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  std::string text;
  const std::vector<std::string> words = {"a",    "brown",     "bear",     "is",          "swimming",
                                          "near", "the",       "river",    "caf\xC3\xA9", "\xF0\x9F\x98\x80",
                                          "123",  "###Human:", "xxxxxxxx", "\n"};
  for (int i = 0; i < 20000; ++i) text += words[(i * 7 + i / 3) % words.size()] + (i % 5 ? " " : "  ");
  const auto ids = tok.encode(text, false);
  CHECK(ids.size() > 20000);
  CHECK(tok.decode(ids) == text);
}

TEST_CASE("llama tokenizer: batches are right padded with eos and truncated as transformers does") {
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  const std::vector<std::string> texts = {"a brown bear is swimming near the river\n", "", "a dog"};
  std::vector<std::vector<int64_t>> rows;
  for (const auto& t : texts) rows.push_back(tok.encode(t, false));
  REQUIRE(rows[0].size() > 4);

  SECTION("padding to the longest row, no special tokens (ChatBridge stage 1)") {
    const auto b = tok.encode_batch(texts, false);
    REQUIRE(b.input_ids.sizes() == torch::IntArrayRef({3, static_cast<int64_t>(rows[0].size())}));
    CHECK(b.input_ids.dtype() == torch::kInt64);
    CHECK(b.attention_mask.dtype() == torch::kInt64);
    for (int64_t r = 0; r < 3; ++r) {
      const auto n = static_cast<int64_t>(rows[r].size());
      CHECK(b.attention_mask[r].sum().item<int64_t>() == n);
      for (int64_t c = 0; c < b.input_ids.size(1); ++c) {
        CHECK(b.input_ids[r][c].item<int64_t>() == (c < n ? rows[r][c] : tok.pad_id()));
        CHECK(b.attention_mask[r][c].item<int64_t>() == (c < n ? 1 : 0));
      }
    }
  }
  SECTION("truncation keeps the first max_length ids; bos counts towards max_length") {
    const int64_t max_len = 4;
    const auto plain = tok.encode_batch(texts, false, max_len);
    REQUIRE(plain.input_ids.size(1) == max_len);
    for (int64_t c = 0; c < max_len; ++c) CHECK(plain.input_ids[0][c].item<int64_t>() == rows[0][c]);
    const auto with_bos = tok.encode_batch(texts, true, max_len);
    REQUIRE(with_bos.input_ids.size(1) == max_len);
    CHECK(with_bos.input_ids[0][0].item<int64_t>() == tok.bos_id());
    for (int64_t c = 1; c < max_len; ++c) CHECK(with_bos.input_ids[0][c].item<int64_t>() == rows[0][c - 1]);
    CHECK(with_bos.attention_mask[1].sum().item<int64_t>() == 1);  // "" → just bos
  }
  SECTION("a max_length that leaves no text id keeps the row whole (transformers quirk)") {
    const auto b = tok.encode_batch({texts[0]}, true, 1);
    CHECK(b.input_ids.size(1) == static_cast<int64_t>(rows[0].size()) + 1);
  }
}

TEST_CASE("llama tokenizer and a LibTorch op run in the same process") {
  // The reason for a native tokenizer: libsentencepiece's protobuf clashes with LibTorch's.
  auto emb = torch::nn::Embedding(torch::nn::EmbeddingOptions(64, 8));
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  const auto b = tok.encode_batch({"###Human: <query> hello ###Assistant:", "a dog\n"}, true);
  auto x = emb->forward(b.input_ids.remainder(64));           // [2, L, 8]
  auto pooled = (x * b.attention_mask.unsqueeze(-1)).sum(1);  // [2, 8]
  auto ref = x[1].narrow(0, 0, b.attention_mask[1].sum().item<int64_t>()).sum(0);
  CHECK(torch::allclose(pooled[1], ref));
  CHECK(torch::matmul(pooled, pooled.t()).sizes() == torch::IntArrayRef({2, 2}));
}
