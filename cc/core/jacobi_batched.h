// Batched one-sided Jacobi SVD on the CPU: groups of matrices interleaved across SIMD lanes
// (jacobi.h has the math, jacobi_kernels.h the per-ISA kernels). Internal to cc/core; svd.cc
// drives it from SvdRange.
#pragma once

#include <string>
#include <vector>

#include "core/jacobi_kernels.h"
#include "core/svd.h"
#include "core/workspace.h"

namespace tfsvd {

// The instruction set "auto" picks for the Jacobi kernels: "sse2", "avx2" or "avx512".
const char* JacobiIsa();

// Whether this CPU runs the Jacobi kernels of an instruction set ("auto" always).
bool JacobiIsaAvailable(const std::string& name);

// Matrices per group of the kernels of instruction set `isa` (as accepted by
// JacobiIsaAvailable) for scalar type T: JacobiBatchSvd<T>::lanes() without building one.
template <typename T>
Index JacobiLanes(const std::string& isa);

// For "auto" on a CPU that splits 512-bit operations in two (Zen 4), "avx2": kernels that round
// exactly as the AVX-512 ones (both use explicit FMAs) with half the lanes, so a group with at
// most half its lanes filled costs about half as much. Else "" (none; a forced instruction set
// always runs alone).
std::string JacobiHalfWidthIsa(const std::string& isa);

// Whether the lone kernels of instruction set `isa` (as accepted by JacobiIsaAvailable) schedule
// a real matrix's sweeps for latency (KernelTable::lone_scheduled).
bool JacobiLoneScheduled(const std::string& isa);

template <typename T>
class JacobiBatchSvd {
 public:
  using Real = RealOf<T>;

  // lone: one matrix per group through the kernels' lone variant (KernelTable::run_lone_*): the
  // same bits as in a group, at the cost of that matrix alone.
  explicit JacobiBatchSvd(const SvdProblem& problem, bool lone = false);

  // Matrices per group (SIMD lanes; 1 when lone).
  Index lanes() const { return lanes_; }

  // Factors matrices [first, first + count) of the batch, count <= lanes(), into the outputs of
  // `buffers` (tfsvd's conventions: s descending, canonical signs). Matrices holding NaN/Inf get
  // NaN outputs. needs_fallback[l] is set for the matrices on which Jacobi did not converge within
  // the sweep cap; their outputs are left for the caller to fill (LAPACK).
  void Run(const SvdBuffers<T>& buffers, Index first, Index count, bool* needs_fallback);

 private:
  static constexpr Index kMaxLanes = 16;  // the widest group: AVX-512 float

  void Pack(const T* a, Index lane);         // one lane
  void PackGroup(const T* a, Index count);  // real types: lanes 0 .. count-1 at once
  void PackLane(const T* a, Index lane, const Index* ro, const Index* co);  // PackGroup's lanes
  void Interleave(const T* a, Index count, const Index* const* a_row_order);  // SIMD groups
  // Entry i: the row (column) of B packed as row (column) i of `lane`; null when not
  // preconditioned_ (the identity).
  const Index* RowPlaces(Index lane) const;
  const Index* ColumnPlaces(Index lane) const;
  // Real SIMD groups: B's side (u when tall_, else v) of every lane Scatter takes, in one pass;
  // false when it does not apply.
  bool ScatterGroup(const SvdBuffers<T>& buffers, Index first, Index count);
  // Lanes the kernel finished; b_side_done: ScatterGroup wrote B's side.
  void Scatter(Index lane, Real* s, T* u, T* v, bool b_side_done);
  void Finish(Index lane, Real* s, T* u, T* v);   // the rest: a numerically zero column

  const SvdProblem& p_;
  jacobi::GroupKernel<Real> kernel_;
  const jacobi::GroupMoves<Real>* moves_;  // null for complex types and lone matrices
  Index lanes_;
  Index rows_, cols_;  // the side Jacobi works on: rows_ = max(m, n) >= cols_ = min(m, n)
  bool tall_;          // m >= n: B = A; else B = A^H
  // B = Q R and sweeps on R^T (jacobi.h's JacobiPreconditioned): the kernel leaves B's left factor
  // Q W (orthonormal) in b_ and the scaled columns X in v_, the other way round from plain sweeps.
  bool preconditioned_;
  Index plane_;        // rows_ * cols_ * lanes_
  AlignedArray<Real> b_, v_, sumsq_, s_, rank_, exponent_, kernel_work_;
  AlignedArray<unsigned char> status_;
  AlignedArray<Real> norms_;
  AlignedArray<Index> order_;
  AlignedArray<int> place_;  // ScatterGroup's column places, [lane][cols]
  AlignedArray<T> work_;
  // preconditioned_: the place in B of each packed row / column, per lane, as the kernels take
  // them (jacobi::GroupArgs::row_index, col_index); PackGroup's scratch.
  AlignedArray<Real> row_index_, col_index_, sort_key_;
  AlignedArray<Index> row_order_, col_order_, sort_exponent_;  // [lane][rows], [lane][cols]
  std::vector<Index> sort_buckets_;
};

}  // namespace tfsvd
