// Householder bidiagonalisation A = Q B P^H of one large matrix, its steps spread over a
// ThreadTeam.
//
// The blocked algorithm of LAPACK's gebrd (Dongarra, Sorensen and Hammarling): panels of kPanel
// columns are reduced with two matrix-vector products per column against the not yet updated
// trailing matrix, corrected by the panel's accumulated X and Y, and the trailing matrix is updated
// once per panel by two matrix products. Half the flops are those matrix-vector products, bound by
// memory bandwidth; here both products of a column share one pass over the trailing matrix
// (Howell, Demmel, Fulton, Hammarling and Marmol, "Cache efficient bidiagonalization using BLAS
// 2.5 operators", 2008), and that pass and the trailing update are cut into column chunks. The
// number of chunks depends only on the sizes, so the result does not depend on how many threads
// run them.
//
// The output uses gebrd's storage, so LAPACK's ormbr/unmbr apply Q and P afterwards.
#pragma once

#include "core/bidiag_pass.h"
#include "core/scalar.h"
#include "core/thread_team.h"
#include "core/workspace.h"

namespace tfsvd {

template <typename T>
class Bidiagonalizer {
 public:
  using Real = RealOf<T>;

  // For column-major m x n matrices with m >= n.
  Bidiagonalizer(Index m, Index n);

  // Reduces a (lda >= m) in place to upper bidiagonal form: d [n] and e [n - 1] (real), the
  // reflectors of Q below the diagonal with tauq [n], those of P right of the superdiagonal with
  // taup [n] (taup[n - 1] = 0), exactly as gebrd stores them.
  void Run(ThreadTeam& team, T* a, Index lda, Real* d, Real* e, T* tauq, T* taup);

 private:
  // Columns per panel. With the aligned, prefetching column pass the panel's own matrix-vector
  // corrections (which grow with the panel) weigh more than the trailing products' efficiency
  // (which grows with it too): single-thread float32 bidiagonalisation, min of 8 interleaved
  // runs, panels of 32 / 16: 512^2 6.65 / 6.08 ms, 768^2 21.2 / 19.4, 1024^2 60.2 / 57.3 (8 and
  // 12 within noise of 16, 24 in between, 48 slower); whole forward on two threads 1024^2
  // 74.3 / 71.2, 2048^2 569 / 559; complex64 512^2 47 / 45.6, complex128 384^2 42 / 40.2.
  static constexpr Index kPanel = 16;
  Index m_, n_;
  AlignedArray<T> x_, y_;  // the panel's X (m x kPanel) and Y (n x kPanel), column-major
  AlignedArray<T> rows_;   // the panel's row reflectors (kPanel x n), column-major
  AlignedArray<T> small_;  // t1, t2, t3, t4 and conjugated copies (kPanel + 1 each)
  AlignedArray<T> w_;      // the row being reduced, then its reflector, contiguous (n)
  AlignedArray<T> z_;      // per chunk, its part of A(c+1:m, c+1:n) w (ZStride() each)

  // A chunk's z: m entries, kPassZPad spare ones on each side and room to place it (ZFor).
  Index ZStride() const { return m_ + 2 * kZPad + kZLine; }
  // Chunk `chunk`'s z for columns starting at `column`: one element past it modulo 64 bytes, as
  // the pass kernel's aligned loads need (bidiag_pass.h).
  T* ZFor(Index chunk, const T* column);
  static constexpr Index kZPad = kPassZPad;
  static constexpr Index kZLine = 64 / sizeof(T);
};

}  // namespace tfsvd
