#pragma once
// Block-Skim's predictor layer on one block, computed directly: a 3x3 convolution (padding 1,
// stride 1, `channels` planes in and out) + per-channel scale and shift (bias and BatchNorm folded)
// + ReLU + 2x2 average pooling. The im2col + GEMM form spent most of its time writing and reading
// the 9x larger column matrix (~50 GFLOP/s on two AVX-512 cores for 32 x 32 blocks of 12 heads);
// the direct form keeps a row of every output channel in registers.
#include <cstdint>

namespace sieve {

// The AVX-512 kernel takes sizes in whole 16-float vectors up to kConv3x3MaxSize (its row buffer);
// call it only where cpu_has_avx512().
constexpr int64_t kConv3x3MaxSize = 64;
inline bool conv3x3_avx512_fits(int64_t size) { return size > 0 && size % 16 == 0 && size <= kConv3x3MaxSize; }

namespace avx512 {
// in [channels][size][size], weight [channels out][channels in][3][3], scale/shift [channels],
// out [channels][size/2][size/2].
void conv3x3_scale_relu_pool(const float* in, const float* weight, const float* scale, const float* shift, int64_t channels,
                             int64_t size, float* out);
}  // namespace avx512

}  // namespace sieve
