// Canonical signs (phases) of singular vectors, shared by every SVD path so that CPU, GPU and
// each algorithm return the same factors.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/scalar.h"
#include "core/thread_team.h"

namespace tfsvd {

// Unit-modulus factor that makes x real and positive when multiplied in; 1 for x == 0.
template <typename T>
inline T PhaseToPositive(T x) {
  return x < T(0) ? T(-1) : T(1);
}
template <typename R>
inline std::complex<R> PhaseToPositive(const std::complex<R>& x) {
  const R r = std::abs(x);
  if (r == R(0)) return std::complex<R>(1);
  return std::conj(x) / r;
}

// Scratch of `size` elements: on the stack up to kInline, else on the heap.
template <typename T>
class ColumnScratch {
 public:
  explicit ColumnScratch(Index size) {
    if (size > kInline) heap_.resize(static_cast<std::size_t>(size));
    data_ = size > kInline ? heap_.data() : inline_;
  }
  T& operator[](Index i) { return data_[i]; }

 private:
  static constexpr Index kInline = 64;
  T inline_[kInline];
  std::vector<T> heap_;
  T* data_;
};

// x[i][first + scaled[s]] *= phase[scaled[s]] for every row i (row-major rows x cols), by chunks
// of rows on the team.
template <typename T>
inline void ScaleRows(T* x, Index rows, Index cols, Index first, const Index* scaled,
                      Index n_scaled, const T* phase, ThreadTeam& team) {
  team.ForEachRange(rows, StepChunks(rows, rows * n_scaled), 16, [&](Index b, Index e) {
    for (Index i = b; i < e; ++i) {
      T* row = x + i * cols + first;
      for (Index s = 0; s < n_scaled; ++s) row[scaled[s]] *= phase[scaled[s]];
    }
  });
}

// For each column first + c (c < count) of the row-major matrix x: top[c], the largest |x|^2 over
// rows [b, e) (b < e), and piv[c], the first row that has it. Without branches: a compare and
// branch per entry mispredicts half the time on random signs, and took half the time of a long
// thin matrix's full U. Row numbers are kept as Real, relative to blocks of rows short enough for
// them to be exact, and selected arithmetically (p + (r - p) * [larger], exact for such
// integers): GCC 12 then vectorises the loop across the columns for every type (a ternary on the
// stored value is turned back into a branch, and 64-bit integer masks were left scalar).
template <typename T>
inline void ColumnPivots(const T* x, Index cols, Index first, Index count, Index b, Index e,
                         Index* piv, RealOf<T>* top) {
  using Real = RealOf<T>;
  constexpr Index kBlockRows = Index(1) << 24;  // exact in float
  ColumnScratch<Real> block_piv(count), block_top(count);
  for (Index bb = b; bb < e; bb += kBlockRows) {
    const Index be = std::min(e, bb + kBlockRows);
    Real* __restrict bp = &block_piv[0];  // restrict: else x might alias them, and no vectors
    Real* __restrict bt = &block_top[0];
    const T* row0 = x + bb * cols + first;
    for (Index c = 0; c < count; ++c) {
      bp[c] = Real(0);
      bt[c] = AbsSquared(row0[c]);
    }
    for (Index i = bb + 1; i < be; ++i) {
      const T* __restrict row = x + i * cols + first;
      const Real r = static_cast<Real>(i - bb);
      for (Index c = 0; c < count; ++c) {
        const Real a2 = AbsSquared(row[c]), old = bt[c];
        const Real larger = static_cast<Real>(a2 > old);  // 1 or 0
        bt[c] = a2 > old ? a2 : old;                       // a maximum instruction
        bp[c] += (r - bp[c]) * larger;
      }
    }
    for (Index c = 0; c < count; ++c) {  // earlier blocks win ties
      if (bb == b || bt[c] > top[c]) {
        top[c] = bt[c];
        piv[c] = bb + static_cast<Index>(bp[c]);
      }
    }
  }
}

// Makes the pivot of each column c in [first, cols) of the row-major rows x cols matrix x real
// positive: the column is multiplied by phase[c - first] = PhaseToPositive(pivot) and the pivot set
// to its magnitude, exactly real (columns whose phase is 1 are untouched). Pivots are found, and
// columns scaled, row by row: walking down a column of a large row-major matrix misses the cache on
// every entry. By chunks of rows on the team; the chunks' pivots are combined in row order keeping
// the first on ties, so the result is the same for any team (and as one pass over all rows).
template <typename T>
inline void CanonicalizeColumns(T* x, Index rows, Index cols, Index first, T* phase,
                                ThreadTeam& team) {
  using Real = RealOf<T>;
  const Index count = cols - first;
  if (count <= 0 || rows <= 0) return;
  const Index chunks = StepChunks(rows, rows * count);
  ColumnScratch<Index> pivot(chunks * count);
  ColumnScratch<Real> best(chunks * count);
  team.ForEachChunk(chunks, [&](Index chunk) {
    Index b, e;
    ChunkBounds(rows, chunks, 16, chunk, &b, &e);
    Index* piv = &pivot[chunk * count];
    Real* top = &best[chunk * count];
    if (b == e) {
      for (Index c = 0; c < count; ++c) top[c] = Real(-1);  // no rows: never chosen
      return;
    }
    ColumnPivots(x, cols, first, count, b, e, piv, top);
  });
  for (Index chunk = 1; chunk < chunks; ++chunk) {
    for (Index c = 0; c < count; ++c) {
      if (best[chunk * count + c] > best[c]) {
        best[c] = best[chunk * count + c];
        pivot[c] = pivot[chunk * count + c];
      }
    }
  }
  ColumnScratch<Index> scaled(count);  // the columns whose phase is not 1
  Index n_scaled = 0;
  for (Index c = 0; c < count; ++c) {
    phase[c] = PhaseToPositive(x[pivot[c] * cols + first + c]);
    if (phase[c] != T(1)) scaled[n_scaled++] = c;
  }
  if (n_scaled == 0) return;
  ScaleRows(x, rows, cols, first, &scaled[0], n_scaled, phase, team);
  for (Index s = 0; s < n_scaled; ++s) {
    const Index c = scaled[s];
    x[pivot[c] * cols + first + c] = T(std::sqrt(best[c]));  // |pivot|, exactly real
  }
}

// u: m x u_cols, v: n x v_cols (row-major), the first k columns of each paired by a = u s v^H.
// Paired columns are fixed by u (v gets the same phase, so u s v^H is unchanged); the unpaired
// columns of full factors are fixed on their own. `team` (null: the caller alone) shares the
// passes.
template <typename T>
inline void CanonicalizeSigns(Index m, Index u_cols, Index n, Index v_cols, Index k, T* u, T* v,
                              ThreadTeam* team = nullptr) {
  ThreadTeam alone(nullptr, 0);
  ThreadTeam& runner = team != nullptr ? *team : alone;
  ColumnScratch<T> phase(std::max(u_cols, v_cols));
  CanonicalizeColumns(u, m, u_cols, 0, &phase[0], runner);
  ColumnScratch<Index> scaled(k);
  Index n_scaled = 0;
  for (Index c = 0; c < k; ++c) {
    if (phase[c] != T(1)) scaled[n_scaled++] = c;
  }
  if (n_scaled > 0) ScaleRows(v, n, v_cols, 0, &scaled[0], n_scaled, &phase[0], runner);
  CanonicalizeColumns(v, n, v_cols, k, &phase[0], runner);
}

}  // namespace tfsvd
