#include "cuda/gemm.h"

#include <string>

#include "util/error.h"

namespace sieve::cuda {
namespace {

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLAS: ") + what + " failed: " + cublasGetStatusString(status));
}

}  // namespace

CublasGemm::CublasGemm() {
  check(cublasCreate(&handle_), "cublasCreate");
  // FP32 accumulation is requested per call (CUBLAS_COMPUTE_32F); tensor cores are used for FP16/BF16.
  check(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
}

CublasGemm::~CublasGemm() {
  if (handle_) cublasDestroy(handle_);
}

void CublasGemm::set_stream(cudaStream_t stream) { check(cublasSetStream(handle_, stream), "cublasSetStream"); }

void CublasGemm::operator()(int64_t m, int64_t n, int64_t k, const void* a, int64_t lda, const void* b, int64_t ldb,
                            void* c, int64_t ldc, float beta, GemmInput input, bool c_float) const {
  if (m == 0 || n == 0) return;
  const cudaDataType_t in_type = input == GemmInput::F16 ? CUDA_R_16F : CUDA_R_16BF;
  const cudaDataType_t out_type = c_float ? CUDA_R_32F : in_type;
  const float alpha = 1.0f;
  // Row-major C = A B is column-major C^T = B^T A^T: swap the operands, no transposes.
  check(cublasGemmEx(handle_, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m), static_cast<int>(k),
                     &alpha, b, in_type, static_cast<int>(ldb), a, in_type, static_cast<int>(lda), &beta, c, out_type,
                     static_cast<int>(ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx");
}

}  // namespace sieve::cuda
