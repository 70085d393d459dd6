#include "kernels/row_kernels.h"

#include "kernels/cpu_features.h"

namespace sieve {

const RowKernels& row_kernels() {
  return cpu_has_avx512() ? avx512::kRowKernels : portable::kRowKernels;
}

}  // namespace sieve
