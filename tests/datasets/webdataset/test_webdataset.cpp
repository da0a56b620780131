// Webdataset shards written at test time with libarchive: members grouped into samples by key,
// truncated and random-byte shards reported as cb::Error naming the shard; brace patterns of shards.
#include <catch2/catch.hpp>

#include <fstream>
#include <random>

#include "datasets/webdataset/shard_pattern.h"
#include "datasets/webdataset/tar_shard.h"
#include "framework/error.h"
#include "tests/datasets/webdataset/write_tar.h"
#include "tests/support/scratch_dir.h"

namespace fs = std::filesystem;

namespace {

using cb::test::write_tar;

fs::path temp_file(const std::string& name) {
  static const auto dir = cb::test::fresh_dir("wds");
  return dir / fmt::format("{}-{}", std::random_device()(), name);
}

}  // namespace

TEST_CASE("webdataset shard: consecutive members with one key form a sample", "[data]") {
  const fs::path shard = temp_file("a.tar");
  std::string big(100000, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  write_tar(shard, {{"000000.jpg", big},
                    {"000000.json", "{\"caption\": \"a\"}"},
                    {"sub/000001.jpg", "jpeg1"},
                    {"sub/000001.txt", "caption one"},
                    {"sub/000001.seg.png", "png"},
                    {"noext", "ignored"},
                    {"000002.json", "{}"}});
  cb::WebdatasetShardReader reader(shard);
  auto s0 = reader.next();
  REQUIRE(s0);
  REQUIRE(s0->key == "000000");
  REQUIRE(s0->members.size() == 2);
  REQUIRE(std::string(s0->members["jpg"].begin(), s0->members["jpg"].end()) == big);
  auto s1 = reader.next();
  REQUIRE(s1);
  REQUIRE(s1->key == "sub/000001");
  REQUIRE(s1->members.size() == 3);
  REQUIRE(s1->members.count("seg.png") == 1);
  auto s2 = reader.next();
  REQUIRE(s2);
  REQUIRE(s2->key == "000002");
  REQUIRE_FALSE(reader.next());
  fs::remove(shard);
}

TEST_CASE("webdataset shard: truncated, random and missing shards are errors naming the shard", "[data]") {
  const fs::path shard = temp_file("b.tar");
  write_tar(shard, {{"000000.jpg", std::string(5000, 'a')}, {"000000.json", "{}"}});
  const auto full = fs::file_size(shard);
  fs::resize_file(shard, 2000);  // inside the first member's data
  {
    cb::WebdatasetShardReader reader(shard);
    REQUIRE_THROWS_WITH(reader.next(), Catch::Contains(shard.string()));
  }
  REQUIRE(full > 2000);
  std::mt19937 gen(5);
  std::string noise(3000, '\0');
  for (auto& c : noise) c = static_cast<char>(gen());
  std::ofstream(shard, std::ios::binary | std::ios::trunc) << noise;
  auto read_all = [&] {
    cb::WebdatasetShardReader reader(shard);
    while (reader.next()) {
    }
  };
  REQUIRE_THROWS_AS(read_all(), cb::Error);
  fs::remove(shard);
  REQUIRE_THROWS_AS(cb::WebdatasetShardReader(shard), cb::Error);
}

TEST_CASE("shard patterns: numeric ranges padded like their bounds, alternatives, left to right", "[data]") {
  using V = std::vector<std::string>;
  REQUIRE(cb::expand_braces("/d/{00008..00010}.tar") == V{"/d/00008.tar", "/d/00009.tar", "/d/00010.tar"});
  REQUIRE(cb::expand_braces("{8..10}") == V{"8", "9", "10"});
  REQUIRE(cb::expand_braces("{a,b}-{1..0}") == V{"a-1", "a-0", "b-1", "b-0"});
  REQUIRE(cb::expand_braces("plain.tar") == V{"plain.tar"});
  REQUIRE_THROWS_WITH(cb::expand_braces("x{1..2"), Catch::Contains("x{1..2") && Catch::Contains("unbalanced"));
  REQUIRE_THROWS_WITH(cb::expand_braces("{a..b}"), Catch::Contains("not a numeric range"));
}
