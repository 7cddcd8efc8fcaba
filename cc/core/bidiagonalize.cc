#include "core/bidiagonalize.h"

#include <algorithm>
#include <complex>
#include <cstdint>

#include "core/bidiag_pass.h"
#include "core/lapack.h"

namespace tfsvd {

namespace {

using lapack::Int;

// Chunk boundaries fall on multiples of this many elements (whole cache lines of floats).
constexpr Index kChunkAlign = 16;

inline Int I32(Index x) { return static_cast<Int>(x); }

template <typename T>
void Scale(Index n, T alpha, T* x) {
  for (Index i = 0; i < n; ++i) x[i] *= alpha;
}

// A strided vector, conjugated for complex types into `buffer` (contiguous), as-is for real ones.
template <typename T>
struct VectorArg {
  const T* data;
  Int inc;
};
template <typename T>
VectorArg<T> Conjugated(Index n, const T* x, Index inc, T* buffer) {
  if constexpr (kIsComplex<T>) {
    for (Index i = 0; i < n; ++i) buffer[i] = std::conj(x[i * inc]);
    return {buffer, 1};
  } else {
    (void)n, (void)buffer;
    return {x, I32(inc)};
  }
}

// Columns per block of the complex types' pass (two BLAS calls per block): the block of an mc-row
// trailing matrix stays within about 512 KB, so the second product reads it from the core's own
// cache. A function of the sizes only.
template <typename T>
Index SubBlockColumns(Index mc) {
  constexpr Index kBytes = Index{512} << 10;
  const Index columns = kBytes / (std::max<Index>(1, mc) * static_cast<Index>(sizeof(T)));
  return std::max<Index>(8, std::min<Index>(64, columns / 8 * 8));
}

}  // namespace

template <typename T>
Bidiagonalizer<T>::Bidiagonalizer(Index m, Index n) : m_(m), n_(n) {
  x_.Resize(std::max<Index>(1, m * kPanel));
  y_.Resize(std::max<Index>(1, n * kPanel));
  rows_.Resize(std::max<Index>(1, n * kPanel));
  small_.Resize(6 * (kPanel + 1));
  w_.Resize(std::max<Index>(1, n));
  z_.Resize(ZStride() * kMaxStepChunks);
}

template <typename T>
T* Bidiagonalizer<T>::ZFor(Index chunk, const T* column) {
  T* const base = z_.data() + chunk * ZStride() + kZPad;
  const auto element = [](const T* p) { return reinterpret_cast<std::uintptr_t>(p) / sizeof(T); };
  const Index shift = static_cast<Index>((element(column) + 1 - element(base)) % kZLine);
  return base + shift;
}

template <typename T>
void Bidiagonalizer<T>::Run(ThreadTeam& team, T* a, Index lda, Real* d, Real* e, T* tauq,
                            T* taup) {
  const Index m = m_, n = n_;
  T* const X = x_.data();
  T* const Y = y_.data();
  T* const U = rows_.data();
  const Index ldx = m, ldy = n, ldu = kPanel;
  T* const t1 = small_.data();
  T* const t2 = t1 + (kPanel + 1);
  T* const t3 = t2 + (kPanel + 1);
  T* const t4 = t3 + (kPanel + 1);
  T* const conj_a = t4 + (kPanel + 1);
  T* const conj_b = conj_a + (kPanel + 1);
  T* const w = w_.data();
  const T one(1), zero(0), minus_one(-1);
  // The fused column pass for real types (bidiag_pass.h); complex ones keep two BLAS calls per
  // block of columns.
  BidiagPassKernel<RealOf<T>> pass = nullptr;
  if constexpr (!kIsComplex<T>) pass = PassKernelOf<T>(BestBidiagPassKernels());
  auto A = [&](Index i, Index j) -> T& { return a[i + j * lda]; };
  auto Xe = [&](Index i, Index j) -> T& { return X[i + j * ldx]; };
  auto Ye = [&](Index i, Index j) -> T& { return Y[i + j * ldy]; };
  // The panel's row reflectors in gebrd's stored form (conjugated for complex types), row i of
  // the panel at U + i, column j at U + j * kPanel: contiguous, unlike rows of A, and written
  // into A once per panel.
  auto Ue = [&](Index i, Index j) -> T& { return U[i + j * ldu]; };

  for (Index p = 0; p < n; p += kPanel) {
    const Index width = std::min(kPanel, n - p);
    for (Index i = 0; i < width; ++i) {
      const Index c = p + i;
      const Index mc = m - c;  // rows of the column being reduced
      // Column c with the panel's earlier transformations: A(c:m, c) -= V Y(c, :)^H + X U(:, c).
      if (i > 0) {
        const VectorArg<T> yrow = Conjugated(i, &Ye(c, 0), ldy, conj_a);
        lapack::Gemv<T>('N', I32(mc), I32(i), minus_one, &A(c, p), I32(lda), yrow.data, yrow.inc,
                        one, &A(c, c), 1);
        lapack::Gemv<T>('N', I32(mc), I32(i), minus_one, &Xe(c, 0), I32(ldx), &Ue(0, c), 1, one,
                        &A(c, c), 1);
      }
      tauq[c] = lapack::Larfg<T>(I32(mc), &A(c, c), &A(std::min(c + 1, m - 1), c), 1);
      d[c] = RealPart(A(c, c));
      if (c == n - 1) {
        taup[c] = zero;
        continue;
      }
      A(c, c) = one;  // v, with its implicit leading 1
      const Index nt = n - c - 1, mt = m - c - 1;
      // Y(c+1:n, i) = tauq (A(c:m, c+1:n)^H v - Y(c+1:n, :i) t1 - U(:i, c+1:n)^H t2) with
      // t1 = V^H v and t2 = X^H v; and row c, conjugated as gebrd does for the row reflector:
      // w = conj(A(c, c+1:n)) - Y(c+1:n, i) - Y(c+1:n, :i) conj(V(c, :i)) - U^H conj(X(c, :i)).
      // One pass over the trailing columns does both the product with v and the product of the
      // same (cached) columns with w, z = A(c+1:m, c+1:n) w, from which A u follows below
      // (Howell et al.'s fused bidiagonalisation: half the memory traffic): column by column in
      // bidiag_pass.h's kernel for real types, by blocks of cached columns for complex ones.
      lapack::Gemv<T>('C', I32(mc), I32(i), one, &A(c, p), I32(lda), &A(c, c), 1, zero, t1, 1);
      lapack::Gemv<T>('C', I32(mc), I32(i), one, &Xe(c, 0), I32(ldx), &A(c, c), 1, zero, t2, 1);
      const VectorArg<T> vrow = Conjugated(i, &A(c, p), lda, conj_a);
      const VectorArg<T> xrow = Conjugated(i, &Xe(c, 0), ldx, conj_b);
      const T tq = tauq[c];
      const Index chunks = StepChunks(nt, mc * nt);
      T* z_parts[kMaxStepChunks];
      for (Index chunk = 0; chunk < chunks; ++chunk) z_parts[chunk] = ZFor(chunk, &A(c, c + 1));
      team.ForEachChunk(chunks, [&](Index chunk) {
        Index b, end;
        ChunkBounds(nt, chunks, kChunkAlign, chunk, &b, &end);
        T* z = z_parts[chunk];
        if (b == end) {
          std::fill(z, z + mt, zero);
          return;
        }
        if constexpr (!kIsComplex<T>) {
          // The corrections of y and w first (small products with the panel's Y and U), then
          // both products with the chunk's columns in one pass (bidiag_pass.h).
          const Index len = end - b, col = c + 1 + b;
          T* y = &Ye(col, i);
          T* ws = w + b;
          if (i == 0) {
            std::fill(y, y + len, zero);
            std::fill(ws, ws + len, zero);
          } else {
            lapack::Gemv<T>('N', I32(len), I32(i), one, &Ye(col, 0), I32(ldy), t1, 1, zero, y, 1);
            lapack::Gemv<T>('C', I32(i), I32(len), one, &Ue(0, col), I32(ldu), t2, 1, one, y, 1);
            lapack::Gemv<T>('N', I32(len), I32(i), one, &Ye(col, 0), I32(ldy), vrow.data,
                            vrow.inc, zero, ws, 1);
            lapack::Gemv<T>('C', I32(i), I32(len), one, &Ue(0, col), I32(ldu), xrow.data,
                            xrow.inc, one, ws, 1);
          }
          std::fill(z, z + mt, zero);
          pass(mc, len, &A(c, col), lda, &A(c, c), tq, y, ws, z, kZPad);
          return;
        }
        const Index sub = SubBlockColumns<T>(mc);
        for (Index s0 = b; s0 < end; s0 += sub) {
          const Index len = std::min(end, s0 + sub) - s0, col = c + 1 + s0;
          T* y = &Ye(col, i);
          lapack::Gemv<T>('C', I32(mc), I32(len), one, &A(c, col), I32(lda), &A(c, c), 1, zero, y,
                          1);
          lapack::Gemv<T>('N', I32(len), I32(i), minus_one, &Ye(col, 0), I32(ldy), t1, 1, one, y,
                          1);
          lapack::Gemv<T>('C', I32(i), I32(len), minus_one, &Ue(0, col), I32(ldu), t2, 1, one, y,
                          1);
          Scale(len, tq, y);
          T* ws = w + s0;
          for (Index j = 0; j < len; ++j) ws[j] = Conj(A(c, col + j)) - y[j];
          lapack::Gemv<T>('N', I32(len), I32(i), minus_one, &Ye(col, 0), I32(ldy), vrow.data,
                          vrow.inc, one, ws, 1);
          lapack::Gemv<T>('C', I32(i), I32(len), minus_one, &Ue(0, col), I32(ldu), xrow.data,
                          xrow.inc, one, ws, 1);
          lapack::Gemv<T>('N', I32(mt), I32(len), one, &A(c + 1, col), I32(lda), ws, 1,
                          s0 == b ? zero : one, z, 1);
        }
      });
      T* const az = z_parts[0];  // z, the chunks' parts summed in chunk order
      for (Index chunk = 1; chunk < chunks; ++chunk) {
        const T* part = z_parts[chunk];
        for (Index r = 0; r < mt; ++r) az[r] += part[r];
      }
      const T alpha = w[0];
      taup[c] = lapack::Larfg<T>(I32(nt), &w[0], &w[std::min<Index>(1, nt - 1)], 1);
      const T beta = w[0];
      e[c] = RealPart(beta);
      w[0] = one;  // w is now u, with its implicit leading 1
      for (Index j = 0; j < nt; ++j) Ue(i, c + 1 + j) = Conj(w[j]);
      // X(c+1:m, i) = taup (A(c+1:m, c+1:n) u - V(c+1:m, :i+1) (Y^H u) - X(c+1:m, :i) (U u)),
      // where larfg's u = (w - beta e_1) / (alpha - beta), so A u = (z - beta A(:, c+1)) /
      // (alpha - beta). |alpha - beta| >= |w| (larfg's choice of sign), so nothing cancels.
      T* xc = &Xe(c + 1, i);
      if (taup[c] == zero) {
        std::fill(xc, xc + mt, zero);  // H = I
        continue;
      }
      const T scale = one / (alpha - beta);
      for (Index r = 0; r < mt; ++r) xc[r] = (az[r] - beta * A(c + 1 + r, c + 1)) * scale;
      lapack::Gemv<T>('C', I32(nt), I32(i + 1), one, &Ye(c + 1, 0), I32(ldy), w, 1, zero, t3, 1);
      lapack::Gemv<T>('N', I32(i), I32(nt), one, &Ue(0, c + 1), I32(ldu), w, 1, zero, t4, 1);
      lapack::Gemv<T>('N', I32(mt), I32(i + 1), minus_one, &A(c + 1, p), I32(lda), t3, 1, one, xc,
                      1);
      lapack::Gemv<T>('N', I32(mt), I32(i), minus_one, &Xe(c + 1, 0), I32(ldx), t4, 1, one, xc, 1);
      Scale(mt, taup[c], xc);
    }
    // Trailing matrix: A(q:m, q:n) -= V Y(q:n, :)^H + X(q:m, :) U.
    const Index q = p + width;
    if (q < n) {
      const Index nt = n - q, mt = m - q;
      const Index chunks = StepChunks(nt, mt * nt);
      team.ForEachRange(nt, chunks, kChunkAlign, [&](Index b, Index end) {
        const Int len = I32(end - b);
        lapack::Gemm<T>('N', 'C', I32(mt), len, I32(width), minus_one, &A(q, p), I32(lda),
                        &Ye(q + b, 0), I32(ldy), one, &A(q, q + b), I32(lda));
        lapack::Gemm<T>('N', 'N', I32(mt), len, I32(width), minus_one, &Xe(q, 0), I32(ldx),
                        &Ue(0, q + b), I32(ldu), one, &A(q, q + b), I32(lda));
      });
    }
    // The panel's rows into A (gebrd's storage), then its diagonal and superdiagonal.
    for (Index j = p + 1; j < n; ++j) {
      for (Index r = 0; r < width && p + r + 1 <= j; ++r) A(p + r, j) = Ue(r, j);
    }
    for (Index c = p; c < q; ++c) {
      A(c, c) = T(d[c]);
      if (c < n - 1) A(c, c + 1) = T(e[c]);
    }
  }
}

template class Bidiagonalizer<float>;
template class Bidiagonalizer<double>;
template class Bidiagonalizer<std::complex<float>>;
template class Bidiagonalizer<std::complex<double>>;

}  // namespace tfsvd
