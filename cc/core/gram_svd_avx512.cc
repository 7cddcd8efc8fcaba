// The Gram path's passes (gram_svd_kernels.h) for AVX-512F, chosen at run time (gram_svd.cc); the
// instruction set comes from this file's compiler flags (CMakeLists.txt).
#define TFSVD_GRAM_ISA avx512
#include "core/gram_svd.inc"
