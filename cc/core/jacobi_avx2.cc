// Jacobi group kernels for AVX2 + FMA. Chosen at run time by
// jacobi_batched.cc; the instruction set comes from this file's compiler flags (CMakeLists.txt).
#define TFSVD_JACOBI_ISA avx2
#define TFSVD_JACOBI_ISA_NAME "avx2"
#include "core/jacobi_simd.inc"
