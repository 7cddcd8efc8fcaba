// The thin backward's products for AVX-512F, chosen at run time (thin_grad.cc); the instruction
// set comes from this file's compiler flags (CMakeLists.txt).
#define TFSVD_THIN_ISA avx512
#define TFSVD_THIN_ISA_NAME "avx512"
#include "core/thin_grad.inc"
