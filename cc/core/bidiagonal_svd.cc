#include "core/bidiagonal_svd.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tfsvd {

namespace {

inline lapack::Int I32(Index x) { return static_cast<lapack::Int>(x); }

// order[i] = 1 + the index of the i-th smallest of x[0..n) (stable).
template <typename R>
void AscendingOrder(Index n, const R* x, lapack::Int* order) {
  for (Index i = 0; i < n; ++i) order[i] = static_cast<lapack::Int>(i);
  std::stable_sort(order, order + n, [x](lapack::Int a, lapack::Int b) { return x[a] < x[b]; });
  for (Index i = 0; i < n; ++i) order[i] += 1;
}

template <typename R>
void SetIdentity(Index n, R* x) {
  std::fill(x, x + n * n, R(0));
  for (Index i = 0; i < n; ++i) x[i + i * n] = R(1);
}

}  // namespace

template <typename R>
BidiagonalSvd<R>::BidiagonalSvd(Index n, bool vectors) : n_(n), vectors_(vectors) {
  // bdsdc: 3 n^2 + 4 n with vectors, 4 n without, and iwork 8 n. The split needs lasd1's
  // 3 n^2 + 2 n (the two halves' lasd0 workspaces fit in it) and its permutation after the 8 n.
  work_.Resize(vectors ? 3 * n * n + 4 * n : 4 * n);
  iwork_.Resize(vectors ? 9 * n : 8 * n);
}

template <typename R>
lapack::Int BidiagonalSvd<R>::Run(ThreadTeam& team, R* d, R* e, R* u, R* vt) {
  const Index n = n_;
  R* const work = work_.data();
  Int* const iwork = iwork_.data();
  if (!vectors_) {
    return lapack::Bdsdc<R>('U', 'N', I32(n), d, e, nullptr, 1, nullptr, 1, work, iwork);
  }
  R norm(0);
  for (Index i = 0; i < n; ++i) norm = std::max(norm, std::abs(d[i]));
  for (Index i = 0; i + 1 < n; ++i) norm = std::max(norm, std::abs(e[i]));
  // bdsdc splits B where |e_i| < 0.9 eps |B|_max; leave those matrices to it.
  const R negligible = R(0.9) * std::numeric_limits<R>::epsilon() * norm;
  bool splits = norm == R(0) || !std::isfinite(norm);
  for (Index i = 0; i + 1 < n && !splits; ++i) splits = std::abs(e[i]) < negligible;
  if (n < kMinSplit || splits) {
    return lapack::Bdsdc<R>('U', 'I', I32(n), d, e, u, I32(n), vt, I32(n), work, iwork);
  }

  // Scale by a power of two so that |B|_max is in [0.5, 1) (bdsdc scales to 1): exact.
  int exponent = 0;
  std::frexp(norm, &exponent);
  for (Index i = 0; i < n; ++i) d[i] = std::ldexp(d[i], -exponent);
  for (Index i = 0; i + 1 < n; ++i) e[i] = std::ldexp(e[i], -exponent);

  // B = [B1 0; alpha e_nl^T beta e_1^T; 0 B2]: B1 is nl x (nl + 1) (its last column reaches into
  // the middle row's column), B2 is nr x nr, as the root of lasd0's own tree.
  const Index nl = n / 2, nr = n - nl - 1;
  SetIdentity(n, u);
  SetIdentity(n, vt);
  R* const work_upper = work;
  R* const work_lower = work + 3 * (nl + 1) * (nl + 1) + 2 * (nl + 1);
  Int* const iwork_upper = iwork;
  Int* const iwork_lower = iwork + 8 * nl;
  Int info_halves[2] = {0, 0};
  team.ForEachChunk(2, [&](Index half) {
    if (half == 0) {
      info_halves[0] = lapack::Lasd0<R>(I32(nl), 1, d, e, u, I32(n), vt, I32(n), kLeaf,
                                        iwork_upper, work_upper);
    } else {
      const Index o = nl + 1;
      info_halves[1] = lapack::Lasd0<R>(I32(nr), 0, d + o, e + o, u + o + o * n, I32(n),
                                        vt + o + o * n, I32(n), kLeaf, iwork_lower, work_lower);
    }
  });
  if (info_halves[0] != 0) return info_halves[0];
  if (info_halves[1] != 0) return info_halves[1];
  // lasd1 reads idxq on entry too: for each half, the (1-based, local) permutation that sorts its
  // singular values ascending, which lasd0 does not return (its d need not be sorted).
  Int* const idxq = iwork + 8 * n;
  AscendingOrder(nl, d, idxq);
  AscendingOrder(nr, d + nl + 1, idxq + nl + 1);
  R alpha = d[nl], beta = e[nl];
  const Int info = lapack::Lasd1<R>(I32(nl), I32(nr), 0, d, &alpha, &beta, u, I32(n), vt, I32(n),
                                    idxq, iwork, work);
  if (info != 0) return info;

  // lasd1 leaves d unsorted with d[idxq[i] - 1] ascending: reorder d, u's columns and vt's rows
  // descending (through the workspace) and undo the scaling.
  R* const sorted = work;
  R* const moved = work + n;
  for (Index j = 0; j < n; ++j) sorted[j] = std::ldexp(d[idxq[n - 1 - j] - 1], exponent);
  std::copy(sorted, sorted + n, d);
  for (Index j = 0; j < n; ++j) {
    std::copy(u + (idxq[n - 1 - j] - 1) * n, u + (idxq[n - 1 - j] - 1) * n + n, moved + j * n);
  }
  std::copy(moved, moved + n * n, u);
  for (Index c = 0; c < n; ++c) {
    for (Index j = 0; j < n; ++j) moved[j + c * n] = vt[idxq[n - 1 - j] - 1 + c * n];
  }
  std::copy(moved, moved + n * n, vt);
  return 0;
}

template class BidiagonalSvd<float>;
template class BidiagonalSvd<double>;

}  // namespace tfsvd
