// The pruned Q-Former against the `qformer` golden fixture, plus unit tests of its config and masks.
#include <catch2/catch.hpp>

#include "models/qformer.h"
#include "tests/support/golden.h"

using cb::test::check_close;
namespace tol = cb::test::tol;

namespace {

cb::Qformer loaded_qformer(const cb::test::Fixture& f) {
  cb::Qformer q(cb::BertConfig::from_json(f.config().at("bert_config")));
  cb::load_state_dict(*q, cb::strip_prefix(f.weights(), "Qformer."), /*strict=*/true, "qformer fixture");
  q->eval();
  return q;
}

}  // namespace

TEST_CASE("qformer golden: last_hidden_state with the partial and the full encoder mask") {
  cb::test::Fixture f("qformer");
  auto q = loaded_qformer(f);
  const auto& bc = f.config().at("bert_config");
  CHECK(q->bert->config.query_length == f.config().at("num_query_token").get<int64_t>());
  CHECK(q->bert->config.encoder_width == f.config().at("vision_width").get<int64_t>());
  for (int64_t i = 0; i < bc.at("num_hidden_layers").get<int64_t>(); ++i)
    CHECK(static_cast<bool>(q->bert->encoder->layer[i]->as<cb::QformerLayerImpl>()->crossattention) ==
          (i % bc.at("cross_attention_freq").get<int64_t>() == 0));

  // input.query_embeds is image_query_tokens expanded over the batch, as ChatBridge feeds it.
  auto queries = f.get("input.query_embeds");
  auto tokens = f.get("image_query_tokens");
  REQUIRE(torch::equal(tokens.expand({queries.size(0), -1, -1}), queries));

  auto enc = f.get("input.encoder_hidden_states");
  auto mask = f.get("input.encoder_attention_mask");
  REQUIRE(mask.min().item<double>() == 0.0);  // the partial mask really masks something
  torch::NoGradGuard no_grad;
  check_close(q(queries, enc, mask), f.get("output.last_hidden_state"), tol::module, "qformer last_hidden_state");
  check_close(q(queries, enc, torch::ones_like(mask)), f.get("output.last_hidden_state_fullmask"), tol::module,
              "qformer last_hidden_state_fullmask");
}

TEST_CASE("qformer: the state dict holds exactly the pruned query branch and the position_ids buffer") {
  cb::test::Fixture f("qformer");
  auto q = loaded_qformer(f);
  auto sd = cb::module_state_dict(*q, "Qformer.");
  CHECK(sd.size() == f.names("Qformer.").size());
  auto ids = sd["Qformer.bert.embeddings.position_ids"];
  CHECK(ids.scalar_type() == torch::kLong);
  CHECK(torch::equal(ids, torch::arange(ids.size(1)).unsqueeze(0)));
}

TEST_CASE("qformer: init_Qformer's dropout switch and the BERT config reader") {
  cb::test::Fixture f("qformer");
  auto base = cb::BertConfig::from_json(f.config().at("bert_config"));
  base.hidden_dropout_prob = base.attention_probs_dropout_prob = 0.1;
  auto off = cb::BertConfig::for_qformer(base, 5, 7, 3, /*drop=*/false);
  CHECK(off.hidden_dropout_prob == 0.0);
  CHECK(off.attention_probs_dropout_prob == 0.0);
  CHECK(off.query_length == 5);
  CHECK(off.encoder_width == 7);
  CHECK(off.has_cross_attention(3));
  CHECK_FALSE(off.has_cross_attention(2));
  auto on = cb::BertConfig::for_qformer(base, 5, 7, 3, /*drop=*/true);
  CHECK(on.hidden_dropout_prob == 0.1);

  // With dropout on, train mode is random and eval mode is the deterministic golden path.
  cb::Qformer q(on);
  auto x = torch::randn({2, 5, on.hidden_size});
  auto enc = torch::randn({2, 4, on.encoder_width});
  auto m = torch::ones({2, 4});
  torch::NoGradGuard no_grad;
  q->train();
  CHECK_FALSE(torch::allclose(q(x, enc, m), q(x, enc, m)));
  q->eval();
  CHECK(torch::equal(q(x, enc, m), q(x, enc, m)));

  auto bad = f.config().at("bert_config");
  bad["hidden_act"] = "relu";
  CHECK_THROWS_WITH(cb::BertConfig::from_json(bad), Catch::Contains("relu"));
}

TEST_CASE("qformer: masked encoder tokens do not influence the output") {
  cb::test::Fixture f("qformer");
  auto q = loaded_qformer(f);
  auto queries = f.get("input.query_embeds");
  auto enc = f.get("input.encoder_hidden_states");
  auto mask = torch::ones({enc.size(0), enc.size(1)});
  mask.narrow(1, enc.size(1) - 2, 2).zero_();
  auto changed = enc.clone();
  changed.narrow(1, enc.size(1) - 2, 2).normal_();
  torch::NoGradGuard no_grad;
  CHECK(torch::allclose(q(queries, enc, mask), q(queries, changed, mask), 1e-5, 1e-6));
  CHECK_THROWS_WITH(q(queries, enc.narrow(2, 0, enc.size(2) - 1), mask), Catch::Contains("encoder_width"));
}

TEST_CASE("qformer: BLIP-2 query_tokens are offered as image_query_tokens") {
  cb::StateDict blip2;
  blip2.insert("query_tokens", torch::randn({1, 4, 8}));
  blip2.insert("Qformer.cls.predictions.bias", torch::zeros({3}));
  auto mapped = cb::blip2_to_chatbridge_keys(blip2);
  REQUIRE(mapped.contains("image_query_tokens"));
  CHECK(torch::equal(mapped["image_query_tokens"], blip2["query_tokens"]));
  CHECK(mapped.contains("query_tokens"));

  blip2.insert("image_query_tokens", torch::ones({1, 4, 8}));  // a ChatBridge checkpoint keeps its own
  CHECK(torch::equal(cb::blip2_to_chatbridge_keys(blip2)["image_query_tokens"], torch::ones({1, 4, 8})));
}
