#include "runners/train/train_log.h"

#include <unistd.h>

#include <spdlog/spdlog.h>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "framework/error.h"
#include "runners/train/memory_plan.h"

namespace cb {

TrainLog::TrainLog(const std::filesystem::path& metrics_dir, int64_t log_freq, bool main_rank,
                   const std::filesystem::path& tensorboard_dir)
    : log_freq_(std::max<int64_t>(log_freq, 1)), main_(main_rank), bar_(main_rank && ::isatty(2)) {
  if (main_ && !metrics_dir.empty()) {
    metrics_.open(metrics_dir / "metrics.jsonl", std::ios::app);
    if (!metrics_) fail("run.output_dir '{}': cannot open metrics.jsonl", metrics_dir.string());
  }
  if (main_ && !tensorboard_dir.empty()) {
    tb_.emplace(tensorboard_dir);
    spdlog::info("TensorBoard events: {} (tensorboard --logdir {})", tb_->path().string(), tensorboard_dir.string());
  }
  start_ = window_start_ = Clock::now();
}

void TrainLog::record(const StepRecord& r) {
  if (!main_) return;
  ++steps_done_;
  window_samples_ += r.samples;
  window_tokens_ += r.tokens;
  if (std::isfinite(r.loss)) {  // a step skipped for a NaN loss would poison the window's mean
    window_loss_ += r.loss;
    ++window_loss_steps_;
  }
  ++window_steps_;
  auto now = Clock::now();
  double per_step = std::chrono::duration<double>(now - start_).count() / steps_done_;
  double eta = per_step * static_cast<double>(r.total_steps - r.step - 1);
  if (bar_) {
    constexpr int kWidth = 30;
    int filled = static_cast<int>(kWidth * (r.iter + 1) / std::max<int64_t>(r.iters_per_epoch, 1));
    std::fprintf(stderr, "\r[%s%s] epoch %lld %lld/%lld loss %.4f eta %.0fs ", std::string(filled, '#').c_str(),
                 std::string(kWidth - filled, ' ').c_str(), static_cast<long long>(r.epoch),
                 static_cast<long long>(r.iter + 1), static_cast<long long>(r.iters_per_epoch), r.loss, eta);
    std::fflush(stderr);
  }
  // MetricLogger.log_every of the original: iterations 0, log_freq, 2*log_freq, ... and the last of the epoch.
  if (r.iter % log_freq_ != 0 && r.iter + 1 != r.iters_per_epoch) return;
  double window = std::max(std::chrono::duration<double>(now - window_start_).count(), 1e-9);
  double sps = window_samples_ / window, tps = window_tokens_ / window;
  double rss_mb = current_rss_bytes() / 1048576.0;
  // One step's loss depends on which dataset the mixture drew; the window mean shows the trend.
  const double loss_avg = window_loss_steps_ ? window_loss_ / static_cast<double>(window_loss_steps_) : NAN;
  if (bar_) std::fputc('\n', stderr);
  spdlog::info(
      "Train: epoch [{}] [{}/{}] step {} loss {:.4f} (avg {:.4f}) lr {:.6f} samples/s {:.2f} tokens/s {:.1f} mem "
      "{:.0f} MB eta {:.0f}s",
      r.epoch, r.iter + 1, r.iters_per_epoch, r.step + 1, r.loss, loss_avg, r.lr, sps, tps, rss_mb, eta);
  if (metrics_.is_open()) {
    nlohmann::json j{{"epoch", r.epoch},     {"iter", r.iter}, {"step", r.step},       {"loss", r.loss},
                     {"loss_avg", loss_avg}, {"lr", r.lr},     {"samples_per_s", sps}, {"tokens_per_s", tps},
                     {"rss_mb", rss_mb},     {"eta_s", eta}};
    metrics_ << j.dump() << "\n";
    metrics_.flush();
  }
  if (tb_) {
    const std::pair<const char*, double> scalars[] = {{"loss", r.loss},      {"loss_avg", loss_avg},
                                                      {"lr", r.lr},          {"samples_per_s", sps},
                                                      {"tokens_per_s", tps}, {"rss_mb", rss_mb}};
    for (const auto& [key, value] : scalars) tb_->scalar(std::string("train/") + key, r.step, value);
  }
  window_start_ = now;
  window_samples_ = window_tokens_ = window_steps_ = window_loss_steps_ = 0;
  window_loss_ = 0;
}

void TrainLog::record_validation(const std::string& split, int64_t epoch, int64_t step, const nlohmann::json& metrics) {
  if (!main_) return;
  nlohmann::json j{{"epoch", epoch}, {"step", step}, {"split", split}};
  for (const auto& [key, value] : metrics.items()) {
    j[split + "_" + key] = value;
    if (tb_ && value.is_number()) tb_->scalar(split + "/" + key, step, value.get<double>());
  }
  if (metrics_.is_open()) {
    metrics_ << j.dump() << "\n";
    metrics_.flush();
  }
}

void TrainLog::finish_bar() {
  if (bar_) std::fputc('\n', stderr);
}

}  // namespace cb
