#pragma once
// cuBLAS GEMM for the CUDA backend, in the CPU gemm()'s convention (kernels/gemm.h): row-major
// C[m, n] = A[m, k] * B[k, n] (+ beta * C), B a weight stored [in, out]. Inputs FP16 or BF16,
// accumulation FP32 on tensor cores, output in the input type or FP32.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace sieve::cuda {

enum class GemmInput { F16, BF16 };

class CublasGemm {
 public:
  CublasGemm();
  ~CublasGemm();
  CublasGemm(const CublasGemm&) = delete;
  CublasGemm& operator=(const CublasGemm&) = delete;

  void set_stream(cudaStream_t stream);

  // Leading dimensions are in elements. c_float: C is FP32 instead of the input type.
  void operator()(int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, const void* b, int64_t ldb, void* c,
                  int64_t ldc, float beta = 0.0f, GemmInput input = GemmInput::F16, bool c_float = false) const;

 private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace sieve::cuda
