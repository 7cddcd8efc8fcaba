// The SVD of a float32 matrix with at most kGramMaxK rows or columns from the eigendecomposition
// of its Gram matrix, formed and decomposed in float64; framework-free.
//
// For a long thin m x k matrix A (k <= kGramMaxK = 8: point clouds, rotation fitting, features),
// one pass forms G = A^T A, a k x k Jacobi eigensolver gives G = W diag(lambda) W^T, and a second
// pass forms U = A W diag(lambda)^-1/2: two passes over A instead of a one-sided Jacobi's several
// sweeps.
// The classic objection to the Gram matrix, that it squares the condition number, is met by
// forming it in float64 and accepting the result only when the float64 errors provably stay far
// below float32's rounding (the bound below); every other matrix (ill-conditioned, rank-deficient,
// zero, NaN/Inf) is left to the caller, who runs another algorithm.
//
// Error bound. Products of two floats are exact in float64, so G's only errors are its sums':
// within each block of 1024 rows an entry is summed lane by lane, then across the lanes and over
// the rows after the last whole vector block, and the blocks in order. A product goes through at
// most min(m, 1024) / 2 + 5 additions within its block (the worst case, SSE2 from five columns:
// chains of up to 512 products in 2 lanes, then 3 rows; AVX-512: 128, 8 lanes, 15 rows) and
// m / 1024 + 1 more across blocks; so |dG| <= c eps64 sum_r |a_ri a_rj| with
// c = min(m, 1024) / 2 + m / 1024 + 6, and ||dG||_2 <= c eps64 ||A||_F^2 = c eps64 trace(G). Each
// of the eigensolver's R rotations (counted per matrix) adds a backward error of at most
// 16 eps64 ||G||_F <= 16 eps64 trace(G) (a generous count of the roundings of the two rows and
// columns it changes and of its cosine and sine), and stopping with |g_pq| <= eps64
// sqrt(g_pp g_qq) leaves off-diagonal entries of norm at most k eps64 trace(G) (Cauchy-Schwarz).
// With delta = (c + k + 16 R) eps64 trace(G), Weyl's theorem moves each lambda_i by at most
// delta, so sigma_i = sqrt(lambda_i) has a relative error <= delta / (2 lambda_min); and
// u_i^T u_j = w_i^T (G + dG) w_j / (sigma_i sigma_j) is off from delta_ij by <= delta / lambda_min
// (W's own departure from orthogonality, a few eps64 per rotation, is below that too). The result
// is accepted when delta <= 2^-28 lambda_min (float32's unit roundoff 2^-24 over 16): both errors
// then stay below a sixteenth of it, before the final rounding of s, u and v to float32. For
// 1024 x 3 (about 10 rotations) that accepts a Frobenius condition ||A||_F / sigma_min up to
// about 220; for 1000 x 8 (about 130 rotations), about 110.
//
// Float32 entries square without overflow or underflow in float64 (at most 2^256, at least
// 2^-298), so no scaling is needed. Sums run in a fixed order for a given instruction set (the
// Gram's lanes follow its vector width), so a matrix gets the same bits alone or in any batch.
#pragma once

#include <string>

#include "core/gram_svd_kernels.h"
#include "core/scalar.h"

namespace tfsvd {

// Whether GramSvd takes m x n matrices: min(m, n) from 1 to kGramMaxK.
inline bool GramSvdTakes(Index m, Index n) {
  const Index k = m < n ? m : n;
  return k >= 1 && k <= kGramMaxK;
}

// One solver per shape.
class GramSvd {
 public:
  // m x n row-major matrices with GramSvdTakes(m, n); thin factors (k = min(m, n) columns each).
  // isa: the instruction set of the passes over the matrix ("auto": the widest this CPU runs; or
  // "sse2", "avx2", "avx512", which it must run).
  GramSvd(Index m, Index n, bool compute_uv, const std::string& isa = "auto");

  // For matrices [0, count) of a contiguous batch: s (k), u (m x k) and v (n x k) each,
  // row-major, s descending, canonical signs (svd.h); u and v untouched without compute_uv.
  // ok[i] is false, with matrix i's outputs unspecified, where the error bound above does not
  // certify its result. The eigensolver runs across the matrices of a group (SIMD lanes), each
  // with the bits it gets alone.
  void Run(Index count, const float* a, float* s, float* u, float* v, bool* ok);

 private:
  const Index m_, n_;
  const bool compute_uv_;
  const GramKernels* kernels_;
};

}  // namespace tfsvd
