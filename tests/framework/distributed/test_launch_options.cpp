// chatbridge-launch's --rdzv-conf (framework/distributed/launcher.h: apply_rdzv_conf): torchrun's
// spelling, the one key it maps, and refusals that name the key.
#include <catch2/catch.hpp>

#include "framework/distributed/launcher.h"
#include "framework/error.h"

using Catch::Matchers::Contains;
using cb::dist::apply_rdzv_conf;
using cb::dist::LaunchOptions;

TEST_CASE("launch option --rdzv-conf join_timeout sets the rendezvous wait, and timeout is the same setting",
          "[launch]") {
  LaunchOptions o;
  CHECK(o.rendezvous_timeout == std::chrono::seconds(900));  // torchrun's default
  apply_rdzv_conf("", o);
  CHECK(o.rendezvous_timeout == std::chrono::seconds(900));
  apply_rdzv_conf("join_timeout=30", o);
  CHECK(o.rendezvous_timeout == std::chrono::seconds(30));
  apply_rdzv_conf("timeout=45", o);  // torchrun's static backend reads this name
  CHECK(o.rendezvous_timeout == std::chrono::seconds(45));
  apply_rdzv_conf("join_timeout=60,timeout=60", o);
  CHECK(o.rendezvous_timeout == std::chrono::seconds(60));
}

TEST_CASE("launch option --rdzv-conf refuses bad values, unsupported and unknown keys by name", "[launch]") {
  LaunchOptions o;
  CHECK_THROWS_WITH(apply_rdzv_conf("join_timeout=ten", o),
                    Contains("--rdzv-conf join_timeout='ten': expected an integer in [1, 31536000]"));
  CHECK_THROWS_WITH(apply_rdzv_conf("join_timeout=0", o), Contains("join_timeout='0'"));
  CHECK_THROWS_WITH(apply_rdzv_conf("join_timeout=5s", o), Contains("join_timeout='5s'"));
  CHECK_THROWS_WITH(apply_rdzv_conf("join_timeout", o), Contains("'join_timeout' is not key=value"));
  CHECK_THROWS_WITH(apply_rdzv_conf("join_timeout=5,", o), Contains("'' is not key=value"));
  CHECK_THROWS_WITH(apply_rdzv_conf("join_timeout=5,timeout=6", o),
                    Contains("join_timeout=5 and timeout=6 both set the rendezvous wait"));
  CHECK_THROWS_WITH(apply_rdzv_conf("last_call_timeout=30", o),
                    Contains("--rdzv-conf last_call_timeout: torchrun's last_call_timeout is not supported"));
  CHECK_THROWS_WITH(apply_rdzv_conf("read_timeout=60", o), Contains("read_timeout is not supported"));
  CHECK_THROWS_WITH(apply_rdzv_conf("join_timeout=5,jion_timeout=6", o),
                    Contains("unknown key 'jion_timeout'; known: join_timeout (or timeout)"));
  CHECK_THROWS_WITH(apply_rdzv_conf("bogus=1", o), Contains("last_call_timeout"));  // lists torchrun's others
  CHECK(o.rendezvous_timeout == std::chrono::seconds(900));                         // a refused conf changes nothing
}

TEST_CASE("node 0's wait for the other launchers at the end is explicit and short", "[launch]") {
  LaunchOptions o;
  CHECK(cb::dist::final_wait(o) == std::chrono::seconds(5));
  o.monitor_interval = std::chrono::seconds(2);  // a live launcher reads the outcome within an interval or two
  CHECK(cb::dist::final_wait(o) == std::chrono::seconds(20));
}
