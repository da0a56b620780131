#include "framework/op_profile.h"

#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>

#include "framework/error.h"

namespace cb {
namespace {

using Clock = std::chrono::steady_clock;

struct Frame {
  const char* name;
  Clock::time_point start;
  double children_s = 0;
};

std::mutex g_mutex;
std::map<std::string, OpStat, std::less<>> g_stats;
bool g_active = false;
thread_local std::vector<Frame> t_stack;

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  t_stack.push_back({fn.name(), Clock::now()});
  return nullptr;
}

void on_exit(const at::RecordFunction& fn, at::ObserverContext*) {
  if (t_stack.empty()) return;  // entered before the profile began
  const Frame f = t_stack.back();
  t_stack.pop_back();
  const double total = std::chrono::duration<double>(Clock::now() - f.start).count();
  if (!t_stack.empty()) t_stack.back().children_s += total;
  std::lock_guard lock(g_mutex);
  auto it = g_stats.find(std::string_view(fn.name()));
  if (it == g_stats.end()) it = g_stats.emplace(fn.name(), OpStat{fn.name(), 0, 0.0, {}}).first;
  it->second.calls += 1;
  it->second.self_s += total - f.children_s;
  it->second.callers[t_stack.empty() ? "<top>" : t_stack.back().name] += 1;
}

}  // namespace

OpProfile::OpProfile() {
  std::lock_guard lock(g_mutex);
  if (g_active) fail("OpProfile: only one profile at a time");
  g_active = true;
  g_stats.clear();
  handle_ = at::addGlobalCallback(at::RecordFunctionCallback(on_enter, on_exit)
                                      .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION}));
}

OpProfile::~OpProfile() {
  at::removeCallback(handle_);
  std::lock_guard lock(g_mutex);
  g_active = false;
}

std::vector<OpStat> OpProfile::stats() const {
  std::vector<OpStat> out;
  {
    std::lock_guard lock(g_mutex);
    for (const auto& [_, s] : g_stats) out.push_back(s);
  }
  std::sort(out.begin(), out.end(), [](const OpStat& a, const OpStat& b) { return a.self_s > b.self_s; });
  return out;
}

nlohmann::json OpProfile::to_json(size_t top) const {
  const auto all = stats();
  double total = 0;
  for (const auto& s : all) total += s.self_s;
  nlohmann::json j = nlohmann::json::array();
  for (size_t i = 0; i < std::min(top, all.size()); ++i) {
    std::vector<std::pair<int64_t, std::string>> by_calls;
    for (const auto& [caller, n] : all[i].callers) by_calls.emplace_back(n, caller);
    std::sort(by_calls.rbegin(), by_calls.rend());
    nlohmann::json callers = nlohmann::json::object();
    for (size_t k = 0; k < std::min<size_t>(3, by_calls.size()); ++k) callers[by_calls[k].second] = by_calls[k].first;
    j.push_back({{"name", all[i].name},
                 {"calls", all[i].calls},
                 {"self_s", all[i].self_s},
                 {"share", total > 0 ? all[i].self_s / total : 0.0},
                 {"callers", callers}});
  }
  return j;
}

}  // namespace cb
