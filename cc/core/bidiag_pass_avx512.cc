// The bidiagonalisation's column pass for AVX-512F, chosen at run time (bidiag_pass.cc); the
// instruction set comes from this file's compiler flags (CMakeLists.txt).
#define TFSVD_PASS_ISA avx512
#include "core/bidiag_pass.inc"
