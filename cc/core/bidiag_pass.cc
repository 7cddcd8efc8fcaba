// The bidiagonalisation's column pass for baseline x86-64 (SSE2), and the run-time choice among
// the instruction sets (bidiag_pass.h).
#define TFSVD_PASS_ISA sse2
#include "core/bidiag_pass.inc"
#include "core/cpu_isa.h"

namespace tfsvd {

const BidiagPassKernels* BidiagPassKernelsFor(const std::string& isa) {
  if (isa == "auto") return &BestBidiagPassKernels();
  if (!CpuRunsIsa(isa)) return nullptr;
  if (isa == "sse2") {
    static const BidiagPassKernels kernels = bidiag_pass::sse2::Kernels();
    return &kernels;
  }
  if (isa == "avx2") {
    static const BidiagPassKernels kernels = bidiag_pass::avx2::Kernels();
    return &kernels;
  }
  static const BidiagPassKernels kernels = bidiag_pass::avx512::Kernels();
  return &kernels;
}

const BidiagPassKernels& BestBidiagPassKernels() {
  static const BidiagPassKernels* const best = [] {
    for (const char* isa : {"avx512", "avx2"}) {
      if (const BidiagPassKernels* kernels = BidiagPassKernelsFor(isa)) return kernels;
    }
    return BidiagPassKernelsFor("sse2");
  }();
  return *best;
}

}  // namespace tfsvd
