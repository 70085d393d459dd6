// Fused on-the-fly attention for packed variable-length sequences (E.T., on tensor cores), FP16 in
// and out, FP32 accumulation, with the statistics the pruning policies need.
//
// Work split. A thread block owns one (sequence, head, tile of kQueryTile = 64 query rows); each of
// its four warps owns 16 query rows. Nothing of size n x n ever leaves registers: S = Q K^T and
// O += P V are m16n8k16 tensor-core MMAs (mma.sync) whose fragment layouts are the PTX ISA's
// documented ones, so softmax works on the accumulators directly and S's accumulators are re-packed
// as the A operand of P V (FlashAttention-2's trick). K and V tiles of 64 keys are double-buffered
// in shared memory with cp.async, so the next tile loads while this one is computed.
//
// Two algorithms over that one loop:
//   Online (one pass; dense layers and head-only policies): FlashAttention's running max and sum
//   per row, O rescaled when the max moves, divided by the sum at the end.
//   Exact (two passes; policies that need the column sums). Pass 1 walks K only and keeps the
//   running max m and sum l per row; at its end they are the exact softmax statistics. Pass 2
//   recomputes S and forms the *final* probabilities P = exp(S - m) / l, so
//     - column sums of P (the attention each key token receives: SpAtten's token importance, LTP's
//       score) are plain sums: each warp reduces its 16 rows with shuffles, the block's four warps
//       add into 64 floats of shared memory, and one atomicAdd per key column goes to global memory
//       (other query tiles of the same (sequence, head) add to the same columns);
//     - O = P V needs no rescaling.
//   An online kernel cannot give the column sums without storing P or its running scales: a key's
//   probabilities are only known once the row's max and sum are final. The price of exactness is
//   computing Q K^T twice: ~1.5x the tensor-core work of the one-pass kernel, same O(n) traffic.
// Both add sum |O| of each row to the head's magnitude (SpAtten's head importance) when asked.
#include <cmath>
#include <string>

#include "cuda/cuda_check.h"
#include "cuda/kernels.h"

namespace sieve::cuda {
namespace {

constexpr int kThreads = 32 * kAttentionWarps;

namespace flash {

#ifndef SIEVE_ATTENTION_KEYS  // build-time knobs for tuning experiments (bench/CUDA.md)
#define SIEVE_ATTENTION_KEYS 64
#endif
#ifndef SIEVE_ATTENTION_MIN_BLOCKS
#define SIEVE_ATTENTION_MIN_BLOCKS 1
#endif
constexpr int kKeys = SIEVE_ATTENTION_KEYS;  // keys per tile

template <int D>
struct Smem {
  static constexpr int kLd = D + 8;  // halves per row: 16-byte skew, so ldmatrix's 8 rows hit 8 bank groups
  alignas(128) __half q[kQueryTile * kLd];
  alignas(128) __half k[2][kKeys * kLd];
  alignas(128) __half v[2][kKeys * kLd];
  float colsum[kKeys];  // the block's column sums of P for the current key tile (exact pass)
};

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Rows [0, valid) of D halves from global memory (rows `stride` apart) into shared memory, rows
// [valid, rows) zero-filled (cp.async with a source size of 0 reads nothing).
template <int D>
__device__ __forceinline__ void load_async(__half* dst, const __half* src, int64_t stride, int valid, int rows) {
  constexpr int kChunks = D / 8;
  for (int i = threadIdx.x; i < rows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = (i % kChunks) * 8;
    const bool live = r < valid;
    const __half* from = live ? src + r * stride + c : src;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst + r * Smem<D>::kLd + c)),
                 "l"(from), "r"(live ? 16 : 0));
  }
}
__device__ __forceinline__ void commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void wait_pending() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const __half* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const __half* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p)));
}
// c += a b for one 16 x 8 tile (a: 16 x 16 row-major, b: 16 x 8 column-major), FP32 accumulation.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

enum class Pass { kOnline, kStatistics, kExact };

// Walks the key tiles of one (sequence, head) for this warp's 16 query rows (fragments qa). Lane
// 4 g + t holds rows g and g + 8 of every accumulator, at columns 2t and 2t + 1 (PTX ISA,
// mma.m16n8k16): each row's max and sum live in the 4 lanes of a group, reduced with two
// xor-shuffles.
//   kOnline:     m, l running; o accumulates relative to m.
//   kStatistics: m, l running; no V is read, o untouched.
//   kExact:      m final, inv_l = 1 / final sum; o accumulates exact P V, and when received is set
//                the column sums of P go there (rows past the sequence's end count as 0).
template <int D, Pass kPass>
__device__ __forceinline__ void key_loop(Smem<D>& sm, const uint32_t (&qa)[D / 16][4], const __half* k_base,
                                         const __half* v_base, int64_t stride, int n, bool row_valid_lo,
                                         bool row_valid_hi, float scale_log2, float (&m)[2], float (&l)[2],
                                         float inv_l[2], float (&o)[D / 8][4], float* colsum, float* received) {
  constexpr int LD = Smem<D>::kLd;
  constexpr bool kReadV = kPass != Pass::kStatistics;
  const int lane = threadIdx.x % 32, t = lane % 4;
  const int tiles = (n + kKeys - 1) / kKeys;
  load_async<D>(sm.k[0], k_base, stride, min(kKeys, n), kKeys);
  if (kReadV) load_async<D>(sm.v[0], v_base, stride, min(kKeys, n), kKeys);
  commit();
  if (kPass == Pass::kExact && received && threadIdx.x < kKeys) colsum[threadIdx.x] = 0.0f;

  for (int tile = 0; tile < tiles; ++tile) {
    const int k0 = tile * kKeys, keys = min(kKeys, n - k0);
    if (tile + 1 < tiles) {  // the buffer it fills was released by the barrier ending the last iteration
      const int next = k0 + kKeys, next_keys = min(kKeys, n - next);
      load_async<D>(sm.k[(tile + 1) & 1], k_base + static_cast<int64_t>(next) * stride, stride, next_keys, kKeys);
      if (kReadV) load_async<D>(sm.v[(tile + 1) & 1], v_base + static_cast<int64_t>(next) * stride, stride, next_keys, kKeys);
      commit();
      wait_pending<1>();
    } else {
      wait_pending<0>();
    }
    __syncthreads();
    const __half* sk = sm.k[tile & 1];
    const __half* sv = sm.v[tile & 1];

    // S = Q K^T: 8 tiles of 16 x 8 per warp.
    float s[kKeys / 8][4];
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
#pragma unroll
      for (int jj = 0; jj < kKeys / 16; ++jj) {
        uint32_t b[4];  // keys 16 jj .. +15 as two n-tiles, d 16 kk .. +15 as two k-halves
        ldmatrix_x4(b, sk + (jj * 16 + (lane / 16) * 8 + lane % 8) * LD + kk * 16 + ((lane / 8) % 2) * 8);
        mma(s[2 * jj], qa[kk], b[0], b[1]);
        mma(s[2 * jj + 1], qa[kk], b[2], b[3]);
      }
    }
    // Log2 domain; keys past the sequence's end are -inf.
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] = j * 8 + 2 * t + (e & 1) < keys ? s[j][e] * scale_log2 : -INFINITY;

    if constexpr (kPass == Pass::kExact) {
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[j][e] = exp2f(s[j][e] - m[e / 2]) * inv_l[e / 2];
      if (received) {
        // Column sums: this lane's two rows, then the warp's 8 row groups (xor over g), then the
        // block's warps in shared memory.
#pragma unroll
        for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
          for (int c = 0; c < 2; ++c) {
            float v = (row_valid_lo ? s[j][c] : 0.0f) + (row_valid_hi ? s[j][c + 2] : 0.0f);
            v += __shfl_xor_sync(0xffffffffu, v, 4);
            v += __shfl_xor_sync(0xffffffffu, v, 8);
            v += __shfl_xor_sync(0xffffffffu, v, 16);
            if (lane < 4) atomicAdd(colsum + j * 8 + 2 * t + c, v);
          }
        }
      }
    } else {
      float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) tile_max[e / 2] = fmaxf(tile_max[e / 2], s[j][e]);
      float alpha[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
        tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
        const float m_new = fmaxf(m[r], tile_max[r]);  // finite: key 0 of every tile is live
        alpha[r] = exp2f(m[r] - m_new);                // 0 on the first tile
        m[r] = m_new;
        l[r] *= alpha[r];
      }
#pragma unroll
      for (int j = 0; j < kKeys / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[j][e] = exp2f(s[j][e] - m[e / 2]);
          l[e / 2] += s[j][e];
        }
      }
      if constexpr (kPass == Pass::kOnline) {
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          o[j][0] *= alpha[0];
          o[j][1] *= alpha[0];
          o[j][2] *= alpha[1];
          o[j][3] *= alpha[1];
        }
      }
    }

    if constexpr (kReadV) {
      // O += P V: S's accumulators for keys 16 kk .. +15 are exactly the A fragment of that k-step.
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk) {
        const uint32_t pa[4] = {pack_half2(s[2 * kk][0], s[2 * kk][1]), pack_half2(s[2 * kk][2], s[2 * kk][3]),
                                pack_half2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                pack_half2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
        for (int dd = 0; dd < D / 16; ++dd) {
          uint32_t b[4];  // V[keys 16 kk .. +15][d 16 dd .. +15], transposed into two n-tiles of 8 d
          ldmatrix_x4_trans(b, sv + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * LD + dd * 16 + (lane / 16) * 8);
          mma(o[2 * dd], pa, b[0], b[1]);
          mma(o[2 * dd + 1], pa, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // every warp is done with this tile's buffers (and column sums)
    if (kPass == Pass::kExact && received && static_cast<int>(threadIdx.x) < keys) {
      atomicAdd(received + k0 + threadIdx.x, colsum[threadIdx.x]);
      colsum[threadIdx.x] = 0.0f;  // ordered before the next tile's adds by its first barrier
    }
  }
}

// One (sequence, head, 64-query tile) per block: Online, or Exact (pass 1, then pass 2).
template <int D, bool kExact>
__global__ void __launch_bounds__(kThreads, SIEVE_ATTENTION_MIN_BLOCKS) kernel(AttentionArgs a, float scale_log2) {
  extern __shared__ __align__(128) unsigned char smem_raw[];
  Smem<D>& sm = *reinterpret_cast<Smem<D>*>(smem_raw);
  constexpr int LD = Smem<D>::kLd;

  const AttentionWorkItem item = a.items[blockIdx.x];
  const int row0 = a.cu_seqlens[item.seq];
  const int n = a.cu_seqlens[item.seq + 1] - row0;
  const int q0 = item.query_begin;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const __half* q_base = a.qkv + static_cast<int64_t>(row0) * a.qkv_stride + static_cast<int64_t>(item.head) * 3 * D;
  const __half* k_base = q_base + D;
  const __half* v_base = q_base + 2 * D;
  const int first_row = q0 + warp * 16 + g;  // rows first_row and first_row + 8 are this lane's
  const bool valid_lo = first_row < n, valid_hi = first_row + 8 < n;

  load_async<D>(sm.q, q_base + static_cast<int64_t>(q0) * a.qkv_stride, a.qkv_stride, min(kQueryTile, n - q0), kQueryTile);
  commit();
  wait_pending<0>();
  __syncthreads();
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk)
    ldmatrix_x4(qa[kk], sm.q + (warp * 16 + lane % 16) * LD + kk * 16 + (lane / 16) * 8);

  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows g and g + 8; l is this lane's share
  float inv_l[2] = {1.0f, 1.0f};
  float* received = a.received ? a.received + static_cast<int64_t>(a.num_heads) * row0 + static_cast<int64_t>(item.head) * n
                               : nullptr;
  constexpr Pass kFirst = kExact ? Pass::kStatistics : Pass::kOnline;
  key_loop<D, kFirst>(sm, qa, k_base, v_base, a.qkv_stride, n, valid_lo, valid_hi, scale_log2, m, l, inv_l, o,
                      sm.colsum, nullptr);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv_l[r] = 1.0f / l[r];
  }
  if constexpr (kExact) {
    key_loop<D, Pass::kExact>(sm, qa, k_base, v_base, a.qkv_stride, n, valid_lo, valid_hi, scale_log2, m, l, inv_l,
                              o, sm.colsum, received);
    inv_l[0] = inv_l[1] = 1.0f;  // P was already normalized
  }

  // ---- epilogue: O to global (FP16) and sum |O| per head --------------------------------------------
  float magnitude = 0.0f;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (!(r == 0 ? valid_lo : valid_hi)) continue;
    __half* out_row = a.out + static_cast<int64_t>(row0 + first_row + 8 * r) * a.out_stride +
                      static_cast<int64_t>(item.head) * D + 2 * t;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      const float x = o[j][2 * r] * inv_l[r], y = o[j][2 * r + 1] * inv_l[r];
      magnitude += fabsf(x) + fabsf(y);
      *reinterpret_cast<__half2*>(out_row + j * 8) = __floats2half2_rn(x, y);
    }
  }
  if (a.head_magnitude) {
    for (int offset = 16; offset > 0; offset /= 2) magnitude += __shfl_xor_sync(0xffffffffu, magnitude, offset);
    if (lane == 0 && magnitude != 0.0f)
      atomicAdd(a.head_magnitude + static_cast<int64_t>(item.seq) * a.num_heads + item.head, magnitude);
  }
}

}  // namespace flash

template <int D, bool kExact>
void launch_kernel(const AttentionArgs& args, float scale_log2, cudaStream_t stream) {
  const size_t smem = sizeof(flash::Smem<D>);
  static const bool configured = [smem] {
    SIEVE_CUDA_CHECK(cudaFuncSetAttribute(flash::kernel<D, kExact>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
    return true;
  }();
  (void)configured;
  flash::kernel<D, kExact><<<args.num_items, kThreads, smem, stream>>>(args, scale_log2);
}

template <int D>
void launch(const AttentionArgs& args, cudaStream_t stream) {
  const float scale_log2 = args.scale * 1.4426950408889634f;  // exp(x) = exp2(x * log2(e))
  // Column sums need the exact probabilities, hence two passes; everything else is one pass.
  if (args.received || args.algorithm == AttentionAlgorithm::kTwoPass)
    launch_kernel<D, true>(args, scale_log2, stream);
  else
    launch_kernel<D, false>(args, scale_log2, stream);
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
