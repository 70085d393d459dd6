#pragma once
// AVX-512 math used by the *_avx512.cpp kernels (those files are compiled with -mavx512f & co and
// only called after cpu_has_avx512()). Accuracy: a few ulp, far inside the 1e-4 parity budget.
#include <immintrin.h>

namespace sieve::avx512 {

// exp(x): x = n*ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial, 2^n built in the exponent.
inline __m512 exp_ps(__m512 x) {
  // min/max return their second operand when either is NaN: x goes second so a NaN stays NaN
  // (clamped, it became exp(88.37), a finite and wrong result).
  x = _mm512_max_ps(_mm512_set1_ps(-87.33f), _mm512_min_ps(_mm512_set1_ps(88.37f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// erf(x) = 1 - erfc(|x|) with the sign restored; erfc from the Chebyshev fit of Numerical Recipes
// (fractional error < 1.2e-7 everywhere), which needs one exp.
inline __m512 erf_ps(__m512 x) {
  const __m512 z = _mm512_abs_ps(x);
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(0.17087277f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
  const __m512 exponent = _mm512_sub_ps(p, _mm512_mul_ps(z, z));
  const __m512 erfc = _mm512_mul_ps(t, exp_ps(exponent));
  const __m512 magnitude = _mm512_sub_ps(_mm512_set1_ps(1.0f), erfc);
  // copy the sign bit of x onto |erf|
  const __m512i sign = _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(static_cast<int>(0x80000000u)));
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(magnitude), sign));
}

inline float reduce_add(__m512 v) { return _mm512_reduce_add_ps(v); }
inline float reduce_max(__m512 v) { return _mm512_reduce_max_ps(v); }

// Mask covering the first `count` (0..16) lanes, for loop tails.
inline __mmask16 tail_mask(int64_t count) {
  return static_cast<__mmask16>(count >= 16 ? 0xFFFF : ((1u << count) - 1u));
}

// sums[j] += rows[r * stride + j] for r < count and j < n: the fused attention's column sums of a
// block of probability rows.
inline void add_rows_to(float* sums, const float* rows, int64_t count, int64_t stride, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    __m512 sum = _mm512_maskz_loadu_ps(m, sums + j);
    for (int64_t r = 0; r < count; ++r) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m, rows + r * stride + j));
    _mm512_mask_storeu_ps(sums + j, m, sum);
  }
}

}  // namespace sieve::avx512
