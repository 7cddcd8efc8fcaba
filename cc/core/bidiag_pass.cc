// The bidiagonalisation's column pass for baseline x86-64 (SSE2), and the run-time choice among
// the instruction sets (bidiag_pass.h).
#define TFSVD_PASS_ISA sse2
#include "core/bidiag_pass.inc"
#include "core/cpu_isa.h"

namespace tfsvd {

const BidiagPassKernels* BidiagPassKernelsFor(const std::string& isa) {
  if (isa == "auto") return &BestBidiagPassKernels();
  return KernelsForIsa<BidiagPassKernels, &bidiag_pass::sse2::Kernels, &bidiag_pass::avx2::Kernels,
                       &bidiag_pass::avx512::Kernels>(isa);
}

const BidiagPassKernels& BestBidiagPassKernels() {
  return WidestKernels<BidiagPassKernels, &bidiag_pass::sse2::Kernels,
                       &bidiag_pass::avx2::Kernels, &bidiag_pass::avx512::Kernels>();
}

}  // namespace tfsvd
