// Canonical signs (phases) of singular vectors, shared by every SVD path so that CPU, GPU and
// each algorithm return the same factors.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/scalar.h"

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

// Makes the pivot of each column c in [first, cols) of the row-major rows x cols matrix x real
// positive: the column is multiplied by phase[c - first] = PhaseToPositive(pivot) (exactly as
// ScaleColumn; columns whose phase is 1 are untouched). Pivots are found, and columns scaled, row
// by row: walking down a column of a large row-major matrix misses the cache on every entry.
template <typename T>
inline void CanonicalizeColumns(T* x, Index rows, Index cols, Index first, T* phase) {
  using Real = RealOf<T>;
  const Index count = cols - first;
  if (count <= 0) return;
  ColumnScratch<Index> pivot(count);
  ColumnScratch<Real> best(count);
  for (Index c = 0; c < count; ++c) {
    pivot[c] = 0;
    best[c] = AbsSquared(x[first + c]);
  }
  for (Index i = 1; i < rows; ++i) {
    const T* row = x + i * cols + first;
    for (Index c = 0; c < count; ++c) {
      const Real a2 = AbsSquared(row[c]);
      if (a2 > best[c]) {
        best[c] = a2;
        pivot[c] = i;
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
  for (Index i = 0; i < rows; ++i) {
    T* row = x + i * cols + first;
    for (Index s = 0; s < n_scaled; ++s) row[scaled[s]] *= phase[scaled[s]];
  }
  for (Index s = 0; s < n_scaled; ++s) {
    const Index c = scaled[s];
    x[pivot[c] * cols + first + c] = T(std::sqrt(best[c]));  // |pivot|, exactly real
  }
}

// u: m x u_cols, v: n x v_cols (row-major), the first k columns of each paired by a = u s v^H.
// Paired columns are fixed by u (v gets the same phase, so u s v^H is unchanged); the unpaired
// columns of full factors are fixed on their own.
template <typename T>
inline void CanonicalizeSigns(Index m, Index u_cols, Index n, Index v_cols, Index k, T* u, T* v) {
  ColumnScratch<T> phase(std::max(u_cols, v_cols));
  CanonicalizeColumns(u, m, u_cols, 0, &phase[0]);
  ColumnScratch<Index> scaled(k);
  Index n_scaled = 0;
  for (Index c = 0; c < k; ++c) {
    if (phase[c] != T(1)) scaled[n_scaled++] = c;
  }
  if (n_scaled > 0) {
    for (Index j = 0; j < n; ++j) {
      T* row = v + j * v_cols;
      for (Index s = 0; s < n_scaled; ++s) row[scaled[s]] *= phase[scaled[s]];
    }
  }
  CanonicalizeColumns(v, n, v_cols, k, &phase[0]);
}

}  // namespace tfsvd
