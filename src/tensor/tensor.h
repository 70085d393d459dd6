#pragma once
// Tensor: a dense, row-major fp32 array that owns 64-byte-aligned memory (one AVX-512 line),
// so kernels may use aligned loads on row starts whose width is a multiple of 16.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace sieve {

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::vector<int64_t> shape);  // zero-filled

  const std::vector<int64_t>& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int axis) const { return shape_.at(static_cast<size_t>(axis)); }
  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  int64_t capacity() const { return capacity_; }  // elements allocated (reshape only grows it)

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  std::span<float> span() { return {data_.get(), static_cast<size_t>(size_)}; }
  std::span<const float> span() const { return {data_.get(), static_cast<size_t>(size_)}; }

  // Row r of a tensor viewed as [size / last_dim, last_dim].
  float* row(int64_t r) { return data_.get() + r * shape_.back(); }
  const float* row(int64_t r) const { return data_.get() + r * shape_.back(); }

  // Change the shape keeping the allocation when it is large enough (activations shrink
  // as tokens are pruned; reallocating every layer would cost more than it saves).
  void reshape(std::vector<int64_t> shape);

  std::string shape_string() const;  // "[2, 3]"

 private:
  struct FreeDeleter {
    void operator()(float* p) const;
  };
  std::vector<int64_t> shape_;
  int64_t size_ = 0;
  int64_t capacity_ = 0;
  std::unique_ptr<float, FreeDeleter> data_;
};

// "[2, 3]": a shape as error messages spell it (tensors, safetensors and GGUF entries).
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace sieve
