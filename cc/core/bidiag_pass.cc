// The bidiagonalisation's column pass for baseline x86-64 (SSE2), and the run-time choice among
// the instruction sets (bidiag_pass.h).
#define TFSVD_PASS_ISA sse2
#define TFSVD_PASS_ISA_NAME "sse2"
#include "core/bidiag_pass.inc"

namespace tfsvd {

const BidiagPassKernels& BestBidiagPassKernels() {
  static const BidiagPassKernels kernels = [] {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return bidiag_pass::avx512::Kernels();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      return bidiag_pass::avx2::Kernels();
    }
#endif
    return bidiag_pass::sse2::Kernels();
  }();
  return kernels;
}

}  // namespace tfsvd
