// Row kernels of the CUDA backend: FP16 storage, FP32 arithmetic, one warp per row for the
// reductions (LayerNorm), a grid-stride loop for the element-wise ones. Mirrors kernels/row_kernels.h.
#include <algorithm>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace sieve::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kRowsPerBlock = kBlock / 32;

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kBlock - 1) / kBlock, 1 << 16)); }

__device__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

__global__ void bias_add_kernel(__half* x, int64_t ld, const __half* bias, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    __half& v = x[r * ld + c];
    v = __float2half(__half2float(v) + __half2float(bias[c]));
  }
}

__global__ void bias_gelu_kernel(__half2* x, const __half2* bias, int64_t total2, int64_t cols2) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total2;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float2 v = __half22float2(x[i]), b = __half22float2(bias[i % cols2]);
    x[i] = __floats2half2_rn(gelu_erf(v.x + b.x), gelu_erf(v.y + b.y));
  }
}

// v = x + bias + residual for one pair of columns.
__device__ float2 ln_input(const __half2* x, const __half2* bias, const __half2* residual, int64_t c) {
  float2 v = __half22float2(x[c]);
  if (bias) {
    const float2 b = __half22float2(bias[c]);
    v.x += b.x;
    v.y += b.y;
  }
  if (residual) {
    const float2 r = __half22float2(residual[c]);
    v.x += r.x;
    v.y += r.y;
  }
  return v;
}

// Mean first, then the variance around it (two passes over the row, as the CPU kernel: no
// cancellation from E[x^2] - E[x]^2).
__global__ void layernorm_kernel(__half2* x, const __half2* bias, const __half2* residual, const float2* gamma,
                                 const float2* beta, float eps, int64_t rows, int64_t cols2) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = threadIdx.x % 32;
  __half2* xr = x + row * cols2;
  const __half2* rr = residual ? residual + row * cols2 : nullptr;
  float sum = 0.0f;
  for (int64_t c = lane; c < cols2; c += 32) {
    const float2 v = ln_input(xr, bias, rr, c);
    sum += v.x + v.y;
  }
  const float mean = warp_sum(sum) / static_cast<float>(2 * cols2);
  float sq = 0.0f;
  for (int64_t c = lane; c < cols2; c += 32) {
    const float2 v = ln_input(xr, bias, rr, c);
    sq += (v.x - mean) * (v.x - mean) + (v.y - mean) * (v.y - mean);
  }
  const float inv_std = rsqrtf(warp_sum(sq) / static_cast<float>(2 * cols2) + eps);
  for (int64_t c = lane; c < cols2; c += 32) {
    const float2 v = ln_input(xr, bias, rr, c), g = gamma[c], b = beta[c];
    xr[c] = __floats2half2_rn((v.x - mean) * inv_std * g.x + b.x, (v.y - mean) * inv_std * g.y + b.y);
  }
}

__global__ void embed_kernel(const int32_t* ids, const int32_t* positions, const int32_t* type_ids,
                             const __half2* word, const __half2* pos, const __half2* type, __half2* out,
                             int64_t rows, int64_t cols2) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(kRowsPerBlock) + threadIdx.x / 32;
  if (row >= rows) return;
  const __half2* w = word + ids[row] * cols2;
  const __half2* p = pos + positions[row] * cols2;
  const __half2* t = type + (type_ids ? type_ids[row] : 0) * cols2;
  for (int64_t c = threadIdx.x % 32; c < cols2; c += 32) {
    const float2 a = __half22float2(w[c]), b = __half22float2(p[c]), d = __half22float2(t[c]);
    // Summed in FP32, stored once: the LayerNorm that follows rounds again.
    out[row * cols2 + c] = __floats2half2_rn(a.x + b.x + d.x, a.y + b.y + d.y);
  }
}

__global__ void half_to_float_kernel(const __half* in, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __half2float(in[i]);
}

void require_even(int64_t cols, const char* what) {
  if (cols % 2 != 0) throw Error(std::string(what) + ": the column count must be even (half2 access)");
}

}  // namespace

void bias_add(__half* x, int64_t ld, const __half* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows * cols == 0) return;
  bias_add_kernel<<<blocks_for(rows * cols), kBlock, 0, stream>>>(x, ld, bias, rows, cols);
  SIEVE_CUDA_CHECK(cudaGetLastError());
}

void bias_gelu(__half* x, const __half* bias, int64_t rows, int64_t cols, cudaStream_t stream) {
  require_even(cols, "bias_gelu");
  const int64_t total2 = rows * cols / 2;
  if (total2 == 0) return;
  bias_gelu_kernel<<<blocks_for(total2), kBlock, 0, stream>>>(reinterpret_cast<__half2*>(x),
                                                               reinterpret_cast<const __half2*>(bias), total2, cols / 2);
  SIEVE_CUDA_CHECK(cudaGetLastError());
}

void bias_residual_layernorm(__half* x, const __half* bias, const __half* residual, const float* gamma,
                             const float* beta, float eps, int64_t rows, int64_t cols, cudaStream_t stream) {
  require_even(cols, "bias_residual_layernorm");
  if (rows == 0) return;
  const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  layernorm_kernel<<<blocks, kBlock, 0, stream>>>(
      reinterpret_cast<__half2*>(x), reinterpret_cast<const __half2*>(bias), reinterpret_cast<const __half2*>(residual),
      reinterpret_cast<const float2*>(gamma), reinterpret_cast<const float2*>(beta), eps, rows, cols / 2);
  SIEVE_CUDA_CHECK(cudaGetLastError());
}

void embed_layernorm(const int32_t* ids, const int32_t* positions, const int32_t* type_ids, const __half* word,
                     const __half* pos, const __half* type, const float* gamma, const float* beta, float eps,
                     __half* out, int64_t rows, int64_t cols, cudaStream_t stream) {
  require_even(cols, "embed_layernorm");
  if (rows == 0) return;
  const auto blocks = static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock);
  embed_kernel<<<blocks, kBlock, 0, stream>>>(ids, positions, type_ids, reinterpret_cast<const __half2*>(word),
                                              reinterpret_cast<const __half2*>(pos),
                                              reinterpret_cast<const __half2*>(type), reinterpret_cast<__half2*>(out),
                                              rows, cols / 2);
  SIEVE_CUDA_CHECK(cudaGetLastError());
  bias_residual_layernorm(out, nullptr, nullptr, gamma, beta, eps, rows, cols, stream);
}

void half_to_float(const __half* in, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  half_to_float_kernel<<<blocks_for(n), kBlock, 0, stream>>>(in, out, n);
  SIEVE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sieve::cuda
