// gesdd's algorithm for one large matrix, its heavy steps spread over a ThreadTeam.
//
// Same interface and storage as LAPACK's gesdd on a column-major m x n matrix with m >= n:
//   - tall matrices (m >= 11 n / 6, gesdd's own threshold) are first reduced to R: with thin or
//     no vectors by a TSQR when they have at least 64 n rows (independent QRs of row blocks, then
//     one of their stacked R factors), else by a blocked Householder QR (recursive panels,
//     geqrt3) whose trailing updates are cut into row chunks;
//   - the (square or R) matrix is bidiagonalised by Bidiagonalizer;
//   - the bidiagonal SVD is BidiagonalSvd (bdsdc's divide and conquer, its two halves
//     concurrently);
//   - the singular vectors are back-transformed by BlockReflectors (column chunks of U, row
//     chunks of V^H).
// Chunk counts depend only on the sizes, so the result is the same for every team size. OpenBLAS
// itself stays single-threaded: its threads would change the bits with the thread count and
// compete with the framework's pool.
#pragma once

#include <memory>

#include "core/bidiagonal_svd.h"
#include "core/bidiagonalize.h"
#include "core/block_reflectors.h"
#include "core/lapack.h"
#include "core/scalar.h"
#include "core/thread_team.h"
#include "core/workspace.h"

namespace tfsvd {

template <typename T>
class ParallelGesdd {
 public:
  using Real = RealOf<T>;
  using Int = lapack::Int;

  // m >= n >= 1; jobz as gesdd: 'N' values only, 'S' thin u (m x n) and vt (n x n), 'A' full
  // u (m x m) and vt (n x n).
  ParallelGesdd(Index m, Index n, char jobz);

  // Factors a (column-major, lda >= m; destroyed) into s (descending), u and vt. Returns 0, or
  // bdsdc's info > 0 when it did not converge (then the outputs are unspecified).
  Int Run(ThreadTeam& team, T* a, Index lda, Real* s, T* u, Index ldu, T* vt, Index ldvt);

  // Whether an m x n shape (m >= n) takes the QR path: m much larger than n (gesdd's threshold).
  static bool TakesQrPath(Index m, Index n) { return m > n && m >= n * 11 / 6; }

 private:
  // Blocked QR of the column-major rows x n_ matrix a (reflectors in a, scalars in tau).
  void Qr(ThreadTeam& team, Index rows, T* a, Index lda, T* tau);
  // TSQR (Demmel, Grigori, Hoemmen, Langou): the row blocks of a factored independently, then
  // their stacked R factors; R of a is the top of the stacked factor in stack_.
  void TsqrFactor(ThreadTeam& team, T* a, Index lda);
  // u (m x n) = Q [ur_; 0] for TsqrFactor's Q: the stacked factor's Q, then each block's own.
  void TsqrApply(ThreadTeam& team, T* a, Index lda, T* u, Index ldu);
  void BlockRows(Index block, Index* begin, Index* end) const;  // rows of TSQR block `block`
  static constexpr Index kQrPanel = 32;
  const Index m_, n_;
  const char jobz_;
  const bool qr_;
  const Index tsqr_blocks_;  // > 1: the QR path is a TSQR with this many row blocks
  // Leading dimension of the n x n scratch matrices r_, ur_ (T) and ub_, vtb_ (Real).
  const Index ld_square_, ld_square_real_;
  Bidiagonalizer<T> bidiag_;
  AlignedArray<T> tau_qr_, t_qr_, qr_work_, qr_scratch_, r_, tauq_, taup_, ur_;
  AlignedArray<T> tau_blocks_, stack_, stack_w_, block_work_;  // TSQR
  Index block_lwork_ = 0;
  BidiagonalSvd<Real> bidiagonal_svd_;
  AlignedArray<Real> d_, e_, ub_, vtb_;
  BlockReflectors<T> reflectors_;
};

}  // namespace tfsvd
