#pragma once
// Error checking and device memory ownership for the CUDA backend's host code.
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "util/error.h"

namespace sieve::cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}
#define SIEVE_CUDA_CHECK(expr) ::sieve::cuda::check((expr), #expr)

// True when a CUDA device can run kernels here (false on machines with the toolkit but no GPU).
inline bool device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return count > 0;
}

// An owning, growable device array. Capacity only grows (activations shrink as tokens are pruned).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) { reserve(n); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), capacity_(std::exchange(o.capacity_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      ptr_ = std::exchange(o.ptr_, nullptr);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }
  ~DeviceBuffer() { release(); }

  void reserve(size_t n) {
    if (n <= capacity_) return;
    release();
    void* p = nullptr;
    SIEVE_CUDA_CHECK(cudaMalloc(&p, n * sizeof(T)));
    ptr_ = static_cast<T*>(p);
    capacity_ = n;
  }
  void upload(const T* host, size_t n, cudaStream_t stream = nullptr) {
    reserve(n);
    SIEVE_CUDA_CHECK(cudaMemcpyAsync(ptr_, host, n * sizeof(T), cudaMemcpyHostToDevice, stream));
  }
  void download(T* host, size_t n, cudaStream_t stream = nullptr) const {
    SIEVE_CUDA_CHECK(cudaMemcpyAsync(host, ptr_, n * sizeof(T), cudaMemcpyDeviceToHost, stream));
    SIEVE_CUDA_CHECK(cudaStreamSynchronize(stream));
  }
  T* get() { return ptr_; }
  const T* get() const { return ptr_; }
  size_t capacity() const { return capacity_; }

 private:
  void release() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    capacity_ = 0;
  }
  T* ptr_ = nullptr;
  size_t capacity_ = 0;
};

// An owning, growable page-locked host array: device-to-host copies into it run at full DMA speed
// instead of being staged through a driver buffer, which matters for the per-layer statistics.
template <typename T>
class PinnedHostBuffer {
 public:
  PinnedHostBuffer() = default;
  PinnedHostBuffer(const PinnedHostBuffer&) = delete;
  PinnedHostBuffer& operator=(const PinnedHostBuffer&) = delete;
  ~PinnedHostBuffer() { release(); }

  T* reserve(size_t n) {
    if (n > capacity_) {
      release();
      void* p = nullptr;
      SIEVE_CUDA_CHECK(cudaMallocHost(&p, n * sizeof(T)));
      ptr_ = static_cast<T*>(p);
      capacity_ = n;
    }
    return ptr_;
  }

 private:
  void release() {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    capacity_ = 0;
  }
  T* ptr_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace sieve::cuda
