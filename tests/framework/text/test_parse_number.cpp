// framework/text/parse_number.h: the one checked number parser (whole text, range, a message naming
// what was parsed).
#include <catch2/catch.hpp>

#include <cstdint>

#include "framework/error.h"
#include "framework/text/parse_number.h"

using Catch::Matchers::Equals;

TEST_CASE("to_number takes the whole text or nothing", "[parse_number]") {
  CHECK(cb::to_number<int>("42") == 42);
  CHECK(cb::to_number<int>("-7") == -7);
  CHECK(cb::to_number<int64_t>("9223372036854775807") == INT64_MAX);
  CHECK(cb::to_number<double>("0.25") == 0.25);
  for (const char* bad : {"", " 1", "1 ", "+1", "1x", "0x10", "1.5", "--1"}) {
    INFO(bad);
    CHECK_FALSE(cb::to_number<int>(bad));
  }
  CHECK_FALSE(cb::to_number<int>("2147483648"));  // out of range: refused, not wrapped
  CHECK_FALSE(cb::to_number<uint16_t>("65536"));
  CHECK_FALSE(cb::to_number<uint16_t>("-1"));
  CHECK_FALSE(cb::to_number<double>("abc"));
}

TEST_CASE("parse_int names what it parsed, the range and the text", "[parse_number]") {
  CHECK(cb::parse_int<int64_t>("3", "x", 0, 3) == 3);
  CHECK_THROWS_WITH(cb::parse_int<int64_t>("4", "environment variable RANK", 0, 3),
                    Equals("environment variable RANK='4': expected an integer in [0, 3]"));
  CHECK_THROWS_WITH(cb::parse_int<int>("0", "environment variable WORLD_SIZE", 1),
                    Equals("environment variable WORLD_SIZE='0': expected an integer >= 1"));
  CHECK_THROWS_WITH(cb::parse_int<int>("1e3", "--port"), Equals("--port='1e3': expected an integer"));
  CHECK_THROWS_WITH(cb::parse_int<int>("99999999999", "n", 1, 10),
                    Equals("n='99999999999': expected an integer in [1, 10]"));
}

TEST_CASE("parse_number says what is not a number", "[parse_number]") {
  CHECK(cb::parse_number<double>("0.5", "/top-p") == 0.5);
  CHECK(cb::parse_number<int64_t>("4", "/beams") == 4);
  CHECK_THROWS_WITH(cb::parse_number<double>("abc", "/top-p"), Equals("/top-p: 'abc' is not a number"));
  CHECK_THROWS_WITH(cb::parse_number<int64_t>("2.5", "/beams"), Equals("/beams: '2.5' is not a number"));
}
