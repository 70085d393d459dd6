#include <immintrin.h>

#include <algorithm>
#include <iterator>
#include <string>

#include "kernels/conv3x3.h"
#include "util/error.h"

namespace sieve {
namespace {

constexpr int kOutBlock = 4;  // output channels per pass: kOutBlock x V accumulators stay in registers
constexpr int64_t kRowStride = kConv3x3MaxSize;  // floats per channel row in the two-row buffer

// One pass: output rows y of channels [co0, co0 + n) (n <= kOutBlock), V vectors of 16 pixels a row,
// after scale, shift and ReLU, into rows[c * kRowStride ...].
template <int V>
void conv_row(const float* in, const float* weight, const float* scale, const float* shift, int64_t channels, int64_t size,
              int64_t y, int64_t co0, int n, float* rows) {
  __m512 acc[kOutBlock][V];
  for (int c = 0; c < kOutBlock; ++c)
    for (int v = 0; v < V; ++v) acc[c][v] = _mm512_setzero_ps();
  for (int64_t ci = 0; ci < channels; ++ci)
    for (int dy = -1; dy <= 1; ++dy) {
      if (y + dy < 0 || y + dy >= size) continue;  // zero padding above and below
      const float* row = in + (ci * size + y + dy) * size;
      for (int dx = -1; dx <= 1; ++dx) {
        __m512 x[V];
        for (int v = 0; v < V; ++v) {
          // Zero padding left and right: the lane that would read outside the row is masked off
          // (a masked-off lane is never read, so reading "before" the row cannot fault).
          __mmask16 m = 0xFFFF;
          if (v == 0 && dx < 0) m &= 0xFFFE;
          if (v == V - 1 && dx > 0) m &= 0x7FFF;
          x[v] = _mm512_maskz_loadu_ps(m, row + v * 16 + dx);
        }
        const float* w = weight + (co0 * channels + ci) * 9 + (dy + 1) * 3 + (dx + 1);
        for (int c = 0; c < kOutBlock; ++c) {
          if (c >= n) break;
          const __m512 wc = _mm512_set1_ps(w[c * channels * 9]);
          for (int v = 0; v < V; ++v) acc[c][v] = _mm512_fmadd_ps(x[v], wc, acc[c][v]);
        }
      }
    }
  for (int c = 0; c < n; ++c) {
    const __m512 a = _mm512_set1_ps(scale[co0 + c]), b = _mm512_set1_ps(shift[co0 + c]);
    for (int v = 0; v < V; ++v)
      _mm512_storeu_ps(rows + c * kRowStride + v * 16, _mm512_max_ps(_mm512_setzero_ps(), _mm512_fmadd_ps(acc[c][v], a, b)));
  }
}

template <int V>
void conv_pool(const float* in, const float* weight, const float* scale, const float* shift, int64_t channels, int64_t size,
               float* out) {
  const int64_t half = size / 2;
  float rows[2][kOutBlock][kRowStride];
  for (int64_t co0 = 0; co0 < channels; co0 += kOutBlock) {
    const int n = static_cast<int>(std::min<int64_t>(kOutBlock, channels - co0));
    for (int64_t y = 0; y < size; y += 2) {
      conv_row<V>(in, weight, scale, shift, channels, size, y, co0, n, &rows[0][0][0]);
      conv_row<V>(in, weight, scale, shift, channels, size, y + 1, co0, n, &rows[1][0][0]);
      for (int c = 0; c < n; ++c) {
        float* o = out + ((co0 + c) * half + y / 2) * half;
        const float* r0 = rows[0][c];
        const float* r1 = rows[1][c];
        for (int64_t x = 0; x < half; ++x) o[x] = 0.25f * (r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]);
      }
    }
  }
}

}  // namespace

namespace avx512 {

void conv3x3_scale_relu_pool(const float* in, const float* weight, const float* scale, const float* shift, int64_t channels,
                             int64_t size, float* out) {
  // One instance per size conv3x3_avx512_fits() accepts, indexed by the size in 16-float vectors.
  using Kernel = void (*)(const float*, const float*, const float*, const float*, int64_t, int64_t, float*);
  constexpr Kernel kBySize[] = {conv_pool<1>, conv_pool<2>, conv_pool<3>, conv_pool<4>};
  static_assert(std::size(kBySize) * 16 == kConv3x3MaxSize);
  if (!conv3x3_avx512_fits(size)) throw Error("conv3x3_scale_relu_pool: block size " + std::to_string(size) + " is not supported");
  kBySize[size / 16 - 1](in, weight, scale, shift, channels, size, out);
}

}  // namespace avx512
}  // namespace sieve
