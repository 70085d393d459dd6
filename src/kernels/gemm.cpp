#include "kernels/gemm.h"

#include <oneapi/dnnl/dnnl.h>

#include <string>

#include "util/error.h"

namespace sieve {

void gemm(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc, float beta) {
  if (m == 0 || n == 0) return;
  const dnnl_status_t status =
      dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data, a.stride, b.data, b.stride, beta, c, ldc);
  if (status != dnnl_success) throw Error("oneDNN sgemm failed with status " + std::to_string(status));
}

Tensor transposed(const Tensor& w) {
  if (w.rank() != 2) throw Error("transposed() needs a matrix");
  const int64_t rows = w.dim(0), cols = w.dim(1);
  Tensor t({cols, rows});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t.data()[c * rows + r] = w.data()[r * cols + c];
  return t;
}

}  // namespace sieve
