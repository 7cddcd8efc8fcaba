// The two passes of gram_svd.h over a matrix, compiled once per instruction set (gram_svd.cc for
// baseline x86-64, gram_svd_avx2.cc, gram_svd_avx512.cc from gram_svd.inc) and chosen at run
// time.
#pragma once

#include <string>

#include "core/scalar.h"

namespace tfsvd {

// The Gram's sums restart every this many rows (gram_svd.h's error bound).
inline constexpr Index kGramBlockRows = 1024;

// The most columns (or rows) of a matrix the passes take.
inline constexpr Index kGramMaxK = 8;

// Both on the tall view X (rows x k, 1 <= k <= kGramMaxK) of a row-major matrix: X = A (rows x k)
// when `tall`, else X = A^T for A k x rows with leading dimension ld.
struct GramKernels {
  // g (k x k, row-major; its upper triangle) = X^T X, in float64.
  void (*gram)(Index rows, Index k, const float* a, Index ld, bool tall, double* g);
  // out (rows x k, row-major) = X p for p k x k (row-major), in float64, rounded to float32.
  // With `negated` non-null, also makes the entry of largest magnitude of each column of out
  // positive (canonical.h's rule: the first on ties) and sets negated[j] (k entries) for each
  // column it negated.
  void (*product)(Index rows, Index k, const float* a, Index ld, bool tall, const double* p,
                  float* out, bool* negated);
  // For each of `count` symmetric k x k matrices g[i] (row-major, both triangles): cyclic Jacobi
  // to g[i] = w[i] diag w[i]^T, leaving the eigenvalues on g[i]'s diagonal and the eigenvectors in
  // w[i]'s columns. A pair p, q is rotated (Golub & Van Loan, Algorithm 8.4.1, t the tangent of
  // the smaller angle) while g_pq^2 > kGramEigenEps^2 |g_pp g_qq|, the test under which positive
  // definite matrices get their eigenvalues to high relative accuracy, for at most
  // kGramEigenMaxSweeps sweeps; NaN entries are never rotated. rotations[i]: how many rotations
  // g[i] took (gram_svd.h's error bound). Across matrices, each one's bits as alone.
  void (*eigen)(Index count, Index k, double* g, double* w, int* rotations);
};

inline constexpr double kGramEigenEps = 0x1p-53;
inline constexpr int kGramEigenMaxSweeps = 30;

namespace gram {
namespace sse2 { GramKernels Kernels(); }
namespace avx2 { GramKernels Kernels(); }
namespace avx512 { GramKernels Kernels(); }
}  // namespace gram

// The kernels of instruction set `isa` ("sse2", "avx2", "avx512"), or null when this CPU does not
// run it; "auto" names the widest one it runs (or the one $TFSVD_JACOBI_ISA names, as for the
// Jacobi kernels).
const GramKernels* GramKernelsFor(const std::string& isa);

}  // namespace tfsvd
