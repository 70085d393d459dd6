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

// erf(x) as x P(x^2) / Q(x^2) on x clamped to [-4, 4] (erf is +-1 in fp32 beyond 3.92): the
// rational fit Eigen and XLA use for float (largest error 4.2e-7 against std::erf in double on
// [-6, 6], checked on 200,001 points). 12 multiply-adds and one division, no exp: the
// Numerical Recipes erfc it replaces (which needed an exp and 10 more multiply-adds) made bias +
// GELU the largest non-GEMM pass of an int8 forward at 32 tokens. A NaN stays NaN (min and max
// return their second operand then, so x goes second).
inline __m512 erf_ps(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-4.0f), _mm512_min_ps(_mm512_set1_ps(4.0f), x));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-2.72614225801306e-10f);
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.77068142495902e-08f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.10102402082508e-06f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-5.69250639462346e-05f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-7.34990630326855e-04f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-2.95459980854025e-03f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-1.60960333262415e-02f));
  __m512 q = _mm512_set1_ps(-1.45660718464996e-05f);
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-2.13374055278905e-04f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.68282697438203e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-7.37332916720468e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.42647390514189e-02f));
  return _mm512_div_ps(_mm512_mul_ps(x, p), q);
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
