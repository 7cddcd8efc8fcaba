// Which of the instruction sets tfsvd compiles kernels for (SSE2, AVX2 + FMA, AVX-512F + FMA) this
// CPU runs: one definition for every run-time dispatch (jacobi_batched.cc, bidiag_pass.cc,
// thin_grad.cc).
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

// The kernel set of `isa` from the builder compiled for it (kSse2, kAvx2, kAvx512: each file
// that dispatches names its own), built once per process; null when this CPU does not run `isa`.
template <class Kernels, Kernels (*kSse2)(), Kernels (*kAvx2)(), Kernels (*kAvx512)()>
const Kernels* KernelsForIsa(const std::string& isa) {
  if (!CpuRunsIsa(isa)) return nullptr;
  if (isa == "sse2") {
    static const Kernels kernels = kSse2();
    return &kernels;
  }
  if (isa == "avx2") {
    static const Kernels kernels = kAvx2();
    return &kernels;
  }
  static const Kernels kernels = kAvx512();
  return &kernels;
}

// The widest of those sets this CPU runs (decided once per process).
template <class Kernels, Kernels (*kSse2)(), Kernels (*kAvx2)(), Kernels (*kAvx512)()>
const Kernels& WidestKernels() {
  static const Kernels* const widest = [] {
    for (const char* isa : {"avx512", "avx2"}) {
      if (const Kernels* k = KernelsForIsa<Kernels, kSse2, kAvx2, kAvx512>(isa)) return k;
    }
    return KernelsForIsa<Kernels, kSse2, kAvx2, kAvx512>("sse2");
  }();
  return *widest;
}

}  // namespace tfsvd
