// Typed C++ entry points into LAPACK and BLAS from scipy-openblas32 (column-major, 32-bit ints).
// Nothing else in tfsvd names a Fortran symbol.
#pragma once

#include <cstdint>
#include <complex>
#include <string>

#include "core/scalar.h"

namespace tfsvd {
namespace lapack {

using Int = std::int32_t;  // scipy-openblas32 is built with 32-bit LAPACK integers

// Largest dimension/element count LAPACK can address with 32-bit integers.
inline constexpr Index kMaxInt = 2147483647;

// Empty when one m x n matrix and its factors (m x u_cols, n x v_cols) fit 32-bit LAPACK/BLAS
// indexing (with a factor 2 of headroom for workspaces), else a message saying so. Batches may be
// larger: they are indexed with Index.
std::string CheckMatrixFitsInt32(Index m, Index n, Index u_cols, Index v_cols);

// Turns a workspace size returned by a LAPACK query (as a floating-point number, which may have
// been rounded down in single precision) into a safe integer size.
Int WorkspaceSize(double query);

// gesdd (divide and conquer) and gesvd (QR iteration) on a column-major m x n matrix.
// `rwork` is used only for complex T. With lwork == -1 they return the optimal workspace size in
// work[0]. Returns LAPACK's info.
template <typename T>
Int Gesdd(char jobz, Int m, Int n, T* a, Int lda, RealOf<T>* s, T* u, Int ldu, T* vt, Int ldvt,
          T* work, Int lwork, RealOf<T>* rwork, Int* iwork);
template <typename T>
Int Gesvd(char jobu, char jobvt, Int m, Int n, T* a, Int lda, RealOf<T>* s, T* u, Int ldu, T* vt,
          Int ldvt, T* work, Int lwork, RealOf<T>* rwork);

// Column-major C = alpha op(A) op(B) + beta C, op in {'N', 'T', 'C'}.
template <typename T>
void Gemm(char transa, char transb, Int m, Int n, Int k, T alpha, const T* a, Int lda, const T* b,
          Int ldb, T beta, T* c, Int ldc);

// Column-major y = alpha op(A) x + beta y, op in {'N', 'T', 'C'}.
template <typename T>
void Gemv(char trans, Int m, Int n, T alpha, const T* a, Int lda, const T* x, Int incx, T beta,
          T* y, Int incy);

// Generates an elementary reflector H = I - tau v v^H with H^H [alpha; x] = [beta; 0], beta
// real; v = [1; x] on return (x overwritten), alpha = beta. Returns tau.
template <typename T>
T Larfg(Int n, T* alpha, T* x, Int incx);

// QR factorisation of a column-major m x n matrix (Householder vectors below the diagonal).
template <typename T>
Int Geqrf(Int m, Int n, T* a, Int lda, T* tau, T* work, Int lwork);

// Recursive QR of an m x n matrix (m >= n): the reflectors as Geqrf stores them, and the n x n
// upper triangular T of their compact WY form (its diagonal holds Geqrf's tau).
template <typename T>
Int Geqrt3(Int m, Int n, T* a, Int lda, T* t, Int ldt);

// The k x k upper triangular factor T of a block of k forward reflectors of order n, stored
// column-wise (storev 'C': H_1 ... H_k = I - V T V^H, V n x k) or row-wise (storev 'R':
// I - V^H T V, V k x n).
template <typename T>
void Larft(char storev, Int n, Int k, const T* v, Int ldv, const T* tau, T* t, Int ldt);

// ormqr/unmqr: applies Q of a QR factorisation (geqrf's storage) or its adjoint ('C'; mapped to
// 'T' for real types) to the m x n matrix c.
template <typename T>
Int Ormqr(char side, char trans, Int m, Int n, Int k, const T* a, Int lda, const T* tau, T* c,
          Int ldc, T* work, Int lwork);

// bdsdc: divide-and-conquer SVD of an n x n real bidiagonal matrix (uplo 'U'), singular values
// only (compq 'N') or with the vectors as dense u and vt (compq 'I'); work and iwork as LAPACK.
template <typename R>
Int Bdsdc(char uplo, char compq, Int n, R* d, R* e, R* u, Int ldu, R* vt, Int ldvt, R* work,
          Int* iwork);

// The pieces of bdsdc's divide and conquer (real), as LAPACK documents them: lasd0 solves an
// n x (n + sqre) upper bidiagonal problem into u (n x n) and vt ((n + sqre) square), which hold
// the identity on entry (work 3 m^2 + 2 m with m = n + sqre, iwork 8 n); lasd2 deflates the merge
// of two solved blocks (returns info, sets *k); lasd4 finds the i-th root (1-based) of a secular
// equation; lamrg merges two sorted index sets; nrm2 is BLAS's scaled 2-norm.
template <typename R>
Int Lasd0(Int n, Int sqre, R* d, R* e, R* u, Int ldu, R* vt, Int ldvt, Int smlsiz, Int* iwork,
          R* work);
template <typename R>
Int Lasd2(Int nl, Int nr, Int sqre, Int* k, R* d, R* z, R alpha, R beta, R* u, Int ldu, R* vt,
          Int ldvt, R* dsigma, R* u2, Int ldu2, R* vt2, Int ldvt2, Int* idxp, Int* idx, Int* idxc,
          Int* idxq, Int* coltyp);
template <typename R>
Int Lasd4(Int n, Int i, const R* d, const R* z, R* delta, R rho, R* sigma, R* work);
template <typename R>
void Lamrg(Int n1, Int n2, const R* a, Int strd1, Int strd2, Int* index);
template <typename R>
R Nrm2(Int n, const R* x, Int incx);

// Makes OpenBLAS single-threaded, once per process, before the first factorisation. Kernels split
// batches across the framework's own thread pool; OpenBLAS threads on top of that oversubscribe
// the cores (a 2048x2048 gesdd ran 5x slower with two OpenBLAS threads under TF). This OpenBLAS
// instance (scipy-openblas32) is tfsvd's own: numpy and scipy load their own copies.
void UseSingleThreadedBlas();

}  // namespace lapack
}  // namespace tfsvd
