#include "bench/timing.h"

#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <thread>

#include "framework/error.h"
#include "framework/runtime.h"
#include "framework/torch_compat.h"

namespace cb::bench {

double median(std::vector<double> values) {
  if (values.empty()) fail("no values to take the median of");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

double Timings::median() const {
  if (seconds.empty()) fail("no timed repeats");
  return bench::median(seconds);
}

double Timings::min() const {
  if (seconds.empty()) fail("no timed repeats");
  return *std::min_element(seconds.begin(), seconds.end());
}

nlohmann::json Timings::to_json() const {
  nlohmann::json j = {{"median", median()}, {"min", min()}, {"repeats", seconds}};
  if (!cpu_seconds.empty()) {
    j["cpu_median"] = bench::median(cpu_seconds);
    j["cpu_repeats"] = cpu_seconds;
  }
  return j;
}

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

Timings time_repeats(int64_t warmup, int64_t repeats, const std::function<void()>& fn) {
  for (int64_t i = 0; i < warmup; ++i) fn();
  Timings t;
  for (int64_t i = 0; i < repeats; ++i) {
    const double c0 = process_cpu_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    t.cpu_seconds.push_back(process_cpu_seconds() - c0);
  }
  return t;
}

void sync_device(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // KiB on Linux
}

namespace {

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto p = line.find(':');
      return p == std::string::npos ? line : line.substr(p + 2);
    }
  return "unknown";
}

std::string cpu_flags_of_interest() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, out;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      for (const char* f : {"avx2", "avx512f", "avx512_bf16", "fma"})
        if (line.find(std::string(" ") + f + " ") != std::string::npos || line.ends_with(std::string(" ") + f))
          out += out.empty() ? f : std::string(",") + f;
      break;
    }
  return out;
}

std::string command_output(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    std::array<char, 256> buf{};
    while (fgets(buf.data(), buf.size(), p)) out += buf.data();
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

nlohmann::json machine_info() {
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  nlohmann::json j = {{"cpu", cpu_model()},
                      {"cpu_flags", cpu_flags_of_interest()},
                      {"cores_available", std::thread::hardware_concurrency()},
                      {"loadavg", {load[0], load[1], load[2]}},
                      {"torch_version", compat::torch_version()},
                      {"blas", blas_backend()},
                      {"intra_op_threads", at::get_num_threads()},
                      {"omp_wait_policy", std::getenv("OMP_WAIT_POLICY") ? std::getenv("OMP_WAIT_POLICY") : "default"}};
#ifdef CHATBRIDGE_SOURCE_DIR
  const std::string git = std::string("git -C '") + CHATBRIDGE_SOURCE_DIR + "' ";
  auto commit = command_output(git + "rev-parse --short HEAD 2>/dev/null");
  if (!commit.empty()) {
    j["commit"] = commit;
    j["tree_dirty"] = !command_output(git + "status --porcelain --untracked-files=no 2>/dev/null").empty();
  }
#endif
  return j;
}

}  // namespace cb::bench
