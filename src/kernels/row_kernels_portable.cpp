#include <algorithm>
#include <cmath>

#include "kernels/row_kernels.h"
#include "util/half.h"

namespace sieve::portable {

namespace {

// Exact (erf) GELU, shared by bias_gelu and the int8 epilogue so that the two agree bit for bit.
inline float gelu(float v) { return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752f)); }

void bias_gelu(float* x, const float* bias, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = gelu(x[i] + bias[i]);
}

void bias_add(float* x, const float* bias, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += bias[i];
}

void bias_tanh(float* x, const float* bias, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] + bias[i]);
}

void to_bf16(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = f32_to_bf16(x[i]);
}

float quantize_int8(const float* x, int8_t* out, int64_t n) {
  float max_abs = 0.0f;
  for (int64_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::abs(x[i]));
  const float inv = max_abs > 0.0f ? 127.0f / max_abs : 0.0f;
  for (int64_t i = 0; i < n; ++i)
    out[i] = static_cast<int8_t>(std::nearbyint(std::fmin(std::fmax(x[i] * inv, -127.0f), 127.0f)));  // NaN -> -127, as AVX-512's max
  return max_abs / 127.0f;
}

void dequantize_int32(const int32_t* acc, float row_scale, const float* col_scales, float* out, bool accumulate,
                      Epilogue epilogue, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    float v = static_cast<float>(acc[i]) * row_scale * col_scales[i];
    if (accumulate) v = out[i] + v;
    if (epilogue.bias) v += epilogue.bias[i];
    if (epilogue.gelu) v = gelu(v);
    out[i] = v;
  }
}

void bias_residual_layernorm(float* x, const float* bias, const float* residual, const float* gamma,
                             const float* beta, float eps, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    float v = x[i];
    if (bias) v += bias[i];
    if (residual) v += residual[i];
    x[i] = v;
    sum += v;
  }
  const float mean = sum / static_cast<float>(n);
  float sq = 0.0f;
  for (int64_t i = 0; i < n; ++i) sq += (x[i] - mean) * (x[i] - mean);
  const float inv_std = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) x[i] = (x[i] - mean) * inv_std * gamma[i] + beta[i];
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void rms_norm(const float* x, float* out, const float* gamma, float eps, int64_t n) {
  float sq = 0.0f;
  for (int64_t i = 0; i < n; ++i) sq += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv * gamma[i];
}

void silu_mul(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

float dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

void axpy(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

float dot_codes(const float* a, const int16_t* codes, int shift, int32_t offset, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum += a[i] * static_cast<float>(((static_cast<int32_t>(codes[i]) >> shift) << shift) + offset);
  return sum;
}

void dot_codes_rows(const float* queries, int64_t query_stride, int count, const CodeRows& rows, int64_t row_count,
                    int shift, int32_t offset, int64_t n, float* out, int64_t out_stride) {
  for (int k = 0; k < count; ++k)
    for (int64_t j = 0; j < row_count; ++j) {
      float sum = 0.0f;
      for (int64_t s = 0; s * rows.group < n; ++s)
        sum += rows.scale(j, s) * dot_codes(queries + k * query_stride + s * rows.group, rows.row(j) + s * rows.group,
                                            shift, offset, rows.group);
      out[k * out_stride + j] = sum;
    }
}

void axpy_codes(float alpha, const int16_t* codes, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * static_cast<float>(codes[i]);
}

void axpy_codes_rows(const float* weights, int64_t weight_stride, int count, const CodeRows& rows, int64_t first,
                     int64_t last, int64_t n, float* out, int64_t out_stride) {
  for (int k = 0; k < count; ++k)
    for (int64_t j = first; j < last; ++j)
      for (int64_t s = 0; s * rows.group < n; ++s)
        axpy_codes(weights[k * weight_stride + j] * rows.scale(j, s), rows.row(j) + s * rows.group,
                   out + k * out_stride + s * rows.group, rows.group);
}

}  // namespace

const RowKernels kRowKernels{bias_gelu, bias_add, bias_residual_layernorm, softmax, bias_tanh, to_bf16, quantize_int8, dequantize_int32,
                             rms_norm,  silu_mul, dot,                     axpy,
                             dot_codes, dot_codes_rows, axpy_codes, axpy_codes_rows};

}  // namespace sieve::portable
