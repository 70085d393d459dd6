#include "tensor/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "util/error.h"

namespace sieve {

namespace {
int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("tensor: negative dimension");
    n *= d;
  }
  return n;
}
}  // namespace

void Tensor::FreeDeleter::operator()(float* p) const { std::free(p); }

Tensor::Tensor(std::vector<int64_t> shape) { reshape(std::move(shape)); }

void Tensor::reshape(std::vector<int64_t> shape) {
  const int64_t n = element_count(shape);
  if (n > capacity_) {
    // Round up to whole 64-byte lines; aligned_alloc requires a multiple of the alignment.
    const size_t bytes = ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64;
    auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
    std::memset(p, 0, bytes);
    data_.reset(p);
    capacity_ = n;
  }
  shape_ = std::move(shape);
  size_ = n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::string Tensor::shape_string() const { return sieve::shape_string(shape_); }

}  // namespace sieve
