// chatbridge-launch: torchrun-compatible launcher (see framework/distributed/launcher.h for the
// worker contract). Example, two nodes with two workers each:
//   node 0: chatbridge-launch --nnodes 2 --node-rank 0 --nproc-per-node 2 --master-addr 10.0.0.1 chatbridge-train
//   --cfg-path x.yaml node 1: chatbridge-launch --nnodes 2 --node-rank 1 --nproc-per-node 2 --master-addr 10.0.0.1
//   chatbridge-train --cfg-path x.yaml
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "framework/app_options.h"
#include "framework/distributed/launcher.h"
#include "framework/error.h"
#include "framework/text/parse_number.h"

namespace {

// "N" or "MIN:MAX" (elastic membership is not supported: MAX nodes must all be started).
int parse_nnodes(const std::string& s) {
  const auto colon = s.find(':');
  if (colon == std::string::npos) {
    if (auto n = cb::to_number<int>(s)) return *n;
  } else if (auto lo = cb::to_number<int>(s.substr(0, colon)), hi = cb::to_number<int>(s.substr(colon + 1)); lo && hi) {
    if (*lo != *hi) spdlog::warn("chatbridge-launch: --nnodes {}: membership is fixed, waiting for {} nodes", s, *hi);
    return *hi;
  }
  cb::fail("--nnodes '{}': expected N or MIN:MAX", s);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Starts distributed workers as torchrun does (torchrun's options; the program is run directly)."};
  cb::AppOptions app_opts;
  cb::add_app_options(app, app_opts);
  cb::dist::LaunchOptions o;
  std::string nnodes = "1", rdzv_endpoint;
  bool standalone = false;
  double monitor_interval = 0.1;
  app.add_option("--nproc-per-node,--nproc_per_node", o.nproc_per_node, "workers on this node")->capture_default_str();
  app.add_option("--nnodes", nnodes, "number of nodes: N or MIN:MAX (fixed: MAX)")->capture_default_str();
  app.add_option("--node-rank,--node_rank", o.node_rank, "rank of this node")->capture_default_str();
  app.add_option("--master-addr,--master_addr", o.master_addr, "address of node 0 (hosts the store)")
      ->capture_default_str();
  app.add_option("--master-port,--master_port", o.master_port, "port of the store on node 0")->capture_default_str();
  app.add_option("--rdzv-endpoint,--rdzv_endpoint", rdzv_endpoint, "HOST[:PORT] of the store (overrides --master-*)");
  app.add_option("--rdzv-id,--rdzv_id", o.run_id, "job id, passed as TORCHELASTIC_RUN_ID")->capture_default_str();
  std::string rdzv_conf;
  app.add_option("--rdzv-conf,--rdzv_conf", rdzv_conf,
                 "torchrun's key=value[,key=value]: join_timeout=SECONDS, the rendezvous wait (default 900)");
  std::string rdzv_backend = "static";
  app.add_option("--rdzv-backend,--rdzv_backend", rdzv_backend,
                 "accepted as torchrun's: static or c10d (both rendezvous through the store on node 0)")
      ->check(CLI::IsMember({"static", "c10d"}))
      ->capture_default_str();
  app.add_flag("--standalone", standalone, "single node, store on 127.0.0.1 at a free port");
  app.add_option("--max-restarts,--max_restarts", o.max_restarts, "job restarts after a worker failure")
      ->capture_default_str();
  app.add_option("--monitor-interval,--monitor_interval", monitor_interval, "seconds between worker checks")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.prefix_command();  // the first positional argument and everything after it: the program and its arguments
  app.footer("usage: chatbridge-launch [options] program [args...]");
  CLI11_PARSE(app, argc, argv);
  o.command = app.remaining();

  try {
    cb::apply_app_options(app_opts);
    o.nnodes = parse_nnodes(nnodes);
    o.monitor_interval = std::chrono::milliseconds(static_cast<int64_t>(monitor_interval * 1000));
    if (!rdzv_endpoint.empty()) {
      auto colon = rdzv_endpoint.rfind(':');
      o.master_addr = rdzv_endpoint.substr(0, colon);
      o.master_port =
          colon == std::string::npos
              ? 29400
              : static_cast<uint16_t>(cb::parse_int(rdzv_endpoint.substr(colon + 1), "--rdzv-endpoint port", 1, 65535));
    }
    cb::dist::apply_rdzv_conf(rdzv_conf, o);
    if (standalone) {
      if (o.nnodes != 1) cb::fail("--standalone: needs --nnodes 1, got {}", o.nnodes);
      o.master_addr = "127.0.0.1";
      o.master_port = cb::dist::free_tcp_port();
    }
    return cb::dist::run_launcher(o);
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
