// Where a step's time goes, op by op: a RecordFunction observer that sums each ATen op's (and each
// autograd node's) *self* time, i.e. its wall time minus that of the ops it called. Cheaper and
// easier to read than a chrome trace for "which ops dominate", and needs no Python.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cb {

struct OpStat {
  std::string name;
  int64_t calls = 0;
  double self_s = 0;
  std::map<std::string, int64_t> callers;  // enclosing op (or "<top>") -> calls from it
};

// While alive, every op on every thread is timed (start-up cost ~1 us per op). One at a time.
class OpProfile {
 public:
  OpProfile();
  ~OpProfile();
  OpProfile(const OpProfile&) = delete;
  OpProfile& operator=(const OpProfile&) = delete;

  // The ops seen so far, by self time, largest first.
  std::vector<OpStat> stats() const;
  // The `top` largest as [{name, calls, self_s, share, callers}]: share of the total self time, the
  // three enclosing ops that called it most.
  nlohmann::json to_json(size_t top) const;

 private:
  uint64_t handle_;
};

}  // namespace cb
