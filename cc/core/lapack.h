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

// Makes OpenBLAS single-threaded, once per process, before the first factorisation. Kernels split
// batches across the framework's own thread pool; OpenBLAS threads on top of that oversubscribe
// the cores (a 2048x2048 gesdd ran 5x slower with two OpenBLAS threads under TF). This OpenBLAS
// instance (scipy-openblas32) is tfsvd's own: numpy and scipy load their own copies.
void UseSingleThreadedBlas();

}  // namespace lapack
}  // namespace tfsvd
