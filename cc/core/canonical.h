// Canonical signs (phases) of singular vectors, shared by every SVD path so that CPU, GPU and
// each algorithm return the same factors.
#pragma once

#include <cmath>

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

// u: m x u_cols, v: n x v_cols (row-major), the first k columns of each paired by a = u s v^H.
// Paired columns are fixed by u (v gets the same phase, so u s v^H is unchanged); the unpaired
// columns of full factors are fixed on their own.
template <typename T>
inline void CanonicalizeSigns(Index m, Index u_cols, Index n, Index v_cols, Index k, T* u, T* v) {
  for (Index c = 0; c < u_cols; ++c) {
    const Index pivot = ArgMaxAbsInColumn(u, m, u_cols, c);
    const T phase = PhaseToPositive(u[pivot * u_cols + c]);
    ScaleColumn(u, m, u_cols, c, phase, pivot);
    if (c < k && phase != T(1)) {
      for (Index j = 0; j < n; ++j) v[j * v_cols + c] *= phase;
    }
  }
  for (Index c = k; c < v_cols; ++c) {
    const Index pivot = ArgMaxAbsInColumn(v, n, v_cols, c);
    ScaleColumn(v, n, v_cols, c, PhaseToPositive(v[pivot * v_cols + c]), pivot);
  }
}

}  // namespace tfsvd
