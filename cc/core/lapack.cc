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
