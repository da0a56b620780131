// What the exact q4_0 integer kernels (q4_0_vnni.h, q4_0_avx2.h) carry of a block of 32 elements of x
// beside its integer digits: the block's power of two, and the columns whose elements have bits below it,
// with those remainders in fp32.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace cb::kernels {

struct Q4XRest {
  float inv_scale;  // 2^-s
  int32_t count;    // columns with a remainder
  uint8_t col[32];
  float value[32];  // their remainders in units of 2^-s (X's units)

  void add(int c, float r) {
    col[count] = static_cast<uint8_t>(c);
    value[count++] = r;
  }
  // The whole block as remainders at scale 1 (its digits all 0): for an element that is not finite or
  // too large for the digits.
  void take_all(const float* x) {
    inv_scale = 1.f;
    count = 0;
    for (int j = 0; j < 32; ++j) add(j, x[j]);
  }
};

// s for a block whose largest |element| m (finite, > 0) is below 2^largest: m·2^s < 2^largest, and 2^s
// stays a normal float both ways (|x| >= 2^-126 cannot need more; a tinier block keeps remainders).
inline int q4_x_block_exponent(float m, int largest) {
  int e = 0;
  std::frexp(m, &e);  // m < 2^e, e <= largest
  return std::min(largest - e, 126);
}

}  // namespace cb::kernels
