// The column pass of the bidiagonalisation (bidiagonalize.cc) for real matrices, compiled once per
// instruction set (bidiag_pass.cc for baseline x86-64, bidiag_pass_avx2.cc, bidiag_pass_avx512.cc
// from bidiag_pass.inc) and chosen at run time.
//
// Each step of the bidiagonalisation needs two matrix-vector products with the same trailing
// columns: y = A^T v, and then z = A w where w depends on y. Two BLAS calls read every column
// twice, the second time from L2; this kernel reads a few columns once into L1, takes their dot
// products with v, forms their entries of w and adds them into z straight away (the BLAS 2.5
// scheme of Howell, Demmel, Fulton, Hammarling and Marmol). Single-thread bidiagonalisation,
// float32, Xeon: 1024^2 83-84 -> 72-76 ms; 384^2 within noise.
#pragma once

#include <string>

#include "core/scalar.h"

namespace tfsvd {

// For every column j in [0, len) of the column-major block a (mc >= 1 rows, leading dimension
// lda), with y[j] and w[j] holding corrections on entry:
//   y[j] = tq (a_j^T v - y[j]),   w[j] = (a_j[0] - y[j]) - w[j],   z[i] += a_j[1 + i] w[j]
// for i in [0, mc - 1). z has z_pad spare entries before z[0] and after z[mc - 2] that the call
// may overwrite.
//
// With z_pad >= kPassZPad, lda a multiple of the vector width, and v and z + 1 at the same place
// as a within a vector (modulo 64 bytes covers every width), every load is aligned; such a pass
// reads up to a vector's worth of entries before a_j[0] and v[0] and after a_j[mc - 1] and
// v[mc - 1], within the vectors that hold those entries, and ignores them. Single-thread
// bidiagonalisation, float32, Xeon, unaligned -> aligned: 512^2 8.2 -> 6.8 ms, 768^2 25.5 ->
// 23.1, 1000^2 64 -> 58.
//
// The summation order is fixed by the instruction set, the sizes and where a lies within a
// vector.
inline constexpr Index kPassZPad = 16;

template <class R>
using BidiagPassKernel = void (*)(Index mc, Index len, const R* a, Index lda, const R* v, R tq,
                                  R* y, R* w, R* z, Index z_pad);

struct BidiagPassKernels {
  BidiagPassKernel<float> run_float;
  BidiagPassKernel<double> run_double;
};

namespace bidiag_pass {
namespace sse2 { BidiagPassKernels Kernels(); }
namespace avx2 { BidiagPassKernels Kernels(); }
namespace avx512 { BidiagPassKernels Kernels(); }
}  // namespace bidiag_pass

// The kernels of instruction set `isa` ("sse2", "avx2", "avx512"), or null when this CPU does not
// run it (tests); "auto" names the widest one it runs.
const BidiagPassKernels* BidiagPassKernelsFor(const std::string& isa);

// The kernels of the widest instruction set this CPU runs (decided once per process).
const BidiagPassKernels& BestBidiagPassKernels();

// The kernel for R of a set.
template <class R> BidiagPassKernel<R> PassKernelOf(const BidiagPassKernels& k);
template <> inline BidiagPassKernel<float> PassKernelOf<float>(const BidiagPassKernels& k) {
  return k.run_float;
}
template <> inline BidiagPassKernel<double> PassKernelOf<double>(const BidiagPassKernels& k) {
  return k.run_double;
}

}  // namespace tfsvd
