#include "core/svd.h"

#include <algorithm>
#include <complex>
#include <limits>

#include "core/canonical.h"
#include "core/lapack.h"
#include "core/workspace.h"

namespace tfsvd {

bool ParseSvdAlgorithm(const std::string& name, SvdAlgorithm* algorithm) {
  if (name == "auto") {
    *algorithm = SvdAlgorithm::kAuto;
  } else if (name == "gesdd") {
    *algorithm = SvdAlgorithm::kGesdd;
  } else if (name == "gesvd") {
    *algorithm = SvdAlgorithm::kGesvd;
  } else {
    return false;
  }
  return true;
}

std::string ValidateSvdProblem(const SvdProblem& p) {
  if (p.batch < 0 || p.m < 0 || p.n < 0) return "negative dimension";
  // LAPACK from scipy-openblas32 indexes with 32-bit integers: one matrix (and each of its
  // factors) must have fewer than 2^31 elements. The batch itself may be larger.
  const Index largest = std::max({p.m * p.n, p.m * p.u_cols(), p.n * p.v_cols()});
  if (largest > lapack::kMaxInt / 2) {
    return "a single matrix of " + std::to_string(p.m) + "x" + std::to_string(p.n) +
           " is too large for 32-bit LAPACK (at most 2^30 elements per matrix)";
  }
  return "";
}

double SvdCostPerMatrix(const SvdProblem& p) {
  const double m = static_cast<double>(std::max(p.m, p.n));
  const double k = static_cast<double>(p.k());
  return (p.compute_uv ? 12.0 : 4.0) * m * k * k + 1.0;
}

namespace {

template <typename T>
bool AllFinite(const T* a, Index size) {
  for (Index i = 0; i < size; ++i) {
    if (!IsFinite(a[i])) return false;
  }
  return true;
}

template <typename T>
void FillNaN(T* x, Index size) {
  const RealOf<T> nan = std::numeric_limits<RealOf<T>>::quiet_NaN();
  std::fill(x, x + size, T(nan));
}

template <typename T>
void SetIdentity(T* x, Index rows, Index cols) {
  std::fill(x, x + rows * cols, T(0));
  for (Index i = 0; i < std::min(rows, cols); ++i) x[i * cols + i] = T(1);
}

// Per-thread LAPACK driver for one problem shape. LAPACK is column-major, our matrices row-major:
// the row-major m x n buffer is the column-major n x m matrix A^T = conj(V) S U^T. So LAPACK's
// "vt" output is exactly our row-major u, and its "u" output is conj(v) stored column-major.
template <typename T>
class LapackSvd {
 public:
  using Real = RealOf<T>;
  using Int = lapack::Int;

  explicit LapackSvd(const SvdProblem& p)
      : p_(p),
        lm_(static_cast<Int>(p.n)),
        ln_(static_cast<Int>(p.m)),
        job_(!p.compute_uv ? 'N' : (p.full_matrices ? 'A' : 'S')) {
    const Index mn = p.k(), mx = std::max(p.m, p.n);
    a_.Resize(p.a_size());
    s_.Resize(mn);
    lu_.Resize(std::max<Index>(1, p.compute_uv ? p.n * p.v_cols() : 1));
    lvt_.Resize(std::max<Index>(1, p.compute_uv ? p.u_cols() * p.m : 1));
    iwork_.Resize(8 * mn);
    if (kIsComplex<T>) {
      // Complex rwork sizes from the LAPACK documentation of cgesdd/cgesvd:
      // gesdd needs mn * max(5 mn + 7, 2 mx + 2 mn + 1) with vectors, 7 mn without.
      const Index gesdd_rwork =
          p.compute_uv ? mn * std::max(5 * mn + 7, 2 * mx + 2 * mn + 1) : 7 * mn;
      rwork_.Resize(std::max<Index>(1, std::max(gesdd_rwork, 5 * mn)));
    }
  }

  // Factors one matrix into s/u/v (row-major, canonical signs). Returns false if every algorithm
  // failed to converge.
  bool Run(const T* a, Real* s, T* u, T* v) {
    const bool use_gesdd = p_.algorithm != SvdAlgorithm::kGesvd;
    bool ok = false;
    if (use_gesdd) ok = RunGesdd(a);
    if (!ok) ok = RunGesvd(a);  // gesdd failed to converge or gesvd was asked for
    if (!ok) return false;
    std::copy(s_.data(), s_.data() + p_.k(), s);
    if (p_.compute_uv) {
      const Index uc = p_.u_cols(), vc = p_.v_cols();
      std::copy(lvt_.data(), lvt_.data() + p_.m * uc, u);
      for (Index j = 0; j < p_.n; ++j) {
        for (Index c = 0; c < vc; ++c) v[j * vc + c] = Conj(lu_[j + c * p_.n]);
      }
      CanonicalizeSigns(p_.m, uc, p_.n, vc, p_.k(), u, v);
    }
    return true;
  }

 private:
  Int ldu() const { return std::max<Int>(1, lm_); }
  Int ldvt() const { return std::max<Int>(1, static_cast<Int>(p_.u_cols())); }

  void EnsureWork(Index size) { work_.Resize(std::max<Index>(1, size)); }

  bool RunGesdd(const T* a) {
    if (gesdd_lwork_ < 0) {
      T query(0);
      lapack::Gesdd<T>(job_, lm_, ln_, a_.data(), std::max<Int>(1, lm_), s_.data(), lu_.data(),
                       ldu(), lvt_.data(), ldvt(), &query, -1, rwork_.data(), iwork_.data());
      gesdd_lwork_ = static_cast<Int>(RealPart(query)) + 1;
      EnsureWork(gesdd_lwork_);
    }
    std::copy(a, a + p_.a_size(), a_.data());
    const Int info = lapack::Gesdd<T>(job_, lm_, ln_, a_.data(), std::max<Int>(1, lm_), s_.data(),
                                      lu_.data(), ldu(), lvt_.data(), ldvt(), work_.data(),
                                      gesdd_lwork_, rwork_.data(), iwork_.data());
    return info == 0;
  }

  bool RunGesvd(const T* a) {
    if (gesvd_lwork_ < 0) {
      T query(0);
      lapack::Gesvd<T>(job_, job_, lm_, ln_, a_.data(), std::max<Int>(1, lm_), s_.data(),
                       lu_.data(), ldu(), lvt_.data(), ldvt(), &query, -1, rwork_.data());
      gesvd_lwork_ = static_cast<Int>(RealPart(query)) + 1;
      EnsureWork(std::max(gesvd_lwork_, gesdd_lwork_));
    }
    std::copy(a, a + p_.a_size(), a_.data());
    const Int info = lapack::Gesvd<T>(job_, job_, lm_, ln_, a_.data(), std::max<Int>(1, lm_),
                                      s_.data(), lu_.data(), ldu(), lvt_.data(), ldvt(),
                                      work_.data(), gesvd_lwork_, rwork_.data());
    return info == 0;
  }

  const SvdProblem& p_;
  const Int lm_, ln_;  // LAPACK's view: an lm_ x ln_ = n x m column-major matrix
  const char job_;
  Int gesdd_lwork_ = -1, gesvd_lwork_ = -1;
  AlignedArray<T> a_, lu_, lvt_, work_;
  AlignedArray<Real> s_, rwork_;
  AlignedArray<Int> iwork_;
};

}  // namespace

template <typename T>
void SvdRange(const SvdProblem& p, const SvdBuffers<T>& b, Index begin, Index end) {
  const Index k = p.k(), us = p.u_size(), vs = p.v_size();
  if (k == 0) {
    // Empty matrices: no singular values; full factors are identities (as tf.linalg.svd).
    if (!p.compute_uv) return;
    for (Index i = begin; i < end; ++i) {
      SetIdentity(b.u + i * us, p.m, p.u_cols());
      SetIdentity(b.v + i * vs, p.n, p.v_cols());
    }
    return;
  }
  lapack::UseSingleThreadedBlas();
  LapackSvd<T> solver(p);
  for (Index i = begin; i < end; ++i) {
    const T* a = b.a + i * p.a_size();
    RealOf<T>* s = b.s + i * k;
    T* u = p.compute_uv ? b.u + i * us : nullptr;
    T* v = p.compute_uv ? b.v + i * vs : nullptr;
    if (AllFinite(a, p.a_size()) && solver.Run(a, s, u, v)) continue;
    FillNaN(s, k);
    if (p.compute_uv) {
      FillNaN(u, us);
      FillNaN(v, vs);
    }
  }
}

#define TFSVD_INSTANTIATE(T) \
  template void SvdRange<T>(const SvdProblem&, const SvdBuffers<T>&, Index, Index);
TFSVD_INSTANTIATE(float)
TFSVD_INSTANTIATE(double)
TFSVD_INSTANTIATE(std::complex<float>)
TFSVD_INSTANTIATE(std::complex<double>)
#undef TFSVD_INSTANTIATE

}  // namespace tfsvd
