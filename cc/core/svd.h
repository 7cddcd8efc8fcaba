// The forward SVD of a batch of row-major matrices, framework-free.
//
// a = u diag(s) v^H with s descending; canonical signs: in each column of u the entry of largest
// magnitude (first index on ties) is real positive and v carries the matching phase. Matrices
// holding NaN/Inf, or on which every algorithm fails, get NaN outputs; the rest of the batch is
// untouched.
#pragma once

#include <string>

#include "core/scalar.h"
#include "core/thread_team.h"

namespace tfsvd {

// Which algorithm runs. kAuto picks by size and dtype (float32 long thin matrices with at most
// eight columns: kGram, other small matrices: kJacobi, large ones: kParallelGesdd, the rest:
// kGesdd); the others are forced (tests, tuning). kJacobi is the batched one-sided Jacobi of
// jacobi_batched.h (SIMD across matrices); it falls back to LAPACK for a matrix on which it does
// not converge. kParallelGesdd is gesdd's algorithm with its heavy steps spread over a ThreadTeam
// (parallel_gesdd.h); it falls back to gesvd like kGesdd. kGram is gram_svd.h's float64 Gram
// eigendecomposition, for float32 with min(m, n) <= kGramMaxK (full factors: its thin ones
// completed to a basis); every matrix it does not take or cannot certify goes to what kAuto would
// run without it.
enum class SvdAlgorithm { kAuto, kGesdd, kGesvd, kJacobi, kParallelGesdd, kGram };

// Parses "auto" | "gesdd" | "gesvd" | "jacobi" | "parallel_gesdd" | "gram"; returns false on
// anything else.
bool ParseSvdAlgorithm(const std::string& name, SvdAlgorithm* algorithm);

struct SvdProblem {
  Index batch = 0;  // number of matrices
  Index m = 0;      // rows
  Index n = 0;      // columns
  bool compute_uv = true;
  bool full_matrices = false;
  SvdAlgorithm algorithm = SvdAlgorithm::kAuto;
  // Tests and benchmarks of the Jacobi path: its instruction set, also kGram's ("auto": the
  // widest this CPU runs, or $TFSVD_JACOBI_ISA; else "sse2", "avx2", "avx512") and a sweep cap
  // other than the default (0), to exercise the LAPACK fallback.
  std::string jacobi_isa = "auto";
  int jacobi_max_sweeps = 0;
  // Tests and benchmarks: the Jacobi path runs the matrices of a range one at a time (the lone
  // kernels: the same bits) while at most this many are left, instead of in groups; -1 keeps the
  // measured default (JacobiLoneLimit in svd.cc).
  int jacobi_lone_limit = -1;

  Index k() const { return m < n ? m : n; }
  Index u_cols() const { return full_matrices ? m : k(); }
  Index v_cols() const { return full_matrices ? n : k(); }
  Index a_size() const { return m * n; }
  Index u_size() const { return compute_uv ? m * u_cols() : 0; }
  Index v_size() const { return compute_uv ? n * v_cols() : 0; }
};

// Output and input buffers of a whole batch, contiguous and row-major: a [batch, m, n],
// s [batch, k], u [batch, m, u_cols], v [batch, n, v_cols]; u and v unused without compute_uv.
template <typename T>
struct SvdBuffers {
  const T* a = nullptr;
  RealOf<T>* s = nullptr;
  T* u = nullptr;
  T* v = nullptr;
};

// Empty when the problem can be solved, else a message naming what is out of range.
std::string ValidateSvdProblem(const SvdProblem& problem);

// Rough cost of one matrix in floating-point operations, for splitting a batch across threads.
double SvdCostPerMatrix(const SvdProblem& problem);

// Whether kAuto runs the Jacobi kernels for this problem (the measured crossover in svd.cc).
template <typename T>
bool AutoPicksJacobi(const SvdProblem& problem);

// The algorithm that runs for this problem (never kAuto).
template <typename T>
SvdAlgorithm ResolveSvdAlgorithm(const SvdProblem& problem);

// Matrices the problem's algorithm solves together: the SIMD group of kJacobi (of its half-width
// kernels where it has them), else 1; 1 as well for a batch of so few matrices that split over
// `threads` threads, kJacobi runs each thread's one at a time. A range that starts and ends at
// multiples of it fills whole groups (a partial group costs a full one).
template <typename T>
Index SvdBatchAlignment(const SvdProblem& problem, Index threads);

// Estimated cost of SvdRange over `count` of the problem's matrices on one thread, relative (in
// lone matrices for kJacobi, whose groups cost about as much part-filled as full; `count` for the
// other algorithms): for choosing between ways of splitting a batch.
template <typename T>
double SvdRangeCost(const SvdProblem& problem, Index count);

// Whether the problem's algorithm can put a ThreadTeam to use on each matrix (kParallelGesdd):
// worth it for the matrices of a batch that are fewer than the threads (all of a small batch, the
// remainder of a larger one).
template <typename T>
bool SvdUsesTeam(const SvdProblem& problem);

// Factors matrices [begin, end) of the batch. Thread-safe: each call owns its workspace; OpenBLAS
// runs single-threaded. Parallelism comes from splitting the batch across calls or, for large
// matrices, from `team`, which then works on one matrix after the other (null: the caller alone).
// Results do not depend on either: a matrix gets the same bits alone or anywhere in any range,
// with any team.
template <typename T>
void SvdRange(const SvdProblem& problem, const SvdBuffers<T>& buffers, Index begin, Index end,
              ThreadTeam* team = nullptr);

}  // namespace tfsvd
