#pragma once
// The attention kernel's tiling and work-item format, shared by the host planner (attention_plan.h)
// and the kernel (fused_attention.cu). Kept to C++17 so nvcc can compile it in any mode.
#include <cstdint>

namespace sieve::cuda {

// Fused attention tiling (src/cuda/fused_attention.cu): a thread block owns kQueryTile query rows of
// one (sequence, head), one warp per 16 rows, and walks the keys kKeyTile at a time.
constexpr int kAttentionWarps = 4;
constexpr int kQueryTile = 16 * kAttentionWarps;
constexpr int kKeyTile = 32;
// Head dimensions the attention kernel is instantiated for (MiniLM: 32, BERT-base: 64).
bool attention_head_dim_supported(int64_t head_dim);

// One thread block of the attention kernel: rows [query_begin, query_begin + kQueryTile) of `head`
// in sequence `seq` (clipped to the sequence's length by the kernel).
struct AttentionWorkItem {
  int32_t seq;
  int32_t head;
  int32_t query_begin;
  int32_t pad = 0;  // 16 bytes, one vector load on the device
};

}  // namespace sieve::cuda
