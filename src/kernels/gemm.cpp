#include "kernels/gemm.h"

#include <cblas.h>

namespace sieve {

void gemm_a_bt(int64_t m, int64_t n, int64_t k, MatrixRef a, MatrixRef b, float* c, int64_t ldc,
               float beta) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a.data, static_cast<int>(a.stride), b.data,
              static_cast<int>(b.stride), beta, c, static_cast<int>(ldc));
}

void set_gemm_threads(int threads) { openblas_set_num_threads(threads); }

}  // namespace sieve
