#include "bench/run.h"

#include "bench/data_bench.h"
#include "bench/decode_bench.h"
#include "bench/kernel_bench.h"
#include "bench/timing.h"
#include "bench/train_bench.h"
#include "framework/error.h"
#include "framework/torch_compat.h"

namespace cb::bench {

nlohmann::json run_benchmark(const Workload& w, const BenchOptions& opts) {
  const auto& part = opts.part;
  const bool all = part == "all";
  if (!all && part != "train1" && part != "train2" && part != "decode" && part != "data" && part != "kernels")
    fail("unknown benchmark '{}' (train1, train2, decode, data, kernels, all)", part);

  nlohmann::json out = {{"workload", w.name}, {"workload_file", w.file.string()}, {"part", part}};
  nlohmann::json detail;
  for (int stage : {1, 2}) {
    const std::string name = "train" + std::to_string(stage);
    if (!all && part != name) continue;
    auto j = run_train(w, stage, w.tokenizer_path(opts.tokenizer), opts.peak_flops, opts.profile_top);
    out[name + "_step_s"] = j["timing"]["median"];
    out[name + "_step_s_min"] = j["timing"]["min"];
    if (j.contains("mfu")) out[name + "_mfu"] = j["mfu"];
    detail[name] = std::move(j);
  }
  if (all || part == "decode") {
    auto j = run_decode(w, opts.profile_top);
    const double tokens = double(w.decode.batch_size * w.decode.new_tokens);
    out["decode_tok_s"] = tokens / j["decode"]["median"].get<double>();
    out["decode_tok_s_best"] = tokens / j["decode"]["min"].get<double>();
    out["prefill_s"] = j["prefill"]["median"];
    out["prefill_s_min"] = j["prefill"]["min"];
    out["prefill_generate_s"] = j["prefill_generate"]["median"];
    out["prefill_generate_s_min"] = j["prefill_generate"]["min"];
    out["llama_precision"] = j["llama_precision"];
    if (j.contains("bound_tok_s")) {
      out["read_bandwidth_gb_s"] = j["read_bandwidth_gb_s"];
      out["decode_bound_tok_s"] = j["bound_tok_s"];
      out["decode_pct_of_bound"] = j["pct_of_bound"];  // each run against its own bandwidth reading
    }
    out["decode_peak_rss_mb"] = j["peak_rss_mb_model"];  // peak_rss_mb also counts the bandwidth buffer
    detail["decode"] = std::move(j);
  }
  if (all || part == "data") {
    auto j = run_data(w, opts.work_dir.empty() ? default_work_dir() : opts.work_dir);
    for (const char* k : {"image", "audio", "video", "valor_image"}) {
      out[std::string("data_") + k + "_per_s"] = j[k]["per_s"];
      out[std::string("data_") + k + "_per_s_best"] = j[k]["per_s_best"];
      // The same items spread over `threads` worker threads, as the training loader runs them.
      out[std::string("data_") + k + "_per_s_parallel"] = j[k]["parallel"]["per_s"];
      out[std::string("data_") + k + "_per_s_parallel_best"] = j[k]["parallel"]["per_s_best"];
    }
    detail["data"] = std::move(j);
  }
  if (part == "kernels") {  // not part of `all`: a study of the kernels, not of the model
    auto j = run_kernels(w);
    out["read_bandwidth_gb_s"] = j["read_bandwidth_gb_s"];
    for (const auto& [format, k] : j["formats"].items()) {
      out["kernels_" + format + "_decode_gb_s"] = k["decode"]["gb_s"];
      out["kernels_" + format + "_decode_pct_bw"] = k["decode"]["pct_of_read_bandwidth"];
      out["kernels_" + format + "_decode_per_weight_over_shared"] = k["decode_calls"]["per_weight_over_shared"];
    }
    detail["kernels"] = std::move(j);
  }
  out["peak_rss_mb"] = peak_rss_mb();
  out["torch_version"] = compat::torch_version();
  out["threads"] = opts.threads;
  out["device"] = w.device.str();
  out["machine"] = machine_info();
  if (out["machine"].contains("commit")) out["commit"] = out["machine"]["commit"];
  out["detail"] = std::move(detail);
  return out;
}

}  // namespace cb::bench
