// Canonical signs (phases) of singular vectors, shared by every SVD path so that CPU, GPU and
// each algorithm return the same factors.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/scalar.h"
#include "core/thread_team.h"

namespace tfsvd {

// Index of the entry of largest magnitude in column c of a row-major rows x cols matrix, first
// index on ties.
template <typename T>
inline Index ArgMaxAbsInColumn(const T* x, Index rows, Index cols, Index c) {
  Index best = 0;
  RealOf<T> best_abs2 = AbsSquared(x[c]);
  for (Index i = 1; i < rows; ++i) {
    const RealOf<T> a2 = AbsSquared(x[i * cols + c]);
    if (a2 > best_abs2) {
      best_abs2 = a2;
      best = i;
    }
  }
  return best;
}

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

// Multiplies column c of x by `phase` and makes entry `pivot` exactly real (it is |pivot|).
template <typename T>
inline void ScaleColumn(T* x, Index rows, Index cols, Index c, T phase, Index pivot) {
  if (phase == T(1)) return;
  const RealOf<T> pivot_abs = std::sqrt(AbsSquared(x[pivot * cols + c]));
  for (Index i = 0; i < rows; ++i) x[i * cols + c] *= phase;
  x[pivot * cols + c] = T(pivot_abs);
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

// Makes the pivot of each column c in [first, cols) of the row-major rows x cols matrix x real
// positive: the column is multiplied by phase[c - first] = PhaseToPositive(pivot) (exactly as
// ScaleColumn; columns whose phase is 1 are untouched). Pivots are found, and columns scaled, row
// by row: walking down a column of a large row-major matrix misses the cache on every entry.
// By chunks of rows on the team; the chunks' pivots are combined in row order keeping the first
// on ties, so the result is the same for any team (and as one pass over all rows).
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
    for (Index c = 0; c < count; ++c) {
      piv[c] = b;
      top[c] = AbsSquared(x[b * cols + first + c]);
    }
    for (Index i = b + 1; i < e; ++i) {
      const T* row = x + i * cols + first;
      for (Index c = 0; c < count; ++c) {
        const Real a2 = AbsSquared(row[c]);
        if (a2 > top[c]) {
          top[c] = a2;
          piv[c] = i;
        }
      }
    }
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
