// Jacobi group kernels for baseline x86-64 (SSE2), the path every CPU can run.
// Chosen at run time by jacobi_batched.cc; the instruction set comes from this file's compiler
// flags (CMakeLists.txt).
#define TFSVD_JACOBI_ISA sse2
#define TFSVD_JACOBI_ISA_NAME "sse2"
#include "core/jacobi_simd.inc"
