// Jacobi group kernels for AVX-512F.
// Chosen at run time by jacobi_batched.cc; the instruction set comes from this file's compiler
// flags (CMakeLists.txt).
#define TFSVD_JACOBI_ISA avx512
#define TFSVD_JACOBI_ISA_NAME "avx512"
#include "core/jacobi_simd.inc"
