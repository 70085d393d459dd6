#include "kernels/row_kernels.h"
#include "kernels/vec_math_avx512.h"

#include <cmath>

namespace sieve::avx512 {

namespace {

// Exact (erf) GELU, shared by bias_gelu and the int8 epilogue so that the two agree bit for bit.
inline __m512 gelu_ps(__m512 v) {
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512 inv_sqrt2 = _mm512_set1_ps(0.70710678118654752f);
  return _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf_ps(_mm512_mul_ps(v, inv_sqrt2))));
}

void bias_gelu(float* x, const float* bias, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, bias + i));
    _mm512_mask_storeu_ps(x + i, m, gelu_ps(v));
  }
}

void bias_add(float* x, const float* bias, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, bias + i)));
  }
}

// tanh(v) = sign(v) (1 - 2 / (exp(2|v|) + 1)): one exp, absolute error ~1e-7 (exp saturates for
// large |v|, where the result is +-1 anyway).
void bias_tanh(float* x, const float* bias, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f), two = _mm512_set1_ps(2.0f);
  const __m512i sign_bit = _mm512_set1_epi32(static_cast<int>(0x80000000u));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, bias + i));
    const __m512 e = exp_ps(_mm512_mul_ps(two, _mm512_abs_ps(v)));
    const __m512 magnitude = _mm512_sub_ps(one, _mm512_div_ps(two, _mm512_add_ps(e, one)));
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(v), sign_bit);
    _mm512_mask_storeu_ps(x + i, m, _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(magnitude), sign)));
  }
}

// Round to nearest even in integer arithmetic (AVX-512F only, no BF16 instructions needed); NaNs
// are quieted instead of rounded, as in the portable path.
void to_bf16(const float* x, uint16_t* out, int64_t n) {
  const __m512i round_bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
  const __m512i quiet = _mm512_set1_epi32(0x40);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512i bits = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), one);
    __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(round_bias, lsb)), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(bits, abs_mask), inf);
    rounded = _mm512_mask_or_epi32(rounded, nan, _mm512_srli_epi32(bits, 16), quiet);
    _mm256_mask_storeu_epi16(out + i, m, _mm512_cvtepi32_epi16(rounded));
  }
}

// The same arithmetic as the portable build (x * (127 / max), rounded to nearest even by the
// conversion), so both give the same codes.
float quantize_int8(const float* x, int8_t* out, int64_t n) {
  // Four independent maxima: one chain of vmaxps (4 cycles each) held a row in L1 to 16 B a cycle.
  __m512 m0 = _mm512_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
  int64_t j = 0;
  for (; j + 64 <= n; j += 64) {
    m0 = _mm512_max_ps(m0, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
    m1 = _mm512_max_ps(m1, _mm512_abs_ps(_mm512_loadu_ps(x + j + 16)));
    m2 = _mm512_max_ps(m2, _mm512_abs_ps(_mm512_loadu_ps(x + j + 32)));
    m3 = _mm512_max_ps(m3, _mm512_abs_ps(_mm512_loadu_ps(x + j + 48)));
  }
  for (; j < n; j += 16) m0 = _mm512_max_ps(m0, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(n - j), x + j)));
  const float row_max = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
  const __m512 inv = _mm512_set1_ps(row_max > 0.0f ? 127.0f / row_max : 0.0f);
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv), lo), hi);
    _mm_mask_storeu_epi8(out + i, m, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
  }
  return row_max / 127.0f;
}

void dequantize_int32(const int32_t* acc, float row_scale, const float* col_scales, float* out, bool accumulate,
                      Epilogue epilogue, int64_t n) {
  const __m512 rs = _mm512_set1_ps(row_scale);
  // The products are rounded on their own (the _round_ forms are never contracted into an FMA with
  // the additions below), so the fused result stays bit for bit that of the separate passes whatever
  // the compiler decides to inline here.
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_mul_round_ps(_mm512_mul_round_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, acc + i)), rs, kRound),
                                   _mm512_maskz_loadu_ps(m, col_scales + i), kRound);
    if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, out + i), v);
    if (epilogue.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, epilogue.bias + i));
    if (epilogue.gelu) v = gelu_ps(v);
    _mm512_mask_storeu_ps(out + i, m, v);
  }
}

void bias_residual_layernorm(float* x, const float* bias, const float* residual, const float* gamma,
                             const float* beta, float eps, int64_t n) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + i));
    if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, residual + i));
    _mm512_mask_storeu_ps(x + i, m, v);
    sum = _mm512_add_ps(sum, v);
  }
  const float mean = reduce_add(sum) / static_cast<float>(n);
  const __m512 vmean = _mm512_set1_ps(mean);
  __m512 sq = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vmean);
    sq = _mm512_fmadd_ps(d, d, sq);
  }
  const __m512 inv_std = _mm512_set1_ps(1.0f / std::sqrt(reduce_add(sq) / static_cast<float>(n) + eps));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmean), inv_std);
    _mm512_mask_storeu_ps(x + i, m, _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, gamma + i), _mm512_maskz_loadu_ps(m, beta + i)));
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    vmax = _mm512_mask_max_ps(vmax, m, vmax, _mm512_maskz_loadu_ps(m, x + i));
  }
  const __m512 mx = _mm512_set1_ps(reduce_max(vmax));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx));
    _mm512_mask_storeu_ps(x + i, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / reduce_add(sum));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
  }
}

void rms_norm(const float* x, float* out, const float* gamma, float eps, int64_t n) {
  __m512 sq = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
    sq = _mm512_fmadd_ps(v, v, sq);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(reduce_add(sq) / static_cast<float>(n) + eps));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, gamma + i)));
  }
}

void silu_mul(float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
    const __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(gate + i, m, _mm512_mul_ps(_mm512_mul_ps(g, sig), _mm512_maskz_loadu_ps(m, up + i)));
  }
}

float dot(const float* a, const float* b, int64_t n) {
  __m512 sum = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), sum);
  }
  return reduce_add(sum);
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  const __m512 a = _mm512_set1_ps(alpha);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

float dot_codes(const float* a, const int16_t* codes, int shift, int32_t offset, int64_t n) {
  __m512 sum = _mm512_setzero_ps();
  const __m128i count = _mm_cvtsi32_si128(shift);
  const __m512i add = _mm512_set1_epi32(offset);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512i wide = _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(m, codes + i));
    const __m512i msb = _mm512_add_epi32(_mm512_sll_epi32(_mm512_sra_epi32(wide, count), count), add);
    sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_mov_ps(m, _mm512_cvtepi32_ps(msb)), sum);
  }
  return reduce_add(sum);
}

// 16 codes (masked) widened to fp32, as their MSBs ((code >> shift) << shift) + offset.
inline __m512 code_values(const int16_t* codes, __mmask16 m, __m128i shift, __m512i offset) {
  const __m512i wide = _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(m, codes));
  return _mm512_maskz_mov_ps(m, _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_sll_epi32(_mm512_sra_epi32(wide, shift), shift), offset)));
}

// K queries at once (K known at compile time, so the accumulators stay in registers): each row's
// codes are loaded and widened once for all of them.
template <int K>
void dot_codes_rows_k(const float* queries, int64_t query_stride, const CodeRows& rows, int64_t row_count, int shift,
                      int32_t offset, int64_t n, float* out, int64_t out_stride) {
  const __m128i count = _mm_cvtsi32_si128(shift);
  const __m512i add = _mm512_set1_epi32(offset);
  const int64_t group = rows.group;
  for (int64_t j = 0; j < row_count; ++j) {
    const int16_t* codes = rows.row(j);
    __m512 total[K];
    for (int k = 0; k < K; ++k) total[k] = _mm512_setzero_ps();
    for (int64_t start = 0; start < n; start += group) {
      __m512 part[K];
      for (int k = 0; k < K; ++k) part[k] = _mm512_setzero_ps();
      for (int64_t i = start; i < start + group; i += 16) {
        const __mmask16 m = tail_mask(start + group - i);
        const __m512 x = code_values(codes + i, m, count, add);
        for (int k = 0; k < K; ++k) part[k] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, queries + k * query_stride + i), x, part[k]);
      }
      const __m512 scale = _mm512_set1_ps(rows.scale(j, start / group));
      for (int k = 0; k < K; ++k) total[k] = _mm512_fmadd_ps(scale, part[k], total[k]);
    }
    for (int k = 0; k < K; ++k) out[k * out_stride + j] = reduce_add(total[k]);
  }
}

void dot_codes_rows(const float* queries, int64_t query_stride, int count, const CodeRows& rows, int64_t row_count,
                    int shift, int32_t offset, int64_t n, float* out, int64_t out_stride) {
  for (int k = 0; k < count; k += 4) {  // blocks of up to 4 queries (SmolLM2 shares a KV head between 3)
    const float* q = queries + k * query_stride;
    float* o = out + k * out_stride;
    switch (count - k) {
      case 1: dot_codes_rows_k<1>(q, query_stride, rows, row_count, shift, offset, n, o, out_stride); break;
      case 2: dot_codes_rows_k<2>(q, query_stride, rows, row_count, shift, offset, n, o, out_stride); break;
      case 3: dot_codes_rows_k<3>(q, query_stride, rows, row_count, shift, offset, n, o, out_stride); break;
      default: dot_codes_rows_k<4>(q, query_stride, rows, row_count, shift, offset, n, o, out_stride); break;
    }
  }
}

void axpy_codes(float alpha, const int16_t* codes, float* y, int64_t n) {
  const __m512 a = _mm512_set1_ps(alpha);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(m, codes + i)));
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(a, x, _mm512_maskz_loadu_ps(m, y + i)));
  }
}

// K queries' weighted sums over rows of at most 64 codes, the sums held in registers across rows.
template <int K>
void axpy_codes_rows_k(const float* weights, int64_t weight_stride, const CodeRows& rows, int64_t first, int64_t last,
                       int64_t n, float* out, int64_t out_stride) {
  constexpr int kChunks = 4;  // 64 elements
  __m512 sum[K][kChunks];
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < kChunks; ++c) sum[k][c] = _mm512_setzero_ps();
  const int64_t group = rows.group;
  for (int64_t j = first; j < last; ++j) {
    const int16_t* codes = rows.row(j);
    for (int c = 0; c < kChunks && c * 16 < n; ++c) {
      const __mmask16 m = tail_mask(n - c * 16);
      const __m512 x = _mm512_maskz_mov_ps(m, _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(m, codes + c * 16))));
      // Groups are at least 16 wide here (checked by the caller) or the row is one group.
      const float scale = rows.scale(j, c * 16 / group);
      for (int k = 0; k < K; ++k)
        sum[k][c] = _mm512_fmadd_ps(_mm512_set1_ps(weights[k * weight_stride + j] * scale), x, sum[k][c]);
    }
  }
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < kChunks && c * 16 < n; ++c) {
      const __mmask16 m = tail_mask(n - c * 16);
      float* y = out + k * out_stride + c * 16;
      _mm512_mask_storeu_ps(y, m, _mm512_add_ps(sum[k][c], _mm512_maskz_loadu_ps(m, y)));
    }
}

void axpy_codes_rows(const float* weights, int64_t weight_stride, int count, const CodeRows& rows, int64_t first,
                     int64_t last, int64_t n, float* out, int64_t out_stride) {
  // The register path needs rows of <= 64 codes whose scale groups are whole 16-wide chunks.
  if (n > 64 || (rows.group < n && rows.group % 16 != 0)) {
    for (int k = 0; k < count; ++k)
      for (int64_t j = first; j < last; ++j)
        for (int64_t s = 0; s * rows.group < n; ++s)
          axpy_codes(weights[k * weight_stride + j] * rows.scale(j, s), rows.row(j) + s * rows.group,
                     out + k * out_stride + s * rows.group, rows.group);
    return;
  }
  for (int k = 0; k < count; k += 4) {
    const float* w = weights + k * weight_stride;
    float* o = out + k * out_stride;
    switch (count - k) {
      case 1: axpy_codes_rows_k<1>(w, weight_stride, rows, first, last, n, o, out_stride); break;
      case 2: axpy_codes_rows_k<2>(w, weight_stride, rows, first, last, n, o, out_stride); break;
      case 3: axpy_codes_rows_k<3>(w, weight_stride, rows, first, last, n, o, out_stride); break;
      default: axpy_codes_rows_k<4>(w, weight_stride, rows, first, last, n, o, out_stride); break;
    }
  }
}

}  // namespace

const RowKernels kRowKernels{bias_gelu, bias_add, bias_residual_layernorm, softmax, bias_tanh, to_bf16, quantize_int8, dequantize_int32,
                             rms_norm,  silu_mul, dot,                     axpy,
                             dot_codes, dot_codes_rows, axpy_codes, axpy_codes_rows};

}  // namespace sieve::avx512
