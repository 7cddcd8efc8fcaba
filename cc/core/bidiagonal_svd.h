// The SVD of a real n x n upper bidiagonal matrix with dense singular vectors, as LAPACK's bdsdc
// (divide and conquer), with its first split done here: the two halves are independent problems
// that run concurrently on a ThreadTeam (LAPACK's lasd0 each), then LAPACK's lasd1 merges them.
// The split depends only on n, so the result does not depend on the team.
#pragma once

#include "core/lapack.h"
#include "core/scalar.h"
#include "core/thread_team.h"
#include "core/workspace.h"

namespace tfsvd {

template <typename R>
class BidiagonalSvd {
 public:
  using Int = lapack::Int;

  BidiagonalSvd(Index n, bool vectors);

  // d [n] (the diagonal) and e [n - 1] (the superdiagonal) are destroyed; on success d holds the
  // singular values in descending order and, with vectors, u and vt (n x n, column-major, leading
  // dimension ld >= n) the singular vectors: B = u diag(d) vt. Returns 0 or LAPACK's info > 0.
  Int Run(ThreadTeam& team, R* d, R* e, R* u, R* vt, Index ld);

 private:
  Int Merge(ThreadTeam& team, Index nl, Index nr, R* d, R alpha, R beta, R* u, R* vt, Index ld,
            Int* idxq);

  // Below this size, or when B already splits (a negligible superdiagonal entry, which bdsdc
  // handles by itself), bdsdc runs whole.
  static constexpr Index kMinSplit = 128;
  // bdsdc's and lasd0's leaf size (ilaenv's SMLSIZ for them).
  static constexpr Int kLeaf = 25;

  Index n_;
  bool vectors_;
  Index ld_work_;  // leading dimension of the merge's n x n scratch matrices
  AlignedArray<R> work_;
  AlignedArray<Int> iwork_;
};

}  // namespace tfsvd
