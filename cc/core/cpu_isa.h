// Which of the instruction sets tfsvd compiles kernels for (SSE2, AVX2 + FMA, AVX-512F + FMA) this
// CPU runs: one definition for every run-time dispatch (jacobi_batched.cc, bidiag_pass.cc).
#pragma once

#include <string>

namespace tfsvd {

// Whether this CPU runs kernels compiled for `isa`: "sse2" (every x86-64 CPU), "avx2" (AVX2 and
// FMA) or "avx512" (AVX-512F, and FMA: every such CPU has it, and the lone Jacobi kernels use
// its 128- and 256-bit forms); false for any other name.
inline bool CpuRunsIsa(const std::string& isa) {
  __builtin_cpu_init();
  if (isa == "sse2") return true;
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  return false;
}

}  // namespace tfsvd
