#include "kernels/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace sieve {

namespace {
bool detect_avx512() {
  if (const char* off = std::getenv("SIEVE_NO_AVX512"); off && std::strcmp(off, "0") != 0) return false;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}
}  // namespace

bool cpu_has_avx512() {
  static const bool has = detect_avx512();
  return has;
}

}  // namespace sieve
