#include "core/bidiagonal_svd.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/transpose.h"

namespace tfsvd {

namespace {

inline lapack::Int I32(Index x) { return static_cast<lapack::Int>(x); }

constexpr Index kChunkAlign = 16;

// order[i] = 1 + the index of the i-th smallest of x[0..n) (stable).
template <typename R>
void AscendingOrder(Index n, const R* x, lapack::Int* order) {
  for (Index i = 0; i < n; ++i) order[i] = static_cast<lapack::Int>(i);
  std::stable_sort(order, order + n, [x](lapack::Int a, lapack::Int b) { return x[a] < x[b]; });
  for (Index i = 0; i < n; ++i) order[i] += 1;
}

template <typename R>
void SetIdentity(Index n, R* x, Index ld) {
  for (Index j = 0; j < n; ++j) {
    std::fill(x + j * ld, x + j * ld + n, R(0));
    x[j + j * ld] = R(1);
  }
}

}  // namespace

template <typename R>
BidiagonalSvd<R>::BidiagonalSvd(Index n, bool vectors)
    : n_(n), vectors_(vectors), ld_work_(PaddedLeadingDimension<R>(n)) {
  // bdsdc: 3 n^2 + 4 n with vectors, 4 n without, and iwork 8 n. The split needs lasd1's
  // 3 n^2 + 2 n with padded columns (the two halves' lasd0 workspaces fit in it) and its
  // permutation after the 8 n.
  work_.Resize(vectors ? 3 * ld_work_ * n + 4 * n : 4 * n);
  iwork_.Resize(vectors ? 9 * n : 8 * n);
}

template <typename R>
lapack::Int BidiagonalSvd<R>::Run(ThreadTeam& team, R* d, R* e, R* u, R* vt, Index ld) {
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
    return lapack::Bdsdc<R>('U', 'I', I32(n), d, e, u, I32(ld), vt, I32(ld), work, iwork);
  }

  // Scale by a power of two so that |B|_max is in [0.5, 1) (bdsdc scales to 1): exact.
  int exponent = 0;
  std::frexp(norm, &exponent);
  for (Index i = 0; i < n; ++i) d[i] = std::ldexp(d[i], -exponent);
  for (Index i = 0; i + 1 < n; ++i) e[i] = std::ldexp(e[i], -exponent);

  // B = [B1 0; alpha e_nl^T beta e_1^T; 0 B2]: B1 is nl x (nl + 1) (its last column reaches into
  // the middle row's column), B2 is nr x nr, as the root of lasd0's own tree.
  const Index nl = n / 2, nr = n - nl - 1;
  SetIdentity(n, u, ld);
  SetIdentity(n, vt, ld);
  R* const work_upper = work;
  R* const work_lower = work + 3 * (nl + 1) * (nl + 1) + 2 * (nl + 1);
  Int* const iwork_upper = iwork;
  Int* const iwork_lower = iwork + 8 * nl;
  Int info_halves[2] = {0, 0};
  team.ForEachChunk(2, [&](Index half) {
    if (half == 0) {
      info_halves[0] = lapack::Lasd0<R>(I32(nl), 1, d, e, u, I32(ld), vt, I32(ld), kLeaf,
                                        iwork_upper, work_upper);
    } else {
      const Index o = nl + 1;
      info_halves[1] = lapack::Lasd0<R>(I32(nr), 0, d + o, e + o, u + o + o * ld, I32(ld),
                                        vt + o + o * ld, I32(ld), kLeaf, iwork_lower, work_lower);
    }
  });
  if (info_halves[0] != 0) return info_halves[0];
  if (info_halves[1] != 0) return info_halves[1];
  // lasd1 reads idxq on entry too: for each half, the (1-based, local) permutation that sorts its
  // singular values ascending, which lasd0 does not return (its d need not be sorted).
  Int* const idxq = iwork + 8 * n;
  AscendingOrder(nl, d, idxq);
  AscendingOrder(nr, d + nl + 1, idxq + nl + 1);
  const Int info = Merge(team, nl, nr, d, d[nl], e[nl], u, vt, ld, idxq);
  if (info != 0) return info;

  // The merge leaves d unsorted with d[idxq[i] - 1] ascending: reorder d, u's columns and vt's
  // rows descending (through the workspace) and undo the scaling.
  R* const sorted = work;
  R* const moved = work + n;  // n x n, leading dimension n
  for (Index j = 0; j < n; ++j) sorted[j] = std::ldexp(d[idxq[n - 1 - j] - 1], exponent);
  std::copy(sorted, sorted + n, d);
  for (Index j = 0; j < n; ++j) {
    const R* column = u + (idxq[n - 1 - j] - 1) * ld;
    std::copy(column, column + n, moved + j * n);
  }
  CopyStrided(n, n, moved, n, u, ld);
  for (Index c = 0; c < n; ++c) {
    for (Index j = 0; j < n; ++j) moved[j + c * n] = vt[idxq[n - 1 - j] - 1 + c * ld];
  }
  CopyStrided(n, n, moved, n, vt, ld);
  return 0;
}

// lasd1's merge of the two solved halves (square: sqre = 0, m = n): scaling, lasd2's deflation
// (sequential, O(n^2)), then what lasd3 does, with its independent parts on the team: the k roots
// of the secular equation (lasd4 each), the updated z (Gu and Eisenstat: singular vectors
// orthogonal to working precision), the vectors of the merged problem and the two products with
// the halves' vectors. The arithmetic per entry is lasd3's; only the split into chunks differs.
template <typename R>
lapack::Int BidiagonalSvd<R>::Merge(ThreadTeam& team, Index nl, Index nr, R* d, R alpha, R beta,
                                    R* u, R* vt, Index ld, Int* idxq) {
  const Index n = nl + nr + 1, m = n, ldu = ld, ldvt = ld;
  // Workspace as lasd1 lays it out, with padded columns: z (m), dsigma (n), u2 (n x n), vt2
  // (m x m), q (k x k).
  R* const z = work_.data();
  R* const dsigma = z + m;
  R* const u2 = dsigma + n;
  R* const vt2 = u2 + ld_work_ * n;
  R* const q = vt2 + ld_work_ * m;
  Int* const idx = iwork_.data();
  Int* const idxc = idx + n;
  Int* const coltyp = idxc + n;
  Int* const idxp = coltyp + n;
  const Index ldu2 = ld_work_, ldvt2 = ld_work_;

  // Scale so that the largest of |alpha|, |beta|, |d_i| (i != nl) is in [0.5, 1) (lasd1 scales
  // it to 1; a power of two is exact).
  R norm = std::max(std::abs(alpha), std::abs(beta));
  d[nl] = R(0);
  for (Index i = 0; i < n; ++i) norm = std::max(norm, std::abs(d[i]));
  int exponent = 0;
  std::frexp(norm, &exponent);
  for (Index i = 0; i < n; ++i) d[i] = std::ldexp(d[i], -exponent);
  alpha = std::ldexp(alpha, -exponent);
  beta = std::ldexp(beta, -exponent);

  Int k_int = 0;
  Int info = lapack::Lasd2<R>(I32(nl), I32(nr), 0, &k_int, d, z, alpha, beta, u, I32(ldu), vt,
                              I32(ldvt), dsigma, u2, I32(ldu2), vt2, I32(ldvt2), idxp, idx, idxc,
                              idxq, coltyp);
  if (info != 0) return info;
  const Index k = k_int, ldq = PaddedLeadingDimension<R>(k);
  const Int ctot[4] = {coltyp[0], coltyp[1], coltyp[2], coltyp[3]};  // lasd2 leaves them there
  auto U = [&](Index i, Index j) -> R& { return u[i + j * ldu]; };
  auto VT = [&](Index i, Index j) -> R& { return vt[i + j * ldvt]; };
  auto U2 = [&](Index i, Index j) -> R& { return u2[i + j * ldu2]; };
  auto VT2 = [&](Index i, Index j) -> R& { return vt2[i + j * ldvt2]; };
  auto Q = [&](Index i, Index j) -> R& { return q[i + j * ldq]; };

  if (k == 1) {
    d[0] = std::abs(z[0]);
    for (Index j = 0; j < m; ++j) VT(0, j) = VT2(0, j);
    for (Index i = 0; i < n; ++i) U(i, 0) = z[0] > R(0) ? U2(i, 0) : -U2(i, 0);
  } else {
    // (lasd3 first rounds dsigma through 2 x - x, a no-op in binary arithmetic.)
    R* const z_sign = q + ldq * k;  // the signs of z, kept (lasd3 keeps z in q's first column)
    std::copy(z, z + k, z_sign);
    R rho = lapack::Nrm2<R>(I32(k), z, 1);
    const R inv_rho = R(1) / rho;
    for (Index i = 0; i < k; ++i) z[i] *= inv_rho;
    rho *= rho;

    // The roots: column j of U gets dsigma - sigma_j, column j of VT dsigma + sigma_j.
    const Index root_chunks = StepChunks(k, k * k);
    Int root_info[kMaxStepChunks] = {0};
    team.ForEachChunk(root_chunks, [&](Index chunk) {
      Index b, e;
      ChunkBounds(k, root_chunks, kChunkAlign, chunk, &b, &e);
      for (Index j = b; j < e && root_info[chunk] == 0; ++j) {
        root_info[chunk] = lapack::Lasd4<R>(I32(k), I32(j + 1), dsigma, z, &U(0, j), rho, &d[j],
                                            &VT(0, j));
      }
    });
    for (Index c = 0; c < root_chunks; ++c) {
      if (root_info[c] != 0) return root_info[c];
    }

    // z_i from the roots (Loewner), with the sign of the original z_i; products taken in lasd3's
    // order, j ascending, rows of a chunk side by side.
    team.ForEachRange(k, root_chunks, kChunkAlign, [&](Index b, Index e) {
      R* acc = &Q(0, 0) + b;  // q is free until the vectors below: rows [b, e) of its column 0
      for (Index i = b; i < e; ++i) acc[i - b] = U(i, k - 1) * VT(i, k - 1);
      for (Index j = 0; j + 1 < k; ++j) {
        for (Index i = b; i < e; ++i) {
          const R dj = j < i ? dsigma[j] : dsigma[j + 1];
          acc[i - b] *= U(i, j) * VT(i, j) / (dsigma[i] - dj) / (dsigma[i] + dj);
        }
      }
      for (Index i = b; i < e; ++i) {
        z[i] = std::copysign(std::sqrt(std::abs(acc[i - b])), z_sign[i]);
      }
    });

    // Vectors of the merged problem: column i of U (left) and VT (right, normalised below), and
    // the left ones, normalised and permuted by idxc, into q.
    team.ForEachRange(k, root_chunks, kChunkAlign, [&](Index b, Index e) {
      for (Index i = b; i < e; ++i) {
        VT(0, i) = z[0] / U(0, i) / VT(0, i);
        U(0, i) = R(-1);
        for (Index j = 1; j < k; ++j) {
          VT(j, i) = z[j] / U(j, i) / VT(j, i);
          U(j, i) = dsigma[j] * VT(j, i);
        }
        const R norm_u = lapack::Nrm2<R>(I32(k), &U(0, i), 1);
        Q(0, i) = U(0, i) / norm_u;
        for (Index j = 1; j < k; ++j) Q(j, i) = U(idxc[j] - 1, i) / norm_u;
      }
    });

    // U = U2 Q by column chunks, in lasd3's blocks: rows [0, nl) from the column types 1 and 3,
    // row nl from q's first row, rows [nl + 1, n) from the types 2 and 3.
    const Index col_chunks = StepChunks(k, n * k);
    team.ForEachRange(k, col_chunks, kChunkAlign, [&](Index b, Index e) {
      const Int w = I32(e - b);
      if (k == 2) {
        lapack::Gemm<R>('N', 'N', I32(n), w, I32(k), R(1), u2, I32(ldu2), &Q(0, b), I32(ldq),
                        R(0), &U(0, b), I32(ldu));
        return;
      }
      const Index type3 = 1 + ctot[0] + ctot[1];  // first column of type 3 in u2
      if (ctot[0] > 0) {
        lapack::Gemm<R>('N', 'N', I32(nl), w, ctot[0], R(1), &U2(0, 1), I32(ldu2), &Q(1, b),
                        I32(ldq), R(0), &U(0, b), I32(ldu));
        if (ctot[2] > 0) {
          lapack::Gemm<R>('N', 'N', I32(nl), w, ctot[2], R(1), &U2(0, type3), I32(ldu2),
                          &Q(type3, b), I32(ldq), R(1), &U(0, b), I32(ldu));
        }
      } else if (ctot[2] > 0) {
        lapack::Gemm<R>('N', 'N', I32(nl), w, ctot[2], R(1), &U2(0, type3), I32(ldu2),
                        &Q(type3, b), I32(ldq), R(0), &U(0, b), I32(ldu));
      } else {
        for (Index j = b; j < e; ++j) {
          for (Index i = 0; i < nl; ++i) U(i, j) = U2(i, j);
        }
      }
      for (Index j = b; j < e; ++j) U(nl, j) = Q(0, j);
      lapack::Gemm<R>('N', 'N', I32(nr), w, ctot[1] + ctot[2], R(1), &U2(nl + 1, 1 + ctot[0]),
                      I32(ldu2), &Q(1 + ctot[0], b), I32(ldq), R(0), &U(nl + 1, b), I32(ldu));
    });

    // Right vectors of the merged problem into q: row i of q is column i of VT, normalised and
    // permuted by idxc (in tiles of rows, so that q is written along its columns).
    team.ForEachRange(k, root_chunks, kChunkAlign, [&](Index b, Index e) {
      constexpr Index kTile = 32;
      R norm[kTile];
      for (Index i0 = b; i0 < e; i0 += kTile) {
        const Index i1 = std::min(e, i0 + kTile);
        for (Index i = i0; i < i1; ++i) norm[i - i0] = lapack::Nrm2<R>(I32(k), &VT(0, i), 1);
        for (Index i = i0; i < i1; ++i) Q(i, 0) = VT(0, i) / norm[i - i0];
        for (Index j = 1; j < k; ++j) {
          const Index jc = idxc[j] - 1;
          for (Index i = i0; i < i1; ++i) Q(i, j) = VT(jc, i) / norm[i - i0];
        }
      }
    });

    // VT = Q VT2 by column chunks: columns [0, nl + 1) from the column types 1 and 3; columns
    // [nl + 1, m) from q's first column (lasd3 moves it next to the type-2 ones) and types 2, 3.
    const Index vt_chunks = StepChunks(m, m * k);
    team.ForEachRange(m, vt_chunks, kChunkAlign, [&](Index b, Index e) {
      if (k == 2) {
        lapack::Gemm<R>('N', 'N', I32(k), I32(e - b), I32(k), R(1), q, I32(ldq), &VT2(0, b),
                        I32(ldvt2), R(0), &VT(0, b), I32(ldvt));
        return;
      }
      const Index left_end = std::min(e, nl + 1), right_begin = std::max(b, nl + 1);
      if (b < left_end) {
        const Int w = I32(left_end - b);
        lapack::Gemm<R>('N', 'N', I32(k), w, 1 + ctot[0], R(1), q, I32(ldq), &VT2(0, b),
                        I32(ldvt2), R(0), &VT(0, b), I32(ldvt));
        const Index type3 = 1 + ctot[0] + ctot[1];
        if (type3 < m) {
          lapack::Gemm<R>('N', 'N', I32(k), w, ctot[2], R(1), &Q(0, type3), I32(ldq),
                          &VT2(type3, b), I32(ldvt2), R(1), &VT(0, b), I32(ldvt));
        }
      }
      if (right_begin < e) {
        const Int w = I32(e - right_begin);
        const Index first = ctot[0];  // lasd3 copies column 0 of q (row 0 of vt2) here
        const Int rest = ctot[1] + ctot[2];
        if (first == 0) {
          lapack::Gemm<R>('N', 'N', I32(k), w, 1 + rest, R(1), q, I32(ldq), &VT2(0, right_begin),
                          I32(ldvt2), R(0), &VT(0, right_begin), I32(ldvt));
        } else {
          lapack::Gemm<R>('N', 'N', I32(k), w, 1, R(1), q, I32(ldq), &VT2(0, right_begin),
                          I32(ldvt2), R(0), &VT(0, right_begin), I32(ldvt));
          lapack::Gemm<R>('N', 'N', I32(k), w, rest, R(1), &Q(0, first + 1), I32(ldq),
                          &VT2(first + 1, right_begin), I32(ldvt2), R(1), &VT(0, right_begin),
                          I32(ldvt));
        }
      }
    });
  }

  for (Index i = 0; i < n; ++i) d[i] = std::ldexp(d[i], exponent);
  lapack::Lamrg<R>(I32(k), I32(n - k), d, 1, -1, idxq);
  return 0;
}

template class BidiagonalSvd<float>;
template class BidiagonalSvd<double>;

}  // namespace tfsvd
