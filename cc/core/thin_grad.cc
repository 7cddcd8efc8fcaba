// The thin backward's products for baseline x86-64 (SSE2), and the run-time choice among the
// instruction sets (thin_grad.h).
#define TFSVD_THIN_ISA sse2
#define TFSVD_THIN_ISA_NAME "sse2"
#include "core/thin_grad.inc"
#include "core/cpu_isa.h"

namespace tfsvd {

const ThinGradKernels* ThinGradKernelsFor(const std::string& isa) {
  constexpr auto kSse2 = &thin_grad::sse2::Kernels, kAvx2 = &thin_grad::avx2::Kernels,
                 kAvx512 = &thin_grad::avx512::Kernels;
  if (isa == "auto") return &WidestKernels<ThinGradKernels, kSse2, kAvx2, kAvx512>();
  return KernelsForIsa<ThinGradKernels, kSse2, kAvx2, kAvx512>(isa);
}

template <class R>
const ThinGradKernels* ThinGradKernelsForColumns(const std::string& isa, Index k, Index rows) {
  const auto lanes = [](const ThinGradKernels& t) {
    return sizeof(R) == 4 ? t.lanes_float : t.lanes_double;
  };
  const auto max_k = [](const ThinGradKernels& t) {
    return sizeof(R) == 4 ? t.max_k_float : t.max_k_double;
  };
  const ThinGradKernels* kernels = ThinGradKernelsFor(isa);
  // "auto": the widest set for short rows (ThinGradKernelsFor's choice), else not SSE2 (no FMA)
  // where there is better, and the narrowest whose vectors hold a row.
  if (isa == "auto" && !ThinShortRows(k, rows)) {
    for (const char* name : {"avx2", "avx512"}) {
      const ThinGradKernels* narrow = ThinGradKernelsFor(name);
      if (narrow != nullptr && k <= lanes(*narrow)) {
        kernels = narrow;
        break;
      }
    }
  }
  return kernels != nullptr && k <= max_k(*kernels) ? kernels : nullptr;
}

template const ThinGradKernels* ThinGradKernelsForColumns<float>(const std::string&, Index, Index);
template const ThinGradKernels* ThinGradKernelsForColumns<double>(const std::string&, Index,
                                                                   Index);

}  // namespace tfsvd
