#pragma once
// Row-level kernels in two builds: `portable` (plain C++, any x86-64 or other CPU) and `avx512`.
// elementwise.cpp picks one set at run time; tests compare the two sets against each other.
#include <cstdint>

namespace sieve {

// Rows of integer codes with scales (a quantized KV head): row j's codes start at
// codes + j * code_stride; the scale of its elements [s * group, (s + 1) * group) is
// scales[j * scale_stride + s].
struct CodeRows {
  const int16_t* codes;
  int64_t code_stride;
  const float* scales;
  int64_t scale_stride;
  int64_t group;

  const int16_t* row(int64_t j) const { return codes + j * code_stride; }
  float scale(int64_t j, int64_t s) const { return scales[j * scale_stride + s]; }
  // The rows from `first` on.
  CodeRows from(int64_t first) const { return {row(first), code_stride, scales + first * scale_stride, scale_stride, group}; }
};

// What an int8 GEMM's dequantization also applies to each output element in the same pass, so the
// output is read and written once: + bias[j], then (exact) GELU. Same arithmetic, in the same
// order, as dequantizing and then calling bias_add / bias_gelu, so fused = unfused bit for bit.
struct Epilogue {
  const float* bias = nullptr;  // [n], or null
  bool gelu = false;
};

struct RowKernels {
  // x[i] = gelu(x[i] + bias[i]), exact (erf) GELU as in BERT's "gelu".
  void (*bias_gelu)(float* x, const float* bias, int64_t n);
  // x[i] = x[i] + bias[i]
  void (*bias_add)(float* x, const float* bias, int64_t n);
  // x = LayerNorm(x + bias + residual) * gamma + beta; bias or residual may be null.
  void (*bias_residual_layernorm)(float* x, const float* bias, const float* residual, const float* gamma,
                                  const float* beta, float eps, int64_t n);
  // Numerically stable softmax in place; returns nothing, sums to 1.
  void (*softmax)(float* x, int64_t n);
  // x[i] = tanh(x[i] + bias[i]) (BERT's pooler, FastBERT's exit classifiers).
  void (*bias_tanh)(float* x, const float* bias, int64_t n);
  // out[i] = x[i] rounded to bfloat16 (nearest even; NaN stays NaN), the bits as uint16.
  void (*to_bf16)(const float* x, uint16_t* out, int64_t n);
  // --precision int8's activations, one token (row) at a time: out[i] = round(x[i] * 127 / max|x|)
  // (nearest even), in [-127, 127]; returns the row's scale max|x| / 127 (0 for a zero row, whose
  // codes are 0). Symmetric: a zero point would cost a correction term per output.
  float (*quantize_int8)(const float* x, int8_t* out, int64_t n);
  // An int8 GEMM's row back to fp32: out[j] = acc[j] * row_scale * col_scales[j] (+ out[j] when
  // accumulate), multiplied in that order, then the epilogue.
  void (*dequantize_int32)(const int32_t* acc, float row_scale, const float* col_scales, float* out, bool accumulate,
                           Epilogue epilogue, int64_t n);
  // out = x / sqrt(mean(x^2) + eps) * gamma (Llama's RMSNorm); out may be x.
  void (*rms_norm)(const float* x, float* out, const float* gamma, float eps, int64_t n);
  // gate[i] = silu(gate[i]) * up[i], silu(v) = v / (1 + exp(-v)) (Llama's SwiGLU feed-forward).
  void (*silu_mul)(float* gate, const float* up, int64_t n);
  // sum of a[i] * b[i] (attention of one query over cached keys).
  float (*dot)(const float* a, const float* b, int64_t n);
  // y[i] += alpha * x[i] (attention's weighted sum of cached values).
  void (*axpy)(float alpha, const float* x, float* y, int64_t n);
  // sum of a[i] * (((codes[i] >> shift) << shift) + offset): a query against integer codes of a
  // quantized key, all bits (shift 0, offset 0) or its MSBs only (SpAtten's progressive quantization).
  float (*dot_codes)(const float* a, const int16_t* codes, int shift, int32_t offset, int64_t n);
  // Scores of `count` queries (query k at queries + k * query_stride) against rows of n codes (n a
  // multiple of rows.group): out[k * out_stride + j] = sum over groups s of rows.scale(j, s) *
  //   dot_codes(query k + s * group, rows.row(j) + s * group, shift, offset, group), for j < row_count.
  // The query heads that share a KV head read each row of codes once.
  void (*dot_codes_rows)(const float* queries, int64_t query_stride, int count, const CodeRows& rows, int64_t row_count,
                         int shift, int32_t offset, int64_t n, float* out, int64_t out_stride);
  // y[i] += alpha * codes[i] (a quantized value row, its scale folded into alpha).
  void (*axpy_codes)(float alpha, const int16_t* codes, float* y, int64_t n);
  // Weighted sums of rows of codes for `count` queries: out[k * out_stride + i] +=
  // sum over first <= j < last of weights[k * weight_stride + j] * rows.scale(j, i / group) * rows.row(j)[i].
  void (*axpy_codes_rows)(const float* weights, int64_t weight_stride, int count, const CodeRows& rows, int64_t first,
                          int64_t last, int64_t n, float* out, int64_t out_stride);
};

namespace portable {
extern const RowKernels kRowKernels;
}
namespace avx512 {
extern const RowKernels kRowKernels;
}

// The set this CPU runs (AVX-512 when available and not disabled).
const RowKernels& row_kernels();

}  // namespace sieve
