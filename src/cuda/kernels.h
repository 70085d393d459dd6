#pragma once
// The CUDA backend's kernels, as host-callable launchers (defined in src/cuda/*.cu). Activations are
// FP16 row-major; every reduction and every non-linearity is computed in FP32. Each launcher mirrors
// a CPU routine and is tested against it (tests/cuda/):
//   fused_attention          <-> attention/fused_attention.h
//   bias_gelu, bias_add,
//   bias_residual_layernorm  <-> kernels/row_kernels.h
//   top_k_keep               <-> policies/top_k.h (through cuda::protected_top_k)
//   gather_rows              <-> cuda::compact_sequences (the CPU encoder's compact_rows)
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "cuda/host/attention_tiling.h"

namespace sieve::cuda {

// ---- fused attention (fused_attention.cu) --------------------------------------------------------
// kAuto: the one-pass (online softmax) kernel unless column sums are asked for, which need the
// two-pass kernel's exact probabilities. kTwoPass forces the two-pass kernel (benchmarks, tests).
enum class AttentionAlgorithm { kAuto, kTwoPass };

struct AttentionArgs {
  const __half* qkv;         // [rows, qkv_stride]; head h's q, k, v at columns h*3*d, h*3*d + d, h*3*d + 2d
  int64_t qkv_stride;
  __half* out;               // [rows, out_stride]; head h writes columns [h*d, h*d + d)
  int64_t out_stride;
  const int32_t* cu_seqlens;           // device, [sequences + 1]
  const AttentionWorkItem* items;      // device, [num_items]
  int num_items = 0;
  int num_heads = 0;
  int head_dim = 0;
  float scale = 0.0f;                  // usually 1/sqrt(head_dim)
  float* received = nullptr;           // device, AttentionPlan::received_size(), zeroed by the launcher
  float* head_magnitude = nullptr;     // device, AttentionPlan::head_magnitude_size(), zeroed by the launcher
  AttentionAlgorithm algorithm = AttentionAlgorithm::kAuto;
};
// The arguments for the layout the encoder keeps: QKV packed [rows, 3 * heads * head_dim] with each
// head's q, k, v side by side, the context [rows, heads * head_dim], scale 1/sqrt(head_dim), over a
// plan's work items already on the device. Statistics off: set received / head_magnitude to want them.
inline AttentionArgs packed_attention_args(const __half* qkv, __half* out, int num_heads, int head_dim,
                                           const int32_t* cu_seqlens, const AttentionWorkItem* items, int num_items) {
  const int64_t hidden = static_cast<int64_t>(num_heads) * head_dim;
  AttentionArgs args;
  args.qkv = qkv;
  args.qkv_stride = 3 * hidden;
  args.out = out;
  args.out_stride = hidden;
  args.cu_seqlens = cu_seqlens;
  args.items = items;
  args.num_items = num_items;
  args.num_heads = num_heads;
  args.head_dim = head_dim;
  args.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  return args;
}
// Throws sieve::Error for an unsupported head_dim (attention_head_dim_supported).
void fused_attention(const AttentionArgs& args, int64_t received_size, int64_t head_magnitude_size,
                     cudaStream_t stream = nullptr);

// ---- row kernels (row_kernels.cu) ----------------------------------------------------------------
// x[r, c] += bias[c] over `rows` rows of `cols` columns, rows `ld` elements apart.
void bias_add(__half* x, int64_t ld, const __half* bias, int64_t rows, int64_t cols, cudaStream_t stream = nullptr);
// x = gelu(x + bias), exact erf GELU.
void bias_gelu(__half* x, const __half* bias, int64_t rows, int64_t cols, cudaStream_t stream = nullptr);
// x = LayerNorm(x + bias + residual) * gamma + beta, in place; bias and residual may be null.
void bias_residual_layernorm(__half* x, const __half* bias, const __half* residual, const float* gamma,
                             const float* beta, float eps, int64_t rows, int64_t cols, cudaStream_t stream = nullptr);
// out[r] = LayerNorm(word[ids[r]] + pos[positions[r]] + type[type_ids[r]]): BERT's embedding layer.
void embed_layernorm(const int32_t* ids, const int32_t* positions, const int32_t* type_ids, const __half* word,
                     const __half* pos, const __half* type, const float* gamma, const float* beta, float eps,
                     __half* out, int64_t rows, int64_t cols, cudaStream_t stream = nullptr);
// Precision conversions for tests and the host boundary.
void half_to_float(const __half* in, float* out, int64_t n, cudaStream_t stream = nullptr);

// ---- top-k (top_k.cu) ----------------------------------------------------------------------------
// Largest sequence top_k_keep handles (one thread block, keys sorted in shared memory).
constexpr int kTopKMaxLength = 4096;
// Per sequence s (rows [cu_seqlens[s], cu_seqlens[s+1]) of scores/is_special): keeps every special
// row and the keep[s] highest-scoring other rows (ties: earlier row), i.e. cuda::protected_top_k.
// Writes keep_mask[row] (0/1), kept_rows (each sequence's kept rows, ascending, packed from
// cu_seqlens[s]) and kept_count[s]. A bitonic sort of 64-bit keys (host/top_k_key.h) per block.
void top_k_keep(const float* scores, const uint8_t* is_special, const int32_t* cu_seqlens, const int32_t* keep,
                int num_sequences, int max_length, uint8_t* keep_mask, int32_t* kept_rows, int32_t* kept_count,
                cudaStream_t stream = nullptr);

// ---- gather (gather.cu) --------------------------------------------------------------------------
// dst[i, :] = src[source_rows[i], :] for i < n_rows: compaction of kept token rows (never in place).
void gather_rows(const __half* src, __half* dst, const int32_t* source_rows, int64_t n_rows, int64_t cols,
                 cudaStream_t stream = nullptr);
// dst[r, i*width : (i+1)*width] = src[r, heads[i]*width : ...] for the num_heads listed heads:
// compaction of the live heads' slices (e.g. of the attention context before the output projection).
void gather_head_slices(const __half* src, int64_t src_ld, __half* dst, int64_t dst_ld, const int32_t* heads,
                        int num_heads, int64_t width, int64_t rows, cudaStream_t stream = nullptr);

}  // namespace sieve::cuda
