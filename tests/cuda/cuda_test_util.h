#pragma once
// Helpers for the GPU tests: skip without a device, move FP16 data between host and device.
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "cuda/cuda_check.h"

namespace sieve::cuda::testing {

// Every GPU test starts with this: the binary builds wherever nvcc exists, but runs only with a GPU.
#define SIEVE_REQUIRE_CUDA_DEVICE()                                                          \
  do {                                                                                       \
    if (!::sieve::cuda::device_available()) GTEST_SKIP() << "no CUDA device on this machine"; \
  } while (0)

// Random FP16 values and their exact FP32 images (what the CPU reference is given).
struct HalfData {
  std::vector<__half> h;
  std::vector<float> f;
};
inline HalfData random_half(size_t n, std::mt19937& rng, float stddev = 1.0f, float mean = 0.0f) {
  std::normal_distribution<float> dist(mean, stddev);
  HalfData d;
  d.h.resize(n);
  d.f.resize(n);
  for (size_t i = 0; i < n; ++i) {
    d.h[i] = __float2half(dist(rng));
    d.f[i] = __half2float(d.h[i]);
  }
  return d;
}

template <typename T>
DeviceBuffer<T> to_device(const std::vector<T>& v) {
  DeviceBuffer<T> d(std::max<size_t>(v.size(), 1));
  if (!v.empty()) d.upload(v.data(), v.size());
  SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
  return d;
}

template <typename T>
std::vector<T> to_host(const DeviceBuffer<T>& d, size_t n) {
  SIEVE_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> v(n);
  if (n) d.download(v.data(), n);
  return v;
}

inline std::vector<float> to_float(const std::vector<__half>& h) {
  std::vector<float> f(h.size());
  for (size_t i = 0; i < h.size(); ++i) f[i] = __half2float(h[i]);
  return f;
}

// max |a - b| / (atol + rtol * |b|) <= 1 means "within tolerance"; returns the worst ratio.
inline double worst_ratio(const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]) / (atol + rtol * std::abs(static_cast<double>(b[i]))));
  return worst;
}

}  // namespace sieve::cuda::testing
