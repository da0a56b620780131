#include <catch2/catch.hpp>

#include "framework/error.h"
#include "runners/eval/metrics/cider.h"
#include "runners/eval/metrics/numpy_sum.h"
#include "tests/support/golden.h"

namespace {

struct Corpus {
  std::vector<std::vector<std::string>> refs;
  std::vector<std::string> cands;
};

std::string id_key(const nlohmann::json& id) { return id.is_string() ? id.get<std::string>() : id.dump(); }

// gts/res exactly as the original's compute_score receives them; images in `res` order.
Corpus corpus_from(const cb::test::Fixture& f) {
  const auto gts = f.meta("gts");
  const auto res = f.meta("res");
  Corpus c;
  for (const auto& r : res) {
    const auto& caption = r.at("caption");
    REQUIRE(caption.size() == 1);
    c.cands.push_back(caption.at(0).get<std::string>());
    c.refs.push_back(gts.at(id_key(r.at("image_id"))).get<std::vector<std::string>>());
  }
  return c;
}

torch::Tensor to_tensor(const std::vector<double>& v) {
  return torch::tensor(at::ArrayRef<double>(v), torch::kFloat64);
}

torch::Tensor sidecar_doubles(const nlohmann::json& j) {
  std::vector<double> v;
  if (j.is_array())
    for (const auto& x : j) v.push_back(std::stod(x.get<std::string>()));
  else v.push_back(std::stod(j.get<std::string>()));
  return to_tensor(v);
}

void check_scores(const cb::test::Fixture& f, const cb::metrics::CorpusScore& s, const std::string& key) {
  cb::test::check_close(to_tensor({s.score}), f.get("output." + key), cb::test::tol::cider, "cider " + key);
  cb::test::check_close(to_tensor(s.per_image), f.get("output." + key + "_per_image"), cb::test::tol::cider,
                        "cider " + key + "_per_image");
  // The sidecar holds the original's float64 results: they must agree far beyond the F32 row.
  cb::test::check_close(to_tensor({s.score}), sidecar_doubles(f.sidecar().at(key)), {1e-12, 0},
                        "cider " + key + " (float64 sidecar)");
  cb::test::check_close(to_tensor(s.per_image), sidecar_doubles(f.sidecar().at(key + "_per_image")), {1e-12, 0},
                        "cider " + key + "_per_image (float64 sidecar)");
}

}  // namespace

TEST_CASE("golden cider: CIDEr-D and CIDEr, corpus and per image") {
  cb::test::Fixture f("cider");
  const auto& cfg = f.config();
  REQUIRE(cfg.at("df").get<std::string>() == "corpus");
  const int n = cfg.at("n").get<int>();
  const auto c = corpus_from(f);
  check_scores(f, cb::metrics::cider_d(c.refs, c.cands, n, cfg.at("sigma").get<double>()), "ciderD");
  check_scores(f, cb::metrics::cider(c.refs, c.cands, n), "cider");
}

TEST_CASE("cider: edge cases") {
  const std::vector<std::vector<std::string>> refs{{"a cat on a mat", "the cat sat"}, {"a dog runs", "dogs run"}};
  // An empty candidate has zero vectors: score 0, no NaN.
  auto s = cb::metrics::cider_d(refs, {"", "a dog runs"});
  CHECK(s.per_image[0] == 0.0);
  CHECK(s.per_image[1] > 0.0);
  CHECK(s.score == Approx(s.per_image[1] / 2));
  // idf comes from the scored set: an n-gram in every image's references carries no weight (log(2/2)).
  auto all = cb::metrics::cider({{"a x"}, {"a y"}}, {"a", "a"});
  CHECK(all.per_image[0] == 0.0);
  // Length penalty counts bigrams: a one-word candidate vs a one-word reference has no penalty, while
  // CIDEr-D clipping leaves an exact match at 10 * (1/n) for the unigram order only.
  auto one = cb::metrics::cider_d({{"cat"}, {"dog"}}, {"cat", "dog"});
  CHECK(one.per_image[0] == Approx(10.0 / 4));
  auto longer = cb::metrics::cider_d({{"cat"}, {"dog"}}, {"cat cat cat", "dog"});
  CHECK(longer.per_image[0] < cb::metrics::cider({{"cat"}, {"dog"}}, {"cat cat cat", "dog"}).per_image[0]);
  CHECK_THROWS_AS(cb::metrics::cider_d({}, {}), cb::Error);
  CHECK_THROWS_AS(cb::metrics::cider_d({{}}, {"a"}), cb::Error);
  CHECK_THROWS_AS(cb::metrics::cider({{"a"}}, {"a", "b"}), cb::Error);
}

TEST_CASE("numpy_sum: pairwise order") {
  // 1e16 + 1 + ... : sequential and pairwise orders differ, numpy's 8-accumulator order is reproduced.
  std::vector<double> v{1e16, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1e16};
  const double r = ((1e16 + 1) + (1.0 + 1)) + ((1.0 + 1) + (1.0 + 1));
  CHECK(cb::metrics::numpy_sum(v) == (r + 1 + 1) - 1e16);
  CHECK(std::isnan(cb::metrics::numpy_mean({})));
  std::vector<double> big(1000, 0.1);
  CHECK(cb::metrics::numpy_mean(big) == Approx(0.1).epsilon(1e-14));
}
