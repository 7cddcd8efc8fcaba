#include "core/lapack.h"

#include <algorithm>
#include <cstddef>
#include <mutex>

// Fortran LAPACK/BLAS as exported by scipy-openblas32. Character arguments carry a hidden length
// (gfortran ABI); passing it is harmless where the callee was built from C.
extern "C" {
using tfsvd::lapack::Int;
using cfloat = std::complex<float>;
using cdouble = std::complex<double>;

#define TFSVD_DECLARE_GESDD(P, T, R)                                                             \
  void scipy_##P##gesdd_(const char* jobz, const Int* m, const Int* n, T* a, const Int* lda,    \
                         R* s, T* u, const Int* ldu, T* vt, const Int* ldvt, T* work,           \
                         const Int* lwork, TFSVD_GESDD_RWORK(R) Int* iwork, Int* info, size_t);
#define TFSVD_GESDD_RWORK(R)
TFSVD_DECLARE_GESDD(s, float, float)
TFSVD_DECLARE_GESDD(d, double, double)
#undef TFSVD_GESDD_RWORK
#define TFSVD_GESDD_RWORK(R) R* rwork,
TFSVD_DECLARE_GESDD(c, cfloat, float)
TFSVD_DECLARE_GESDD(z, cdouble, double)
#undef TFSVD_GESDD_RWORK
#undef TFSVD_DECLARE_GESDD

#define TFSVD_DECLARE_GESVD(P, T, R)                                                             \
  void scipy_##P##gesvd_(const char* jobu, const char* jobvt, const Int* m, const Int* n, T* a, \
                         const Int* lda, R* s, T* u, const Int* ldu, T* vt, const Int* ldvt,    \
                         T* work, const Int* lwork, TFSVD_GESVD_RWORK(R) Int* info, size_t,     \
                         size_t);
#define TFSVD_GESVD_RWORK(R)
TFSVD_DECLARE_GESVD(s, float, float)
TFSVD_DECLARE_GESVD(d, double, double)
#undef TFSVD_GESVD_RWORK
#define TFSVD_GESVD_RWORK(R) R* rwork,
TFSVD_DECLARE_GESVD(c, cfloat, float)
TFSVD_DECLARE_GESVD(z, cdouble, double)
#undef TFSVD_GESVD_RWORK
#undef TFSVD_DECLARE_GESVD

#define TFSVD_DECLARE_GEMM(P, T)                                                                 \
  void scipy_##P##gemm_(const char* ta, const char* tb, const Int* m, const Int* n, const Int* k, \
                        const T* alpha, const T* a, const Int* lda, const T* b, const Int* ldb,  \
                        const T* beta, T* c, const Int* ldc, size_t, size_t);
TFSVD_DECLARE_GEMM(s, float)
TFSVD_DECLARE_GEMM(d, double)
TFSVD_DECLARE_GEMM(c, cfloat)
TFSVD_DECLARE_GEMM(z, cdouble)
#undef TFSVD_DECLARE_GEMM

#define TFSVD_DECLARE_HOUSEHOLDER(P, T)                                                          \
  void scipy_##P##gemv_(const char* trans, const Int* m, const Int* n, const T* alpha,           \
                        const T* a, const Int* lda, const T* x, const Int* incx, const T* beta, \
                        T* y, const Int* incy, size_t);                                          \
  void scipy_##P##larfg_(const Int* n, T* alpha, T* x, const Int* incx, T* tau);                \
  void scipy_##P##geqrf_(const Int* m, const Int* n, T* a, const Int* lda, T* tau, T* work,      \
                         const Int* lwork, Int* info);                                           \
  void scipy_##P##geqrt3_(const Int* m, const Int* n, T* a, const Int* lda, T* t, const Int* ldt, \
                          Int* info);                                                            \
  void scipy_##P##larft_(const char* direct, const char* storev, const Int* n, const Int* k,    \
                         const T* v, const Int* ldv, const T* tau, T* t, const Int* ldt, size_t, \
                         size_t);
TFSVD_DECLARE_HOUSEHOLDER(s, float)
TFSVD_DECLARE_HOUSEHOLDER(d, double)
TFSVD_DECLARE_HOUSEHOLDER(c, cfloat)
TFSVD_DECLARE_HOUSEHOLDER(z, cdouble)
#undef TFSVD_DECLARE_HOUSEHOLDER

#define TFSVD_DECLARE_APPLY(P, T, OR)                                                             \
  void scipy_##P##OR##mqr_(const char* side, const char* trans, const Int* m, const Int* n,      \
                           const Int* k, const T* a, const Int* lda, const T* tau, T* c,         \
                           const Int* ldc, T* work, const Int* lwork, Int* info, size_t, size_t);
TFSVD_DECLARE_APPLY(s, float, or)
TFSVD_DECLARE_APPLY(d, double, or)
TFSVD_DECLARE_APPLY(c, cfloat, un)
TFSVD_DECLARE_APPLY(z, cdouble, un)
#undef TFSVD_DECLARE_APPLY

#define TFSVD_DECLARE_BDSDC(P, R)                                                                 \
  void scipy_##P##bdsdc_(const char* uplo, const char* compq, const Int* n, R* d, R* e, R* u,    \
                         const Int* ldu, R* vt, const Int* ldvt, R* q, Int* iq, R* work,        \
                         Int* iwork, Int* info, size_t, size_t);
TFSVD_DECLARE_BDSDC(s, float)
TFSVD_DECLARE_BDSDC(d, double)
#undef TFSVD_DECLARE_BDSDC

#define TFSVD_DECLARE_LASD(P, R)                                                                  \
  void scipy_##P##lasd0_(const Int* n, const Int* sqre, R* d, R* e, R* u, const Int* ldu, R* vt, \
                         const Int* ldvt, const Int* smlsiz, Int* iwork, R* work, Int* info);   \
  void scipy_##P##lasd2_(const Int* nl, const Int* nr, const Int* sqre, Int* k, R* d, R* z,      \
                         R* alpha, R* beta, R* u, const Int* ldu, R* vt, const Int* ldvt,        \
                         R* dsigma, R* u2, const Int* ldu2, R* vt2, const Int* ldvt2, Int* idxp, \
                         Int* idx, Int* idxc, Int* idxq, Int* coltyp, Int* info);               \
  void scipy_##P##lasd4_(const Int* n, const Int* i, const R* d, const R* z, R* delta,           \
                         const R* rho, R* sigma, R* work, Int* info);                           \
  void scipy_##P##lamrg_(const Int* n1, const Int* n2, const R* a, const Int* strd1,             \
                         const Int* strd2, Int* index);                                          \
  R scipy_##P##nrm2_(const Int* n, const R* x, const Int* incx);
TFSVD_DECLARE_LASD(s, float)
TFSVD_DECLARE_LASD(d, double)
#undef TFSVD_DECLARE_LASD

void scipy_openblas_set_num_threads(int num_threads);
}

namespace tfsvd {
namespace lapack {

#define TFSVD_DEFINE_REAL(P, T)                                                                  \
  template <>                                                                                    \
  Int Gesdd<T>(char jobz, Int m, Int n, T* a, Int lda, T* s, T* u, Int ldu, T* vt, Int ldvt,     \
               T* work, Int lwork, T*, Int* iwork) {                                             \
    Int info = 0;                                                                                \
    scipy_##P##gesdd_(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info, \
                      1);                                                                        \
    return info;                                                                                 \
  }                                                                                              \
  template <>                                                                                    \
  Int Gesvd<T>(char jobu, char jobvt, Int m, Int n, T* a, Int lda, T* s, T* u, Int ldu, T* vt,   \
               Int ldvt, T* work, Int lwork, T*) {                                               \
    Int info = 0;                                                                                \
    scipy_##P##gesvd_(&jobu, &jobvt, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork,       \
                      &info, 1, 1);                                                              \
    return info;                                                                                 \
  }
TFSVD_DEFINE_REAL(s, float)
TFSVD_DEFINE_REAL(d, double)
#undef TFSVD_DEFINE_REAL

#define TFSVD_DEFINE_COMPLEX(P, T, R)                                                            \
  template <>                                                                                    \
  Int Gesdd<T>(char jobz, Int m, Int n, T* a, Int lda, R* s, T* u, Int ldu, T* vt, Int ldvt,     \
               T* work, Int lwork, R* rwork, Int* iwork) {                                       \
    Int info = 0;                                                                                \
    scipy_##P##gesdd_(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, rwork, iwork, \
                      &info, 1);                                                                 \
    return info;                                                                                 \
  }                                                                                              \
  template <>                                                                                    \
  Int Gesvd<T>(char jobu, char jobvt, Int m, Int n, T* a, Int lda, R* s, T* u, Int ldu, T* vt,   \
               Int ldvt, T* work, Int lwork, R* rwork) {                                         \
    Int info = 0;                                                                                \
    scipy_##P##gesvd_(&jobu, &jobvt, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork,       \
                      rwork, &info, 1, 1);                                                       \
    return info;                                                                                 \
  }
TFSVD_DEFINE_COMPLEX(c, cfloat, float)
TFSVD_DEFINE_COMPLEX(z, cdouble, double)
#undef TFSVD_DEFINE_COMPLEX

#define TFSVD_DEFINE_GEMM(P, T)                                                                  \
  template <>                                                                                    \
  void Gemm<T>(char ta, char tb, Int m, Int n, Int k, T alpha, const T* a, Int lda, const T* b,  \
               Int ldb, T beta, T* c, Int ldc) {                                                 \
    scipy_##P##gemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc, 1, 1);      \
  }
TFSVD_DEFINE_GEMM(s, float)
TFSVD_DEFINE_GEMM(d, double)
TFSVD_DEFINE_GEMM(c, cfloat)
TFSVD_DEFINE_GEMM(z, cdouble)
#undef TFSVD_DEFINE_GEMM

namespace {
// Real LAPACK routines know 'T' where complex ones take 'C' (conjugate transpose).
template <typename T>
char AdjointChar(char trans) {
  return !kIsComplex<T> && (trans == 'C' || trans == 'c') ? 'T' : trans;
}
}  // namespace

#define TFSVD_DEFINE_HOUSEHOLDER(P, T, OR)                                                        \
  template <>                                                                                    \
  void Gemv<T>(char trans, Int m, Int n, T alpha, const T* a, Int lda, const T* x, Int incx,     \
               T beta, T* y, Int incy) {                                                         \
    scipy_##P##gemv_(&trans, &m, &n, &alpha, a, &lda, x, &incx, &beta, y, &incy, 1);             \
  }                                                                                              \
  template <>                                                                                    \
  T Larfg<T>(Int n, T* alpha, T* x, Int incx) {                                                  \
    T tau(0);                                                                                    \
    scipy_##P##larfg_(&n, alpha, x, &incx, &tau);                                                \
    return tau;                                                                                  \
  }                                                                                              \
  template <>                                                                                    \
  Int Geqrf<T>(Int m, Int n, T* a, Int lda, T* tau, T* work, Int lwork) {                        \
    Int info = 0;                                                                                \
    scipy_##P##geqrf_(&m, &n, a, &lda, tau, work, &lwork, &info);                                \
    return info;                                                                                 \
  }                                                                                              \
  template <>                                                                                    \
  Int Geqrt3<T>(Int m, Int n, T* a, Int lda, T* t, Int ldt) {                                    \
    Int info = 0;                                                                                \
    scipy_##P##geqrt3_(&m, &n, a, &lda, t, &ldt, &info);                                         \
    return info;                                                                                 \
  }                                                                                              \
  template <>                                                                                    \
  void Larft<T>(char storev, Int n, Int k, const T* v, Int ldv, const T* tau, T* t, Int ldt) {   \
    const char direct = 'F';                                                                     \
    scipy_##P##larft_(&direct, &storev, &n, &k, v, &ldv, tau, t, &ldt, 1, 1);                    \
  }                                                                                              \
  template <>                                                                                    \
  Int Ormqr<T>(char side, char trans, Int m, Int n, Int k, const T* a, Int lda, const T* tau,    \
               T* c, Int ldc, T* work, Int lwork) {                                              \
    Int info = 0;                                                                                \
    const char tr = AdjointChar<T>(trans);                                                       \
    scipy_##P##OR##mqr_(&side, &tr, &m, &n, &k, a, &lda, tau, c, &ldc, work, &lwork, &info, 1,   \
                        1);                                                                      \
    return info;                                                                                 \
  }
TFSVD_DEFINE_HOUSEHOLDER(s, float, or)
TFSVD_DEFINE_HOUSEHOLDER(d, double, or)
TFSVD_DEFINE_HOUSEHOLDER(c, cfloat, un)
TFSVD_DEFINE_HOUSEHOLDER(z, cdouble, un)
#undef TFSVD_DEFINE_HOUSEHOLDER

#define TFSVD_DEFINE_BDSDC(P, R)                                                                  \
  template <>                                                                                    \
  Int Bdsdc<R>(char uplo, char compq, Int n, R* d, R* e, R* u, Int ldu, R* vt, Int ldvt,         \
               R* work, Int* iwork) {                                                            \
    Int info = 0;                                                                                \
    scipy_##P##bdsdc_(&uplo, &compq, &n, d, e, u, &ldu, vt, &ldvt, nullptr, nullptr, work, iwork, \
                      &info, 1, 1);                                                              \
    return info;                                                                                 \
  }
TFSVD_DEFINE_BDSDC(s, float)
TFSVD_DEFINE_BDSDC(d, double)
#undef TFSVD_DEFINE_BDSDC

#define TFSVD_DEFINE_LASD(P, R)                                                                   \
  template <>                                                                                    \
  Int Lasd0<R>(Int n, Int sqre, R* d, R* e, R* u, Int ldu, R* vt, Int ldvt, Int smlsiz,          \
               Int* iwork, R* work) {                                                            \
    Int info = 0;                                                                                \
    scipy_##P##lasd0_(&n, &sqre, d, e, u, &ldu, vt, &ldvt, &smlsiz, iwork, work, &info);          \
    return info;                                                                                 \
  }                                                                                              \
  template <>                                                                                    \
  Int Lasd2<R>(Int nl, Int nr, Int sqre, Int* k, R* d, R* z, R alpha, R beta, R* u, Int ldu,     \
               R* vt, Int ldvt, R* dsigma, R* u2, Int ldu2, R* vt2, Int ldvt2, Int* idxp,         \
               Int* idx, Int* idxc, Int* idxq, Int* coltyp) {                                    \
    Int info = 0;                                                                                \
    scipy_##P##lasd2_(&nl, &nr, &sqre, k, d, z, &alpha, &beta, u, &ldu, vt, &ldvt, dsigma, u2,   \
                      &ldu2, vt2, &ldvt2, idxp, idx, idxc, idxq, coltyp, &info);                 \
    return info;                                                                                 \
  }                                                                                              \
  template <>                                                                                    \
  Int Lasd4<R>(Int n, Int i, const R* d, const R* z, R* delta, R rho, R* sigma, R* work) {      \
    Int info = 0;                                                                                \
    scipy_##P##lasd4_(&n, &i, d, z, delta, &rho, sigma, work, &info);                            \
    return info;                                                                                 \
  }                                                                                              \
  template <>                                                                                    \
  void Lamrg<R>(Int n1, Int n2, const R* a, Int strd1, Int strd2, Int* index) {                  \
    scipy_##P##lamrg_(&n1, &n2, a, &strd1, &strd2, index);                                       \
  }                                                                                              \
  template <>                                                                                    \
  R Nrm2<R>(Int n, const R* x, Int incx) {                                                       \
    return scipy_##P##nrm2_(&n, x, &incx);                                                       \
  }
TFSVD_DEFINE_LASD(s, float)
TFSVD_DEFINE_LASD(d, double)
#undef TFSVD_DEFINE_LASD

std::string CheckMatrixFitsInt32(Index m, Index n, Index u_cols, Index v_cols) {
  const Index largest = std::max({m * n, m * u_cols, n * v_cols});
  if (largest <= kMaxInt / 2) return "";
  return "a single matrix of " + std::to_string(m) + "x" + std::to_string(n) +
         " is too large for 32-bit LAPACK (at most 2^30 elements per matrix)";
}

Int WorkspaceSize(double query) {
  // LAPACK >= 3.11 rounds its float answers up; older ones may not: add a relative margin.
  const double padded = query * (1.0 + 1e-6) + 1.0;
  return padded >= static_cast<double>(kMaxInt) ? static_cast<Int>(kMaxInt)
                                                : static_cast<Int>(padded);
}

void UseSingleThreadedBlas() {
  static std::once_flag once;
  std::call_once(once, [] { scipy_openblas_set_num_threads(1); });
}

}  // namespace lapack
}  // namespace tfsvd
