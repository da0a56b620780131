// splitmix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", 2014): a bijective
// 64-bit mix in which every input bit changes every output bit with probability ~1/2. Used to derive
// independent RNG seeds from small, neighbouring integers (seed, rank, step, epoch, position); the values
// feed the data order and the per-step RNG, so they must never change.
#pragma once
#include <cstdint>
#include <initializer_list>

namespace cb {

inline constexpr uint64_t kSplitmix64Gamma = 0x9e3779b97f4a7c15ULL;  // 2^64 / golden ratio
inline constexpr uint64_t kSplitmix64Mul1 = 0xbf58476d1ce4e5b9ULL;
inline constexpr uint64_t kSplitmix64Mul2 = 0x94d049bb133111ebULL;

// splitmix64's output function (its finaliser), without the gamma increment.
constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * kSplitmix64Mul1;
  z = (z ^ (z >> 27)) * kSplitmix64Mul2;
  return z ^ (z >> 31);
}

// One splitmix64 step from state `x`: the gamma increment, then the mix.
constexpr uint64_t splitmix64(uint64_t x) { return splitmix64_mix(x + kSplitmix64Gamma); }

// A seed that depends on every part and on their order: h = splitmix64(h ^ part), from h = 0.
constexpr uint64_t splitmix64_combine(std::initializer_list<int64_t> parts) {
  uint64_t h = 0;
  for (int64_t p : parts) h = splitmix64(h ^ static_cast<uint64_t>(p));
  return h;
}

}  // namespace cb
