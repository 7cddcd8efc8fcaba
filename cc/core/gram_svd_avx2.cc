// The Gram path's passes (gram_svd_kernels.h) for AVX2, chosen at run time (gram_svd.cc); the
// instruction set comes from this file's compiler flags (CMakeLists.txt).
#define TFSVD_GRAM_ISA avx2
#include "core/gram_svd.inc"
