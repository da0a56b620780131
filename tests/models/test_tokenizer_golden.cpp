// Golden case `tokenizer` (tests/golden/README.md): exact ids with/without bos for every fixture
// string and exact sentencepiece decodes, all read from the fixture.
#include <catch2/catch.hpp>

#include "models/tokenizer.h"
#include "tests/support/golden.h"

namespace {

std::string show(const std::vector<int64_t>& ids) {
  std::string s;
  for (auto id : ids) s += std::to_string(id) + " ";
  return s;
}

}  // namespace

TEST_CASE("tokenizer golden: vocabulary and special ids") {
  cb::test::Fixture f("tokenizer");
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  const auto& cfg = f.config();
  CHECK(tok.vocab_size() == cfg.at("size").get<int64_t>());
  CHECK(tok.unk_id() == cfg.at("unk").get<int64_t>());
  CHECK(tok.bos_id() == cfg.at("bos").get<int64_t>());
  CHECK(tok.eos_id() == cfg.at("eos").get<int64_t>());
  CHECK(tok.pad_id() == tok.eos_id());  // ChatBridge: pad_token = eos_token
}

TEST_CASE("tokenizer golden: encode without and with special tokens") {
  cb::test::Fixture f("tokenizer");
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  const auto texts = f.strings("input.strings");
  const auto plain = f.ragged("output.ids_no_special");
  const auto with_bos = f.ragged("output.ids_with_special");
  REQUIRE(texts.size() == plain.size());
  REQUIRE(texts.size() == with_bos.size());
  REQUIRE(!texts.empty());
  size_t exact = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    INFO("string " << i << ": '" << texts[i] << "'");
    const auto got = tok.encode(texts[i], false);
    const auto got_bos = tok.encode(texts[i], true);
    INFO("got      " << show(got));
    INFO("expected " << show(plain[i]));
    CHECK(got == plain[i]);
    CHECK(got_bos == with_bos[i]);
    exact += got == plain[i] && got_bos == with_bos[i];
  }
  std::printf("[golden] tokenizer encode: %zu/%zu strings exact\n", exact, texts.size());
}

TEST_CASE("tokenizer golden: pieces match the sidecar") {
  cb::test::Fixture f("tokenizer");
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  const auto& side = f.sidecar();
  INFO("sidecar " << (cb::test::golden_dir() / "tokenizer.json").string());
  REQUIRE(side.contains("cases"));
  const auto& cases = side.at("cases");
  const auto texts = f.strings("input.strings");
  REQUIRE(cases.is_array());
  REQUIRE(cases.size() == texts.size());  // one case per fixture string
  REQUIRE(!cases.empty());
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto text = c.at("text").get<std::string>();
    INFO("'" << text << "'");
    CHECK(text == texts[i]);
    std::vector<std::string> pieces;
    for (auto id : tok.encode(text, false)) pieces.push_back(tok.id_to_piece(id));
    CHECK(pieces == c.at("pieces").get<std::vector<std::string>>());
    for (const auto& p : pieces) CHECK(tok.id_to_piece(tok.piece_to_id(p)) == p);
  }
}

TEST_CASE("tokenizer golden: sentencepiece decode") {
  cb::test::Fixture f("tokenizer");
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  const auto ids = f.ragged("input.decode_ids");
  const auto expected = f.strings("output.decoded");
  REQUIRE(ids.size() == expected.size());
  REQUIRE(!ids.empty());
  size_t exact = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    INFO("decode " << i << ": " << show(ids[i]));
    const auto got = tok.decode(ids[i]);
    CHECK(got == expected[i]);
    exact += got == expected[i];
  }
  std::printf("[golden] tokenizer decode: %zu/%zu id lists exact\n", exact, ids.size());
}

TEST_CASE("tokenizer golden: batch encoding pads every fixture string with the pad id") {
  cb::test::Fixture f("tokenizer");
  auto tok = cb::LlamaTokenizer::load(cb::test::golden_tokenizer());
  const auto texts = f.strings("input.strings");
  const auto with_bos = f.ragged("output.ids_with_special");
  const auto batch = tok.encode_batch(texts, true);
  REQUIRE(batch.input_ids.size(0) == static_cast<int64_t>(texts.size()));
  size_t longest = 0;
  for (const auto& r : with_bos) longest = std::max(longest, r.size());
  REQUIRE(batch.input_ids.size(1) == static_cast<int64_t>(longest));
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto n = static_cast<int64_t>(with_bos[i].size());
    auto expected = torch::full({static_cast<int64_t>(longest)}, tok.pad_id(), torch::kInt64);
    expected.narrow(0, 0, n).copy_(torch::tensor(with_bos[i], torch::kInt64));
    cb::test::check_equal(batch.input_ids[i], expected, "tokenizer batch row " + std::to_string(i));
    CHECK(batch.attention_mask[i].sum().item<int64_t>() == n);
    CHECK(batch.attention_mask[i].narrow(0, 0, n).eq(1).all().item<bool>());
  }
}
