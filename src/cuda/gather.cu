// Compaction of the packed batch on the device: kept token rows (after token pruning or early exit)
// and kept head slices. The host decides what survives (cuda::compact_sequences builds the row list);
// these kernels only move bytes, 16 at a time where the widths allow.
#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace sieve::cuda {
namespace {

constexpr int kBlock = 256;

template <typename V>
__global__ void gather_rows_kernel(const V* src, V* dst, const int32_t* source_rows, int64_t n_rows, int64_t cols_v) {
  const int64_t total = n_rows * cols_v;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols_v, c = i % cols_v;
    dst[i] = src[static_cast<int64_t>(source_rows[r]) * cols_v + c];
  }
}

template <typename V>
__global__ void gather_heads_kernel(const V* src, int64_t src_ld, V* dst, int64_t dst_ld, const int32_t* heads,
                                    int num_heads, int64_t width, int64_t rows) {
  const int64_t row_len = num_heads * width, total = rows * row_len;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / row_len, rest = i % row_len, slot = rest / width, c = rest % width;
    dst[r * dst_ld + slot * width + c] = src[r * src_ld + heads[slot] * width + c];
  }
}

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kBlock - 1) / kBlock, 1 << 16)); }

}  // namespace

void gather_rows(const __half* src, __half* dst, const int32_t* source_rows, int64_t n_rows, int64_t cols,
                 cudaStream_t stream) {
  if (n_rows * cols == 0) return;
  if (cols % 8 == 0) {
    const int64_t cols_v = cols / 8;
    gather_rows_kernel<<<blocks_for(n_rows * cols_v), kBlock, 0, stream>>>(
        reinterpret_cast<const uint4*>(src), reinterpret_cast<uint4*>(dst), source_rows, n_rows, cols_v);
  } else {
    gather_rows_kernel<<<blocks_for(n_rows * cols), kBlock, 0, stream>>>(src, dst, source_rows, n_rows, cols);
  }
  SIEVE_CUDA_CHECK(cudaGetLastError());
}

void gather_head_slices(const __half* src, int64_t src_ld, __half* dst, int64_t dst_ld, const int32_t* heads,
                        int num_heads, int64_t width, int64_t rows, cudaStream_t stream) {
  if (rows * num_heads * width == 0) return;
  if (width % 8 == 0 && src_ld % 8 == 0 && dst_ld % 8 == 0) {
    gather_heads_kernel<<<blocks_for(rows * num_heads * width / 8), kBlock, 0, stream>>>(
        reinterpret_cast<const uint4*>(src), src_ld / 8, reinterpret_cast<uint4*>(dst), dst_ld / 8, heads, num_heads,
        width / 8, rows);
  } else {
    gather_heads_kernel<<<blocks_for(rows * num_heads * width), kBlock, 0, stream>>>(src, src_ld, dst, dst_ld, heads,
                                                                                     num_heads, width, rows);
  }
  SIEVE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sieve::cuda
