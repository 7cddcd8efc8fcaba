#include "core/parallel_gesdd.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>

namespace tfsvd {

namespace {

// Chunk boundaries of the QR's trailing updates fall on multiples of this many columns.
constexpr Index kApplyAlign = 16;

inline lapack::Int I32(Index x) { return static_cast<lapack::Int>(x); }

template <typename T>
RealOf<T> MaxAbs(Index m, Index n, const T* a, Index lda) {
  RealOf<T> best(0);
  for (Index j = 0; j < n; ++j) {
    for (Index i = 0; i < m; ++i) best = std::max(best, std::abs(a[i + j * lda]));
  }
  return best;
}

// The power of two that brings the largest entry `anrm` into [smlnum, bignum], gesdd's safe range
// (sqrt(safe minimum) / eps and its inverse), or 0 when it is in range. A power of two scales
// exactly, so matrices in range are factored exactly as without scaling.
template <typename Real>
int SafeRangeExponent(Real anrm) {
  const Real smlnum = std::sqrt(std::numeric_limits<Real>::min()) /
                      std::numeric_limits<Real>::epsilon();
  const Real bignum = Real(1) / smlnum;
  if (anrm > Real(0) && anrm < smlnum) return static_cast<int>(std::ceil(std::log2(smlnum / anrm)));
  if (anrm > bignum) return -static_cast<int>(std::ceil(std::log2(anrm / bignum)));
  return 0;
}

}  // namespace

template <typename T>
ParallelGesdd<T>::ParallelGesdd(Index m, Index n, char jobz)
    : m_(m),
      n_(n),
      jobz_(jobz),
      qr_(TakesQrPath(m, n)),
      bidiag_(qr_ ? n : m, n),
      bidiagonal_svd_(n, jobz != 'N') {
  tauq_.Resize(n);
  taup_.Resize(n);
  d_.Resize(n);
  e_.Resize(n);
  if (qr_) {
    tau_qr_.Resize(n);
    t_qr_.Resize(kQrPanel * kQrPanel);
    qr_work_.Resize(n * kQrPanel);
    r_.Resize(n * n);
  }
  const bool vectors = jobz != 'N';
  if (vectors) {
    ub_.Resize(n * n);
    vtb_.Resize(n * n);
    if (qr_) ur_.Resize(n * n);
  }
}

template <typename T>
void ParallelGesdd<T>::Qr(ThreadTeam& team, T* a, Index lda) {
  const Index m = m_, n = n_;
  T panel_work[kQrPanel * 64];
  for (Index p = 0; p < n; p += kQrPanel) {
    const Index w = std::min(kQrPanel, n - p);
    lapack::Geqrf<T>(I32(m - p), I32(w), a + p + p * lda, I32(lda), tau_qr_.data() + p,
                     panel_work, I32(kQrPanel * 64));
    const Index q = p + w;
    if (q >= n) break;
    lapack::Larft<T>('C', I32(m - p), I32(w), a + p + p * lda, I32(lda), tau_qr_.data() + p,
                     t_qr_.data(), I32(kQrPanel));
    const Index nt = n - q;
    const Index chunks = StepChunks(nt, (m - p) * nt);
    T* work = qr_work_.data();  // chunk [b, end) uses (end - b) x w of it at offset b * kQrPanel
    team.ForEachChunk(chunks, [&](Index chunk) {
      Index b, end;
      ChunkBounds(nt, chunks, kApplyAlign, chunk, &b, &end);
      if (b == end) return;
      lapack::Larfb<T>('L', 'C', 'C', I32(m - p), I32(end - b), I32(w), a + p + p * lda, I32(lda),
                       t_qr_.data(), I32(kQrPanel), a + p + (q + b) * lda, I32(lda),
                       work + b * kQrPanel, I32(end - b));
    });
  }
}

template <typename T>
lapack::Int ParallelGesdd<T>::Run(ThreadTeam& team, T* a, Index lda, Real* s, T* u, Index ldu,
                                  T* vt, Index ldvt) {
  const Index m = m_, n = n_;
  const int exponent = SafeRangeExponent(MaxAbs(m, n, a, lda));
  if (exponent != 0) {
    for (Index j = 0; j < n; ++j) {
      for (Index i = 0; i < m; ++i) a[i + j * lda] *= std::ldexp(Real(1), exponent);
    }
  }

  // The matrix that is bidiagonalised: a itself, or R of its QR factorisation.
  T* b = a;
  Index ldb = lda, b_rows = m;
  if (qr_) {
    Qr(team, a, lda);
    b = r_.data();
    ldb = n;
    b_rows = n;
    for (Index j = 0; j < n; ++j) {
      for (Index i = 0; i < n; ++i) b[i + j * n] = i <= j ? a[i + j * lda] : T(0);
    }
  }
  bidiag_.Run(team, b, ldb, d_.data(), e_.data(), tauq_.data(), taup_.data());

  const bool vectors = jobz_ != 'N';
  const Int info = bidiagonal_svd_.Run(team, d_.data(), e_.data(), vectors ? ub_.data() : nullptr,
                                       vectors ? vtb_.data() : nullptr);
  if (info != 0) return info;
  for (Index i = 0; i < n; ++i) s[i] = std::ldexp(d_[i], -exponent);
  if (!vectors) return 0;

  // V^H = VT_B P^H; P's n - 1 reflectors act on columns 1..n-1.
  for (Index j = 0; j < n; ++j) {
    for (Index i = 0; i < n; ++i) vt[i + j * ldvt] = T(vtb_[i + j * n]);
  }
  reflectors_.Prepare(team, 'R', n - 1, n - 1, b + ldb, ldb, taup_.data());
  reflectors_.ApplyRightAdjoint(team, n, vt + ldvt, ldvt);

  // U = Q_bidiagonalisation [U_B; 0] (and, on the QR path, Q_qr times that), column chunks.
  const Index u_cols = jobz_ == 'A' ? m : n;
  T* target = qr_ ? ur_.data() : u;
  const Index ld_target = qr_ ? n : ldu;
  const Index target_cols = qr_ ? n : u_cols;
  for (Index j = 0; j < target_cols; ++j) {
    for (Index i = 0; i < b_rows; ++i) {
      target[i + j * ld_target] =
          i < n && j < n ? T(ub_[i + j * n]) : T(i == j ? Real(1) : Real(0));
    }
  }
  reflectors_.Prepare(team, 'C', b_rows, n, b, ldb, tauq_.data());
  reflectors_.ApplyLeft(team, target_cols, target, ld_target);
  if (qr_) {
    for (Index j = 0; j < u_cols; ++j) {
      for (Index i = 0; i < m; ++i) {
        u[i + j * ldu] = i < n && j < n ? ur_[i + j * n] : T(i == j ? Real(1) : Real(0));
      }
    }
    reflectors_.Prepare(team, 'C', m, n, a, lda, tau_qr_.data());
    reflectors_.ApplyLeft(team, u_cols, u, ldu);
  }
  return 0;
}

template class ParallelGesdd<float>;
template class ParallelGesdd<double>;
template class ParallelGesdd<std::complex<float>>;
template class ParallelGesdd<std::complex<double>>;

}  // namespace tfsvd
