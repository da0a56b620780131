// webdataset's shuffle buffer (webdataset/filters.py, _shuffle and pick), which LAVIS's laion / cc_sbu
// pipelines apply to the raw samples as wds.shuffle(1000):
//
//     buf = []
//     for sample in data:
//         buf.append(sample)
//         if len(buf) < bufsize:
//             buf.append(next(data))
//         if len(buf) >= initial:          # initial = min(100, bufsize)
//             yield pick(buf)              # k = rng.randint(0, len(buf) - 1); buf[k], buf[-1] swapped, popped
//
// The streams here are endless, so the original's StopIteration branch and the final flush never
// happen. The buffer is a plain value (its contents in order) so that a checkpoint can describe it
// and a resumed run can put the same samples back in the same places.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace cb {

inline constexpr size_t kShuffleInitial = 100;  // webdataset's `initial`

template <typename T>
class ShuffleBuffer {
 public:
  explicit ShuffleBuffer(size_t size = 0, size_t initial = kShuffleInitial)
      : size_(size), initial_(std::min(initial, size)) {}

  // The next sample of the shuffled stream: `pull()` gives the next sample of the underlying stream,
  // `draw()` a random 64-bit number, taken modulo the buffer's length as the pick index.
  template <typename Pull, typename Draw>
  T next(Pull&& pull, Draw&& draw) {
    for (;;) {
      buf_.push_back(pull());
      if (buf_.size() < size_) buf_.push_back(pull());
      if (buf_.size() >= initial_) return pick(draw());
    }
  }

  size_t size() const { return size_; }
  // In buffer order (a pick moves the last one into the picked one's place).
  const std::vector<T>& contents() const { return buf_; }
  void assign(std::vector<T> contents) { buf_ = std::move(contents); }

 private:
  T pick(uint64_t r) {
    const size_t k = static_cast<size_t>(r % buf_.size());
    T out = std::move(buf_[k]);
    if (k + 1 != buf_.size()) buf_[k] = std::move(buf_.back());
    buf_.pop_back();
    return out;
  }

  size_t size_, initial_;
  std::vector<T> buf_;
};

}  // namespace cb
