#include "core/parallel_gesdd.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>

namespace tfsvd {

namespace {

inline lapack::Int I32(Index x) { return static_cast<lapack::Int>(x); }

// The largest |a_ij|; NaNs are passed over (std::max keeps its first argument when they do not
// compare). Real columns run kLanes running maxima at a time in a 16-byte vector (SSE2 on
// baseline x86-64) with the same comparison, so NaNs are passed over there too (exact, so the
// order does not matter): a scalar loop took about 1% of a 768^2 float32 SVD.
template <typename T>
RealOf<T> MaxAbs(Index m, Index n, const T* a, Index lda) {
  RealOf<T> best(0);
  for (Index j = 0; j < n; ++j) {
    const T* column = a + j * lda;
    Index i = 0;
    if constexpr (!kIsComplex<T>) {
      typedef T Vec __attribute__((vector_size(16), aligned(sizeof(T)), __may_alias__));
      constexpr Index kLanes = 16 / sizeof(T);
      Vec lanes = Vec{};
      for (; i + kLanes <= m; i += kLanes) {
        const Vec x = *reinterpret_cast<const Vec*>(column + i);
        const Vec magnitude = x < 0 ? -x : x;
        lanes = lanes < magnitude ? magnitude : lanes;
      }
      for (Index l = 0; l < kLanes; ++l) best = std::max(best, lanes[l]);
    }
    for (; i < m; ++i) best = std::max(best, std::abs(column[i]));
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

// dst (rows x cols, leading dimension ld_dst) = [src 0; 0 I], src n x n (leading dimension
// ld_src) in the top left corner: the factor a back-transformation starts from.
template <typename T, typename S>
void EmbedTopLeft(Index rows, Index cols, const S* src, Index n, Index ld_src, T* dst,
                  Index ld_dst) {
  for (Index j = 0; j < cols; ++j) {
    T* column = dst + j * ld_dst;
    if (j < n) {
      std::copy(src + j * ld_src, src + j * ld_src + n, column);
      std::fill(column + n, column + rows, T(0));
    } else {
      std::fill(column, column + rows, T(0));
      if (j < rows) column[j] = T(1);
    }
  }
}

// Row blocks of the TSQR for an m x n matrix with thin or no vectors: blocks of at least 32 n
// rows, at most kMaxStepChunks; 1 (no TSQR) when that leaves fewer than two, or for full vectors
// (the basis of the complement is simpler from one QR). Only that tall is the TSQR faster than
// the blocked QR, whose row-chunked updates already use every thread (float32, ms on two
// threads, TSQR / blocked QR: 65536x64 57 / 80, 20000x100 29 / 31, 16384x128 41 / 40, 8192x256
// 58 / 49).
Index TsqrBlocks(Index m, Index n, char jobz) {
  if (jobz == 'A' || n == 0) return 1;
  const Index blocks = std::min<Index>(kMaxStepChunks, m / (32 * n));
  return blocks < 2 ? 1 : blocks;
}

}  // namespace

template <typename T>
ParallelGesdd<T>::ParallelGesdd(Index m, Index n, char jobz)
    : m_(m),
      n_(n),
      jobz_(jobz),
      qr_(TakesQrPath(m, n)),
      tsqr_blocks_(qr_ ? TsqrBlocks(m, n, jobz) : 1),
      ld_square_(PaddedLeadingDimension<T>(n)),
      ld_square_real_(PaddedLeadingDimension<Real>(n)),
      bidiag_(qr_ ? n : m, n),
      bidiagonal_svd_(n, jobz != 'N') {
  tauq_.Resize(n);
  taup_.Resize(n);
  d_.Resize(n);
  e_.Resize(n);
  if (qr_) {
    tau_qr_.Resize(n);
    t_qr_.Resize(kQrPanel * kQrPanel);
    qr_work_.Resize(m * kQrPanel);
    r_.Resize(ld_square_ * n);
  }
  if (tsqr_blocks_ > 1) {
    const Index p = tsqr_blocks_;
    tau_blocks_.Resize(p * n);
    stack_.Resize(p * n * n);
    if (jobz != 'N') stack_w_.Resize(p * n * n);
    // One workspace per block, enough for geqrf and ormqr on the largest block.
    Index b = 0, e = 0;
    BlockRows(p - 1, &b, &e);
    T query[2] = {T(0), T(0)};
    lapack::Geqrf<T>(I32(e - b), I32(n), nullptr, I32(e - b), nullptr, &query[0], -1);
    lapack::Ormqr<T>('L', 'N', I32(e - b), I32(n), I32(n), nullptr, I32(e - b), nullptr, nullptr,
                     I32(e - b), &query[1], -1);
    block_lwork_ = std::max(lapack::WorkspaceSize(static_cast<double>(RealPart(query[0]))),
                            lapack::WorkspaceSize(static_cast<double>(RealPart(query[1]))));
    block_work_.Resize(p * block_lwork_);
  }
  const bool vectors = jobz != 'N';
  if (vectors) {
    ub_.Resize(ld_square_real_ * n);
    vtb_.Resize(ld_square_real_ * n);
    if (qr_) ur_.Resize(ld_square_ * n);
  }
}

template <typename T>
void ParallelGesdd<T>::Qr(ThreadTeam& team, Index m, T* a, Index lda, T* tau) {
  const Index n = n_;
  T* const t = t_qr_.data();
  T* const v = qr_work_.data();  // the panel's reflectors with their unit diagonal and zeros
  for (Index p = 0; p < n; p += kQrPanel) {
    const Index w = std::min(kQrPanel, n - p), rows = m - p;
    T* panel = a + p + p * lda;
    std::fill(t, t + kQrPanel * kQrPanel, T(0));  // geqrt3 leaves T's lower part alone
    lapack::Geqrt3<T>(I32(rows), I32(w), panel, I32(lda), t, I32(kQrPanel));
    for (Index i = 0; i < w; ++i) tau[p + i] = t[i + i * kQrPanel];
    const Index q = p + w;
    if (q >= n) break;
    for (Index j = 0; j < w; ++j) {
      for (Index i = 0; i < rows; ++i) {
        v[i + j * rows] = i < j ? T(0) : (i == j ? T(1) : panel[i + j * lda]);
      }
    }
    // A(p:m, q:n) := Q_panel^H A(p:m, q:n).
    ApplyBlockByRows(team, true, rows, n - q, w, v, rows, t, kQrPanel, a + p + q * lda, lda,
                     qr_scratch_);
  }
}

template <typename T>
void ParallelGesdd<T>::BlockRows(Index block, Index* begin, Index* end) const {
  const Index per = m_ / tsqr_blocks_;
  *begin = block * per;
  *end = block + 1 == tsqr_blocks_ ? m_ : *begin + per;
}

template <typename T>
void ParallelGesdd<T>::TsqrFactor(ThreadTeam& team, T* a, Index lda) {
  const Index n = n_, p = tsqr_blocks_, rows = p * n;
  team.ForEachChunk(p, [&](Index block) {
    Index b, e;
    BlockRows(block, &b, &e);
    lapack::Geqrf<T>(I32(e - b), I32(n), a + b, I32(lda), tau_blocks_.data() + block * n,
                     block_work_.data() + block * block_lwork_, I32(block_lwork_));
  });
  T* const stack = stack_.data();
  for (Index block = 0; block < p; ++block) {
    Index b, e;
    BlockRows(block, &b, &e);
    for (Index j = 0; j < n; ++j) {
      for (Index i = 0; i < n; ++i) {
        stack[block * n + i + j * rows] = i <= j ? a[b + i + j * lda] : T(0);
      }
    }
  }
  Qr(team, rows, stack, rows, tau_qr_.data());
}

template <typename T>
void ParallelGesdd<T>::TsqrApply(ThreadTeam& team, T* a, Index lda, T* u, Index ldu) {
  const Index n = n_, p = tsqr_blocks_, rows = p * n;
  // W = Q_top [U_R; 0], then block i of U = Q_i [W's rows i n .. (i + 1) n; 0].
  T* const w = stack_w_.data();
  EmbedTopLeft(rows, n, ur_.data(), n, ld_square_, w, rows);
  reflectors_.Prepare(team, 'C', rows, n, stack_.data(), rows, tau_qr_.data());
  reflectors_.ApplyLeft(team, n, w, rows);
  team.ForEachChunk(p, [&](Index block) {
    Index b, e;
    BlockRows(block, &b, &e);
    for (Index j = 0; j < n; ++j) {
      for (Index i = b; i < e; ++i) {
        u[i + j * ldu] = i - b < n ? w[block * n + (i - b) + j * rows] : T(0);
      }
    }
    lapack::Ormqr<T>('L', 'N', I32(e - b), I32(n), I32(n), a + b, I32(lda),
                     tau_blocks_.data() + block * n, u + b, I32(ldu),
                     block_work_.data() + block * block_lwork_, I32(block_lwork_));
  });
}

template <typename T>
lapack::Int ParallelGesdd<T>::Run(ThreadTeam& team, T* a, Index lda, Real* s, T* u, Index ldu,
                                  T* vt, Index ldvt) {
  const Index m = m_, n = n_;
  const int exponent = SafeRangeExponent(MaxAbs(m, n, a, lda));
  if (exponent != 0) {
    const Real factor = std::ldexp(Real(1), exponent);  // a normal number for every exponent
    for (Index j = 0; j < n; ++j) {
      for (Index i = 0; i < m; ++i) a[i + j * lda] *= factor;
    }
  }

  // The matrix that is bidiagonalised: a itself, or R of its QR factorisation.
  T* b = a;
  Index ldb = lda, b_rows = m;
  if (qr_) {
    // R: the top of the TSQR's stacked factor, or of a's own QR.
    const T* r_source = a;
    Index ld_source = lda;
    if (tsqr_blocks_ > 1) {
      TsqrFactor(team, a, lda);
      r_source = stack_.data();
      ld_source = tsqr_blocks_ * n;
    } else {
      Qr(team, m, a, lda, tau_qr_.data());
    }
    b = r_.data();
    ldb = ld_square_;
    b_rows = n;
    for (Index j = 0; j < n; ++j) {
      for (Index i = 0; i < n; ++i) b[i + j * ldb] = i <= j ? r_source[i + j * ld_source] : T(0);
    }
  }
  bidiag_.Run(team, b, ldb, d_.data(), e_.data(), tauq_.data(), taup_.data());

  const bool vectors = jobz_ != 'N';
  const Int info = bidiagonal_svd_.Run(team, d_.data(), e_.data(), vectors ? ub_.data() : nullptr,
                                       vectors ? vtb_.data() : nullptr, ld_square_real_);
  if (info != 0) return info;
  for (Index i = 0; i < n; ++i) s[i] = std::ldexp(d_[i], -exponent);
  if (!vectors) return 0;

  // V^H = VT_B P^H; P's n - 1 reflectors act on columns 1..n-1.
  EmbedTopLeft(n, n, vtb_.data(), n, ld_square_real_, vt, ldvt);
  reflectors_.Prepare(team, 'R', n - 1, n - 1, b + ldb, ldb, taup_.data());
  reflectors_.ApplyRightAdjoint(team, n, vt + ldvt, ldvt);

  // U = Q_bidiagonalisation [U_B; 0] (and, on the QR path, Q_qr times that), column chunks.
  const Index u_cols = jobz_ == 'A' ? m : n;
  T* target = qr_ ? ur_.data() : u;
  const Index ld_target = qr_ ? ld_square_ : ldu;
  const Index target_cols = qr_ ? n : u_cols;
  EmbedTopLeft(b_rows, target_cols, ub_.data(), n, ld_square_real_, target, ld_target);
  reflectors_.Prepare(team, 'C', b_rows, n, b, ldb, tauq_.data());
  reflectors_.ApplyLeft(team, target_cols, target, ld_target);
  if (qr_ && tsqr_blocks_ > 1) {
    TsqrApply(team, a, lda, u, ldu);
  } else if (qr_) {
    EmbedTopLeft(m, u_cols, ur_.data(), n, ld_square_, u, ldu);
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
