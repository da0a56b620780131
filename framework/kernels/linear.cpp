#include "framework/kernels/linear.h"

#include "framework/error.h"

namespace cb::kernels {

// Reference path: dequantise, then torch::matmul (the fast CPU kernels replace this).
torch::Tensor linear(const torch::Tensor& x, const PackedWeight& w) {
  if (x.size(-1) != w.cols) fail("linear: input has {} features, the weight expects {}", x.size(-1), w.cols);
  return torch::matmul(x, unpack_weight(w, x.scalar_type()).t());
}

torch::Tensor linear_input_grad(const torch::Tensor& dy, const PackedWeight& w) {
  if (dy.size(-1) != w.rows) fail("linear_input_grad: gradient has {} features, the weight has {} rows", dy.size(-1), w.rows);
  return torch::matmul(dy, unpack_weight(w, dy.scalar_type()));
}

}  // namespace cb::kernels
