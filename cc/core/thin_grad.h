// The two products of the backward of a thin real SVD (svd_grad.cc), compiled once per instruction
// set (thin_grad.cc for baseline x86-64, thin_grad_avx2.cc, thin_grad_avx512.cc from
// thin_grad.inc) and chosen at run time.
//
// For a tall m x k matrix with k small (say 1000 x 16), the backward is J = U^T gU and
// ga = (gU S^-1 + U G) V^T: general BLAS calls spend more on packing, zeroing and the intermediate
// X than on the arithmetic at these sizes. Here J is one pass over U and gU with J in registers,
// and ga = gU P + U Q (P = S^-1 V^T, Q = G V^T, both k x k) one pass over gU and U with each
// output row in registers: no X, no packing. The wide case runs on the transposes.
//
// Sums run in a fixed order for a given instruction set and sizes (products may fuse).
#pragma once

#include <string>

#include "core/scalar.h"

namespace tfsvd {

// out (k x k, row-major) = a^T b for a, b rows x k, row-major with leading dimension k.
template <class R>
using ThinGramKernel = void (*)(Index rows, Index k, const R* a, const R* b, R* out);

// out (rows x k, row-major) = g p + u q for g, u rows x k (leading dimension k) and p, q k x k
// (row-major); without the first term when g is null.
template <class R>
using ThinProductKernel = void (*)(Index rows, Index k, const R* g, const R* p, const R* u,
                                   const R* q, R* out);

// Whether the kernels take their short-row path (thin_grad.inc) for `rows` x k, where a vector
// holds more than k values: rows of at most 4 values, from kThinShortMinRows[k] rows on. With
// fewer rows, the rows after the last whole block (one by one) cost more than one row per vector
// saves (float32, ns per matrix, AVX2 one row per vector / AVX-512 short rows: 24 x 3 188 / 231,
// 16 x 3 167 / 183, 32 x 3 211 / 199, 64 x 3 336 / 226; 16 x 2 128 / 117, 32 x 2 169 / 132; 16
// x 4 170 / 260, 64 x 4 300 / 330, 128 x 4 470 / 440).
constexpr Index kThinShortK = 4;
constexpr Index kThinShortMinRows[kThinShortK + 1] = {0, 0, 16, 32, 128};
inline bool ThinShortRows(Index k, Index rows) {
  return k <= kThinShortK && rows >= kThinShortMinRows[k];
}

struct ThinGradKernels {
  const char* isa;
  Index lanes_float, lanes_double;  // vector width
  Index max_k_float, max_k_double;  // the largest k the kernels take (and beat BLAS at)
  ThinGramKernel<float> gram_float;
  ThinGramKernel<double> gram_double;
  ThinProductKernel<float> product_float;
  ThinProductKernel<double> product_double;
};

namespace thin_grad {
namespace sse2 { ThinGradKernels Kernels(); }
namespace avx2 { ThinGradKernels Kernels(); }
namespace avx512 { ThinGradKernels Kernels(); }
}  // namespace thin_grad

// The kernels of instruction set `isa` ("sse2", "avx2", "avx512"), or null when this CPU does not
// run it (tests); "auto" names the widest one it runs.
const ThinGradKernels* ThinGradKernelsFor(const std::string& isa);

// The kernels for a long factor of `rows` x k of R (float or double), or null where BLAS should
// run: those of `isa` up to their limit; for "auto" the narrowest set with FMA whose vectors hold
// a row of k, else the widest (half-empty wide vectors lose: float32, 64 x 500 x 8, us, AVX-512
// 216 / AVX2 155); but the widest for short rows (ThinShortRows), which the kernels transpose into
// whole columns (float32, 500 x 1000 x k, us per matrix, AVX2 / AVX-512: k = 2 1.00 / 0.91, 3
// 1.80 / 1.43, 4 2.91 / 1.96; float64 k = 3 3.39 / 2.76, 4 5.34 / 3.86).
template <class R>
const ThinGradKernels* ThinGradKernelsForColumns(const std::string& isa, Index k, Index rows);
template <class R> ThinGramKernel<R> ThinGramOf(const ThinGradKernels& k);
template <> inline ThinGramKernel<float> ThinGramOf<float>(const ThinGradKernels& k) {
  return k.gram_float;
}
template <> inline ThinGramKernel<double> ThinGramOf<double>(const ThinGradKernels& k) {
  return k.gram_double;
}
template <class R> ThinProductKernel<R> ThinProductOf(const ThinGradKernels& k);
template <> inline ThinProductKernel<float> ThinProductOf<float>(const ThinGradKernels& k) {
  return k.product_float;
}
template <> inline ThinProductKernel<double> ThinProductOf<double>(const ThinGradKernels& k) {
  return k.product_double;
}

}  // namespace tfsvd
