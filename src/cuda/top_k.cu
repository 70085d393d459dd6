// GPU top-k per sequence with [CLS]/[SEP] protection: SpAtten's top-k engine as one thread block per
// sequence. Scores become 64-bit keys (host/top_k_key.h: special rows first, then score, then the
// earlier row), a bitonic network sorts them in shared memory, the first (specials + keep) keys are
// the kept rows, and a block-wide prefix sum writes them out in ascending row order. For the
// sequence lengths of BERT (<= 512, at most kTopKMaxLength) a full bitonic sort in shared memory is
// a few microseconds and needs no global scratch; radix select would pay off only for much longer rows.
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/host/top_k_key.h"
#include "cuda/kernels.h"

namespace sieve::cuda {
namespace {

constexpr int kThreads = 512;

__global__ void __launch_bounds__(kThreads)
    top_k_keep_kernel(const float* scores, const uint8_t* is_special, const int32_t* cu_seqlens, const int32_t* keep,
                      int padded, uint8_t* keep_mask, int32_t* kept_rows, int32_t* kept_count) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint64_t* keys = reinterpret_cast<uint64_t*>(smem_raw);           // [padded]
  uint8_t* flags = reinterpret_cast<uint8_t*>(keys + padded);       // [padded]
  __shared__ int32_t warp_totals[kThreads / 32];
  __shared__ int32_t specials;

  const int s = blockIdx.x;
  const int row0 = cu_seqlens[s], n = cu_seqlens[s + 1] - row0;
  int p2 = 1;
  while (p2 < n) p2 *= 2;
  if (threadIdx.x == 0) specials = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < p2; i += kThreads) {
    uint64_t key = 0;
    if (i < n) {
      const bool special = is_special[row0 + i] != 0;
      key = top_k_key(scores[row0 + i], i, special);
      if (special) atomicAdd(&specials, 1);
    }
    keys[i] = key;
    flags[i] = 0;
  }
  __syncthreads();

  // Bitonic sort, descending.
  for (int k = 2; k <= p2; k *= 2) {
    for (int j = k / 2; j > 0; j /= 2) {
      for (int i = threadIdx.x; i < p2; i += kThreads) {
        const int partner = i ^ j;
        if (partner > i) {
          const uint64_t a = keys[i], b = keys[partner];
          const bool descending = (i & k) == 0;
          if (descending ? a < b : a > b) {
            keys[i] = b;
            keys[partner] = a;
          }
        }
      }
      __syncthreads();
    }
  }

  const int kept = min(n, specials + max(keep[s], 0));
  for (int i = threadIdx.x; i < kept; i += kThreads) flags[top_k_key_row(keys[i])] = 1;
  __syncthreads();

  // Ascending compaction: each thread owns a contiguous chunk; an exclusive scan of chunk counts.
  const int chunk = (n + kThreads - 1) / kThreads;
  const int begin = min(n, static_cast<int>(threadIdx.x) * chunk), end = min(n, begin + chunk);
  int count = 0;
  for (int i = begin; i < end; ++i) count += flags[i];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int inclusive = count;
  for (int offset = 1; offset < 32; offset *= 2) {
    const int v = __shfl_up_sync(0xffffffffu, inclusive, offset);
    if (lane >= offset) inclusive += v;
  }
  if (lane == 31) warp_totals[warp] = inclusive;
  __syncthreads();
  if (warp == 0) {
    int total = lane < kThreads / 32 ? warp_totals[lane] : 0;
    for (int offset = 1; offset < 32; offset *= 2) {
      const int v = __shfl_up_sync(0xffffffffu, total, offset);
      if (lane >= offset) total += v;
    }
    if (lane < kThreads / 32) warp_totals[lane] = total;  // inclusive over warps
  }
  __syncthreads();
  int out = inclusive - count + (warp > 0 ? warp_totals[warp - 1] : 0);
  for (int i = begin; i < end; ++i) {
    keep_mask[row0 + i] = flags[i];
    if (flags[i]) kept_rows[row0 + out++] = i;
  }
  if (threadIdx.x == 0) kept_count[s] = kept;
}

}  // namespace

void top_k_keep(const float* scores, const uint8_t* is_special, const int32_t* cu_seqlens, const int32_t* keep,
                int num_sequences, int max_length, uint8_t* keep_mask, int32_t* kept_rows, int32_t* kept_count,
                cudaStream_t stream) {
  if (num_sequences == 0) return;
  if (max_length > kTopKMaxLength)
    throw Error("top_k_keep: sequences longer than " + std::to_string(kTopKMaxLength) + " rows are not supported");
  int padded = 1;
  while (padded < max_length) padded *= 2;
  const size_t smem = static_cast<size_t>(padded) * (sizeof(uint64_t) + 1);
  static const bool configured = [] {
    SIEVE_CUDA_CHECK(cudaFuncSetAttribute(top_k_keep_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(kTopKMaxLength * (sizeof(uint64_t) + 1))));
    return true;
  }();
  (void)configured;
  top_k_keep_kernel<<<num_sequences, kThreads, smem, stream>>>(scores, is_special, cu_seqlens, keep, padded, keep_mask,
                                                               kept_rows, kept_count);
  SIEVE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace sieve::cuda
