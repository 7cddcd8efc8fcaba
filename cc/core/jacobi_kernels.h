// The SIMD Jacobi kernels, compiled once per instruction set (jacobi_sse2.cc, jacobi_avx2.cc,
// jacobi_avx512.cc from jacobi_simd.inc) and chosen at run time (jacobi_batched.cc).
//
// A kernel runs the whole per-matrix pipeline of jacobi.h (scaling, sweeps, singular values,
// normalisation, canonical signs) on one group of `lanes` matrices stored interleaved ("structure
// of arrays"): element (i, j) of lane l of B at b[(j * rows + i) * lanes + l] (rows >= cols,
// column-major per lane), complex as a real plane followed by an imaginary plane. Only plain
// arrays cross this boundary, so the translation units compiled for AVX2/AVX-512 share no inline
// code with the baseline one.
#pragma once

#include "core/scalar.h"

namespace tfsvd {
namespace jacobi {

// Status bits of a lane after a group kernel.
enum : unsigned char {
  kLaneNonFinite = 1,    // the input held NaN/Inf (B, V are zero)
  kLaneUnconverged = 2,  // the sweep cap was hit
  kLaneFinished = 4,     // B normalised and canonical signs applied (no numerically zero column)
};

template <class R>
struct GroupArgs {
  R* b = nullptr;         // [planes][cols][rows][lanes], in: the input (B orientation), out: B
  R* v = nullptr;         // [planes][cols][cols][lanes], out: V (only when with_v; always on the
                          // preconditioned path, which keeps X there)
  R* work = nullptr;      // [JacobiPreconditionScratch(rows, cols)][lanes]: scratch of the
                          // preconditioned path (jacobi.h's JacobiPreconditioned)
  // Preconditioned path: the caller packs B's rows and columns in an order of its choice; these
  // give each packed row's / column's place in B (0, 1, ...), for the canonical signs' ties.
  const R* row_index = nullptr;  // [rows][lanes]
  const R* col_index = nullptr;  // [cols][lanes]
  R* sumsq = nullptr;     // [cols][lanes], out: |b_j|^2 after the sweeps (scaled)
  R* s = nullptr;         // [cols][lanes], out: |b_j| unscaled: the singular value of column j
  R* rank = nullptr;      // [cols][lanes], out: place of column j in descending order
  R* exponent = nullptr;  // [lanes], out: the input was scaled by 2^-exponent
  unsigned char* status = nullptr;  // [lanes], out: kLane* bits
  Index rows = 0;
  Index cols = 0;
  bool tall = true;      // U is on B's side (m >= n); else U = V
  bool with_v = true;
  bool complex = false;  // planes = 2
  int max_sweeps = 0;    // > 0: overrides the sweep cap of MakeJacobiTolerances (tests)
  // Preconditioned path: the finished lanes' columns come out in rank order (rank j = j), for a
  // caller that stores them as whole vectors (jacobi.h's JacobiSortColumns; the same bits).
  bool sort_columns = false;
};

// Returns the number of sweeps run.
template <class R>
using GroupKernel = int (*)(const GroupArgs<R>& args);

constexpr Index kMaxGroupCols = 256;  // GroupMoves::maxima's limit

// Moving a real group between the batch's row-major matrices and the layout above, W x W blocks
// at a time (W: the table's lanes for R). Pure data movement, the same values on every
// instruction set.
template <class R>
struct GroupMoves {
  // For every block b < blocks, t < k <= W, lane l < W:
  //   dst[b * dst_step + t * dst_stride + l] = src[l][o_l(b) * src_step + t]  for l < count,
  // else 0, where o_l(b) = block_order[l][b], or b where block_order or block_order[l] is null.
  void (*interleave)(const R* const* src, const Index* const* block_order, Index count,
                     Index src_step, Index k, Index blocks, R* dst, Index dst_stride,
                     Index dst_step);
  // Maxima of |B| over a group's B (rows x cols <= kMaxGroupCols), lane by lane:
  // row_key[l * rows + i] over row i's entries, col_key[l * cols + j] over column j's; a NaN drops
  // out (as std::max(key, |x|)).
  void (*maxima)(const R* b, Index rows, Index cols, R* row_key, R* col_key);
  // For every lane l with dst[l] != nullptr, row i < rows, column j < cols:
  //   dst[l][r_l(i) * ld + place[l * cols + j]] = b[(j * rows + i) * W + l]
  // where r_l(i) = row_place[l][i], or i where row_place[l] is null (place[l * cols + .] a
  // permutation of 0 .. cols-1).
  void (*scatter_rows)(const R* b, Index rows, Index cols, R* const* dst,
                       const Index* const* row_place, Index ld, const int* place);
};

struct KernelTable {
  const char* name;  // "sse2", "avx2", "avx512"
  int lanes_float;   // lanes of a float group (complex64 too)
  int lanes_double;  // lanes of a double group (complex128 too)
  GroupKernel<float> run_float;
  GroupKernel<double> run_double;
  // The same pipeline on one matrix (lanes = 1 in GroupArgs' layout), with the arithmetic of one
  // lane of run_float / run_double: the same bits, at the cost of that matrix alone.
  GroupKernel<float> run_lone_float;
  GroupKernel<double> run_lone_double;
  // Whether the lone kernels schedule a real matrix's sweeps for latency (jacobi_simd.inc's
  // LoneSweeps, where there is FMA): they then cost a fraction of a group.
  bool lone_scheduled;
  GroupMoves<float> moves_float;
  GroupMoves<double> moves_double;
};

// One per instruction set; defined in jacobi_<isa>.cc.
namespace sse2 { KernelTable Table(); }
namespace avx2 { KernelTable Table(); }
namespace avx512 { KernelTable Table(); }

}  // namespace jacobi
}  // namespace tfsvd
