#include "core/complete_basis.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <vector>

#include "core/lapack.h"
#include "core/transpose.h"

namespace tfsvd {
namespace {

// Orthonormal columns first..cols-1 of the row-major rows x cols matrix q, orthogonal to its
// (orthonormal) columns 0..first-1: the unit vector least represented in the columns so far,
// orthogonalised twice (classical Gram-Schmidt twice is enough when, as here, the vector keeps a
// norm of at least 1/sqrt(rows)) and normalised. Deterministic: first index on ties. x: rows
// values of scratch.
template <class T>
void CompleteBasisByUnitVectors(T* q, Index rows, Index cols, Index first, T* x) {
  using Real = RealOf<T>;
  for (Index c = first; c < cols; ++c) {
    Index best = 0;
    Real best_weight = -1;
    for (Index i = 0; i < rows; ++i) {
      Real weight = 1;
      for (Index j = 0; j < c; ++j) weight -= AbsSquared(q[i * cols + j]);
      if (weight > best_weight) {
        best_weight = weight;
        best = i;
      }
    }
    for (Index i = 0; i < rows; ++i) x[i] = T(0);
    x[best] = T(1);
    for (int pass = 0; pass < 2; ++pass) {
      for (Index j = 0; j < c; ++j) {
        T dot(0);
        for (Index i = 0; i < rows; ++i) dot += Conj(q[i * cols + j]) * x[i];
        for (Index i = 0; i < rows; ++i) x[i] -= q[i * cols + j] * dot;
      }
    }
    Real norm2 = 0;
    for (Index i = 0; i < rows; ++i) norm2 += AbsSquared(x[i]);
    const Real norm = std::sqrt(norm2);
    for (Index i = 0; i < rows; ++i) q[i * cols + c] = x[i] / norm;
  }
}

// CompleteBasisByUnitVectors's columns, but those of Q in a Householder QR of columns 0..first-1:
// Q's later columns are orthonormal and orthogonal to the first ones. With Q = I - V T V^H (the
// compact WY form, T from larft), Q[:, first:] = E - (V T) V1^H for E = [0; I] and V1 =
// V[first:, :], one matrix product of rows x (cols - first) x first. It is written transposed: q +
// first is the column-major (cols - first) x rows matrix Q[:, first:]^T (leading dimension cols),
// which is E^T - conj(V1) (V T)^T, so V is conjugated after V T is formed. Applying Q to E with
// ormqr instead costs twice the flops and ran at a fifth of the speed.
template <class T>
void CompleteBasisByReflectors(T* q, Index rows, Index cols, Index first, ThreadTeam& team) {
  using lapack::Int;
  if (first == 0) {  // Q = I
    for (Index i = 0; i < rows; ++i) {
      for (Index c = 0; c < cols; ++c) q[i * cols + c] = T(i == c ? 1 : 0);
    }
    return;
  }
  const Int m = static_cast<Int>(rows), k = static_cast<Int>(first);
  const Int extra = static_cast<Int>(cols - first), ld = static_cast<Int>(cols);
  std::vector<T> v(rows * first), t(first * first, T(0)), vt(rows * first);
  CopyTransposed(first, rows, q, cols, v.data(), rows, [](T x) { return x; });
  // geqrf and larft: geqrt3's recursion cost more on small matrices (whole SVD of 16x8 float32:
  // 8.2 us with geqrt3, 4.4 with these).
  std::vector<T> tau(first);
  T query(0);
  lapack::Geqrf<T>(m, k, v.data(), m, tau.data(), &query, -1);
  std::vector<T> work(static_cast<std::size_t>(lapack::WorkspaceSize(RealPart(query))));
  lapack::Geqrf<T>(m, k, v.data(), m, tau.data(), work.data(), static_cast<Int>(work.size()));
  lapack::Larft<T>('C', m, k, v.data(), m, tau.data(), t.data(), k);
  for (Index j = 0; j < first; ++j) {  // V explicit: unit diagonal, zeros above it
    for (Index i = 0; i < j; ++i) v[j * rows + i] = T(0);
    v[j * rows + j] = T(1);
  }
  // larft leaves T's strictly lower part alone: it is still the zeros it was given.
  lapack::Gemm<T>('N', 'N', m, k, k, T(1), v.data(), m, t.data(), k, T(0), vt.data(), m);
  if constexpr (kIsComplex<T>) {
    for (T& x : v) x = std::conj(x);
  }
  // By chunks of q's rows (of the sizes alone, so the bits do not depend on the team).
  team.ForEachRange(rows, StepChunks(rows, rows * (cols - first)), 16, [&](Index b, Index e) {
    lapack::Gemm<T>('N', 'T', extra, static_cast<Int>(e - b), k, T(-1), v.data() + first, m,
                    vt.data() + b, m, T(0), q + b * cols + first, ld);
  });
  for (Index c = first; c < cols; ++c) q[c * cols + c] += T(1);
}

}  // namespace

// Unit vectors take about 5 rows^2 flops for each new column (it is orthogonalised twice against
// all the columns before it, new ones included): rows^3 for the full U of a long thin matrix.
// Reflectors take about 2 rows (cols - first) first flops (the product above), after a fixed cost
// of LAPACK calls and allocations that unit vectors save on tiny matrices, up to this many rows.
// full_matrices, float32, 2-core Xeon, us per matrix, completion alone when reflectors went
// through ormqr, unit vectors / reflectors: 4x3 0.1 / 0.8, 12x6 1.9 / 2.1, 16x8 3.7 / 3.2-3.8,
// 32x16 24 / 12-14, 64x32 185 / 57, 300x12 23900 / 278, 1000x16 1229000 / 6400. Whole SVD since
// the product, full / thin (full with ormqr): 16x8 4.4 / 1.2 (4.9), 32x16 16.5 / 7.2 (19.4), 64x32
// 74 / 44 (80), 300x12 124 / 16.5 (286), 1000x16 1570 / 63 (4085).
constexpr Index kReflectorCompletionRows = 12;

template <typename T>
void CompleteBasis(T* q, Index rows, Index cols, Index first, T* x, ThreadTeam* team) {
  if (rows > kReflectorCompletionRows) {
    ThreadTeam alone(nullptr, 0);
    CompleteBasisByReflectors(q, rows, cols, first, team != nullptr ? *team : alone);
  } else {
    CompleteBasisByUnitVectors(q, rows, cols, first, x);
  }
}

template void CompleteBasis<float>(float*, Index, Index, Index, float*, ThreadTeam*);
template void CompleteBasis<double>(double*, Index, Index, Index, double*, ThreadTeam*);
template void CompleteBasis<std::complex<float>>(std::complex<float>*, Index, Index, Index,
                                                 std::complex<float>*, ThreadTeam*);
template void CompleteBasis<std::complex<double>>(std::complex<double>*, Index, Index, Index,
                                                  std::complex<double>*, ThreadTeam*);

}  // namespace tfsvd
