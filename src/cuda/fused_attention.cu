// Fused on-the-fly attention for packed variable-length sequences (E.T., on tensor cores), FP16 in
// and out, FP32 accumulation, with the statistics the pruning policies need.
//
// Pass structure. A thread block owns one (sequence, head, tile of kQueryTile query rows); its four
// warps own 16 query rows each. Nothing of size n x n ever reaches global memory: a 64 x 32 score
// tile lives in shared memory for the duration of one key step.
//
//   Pass 1 (statistics). Walk the key tiles, S = Q K^T on tensor cores, and keep per query row the
//   running max m and the running sum l of exp(S - m) (online rescaling). No V is read. At the end
//   m and l are the exact softmax statistics of each row.
//
//   Pass 2 (output). Walk the key tiles again, recompute S, and form the *final* probabilities
//   P = exp(S - m) / l directly. Because P is exact rather than relative to a running max:
//     - column sums of P (the attention each key token receives, SpAtten's token importance and
//       LTP's score) are plain sums: the block reduces its 64 rows per key column in shared memory
//       and adds one float per key column to global memory (atomicAdd; other query tiles of the same
//       (sequence, head) add to the same columns);
//     - O = P V accumulates in tensor-core fragments with no rescaling, and at the end each warp
//       adds sum |O| of its rows to the head's magnitude (SpAtten's head importance), again with one
//       atomicAdd per warp.
//   A one-pass online-softmax kernel (FlashAttention) cannot give the column sums without storing P
//   or its running scales per row and key: a key column's probabilities are only known once the row
//   max and sum are final. The price of exactness is recomputing Q K^T once (pass 1 reads Q and K,
//   pass 2 reads Q, K and V): ~1.5x the tensor-core work of a dense one-pass kernel, with the same
//   O(n) memory traffic per row.
//
// Performance notes (not yet measured on a GPU; see bench/CUDA.md). The kernel uses WMMA through
// shared memory for clarity. When no policy asks for statistics, a one-pass online-softmax variant
// (rescaling O per key tile) would save pass 1; beyond that: 64-key tiles (half the barriers),
// double-buffered K/V loads (cp.async), and mma.sync with P kept in registers instead of going
// through shared memory, as FlashAttention-2 does.
#include <mma.h>

#include <cmath>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace sieve::cuda {
namespace {

using namespace nvcuda;

constexpr int kThreads = 32 * kAttentionWarps;

template <int D>
struct AttentionSmem {
  static constexpr int kLdh = D + 8;         // halves per Q/K/V row (padding against bank conflicts)
  static constexpr int kLds = kKeyTile + 4;  // floats per score row
  static constexpr int kLdp = kKeyTile + 8;  // halves per probability row
  alignas(128) __half q[kQueryTile * kLdh];
  alignas(128) __half k[kKeyTile * kLdh];
  alignas(128) __half v[kKeyTile * kLdh];
  alignas(128) float s[kQueryTile * kLds];
  alignas(128) __half p[kQueryTile * kLdp];
};

// Copies `valid` rows of D halves (rows `stride` apart) into shared memory, zero-filling up to `rows`.
template <int D>
__device__ void load_tile(__half* dst, const __half* src, int64_t stride, int valid, int rows) {
  constexpr int kChunks = D / 8;  // 16-byte vectors per row
  for (int i = threadIdx.x; i < rows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = (i % kChunks) * 8;
    uint4 value = make_uint4(0, 0, 0, 0);
    if (r < valid) value = *reinterpret_cast<const uint4*>(src + r * stride + c);
    *reinterpret_cast<uint4*>(dst + r * AttentionSmem<D>::kLdh + c) = value;
  }
}

// This warp's 16 x kKeyTile raw scores Q K^T into s.
template <int D>
__device__ void score_tile(AttentionSmem<D>& sm, int warp,
                           const wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> (&qf)[D / 16]) {
  constexpr int L = AttentionSmem<D>::kLdh;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kKeyTile / 16];
#pragma unroll
  for (int j = 0; j < kKeyTile / 16; ++j) wmma::fill_fragment(acc[j], 0.0f);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
    for (int j = 0; j < kKeyTile / 16; ++j) {
      // K stored [key][d] row-major is K^T stored column-major.
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> kf;
      wmma::load_matrix_sync(kf, sm.k + j * 16 * L + kk * 16, L);
      wmma::mma_sync(acc[j], qf[kk], kf, acc[j]);
    }
  }
#pragma unroll
  for (int j = 0; j < kKeyTile / 16; ++j)
    wmma::store_matrix_sync(sm.s + warp * 16 * AttentionSmem<D>::kLds + j * 16, acc[j], AttentionSmem<D>::kLds,
                            wmma::mem_row_major);
}

template <int D>
__global__ void __launch_bounds__(kThreads) fused_attention_kernel(AttentionArgs a, float scale_log2) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  AttentionSmem<D>& sm = *reinterpret_cast<AttentionSmem<D>*>(smem_raw);
  constexpr int L = AttentionSmem<D>::kLdh, LS = AttentionSmem<D>::kLds, LP = AttentionSmem<D>::kLdp;
  static_assert(kKeyTile == 32, "a warp's lane pair covers one score row of 2 x 16 columns");

  const AttentionWorkItem item = a.items[blockIdx.x];
  const int row0 = a.cu_seqlens[item.seq];
  const int n = a.cu_seqlens[item.seq + 1] - row0;
  const int q0 = item.query_begin;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const __half* q_base = a.qkv + static_cast<int64_t>(row0) * a.qkv_stride + static_cast<int64_t>(item.head) * 3 * D;
  const __half* k_base = q_base + D;
  const __half* v_base = q_base + 2 * D;

  load_tile<D>(sm.q, q_base + static_cast<int64_t>(q0) * a.qkv_stride, a.qkv_stride, min(kQueryTile, n - q0), kQueryTile);
  __syncthreads();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> qf[D / 16];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) wmma::load_matrix_sync(qf[kk], sm.q + warp * 16 * L + kk * 16, L);

  // Each lane pair owns one of the warp's 16 rows: lane 2r covers key columns 0-15, lane 2r+1 16-31.
  const int my_row = warp * 16 + lane / 2;  // row within the tile
  const int my_col0 = (lane % 2) * 16;
  const bool row_valid = q0 + my_row < n;
  float* s_row = sm.s + my_row * LS + my_col0;

  // ---- pass 1: row max and row sum of exponentials (log2 domain) -----------------------------------
  float m = -INFINITY, l = 0.0f;
  for (int k0 = 0; k0 < n; k0 += kKeyTile) {
    __syncthreads();  // everyone is done with the previous K tile
    load_tile<D>(sm.k, k_base + static_cast<int64_t>(k0) * a.qkv_stride, a.qkv_stride, min(kKeyTile, n - k0), kKeyTile);
    __syncthreads();
    score_tile<D>(sm, warp, qf);
    __syncwarp();
    const int valid = min(16, n - k0 - my_col0);
    float tile_max = -INFINITY;
    for (int c = 0; c < valid; ++c) tile_max = fmaxf(tile_max, s_row[c] * scale_log2);
    if (tile_max > -INFINITY) {
      const float m_new = fmaxf(m, tile_max);
      float sum = 0.0f;
      for (int c = 0; c < valid; ++c) sum += exp2f(s_row[c] * scale_log2 - m_new);
      l = l * exp2f(m - m_new) + sum;
      m = m_new;
    }
  }
  // Both lanes of a pair end with the row's statistics.
  const float m_other = __shfl_xor_sync(0xffffffffu, m, 1), l_other = __shfl_xor_sync(0xffffffffu, l, 1);
  const float row_max = fmaxf(m, m_other);  // finite: column 0 of the first tile is always a key
  const float row_inv_sum = 1.0f / (l * exp2f(m - row_max) + l_other * exp2f(m_other - row_max));

  // ---- pass 2: exact P, its column sums, and O = P V ----------------------------------------------
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> of[D / 16];
#pragma unroll
  for (int j = 0; j < D / 16; ++j) wmma::fill_fragment(of[j], 0.0f);
  float* received = a.received ? a.received + static_cast<int64_t>(a.num_heads) * row0 + static_cast<int64_t>(item.head) * n
                               : nullptr;
  for (int k0 = 0; k0 < n; k0 += kKeyTile) {
    const int keys = min(kKeyTile, n - k0);
    __syncthreads();  // previous tile's S, P and V are consumed
    load_tile<D>(sm.k, k_base + static_cast<int64_t>(k0) * a.qkv_stride, a.qkv_stride, keys, kKeyTile);
    load_tile<D>(sm.v, v_base + static_cast<int64_t>(k0) * a.qkv_stride, a.qkv_stride, keys, kKeyTile);
    __syncthreads();
    score_tile<D>(sm, warp, qf);
    __syncwarp();
    __half* p_row = sm.p + my_row * LP + my_col0;
#pragma unroll
    for (int c = 0; c < 16; ++c) {
      const bool live = row_valid && my_col0 + c < keys;
      const float p = live ? exp2f(s_row[c] * scale_log2 - row_max) * row_inv_sum : 0.0f;
      s_row[c] = p;
      p_row[c] = __float2half(p);
    }
    __syncthreads();  // all 64 rows of P are in place
    if (received && threadIdx.x < kKeyTile && static_cast<int>(threadIdx.x) < keys) {
      float col = 0.0f;
      for (int r = 0; r < kQueryTile; ++r) col += sm.s[r * LS + threadIdx.x];
      atomicAdd(received + k0 + threadIdx.x, col);
    }
#pragma unroll
    for (int kk = 0; kk < kKeyTile / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> pf;
      wmma::load_matrix_sync(pf, sm.p + warp * 16 * LP + kk * 16, LP);
#pragma unroll
      for (int j = 0; j < D / 16; ++j) {
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> vf;
        wmma::load_matrix_sync(vf, sm.v + kk * 16 * L + j * 16, L);
        wmma::mma_sync(of[j], pf, vf, of[j]);
      }
    }
  }
  __syncthreads();  // the column sums of the last tile have read S; it is reused as staging below

  // ---- epilogue: O to global (FP16) and sum |O| per head --------------------------------------------
  float* stage = sm.s + warp * 16 * LS;  // 16 x kKeyTile floats per warp: two 16 x 16 output blocks
  float magnitude = 0.0f;
  __half* out_row = a.out + static_cast<int64_t>(row0 + q0 + my_row) * a.out_stride + static_cast<int64_t>(item.head) * D;
#pragma unroll
  for (int j0 = 0; j0 < D / 16; j0 += 2) {
    wmma::store_matrix_sync(stage, of[j0], LS, wmma::mem_row_major);
    if (j0 + 1 < D / 16) wmma::store_matrix_sync(stage + 16, of[j0 + 1], LS, wmma::mem_row_major);
    __syncwarp();
    const int cols = (j0 + 1 < D / 16) ? 32 : 16;
    if (row_valid && my_col0 < cols) {
      const float* o = stage + (lane / 2) * LS + my_col0;
#pragma unroll
      for (int c = 0; c < 16; c += 2) {
        magnitude += fabsf(o[c]) + fabsf(o[c + 1]);
        *reinterpret_cast<__half2*>(out_row + j0 * 16 + my_col0 + c) = __floats2half2_rn(o[c], o[c + 1]);
      }
    }
    __syncwarp();
  }
  if (a.head_magnitude) {
    for (int offset = 16; offset > 0; offset /= 2) magnitude += __shfl_xor_sync(0xffffffffu, magnitude, offset);
    if (lane == 0 && magnitude != 0.0f)
      atomicAdd(a.head_magnitude + static_cast<int64_t>(item.seq) * a.num_heads + item.head, magnitude);
  }
}

template <int D>
void launch(const AttentionArgs& args, cudaStream_t stream) {
  const size_t smem = sizeof(AttentionSmem<D>);
  static const bool configured = [smem] {
    SIEVE_CUDA_CHECK(cudaFuncSetAttribute(fused_attention_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
    return true;
  }();
  (void)configured;
  const float scale_log2 = args.scale * 1.4426950408889634f;  // exp(x) = exp2(x * log2(e))
  fused_attention_kernel<D><<<args.num_items, kThreads, smem, stream>>>(args, scale_log2);
  SIEVE_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void fused_attention(const AttentionArgs& args, int64_t received_size, int64_t head_magnitude_size,
                     cudaStream_t stream) {
  if (args.received) SIEVE_CUDA_CHECK(cudaMemsetAsync(args.received, 0, sizeof(float) * received_size, stream));
  if (args.head_magnitude)
    SIEVE_CUDA_CHECK(cudaMemsetAsync(args.head_magnitude, 0, sizeof(float) * head_magnitude_size, stream));
  if (args.num_items == 0) return;
  if (args.qkv_stride % 8 != 0 || args.out_stride % 8 != 0)
    throw Error("fused_attention: row strides must be multiples of 8 halves (16-byte loads)");
  switch (args.head_dim) {
    case 32: launch<32>(args, stream); break;
    case 64: launch<64>(args, stream); break;
    case 128: launch<128>(args, stream); break;
    default: throw Error("fused_attention: head_dim " + std::to_string(args.head_dim) + " not supported (32, 64, 128)");
  }
}

}  // namespace sieve::cuda
