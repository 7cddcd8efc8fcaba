// The thin backward's products for AVX2 and FMA, chosen at run time (thin_grad.cc); the
// instruction set comes from this file's compiler flags (CMakeLists.txt).
#define TFSVD_THIN_ISA avx2
#define TFSVD_THIN_ISA_NAME "avx2"
#include "core/thin_grad.inc"
