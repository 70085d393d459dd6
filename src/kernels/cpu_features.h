#pragma once
// Runtime CPU feature check: kernels have an AVX-512 path and a portable path, and the choice is
// made once at run time, so one binary runs on any x86-64 (and `SIEVE_NO_AVX512=1` forces the
// portable path, which the tests use to check both paths against each other).

namespace sieve {

bool cpu_has_avx512();

}  // namespace sieve
