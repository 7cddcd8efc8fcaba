#include "core/svd.h"

#include <algorithm>
#include <complex>
#include <limits>
#include <memory>

#include "core/canonical.h"
#include "core/complete_basis.h"
#include "core/cpu_isa.h"
#include "core/gram_svd.h"
#include "core/jacobi.h"
#include "core/jacobi_batched.h"
#include "core/lapack.h"
#include "core/parallel_gesdd.h"
#include "core/transpose.h"
#include "core/workspace.h"

namespace tfsvd {

bool ParseSvdAlgorithm(const std::string& name, SvdAlgorithm* algorithm) {
  if (name == "auto") {
    *algorithm = SvdAlgorithm::kAuto;
  } else if (name == "gesdd") {
    *algorithm = SvdAlgorithm::kGesdd;
  } else if (name == "gesvd") {
    *algorithm = SvdAlgorithm::kGesvd;
  } else if (name == "jacobi") {
    *algorithm = SvdAlgorithm::kJacobi;
  } else if (name == "parallel_gesdd") {
    *algorithm = SvdAlgorithm::kParallelGesdd;
  } else if (name == "gram") {
    *algorithm = SvdAlgorithm::kGram;
  } else {
    return false;
  }
  return true;
}

std::string ValidateSvdProblem(const SvdProblem& p) {
  if (p.batch < 0 || p.m < 0 || p.n < 0) return "negative dimension";
  if (!JacobiIsaAvailable(p.jacobi_isa)) {
    return "the Jacobi kernels for '" + p.jacobi_isa + "' are unknown or not run by this CPU";
  }
  if (p.jacobi_max_sweeps < 0) return "negative Jacobi sweep cap";
  return lapack::CheckMatrixFitsInt32(p.m, p.n, p.u_cols(), p.v_cols());
}

double SvdCostPerMatrix(const SvdProblem& p) {
  const double m = static_cast<double>(std::max(p.m, p.n));
  const double k = static_cast<double>(p.k());
  return (p.compute_uv ? 12.0 : 4.0) * m * k * k + 1.0;
}

namespace {

template <typename T>
bool AllFinite(const T* a, Index size) {
  for (Index i = 0; i < size; ++i) {
    if (!IsFinite(a[i])) return false;
  }
  return true;
}

template <typename T>
void FillNaN(T* x, Index size) {
  const RealOf<T> nan = std::numeric_limits<RealOf<T>>::quiet_NaN();
  std::fill(x, x + size, T(nan));
}

template <typename T>
void SetIdentity(T* x, Index rows, Index cols) {
  std::fill(x, x + rows * cols, T(0));
  for (Index i = 0; i < std::min(rows, cols); ++i) x[i * cols + i] = T(1);
}

// Per-thread LAPACK driver for one problem shape. LAPACK is column-major, our matrices row-major.
// LAPACK gets the tall orientation (its QR path; the LQ path it takes for wide matrices was 2.2x
// slower for 4096x512 float32, 287 vs 132 ms):
// - m <= n: the row-major m x n buffer is the column-major n x m matrix A^T = conj(V) S U^T, so
//   LAPACK's "vt" output is exactly our row-major u and its "u" output is conj(v), column-major.
// - m > n: A itself is copied transposed (column-major); LAPACK's "u" is u, column-major, and its
//   "vt" is V^H, whose column-major layout is conj(v) row-major.
// full_matrices with m != n: LAPACK computes the thin factors and the larger one is completed
// here (CompleteBasis, on the team). gesdd's own full U of a long thin matrix comes from orgqr,
// which for fewer than 32 reflectors applies them one at a time (a matrix-vector product and a
// rank-one update each, over all of U). Whole SVD, full_matrices, ms, LAPACK's full factor /
// completed (AMD Zen 3): 1000x16 float64 gesdd 8.8 / 3.1, 4096x512 float32 gesdd 1342 / 415,
// parallel_gesdd on two threads 317 / 267. The first min(m, n) columns of full factors are also
// those of thin ones, bit for bit.
template <typename T>
class LapackSvd {
 public:
  using Real = RealOf<T>;
  using Int = lapack::Int;

  explicit LapackSvd(const SvdProblem& p)
      : p_(p),
        tall_(p.m > p.n),
        lm_(static_cast<Int>(tall_ ? p.m : p.n)),
        ln_(static_cast<Int>(tall_ ? p.n : p.m)),
        complete_(p.compute_uv && p.full_matrices && p.m != p.n),
        job_(!p.compute_uv ? 'N' : (p.full_matrices && !complete_ ? 'A' : 'S')),
        lda_(static_cast<Int>(PaddedLeadingDimension<T>(lm_))),
        ldu_(static_cast<Int>(PaddedLeadingDimension<T>(lm_))),
        ldvt_(static_cast<Int>(
            PaddedLeadingDimension<T>(p.full_matrices ? ln_ : static_cast<Int>(p.k())))) {
    const Index mn = p.k(), mx = std::max(p.m, p.n);
    a_.Resize(Index{lda_} * ln_);
    s_.Resize(mn);
    // LAPACK's factors: "u" is lm x (full ? lm : mn), "vt" is (full ? ln : mn) x ln.
    lu_.Resize(std::max<Index>(1, p.compute_uv ? Index{ldu_} * LapackUCols() : 1));
    lvt_.Resize(std::max<Index>(1, p.compute_uv ? Index{ldvt_} * ln_ : 1));
    iwork_.Resize(8 * mn);
    if (kIsComplex<T>) {
      // Complex rwork sizes from the LAPACK documentation of cgesdd/cgesvd:
      // gesdd needs mn * max(5 mn + 7, 2 mx + 2 mn + 1) with vectors, 7 mn without.
      const Index gesdd_rwork =
          p.compute_uv ? mn * std::max(5 * mn + 7, 2 * mx + 2 * mn + 1) : 7 * mn;
      rwork_.Resize(std::max<Index>(1, std::max(gesdd_rwork, 5 * mn)));
    }
  }

  // Factors one matrix into s/u/v (row-major, canonical signs) with `algorithm` (kGesdd, kGesvd
  // or kParallelGesdd, whose steps `team` runs). Returns false if every algorithm failed to
  // converge.
  bool Run(SvdAlgorithm algorithm, ThreadTeam& team, const T* a, Real* s, T* u, T* v) {
    bool ok = false;
    if (algorithm == SvdAlgorithm::kParallelGesdd) {
      ok = RunParallelGesdd(team, a);
    } else if (algorithm == SvdAlgorithm::kGesdd) {
      ok = RunGesdd(team, a);
    }
    if (!ok) ok = RunGesvd(team, a);  // gesdd failed to converge or gesvd was asked for
    if (!ok) return false;
    std::copy(s_.data(), s_.data() + p_.k(), s);
    if (p_.compute_uv) {
      const Index m = p_.m, n = p_.n, uc = p_.u_cols(), vc = p_.v_cols();
      // LAPACK's "u" has lu_cols columns (the larger factor's first ones when complete_).
      const Index lu_cols = LapackUCols();
      // Column j of LAPACK's "vt" (vc or uc entries) is row j of our v (conjugated) or u.
      if (tall_) {
        CopyTransposed(team, m, lu_cols, lu_.data(), ldu_, u, uc, [](T x) { return x; });
        CopyStrided(n, vc, lvt_.data(), ldvt_, v, vc, [](T x) { return Conj(x); });
        if (complete_) CompleteBasis(u, m, uc, lu_cols, CompletionScratch(m), &team);
      } else {
        CopyStrided(m, uc, lvt_.data(), ldvt_, u, uc);
        CopyTransposed(team, n, lu_cols, lu_.data(), ldu_, v, vc, [](T x) { return Conj(x); });
        if (complete_) CompleteBasis(v, n, vc, lu_cols, CompletionScratch(n), &team);
      }
      CanonicalizeSigns(m, uc, n, vc, p_.k(), u, v, &team);
    }
    return true;
  }

 private:
  Int LapackUCols() const { return job_ == 'A' ? lm_ : static_cast<Int>(p_.k()); }

  T* CompletionScratch(Index rows) {
    completion_scratch_.Resize(rows);
    return completion_scratch_.data();
  }

  // The input in LAPACK's orientation (see the class comment), the transpose on `team`.
  void CopyIn(ThreadTeam& team, const T* a) {
    if (!tall_) {
      // Row i of A is column i of LAPACK's matrix A^T.
      CopyStrided(p_.m, p_.n, a, p_.n, a_.data(), lda_);
      return;
    }
    // a_ column-major (m x n) is A^T row-major (n x m).
    CopyTransposed(team, p_.n, p_.m, a, p_.n, a_.data(), lda_, [](T x) { return x; });
  }

  void EnsureWork(Index size) { work_.Resize(std::max<Index>(1, size)); }

  bool RunGesdd(ThreadTeam& team, const T* a) {
    if (gesdd_lwork_ < 0) {
      T query(0);
      lapack::Gesdd<T>(job_, lm_, ln_, a_.data(), lda_, s_.data(), lu_.data(),
                       ldu_, lvt_.data(), ldvt_, &query, -1, rwork_.data(), iwork_.data());
      gesdd_lwork_ = lapack::WorkspaceSize(RealPart(query));
      EnsureWork(gesdd_lwork_);
    }
    CopyIn(team, a);
    const Int info = lapack::Gesdd<T>(job_, lm_, ln_, a_.data(), lda_, s_.data(),
                                      lu_.data(), ldu_, lvt_.data(), ldvt_, work_.data(),
                                      gesdd_lwork_, rwork_.data(), iwork_.data());
    return info == 0;
  }

  bool RunParallelGesdd(ThreadTeam& team, const T* a) {
    if (!parallel_) parallel_ = std::make_unique<ParallelGesdd<T>>(lm_, ln_, job_);
    CopyIn(team, a);
    return parallel_->Run(team, a_.data(), lda_, s_.data(), lu_.data(), ldu_, lvt_.data(),
                          ldvt_) == 0;
  }

  bool RunGesvd(ThreadTeam& team, const T* a) {
    if (gesvd_lwork_ < 0) {
      T query(0);
      lapack::Gesvd<T>(job_, job_, lm_, ln_, a_.data(), lda_, s_.data(),
                       lu_.data(), ldu_, lvt_.data(), ldvt_, &query, -1, rwork_.data());
      gesvd_lwork_ = lapack::WorkspaceSize(RealPart(query));
      EnsureWork(std::max(gesvd_lwork_, gesdd_lwork_));
    }
    CopyIn(team, a);
    const Int info = lapack::Gesvd<T>(job_, job_, lm_, ln_, a_.data(), lda_,
                                      s_.data(), lu_.data(), ldu_, lvt_.data(), ldvt_,
                                      work_.data(), gesvd_lwork_, rwork_.data());
    return info == 0;
  }

  const SvdProblem& p_;
  const bool tall_;    // m > n: LAPACK factors A itself, else A^T
  const Int lm_, ln_;  // LAPACK's view: an lm_ x ln_ column-major matrix, lm_ >= ln_
  const bool complete_;  // full_matrices from thin LAPACK factors (see the class comment)
  const char job_;
  // Leading dimensions of a_, lu_ and lvt_ (PaddedLeadingDimension of their rows).
  const Int lda_, ldu_, ldvt_;
  Int gesdd_lwork_ = -1, gesvd_lwork_ = -1;
  AlignedArray<T> a_, lu_, lvt_, work_, completion_scratch_;
  AlignedArray<Real> s_, rwork_;
  AlignedArray<Int> iwork_;
  std::unique_ptr<ParallelGesdd<T>> parallel_;
};

// Factors matrix i with LAPACK (algorithm kGesdd, kGesvd or kParallelGesdd); NaN outputs if the
// input is not finite or LAPACK fails.
template <typename T>
void SolveWithLapack(LapackSvd<T>& solver, SvdAlgorithm algorithm, ThreadTeam& team,
                     const SvdProblem& p, const SvdBuffers<T>& b, Index i) {
  const Index k = p.k(), us = p.u_size(), vs = p.v_size();
  const T* a = b.a + i * p.a_size();
  RealOf<T>* s = b.s + i * k;
  T* u = p.compute_uv ? b.u + i * us : nullptr;
  T* v = p.compute_uv ? b.v + i * vs : nullptr;
  if (AllFinite(a, p.a_size()) && solver.Run(algorithm, team, a, s, u, v)) return;
  FillNaN(s, k);
  if (p.compute_uv) {
    FillNaN(u, us);
    FillNaN(v, vs);
  }
}

// Decided once per process (the CPU does not change).
bool IsAmdCpu() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool amd = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("amd") != 0;
  }();
  return amd;
#else
  return false;
#endif
}

// Matrices left in a range up to which JacobiRange runs them one at a time on the lone kernels
// (the same bits as in a group). A group costs about as much with one matrix as full, a lone
// matrix only itself. Where the lone kernels schedule a real matrix's sweeps for latency
// (JacobiLoneScheduled), one costs a fraction of a group; us, one thread, gaussian matrices,
// 2-core Xeon (family 6 model 207; noise about 20%), lone / half-width group (AVX2, 8 float or 4
// double lanes: what JacobiRange runs for a short last group on this CPU) / AVX-512 group:
//               float32                 float64
//   12x12       14 / 25 / 32            9 / 19 / 27
//   16x16       16 / 38 / 46            16 / 43 / 62
//   24x24       45 / 108 / 129          57 / 118 / 176
//   32x32       104 / 356 / 414         103 / 270 / 387
//   48x48       259 / 940 / 1320        285 / 862 / 1233
//   64x64       535 / 1820 / 2573       554 / 1939 / 2943
//   100x8       8 / 17 / 19             8 / 15 / 23
//   300x12      29 / 79 / 158           27 / 79 / 160
//   128x32      98 / 327 / 433          125 / 406 / 529
//   1000x16     88 / 496 / 885          106 / 506 / 861
//   500x24      110 / 580 / 923         144 / 597 / 986
//   400x32      153 / 849 / 1384        218 / 888 / 1496
//   200x48      244 / 1067 / 1855       375 / 1214 / 2183
// so the limit is about the half-width group's cost in lone matrices, rounded down, by the work
// max(m, n) min(m, n)^2. Measured again with the current kernels (float32, lone / half-width
// group, us): 48x48 226 / 894, 64x64 477 / 2128, 128x64 556 / 2643, 256x64 712 / 3639, 1000x16
// 151 / 630, 400x32 232 / 843, 500x24 170 / 610; so four lone matrices from 48 columns on too.
// Through TensorFlow (the batch split 4 + 4 instead of one group of 8 on one thread), forward +
// backward, ms, limit 3 / 4: 8x64x64 2.73-2.93 / 1.90-2.69, 8x128x64 3.07-3.31 / 2.20-2.60.
// The other lone kernels (SSE2 builds, complex matrices) keep one or two matrices: us, one
// thread, Zen 5, AVX-512, lone x c | one group holding c (real: the lone kernels before
// scheduling):
//                c=1            c=2            c=3
//   f32 16x16   26.9 | 41.4   49.0 | 44.8    68.8 | 45.5
//   f32 64x64   990 | 2603    1972 | 3081    2722 | 2866
//   c64 16x16   76 | 91       153 | 95       225 | 96
//   c128 48x48  2497 | 2549 (200x48: 6004 | 9195)
// (complex: little latency to hide in a group, so lone pays off only for one matrix; below 8x8 a
// group runs in registers and lone gains nothing).
// Long thin matrices with fewer than 8 columns gain as much from the lone kernels, which stream
// a column in vectors where a group moves every row for all its lanes: us, one matrix, float32,
// Zen 3, lone / half-width group: 64x4 3.5 / 6.4, 200x2 3.5 / 6.2, 1000x1 4.6 / 11.9, 1000x4
// 19 / 72, 4000x4 82 / 316, 12000x4 214 / 994, 100000x3 1137 / 4571, 200x6 11 / 24, 1000x6 34 /
// 107 (a full group of 8: 279); float64, lone / a group of 4: 8000x4 190 / 811, 20000x2 138 /
// 533. Only the smallest (16x2 2.1 / 1.6, 8x4 2.3 / 2.2) stay in groups, which hold them in
// registers.
// Those tiers compare lone matrices with a half-width group. float32 on the AVX2 kernels (Zen 2
// and 3, Intel CPUs without AVX-512) has no half-width kernels, so a short last group costs a
// full group of 8: the limit is then that group's cost in lone matrices, rounded down (Zen 3,
// one thread, us, lone / full group: 10x10 6.7 / 15.5, 64x4 3.5 / 7.2, 14x14 10.6 / 30.5, 100x8
// 10.2 / 25.1, 20x20 28.6 / 83.8, 1000x2 7.5 / 24.5, 24x24 39.2 / 125, 28x28 58.8 / 191, 32x32
// 83 / 278, 300x12 28.7 / 109, 36x36 99 / 387, 40x40 118 / 517, 45x45 169 / 765, 2000x8 96 /
// 383, 56x56 316 / 1401, 1000x16 99 / 444, 64x64 392 / 2215, 200x48 294 / 1452; but 7x7 4.4 /
// 7.1, 8x8 4.6 / 8.3, 30x6 6.4 / 10.2).
// float32 on Intel's AVX-512 kernels gets higher limits from a work of 60000: measured again with
// the current kernels, a half-width group cost 2.1-6.2 lone matrices there (the tables above:
// 1.8-4.4). 2-core Xeon (family 6 model 207), one thread, us, lone / half-width group (AVX2, 8
// lanes) / ratio: 8x8 3.6 / 7.6 / 2.1, 12x12 7.9 / 19.1 / 2.4, 16x16 10.6 / 38.2 / 3.6, 50x10
// 8.0 / 24.4 / 3.1, 100x8 7.4 / 21.1 / 2.9, 20x20 24.8 / 69.8 / 2.8, 24x24 36.3 / 110 / 3.0,
// 32x32 58.9 / 241 / 4.1, 300x12 25.7 / 84.0 / 3.3, 40x40 107 / 463 / 4.3, 2000x8 74.6 / 383 /
// 5.1, 48x48 148 / 789 / 5.3, 128x32 88.0 / 397 / 4.5, 64x48 162 / 888 / 5.5, 56x56 236 / 1291 /
// 5.5, 1000x16 79.6 / 431 / 5.4, 64x64 315 / 1950 / 6.2, 700x20 89.4 / 425 / 4.8, 500x24 96.8 /
// 452 / 4.7, 200x40 172 / 789 / 4.6, 400x32 133 / 682 / 5.1, 200x48 248 / 1245 / 5.0, 128x64
// 398 / 2252 / 5.7, 256x64 508 / 2969 / 5.9. So 4 from 60000, and 5 from 200000 with 48 columns
// or more: before / after, a batch on one thread, us: 4x48x48 920 / 607, 5x64x64 2285 / 1556,
// 4x40x40 576 / 452, 4x56x56 1508 / 1004, 5x200x48 1396 / 1206; through TF on two threads
// (min of 30 calls, forward + backward, ms): 10x64x64 2.63-2.66 / 2.37-2.40, 12x56x56 2.19 /
// 1.84-1.86, 8x48x48 1.18-1.20 / 1.17-1.20. Smaller matrices keep the general tiers although
// their ratio allows more: a batch the higher limit spreads over both threads as lone matrices,
// instead of one half-width group on one thread, lost through TF (6x24x24, limit 3: 0.43-0.44 ->
// 0.51-0.54 ms), as waking the second thread cost more than it saved. AMD CPUs with AVX-512 (Zen
// 4, 5) keep the general tiers until measured.
// p.jacobi_lone_limit overrides it (tests).
template <typename T>
Index JacobiLoneLimit(const SvdProblem& p) {
  if (p.jacobi_lone_limit >= 0) return p.jacobi_lone_limit;
  const Index k = p.k(), rows = std::max(p.m, p.n);
  const Index work = rows * k * k;
  if (!kIsComplex<T> && JacobiLoneScheduled(p.jacobi_isa)) {
    if (work < 256) return 0;
    const Index lanes = JacobiLanes<T>(p.jacobi_isa);
    if (std::is_same<T, float>::value && lanes == 8) {
      if (work < 1000) return 1;
      if (work < 12000) return 2;
      return work < 60000 ? 3 : 4;
    }
    if (std::is_same<T, float>::value && lanes == 16 && !IsAmdCpu() && work >= 60000) {
      return work >= 200000 && k >= 48 ? 5 : 4;
    }
    if (work < 6000) return 1;
    if (work < 30000) return 2;
    if (work < 200000) return 3;
    return rows >= 4 * k || k >= 48 ? 4 : 3;
  }
  if (k < 8) return 0;
  if (kIsComplex<T>) return 1;
  return work >= 32 * 32 * 32 ? 2 : 1;
}

// Which kernels JacobiRange runs next on the `remaining` matrices of its range, and on how many.
enum class JacobiRunKind { kGroup, kHalfGroup, kLone };
struct JacobiRun {
  JacobiRunKind kind;
  Index count;
};

// What JacobiRange's choice of kernels depends on: the group's lanes, the half-width kernels'
// (0: none) and the lone limit.
struct JacobiRunLimits {
  Index lanes, half_lanes, lone_limit;
};

template <typename T>
JacobiRunLimits JacobiRunLimitsOf(const SvdProblem& p) {
  const std::string half = JacobiHalfWidthIsa(p.jacobi_isa);
  return {JacobiLanes<T>(p.jacobi_isa), half.empty() ? 0 : JacobiLanes<T>(half),
          JacobiLoneLimit<T>(p)};
}

// Groups of l.lanes matrices; the last few of a range one at a time through the lone kernels (up
// to l.lone_limit), or else a last group that fills at most half of them through the half-width
// kernels where there are (l.half_lanes > 0). A last group of more than half: the half-width
// kernels on half of it and the lone kernels on the rest, where those are at most l.lone_limit /
// 2, else one part-filled group. The lone limit is about a half-width group's cost in lone matrices
// (JacobiLoneLimit) and a full group costs 1.4-1.8 half-width ones, so half a limit of lone
// matrices after a half-width group costs less than the full group. One thread, gaussian float32,
// us, a whole batch, one group / a half-width group and the lone kernels (Xeon, family 6 model
// 207; noise 5-10%): 9x64x64 3213-3263 / 2164-2246, 10x64x64 3317-3385 / 2468-2496, 9x48x48
// 1268-1304 / 921-940, 10x48x48 1293-1297 / 1058-1085, 9x200x48 2101-2207 / 1447-1497, 10x200x48
// 2104-2262 / 1694-1744, 9x32x32 375-388 / 310-318, 9x24x24 165-171 / 146-154, 9x1000x16
// 592-636 / 476-536, 10x1000x16 574-645 / 567-618.
inline JacobiRun NextJacobiRun(Index remaining, const JacobiRunLimits& l) {
  if (remaining <= l.lone_limit) return {JacobiRunKind::kLone, 1};
  if (l.half_lanes > 0 &&
      (remaining <= l.half_lanes ||
       (remaining < l.lanes && remaining - l.half_lanes <= l.lone_limit / 2))) {
    return {JacobiRunKind::kHalfGroup, std::min(l.half_lanes, remaining)};
  }
  return {JacobiRunKind::kGroup, std::min(l.lanes, remaining)};
}

// Through the SIMD Jacobi kernels as NextJacobiRun picks; all give the same bits. LAPACK for the
// rare matrix on which Jacobi does not converge within its sweep cap.
template <typename T>
void JacobiRange(const SvdProblem& p, const SvdBuffers<T>& b, Index begin, Index end) {
  JacobiBatchSvd<T> jacobi(p);
  SvdProblem half_problem = p;
  half_problem.jacobi_isa = JacobiHalfWidthIsa(p.jacobi_isa);
  std::unique_ptr<JacobiBatchSvd<T>> half, lone;
  std::unique_ptr<LapackSvd<T>> fallback;
  const JacobiRunLimits limits = JacobiRunLimitsOf<T>(p);
  bool needs_fallback[64];
  for (Index first = begin, count = 0; first < end; first += count) {
    const JacobiRun run = NextJacobiRun(end - first, limits);
    JacobiBatchSvd<T>* solver = &jacobi;
    if (run.kind == JacobiRunKind::kLone) {
      if (!lone) lone = std::make_unique<JacobiBatchSvd<T>>(p, /*lone=*/true);
      solver = lone.get();
    } else if (run.kind == JacobiRunKind::kHalfGroup) {
      if (!half) half = std::make_unique<JacobiBatchSvd<T>>(half_problem);
      solver = half.get();
    }
    count = run.count;
    solver->Run(b, first, count, needs_fallback);
    for (Index lane = 0; lane < count; ++lane) {
      if (!needs_fallback[lane]) continue;
      if (!fallback) fallback = std::make_unique<LapackSvd<T>>(p);
      ThreadTeam alone(nullptr, 0);
      SolveWithLapack(*fallback, SvdAlgorithm::kGesdd, alone, p, b, first + lane);
    }
  }
}

}  // namespace

// When kAuto runs the batched Jacobi kernels instead of gesdd: min(m, n) <= max_k and
// max(m, n) min(m, n)^2 <= max_work; matrices with columns longer than max_rows (max(m, n)) only
// while that work is at most long_max_work. A column of a SIMD group takes 64 bytes a row, so past
// ~350 rows a pair of them no longer fits a 48 KB L1 and Jacobi's cost per row climbs, while
// gesdd starts such shapes with a cheap QR. Measured on a 2-core Intel Xeon (family 6 model 207,
// AVX-512 kernels, 16 float / 8 double lanes; min of 5 runs, batches of 64), us per matrix, one
// thread, thin u and v, gaussian matrices, jacobi / gesdd:
//    n     float32      float64      complex64    complex128
//   16                                            25 / 49
//   24                                            83 / 117
//   32     22 / 83      55 / 96      134 / 134    176 / 175
//   40     41 / 125     102 / 157
//   48     70 / 172     171 / 223    228 / 279
//   56     107 / 213    270 / 278    346 / 356
//   64     169 / 286    397 / 356    567 / 512
//   72     240 / 360    557 / 450
//   80     347 / 430    785 / 555
//   96     677 / 621    1574 / 851
// Tall, float32: 128x64 343 / 455, 150x56 274 / 362, 200x48 256 / 326, 300x40 249 / 281,
// 300x32 158 / 193, 350x32 192 / 205, 400x32 305 / 218, 256x48 342 / 351, 200x64 484 / 514,
// 400x24 145 / 155, 500x24 208 / 188, 400x16 75 / 92, 800x16 154 / 147, 1000x16 195 / 152,
// 1000x12 104 / 112, 1500x12 166 / 165, 3000x8 178 / 195, 4000x4 64 / 119.
// Tall, float64: 100x48 282 / 333, 128x48 402 / 410, 128x32 149 / 166, 150x32 190 / 170,
// 200x32 255 / 197, 256x24 177 / 164, 300x16 91 / 91, 200x12 38 / 49, 400x12 90 / 73,
// 200x8 18 / 29, 400x8 38 / 42, 1000x8 100 / 79, 2000x4 56 / 66.
// (An earlier Xeon run, with the Jacobi kernels of that time and the machine loaded, had put the
// limits at 48 and 40.) Values only (compute_uv = false) moved the float32 crossover only slightly
// (32: 30 / 58, 48: 103 / 139, 64: 489 / 485 in that run).
// On a 2-core AMD EPYC (Zen 4, AVX-512 on 256-bit units) gesdd is slower at these sizes and
// the real crossovers move up (min of 3-5 runs, batches of 200):
//    n        float32          float64
//   48     109 / 240         305 / 318
//   56     225 / 254         477 / 448
//   64     310-361 / 384-452 571 / 464
//   72     379-440 / 419-488
//   80     498 / 621         1130 / 700
//   96     903 / 728         2049 / 1037
//   100x64 345-353 / 384-408
// (so AMD CPUs with AVX-512 get the second set of limits: the choice depends on the machine,
// never on the batch or the thread count).
// With the QR preconditioning (jacobi.h) long thin matrices cost far less on the Jacobi path, so on
// the Xeon it also takes them up to min(M, N) = 24 and M N = 16384 (batches of 16, one thread, us
// per matrix, jacobi / gesdd: float32 1000x16 81 / 144, 500x24 81 / 166, 2000x16 (beyond) 212 /
// 258; float64 300x24 88 / 155, 1000x16 148 / 199). Through TensorFlow, forward + backward over
// tf.linalg.svd, before / after: 32x500x24 1.22 / 2.0, 64x1000x16 1.1-1.2 / 1.7; a few matrices
// per thread lose a little, as groups cost as much part-filled: 8x1000x16 1.35 / 1.2, 2x500x24
// 1.6-1.8 / 1.4-1.6. min(M, N) = 32 stayed with parallel_gesdd's QR path, which runs a single
// matrix on the whole pool: 1x400x32 2.0 there, 1.4 on the Jacobi path (64x400x32: 1.35 / 2.3).
// With the lone kernels scheduled for latency and Q of long thin matrices in compact WY form
// (jacobi.h), the Jacobi path also wins up to min(M, N) = 32 and M N = 32768 (float32: 49152), and
// a lone matrix loses little (us per matrix, one call, jacobi / what auto picked before / the
// faster of gesdd and parallel_gesdd; batches of 1 | 32 or 64):
//   float32  400x32   230 / 218 / 218 | 97 / 207 / 207
//            1000x32  390 / 342 / 342 | 235 / 323 / 323
//            2000x16  242 / 291 / 271 | 176 / 301 / 271
//            3000x16  370 / 422 / 379 | 357 / 464 / 398
//            2000x24  452 / 571 / 585 | 377 / 561 / 542
//            4000x8   203 / 241 / 194 | 162 / 231 / 182
//            6000x8   338 / 362 / 264 | 330 / 357 / 264
//            2000x32  669 / 550 / 563 | 628 / 537 / 551 (beyond)
//   float64  2000x16  321 / 377 / 371 | 277 / 383 / 381
//            1000x24  303 / 379 / 328 | 236 / 381 / 306
//            400x32   291 / 280 / 280 | 191 / 269 / 268
//            1000x32  478 / 481 / 486 | 445 / 470 / 478
// With the register-tiled Q [W; 0], the fused QR passes and the lone kernels' vector pivot
// search, the Jacobi path won further still: us per matrix, one thread, gaussian, thin u and v,
// a full group (16 float / 8 double) per matrix | one matrix alone (lone kernels; LAPACK: the
// faster of gesdd on one thread and parallel_gesdd on two), jacobi / the faster of gesdd and
// parallel_gesdd (noise about 15%):
//   float32  256x48   144 / 330 | 272 / 327     1000x48  382 / 611 | 597 / 618
//            1500x48  608 / 846 | 939 / 848     2000x48  891 / 964 | 995 / 970
//            192x64   215 / 447 | 447 / 437     256x64   285 / 489 | 514 / 504
//            384x64   388 / 544 | 565 / 566     448x64   456 / 600 | 689 / 685
//            512x64   356 / 619 | 849 / 653     1000x64  769 / 881 | 1109 / 863
//            80x80    289 / 428 | 633 / 411     96x96    560 / 614 | 964 / 603
//            1500x32  250 / 396 | 386 / 391     3000x32  541 / 1026 | 714 / 974
//            4000x24  464 / 895 | 555 / 673     6000x16  380 / 675 | 444 / 533
//            12000x8  476 / 571 | 550 / 462     20000x4  497 / 385 | 2569 / 337
//   float64  128x48   201 / 346 | 330 / 335     512x48   408 / 619 | 693 / 704
//            1000x48  723 / 847 | 853 / 833     128x64   413 / 513 | 630 / 505
//            2000x24  404 / 644 | 461 / 632     4000x16  476 / 666 | 473 / 553
//            6000x8   311 / 341 | 307 / 287     8000x8   709 / 494 | 410 / 495
// Values only, float32, group | alone: 448x64 180 / 251 | 361 / 281, 1000x48 179 / 230 | 300 /
// 248, 6000x16 207 / 228 | 259 / 223. So on Intel CPUs the limits now also take the shapes where
// a group wins by 10% or more while a matrix alone loses at most about 10%: square-ish float32
// matrices up to 448x64 (past it, one 512x64 alone took 30% longer), and long thin ones through
// the QR path up to min(M, N) = 48 (float32: M N = 96000, M min(M, N)^2 = 3.1e6; float64: 64000
// and 1.2e6) and 6144 rows (past them, fewer than 16 columns lose as a group or alone: 8000x8
// float64, 20000x4).
// AMD CPUs without AVX-512 (Zen 2 and 3: AVX2 kernels, 8 float / 4 double lanes) took the same
// limits as Intel CPUs (the QR path since extended, below). On a 2-core AMD EPYC (Zen 3), us
// per matrix, one thread, gaussian, thin u and v, a full group | one matrix alone (lone kernels;
// LAPACK: the faster of gesdd and parallel_gesdd on two threads), jacobi / LAPACK, min of 3
// rounds (noise about 15%):
//   float32  128x64   330 / 563 | 644 / 556     256x64   475 / 730 | 821 / 713
//            448x64   634 / 939 | 1028 / 912    512x64   723 / 1069 | 1353 / 1048 (beyond)
//            256x48   241 / 462 | 442 / 474     1000x48  527 / 971 | 974 / 938
//            2000x48  987 / 1720 | 1621 / 1671 (beyond)
//            1000x32  240 / 510 | 457 / 505
//            3000x32  756 / 1305 | 1069 / 1237  6000x16  490 / 948 | 638 / 707
//            96x96    935 / 862 | 1542 / 849    20000x4  655 / 645 | 1769 / 481 (both beyond)
//   float64  48x48    268 / 321 | 430 / 317     128x48   383 / 529 | 576 / 491
//            512x48   805 / 968 | 1147 / 923    1000x48  1137 / 1551 | 1438 / 1473 (beyond)
//            128x32   133 / 230 | 236 / 227     2000x24  564 / 929 | 635 / 888
//            4000x16  594 / 970 | 598 / 746     8000x8   567 / 754 | 520 / 554 (beyond)
//            64x64    660 / 533 | 937 / 519 (beyond)
// The second set had kept these shapes (past M min(M, N)^2 = 420000 float32, 120000 float64) on
// gesdd, 1.2-2.1x slower there as groups; a matrix alone loses 13-24% at 48-64 columns with up to
// 512 rows (less on the Xeon) and little or nothing on the long thin QR path.
// Once the lone kernels ran the compact WY products in SIMD registers and kept their scratch
// (scratch_pool.h), the Jacobi path won the long thin QR path on the Zen 3 much further, alone
// as well as in groups (us per matrix, one thread, as above; LAPACK: the faster of gesdd and
// parallel_gesdd over a batch, and in brackets parallel_gesdd with one matrix on two threads):
//   float32  512x64   719 / 1021 | 900 / 1021 (1183)    1000x64  1014 / 1438 | 1221 / 1438 (1630)
//            3000x64  2630 / 3218 | 3022 / 3218 (3270)  1000x56  744 / 1218 | 960 / 1218 (1404)
//            2000x48  983 / 1596 | 1292 / 1596 (1753)   4000x48  2064 / 2467 | 2287 / 2467 (2430)
//            6000x32  1765 / 2245 | 1735 / 2245 (2521)  8000x32  2481 / 2964 | 2227 / 2964 (2638)
//            10000x12 698 / 774 | 660 / 774 (820)       12000x16 1006 / 1401 | 1142 / 1401 (1365)
//            12000x8  455 / 538 | 612 / 538 (603)       16000x8  710 / 704 | 808 / 704 (762)
//   float64  1000x48  1403 / 1758 | 1317 / 1758 (1719)  3000x48  2908 / 3604 | 2683 / 3604 (3606)
//            4000x32  1927 / 2819 | 1737 / 2819 (2437)  4000x24  1297 / 2005 | 1127 / 2005 (1646)
//            8000x12  753 / 1081 | 691 / 1081 (1012)    12000x8  817 / 872 | 647 / 872 (856)
//            64x64    680 / 543 | 725 / 543 (708)       128x64   822 / 804 | 851 / 804 (1126)
// So AMD CPUs without AVX-512 take a third set: the QR path up to min(M, N) = 64 (float32) and
// 48 (float64), M N = 192000 (144000), M min(M, N)^2 = 3000 x 64^2 (3000 x 48^2) and 10000
// (12000) rows, where a lone float32 matrix with 8 columns starts to lose. The Xeon's limits
// stay as measured there, before these kernels.
// Once matrices with four columns ran plain sweeps (jacobi.h) and those with fewer than eight took
// the lone kernels too (JacobiLoneLimit), float64 matrices with up to four columns beat LAPACK
// far past M min(M, N)^2 = 32000 on the Zen 3 (us per matrix; Jacobi lone | in a group of 4 /
// gesdd, parallel_gesdd over a batch | parallel_gesdd alone on two threads): 4000x3 62 | 56 / 125,
// 101 | 185; 8000x4 190 | 203 / 319, 234 | 306; 12000x4 278 | 309 / 481, 343 | 383; 20000x2 138
// | 133 / 418, 316 | 380; 50000x1 188 | 122 / 680, 516 | 565. So kAmdAvx2's float64 limit for
// long thin matrices is 12000 x 4^2 (the preconditioned shapes had their own limits already).
// Re-measured on the Xeon with those lone kernels, the QR path past 48 columns won there too (us
// per matrix, float32, gaussian, thin u and v; jacobi / parallel_gesdd (what auto took); batches
// of 32 on one thread | one matrix, a team of two threads): 500x56 320 / 656 | 508 / 590, 700x56
// 395 / 770, 1000x56 586 / 927, 1500x56 882 / 1152 | 1001 / 1030, 1700x56 1035 / 1262, 2000x56
// 1213 / 1304 (beyond); 500x60 362 / 693; 500x64 603 / 717 | 676 / 749, 64x500 584 / 714 | 639 /
// 732, 700x64 591 / 841, 1000x64 808 / 1022 | 931 / 1012, 1200x64 1044 / 1115, 1500x64 1231 /
// 1269 | 1194 / 1238, 2000x64 1625 / 1508 (beyond). So the Xeon's float32 QR path now goes to
// min(M, N) = 64 and M min(M, N)^2 = 6.2e6 (1500 x 64^2), still within M N = 96000.
// Float64 likewise, to 60 columns (us per matrix; jacobi / parallel_gesdd, batches of 16 on one
// thread | one matrix on two threads): 500x52 634 / 899 | 757 / 991, 500x56 735 / 1000 | 805 /
// 1161, 56x500 968 / 1181 | 839 / 1112, 700x56 969 / 1228 | 1008 / 1232, 1000x56 1367 / 1505 |
// 1213 / 1560, 200x60 631 / 769, 500x60 894 / 1229 | 998 / 1121, 850x60 1395 / 1582 | 1350 /
// 1608; 500x62 983 / 1298 but 500x63 1346 / 1234 and 500x64 1417 / 1155, 1000x60 1635 / 1668,
// 1200x56 1653 / 1748. Square-ish ones against gesdd, batches of 16: 52x52 261 / 292, 56x56 332 /
// 320, 60x60 411 / 394, 100x56 370 / 385, 128x60 488 / 613, 150x56 408 / 520. So float64's QR
// path goes to min(M, N) = 60 and M min(M, N)^2 = 1000 x 56^2 within M N = 64000 for matrices at
// least twice as long as wide; the others keep max_k = 48.
struct JacobiLimitSet {
  Index max_k, max_work, max_rows, long_max_work;
  // Shapes the kernels QR-precondition (jacobi.h's JacobiPreconditioned) also while min(m, n) <=
  // precond_max_k, max(m, n) min(m, n) <= precond_max_size, the work is at most
  // precond_max_work and max(m, n) <= precond_max_rows (0: no extension).
  Index precond_max_k, precond_max_size, precond_max_work, precond_max_rows;
};
constexpr Index kAnyRows = std::numeric_limits<Index>::max();
template <typename T> struct JacobiCrossover;
template <> struct JacobiCrossover<float> {
  static constexpr JacobiLimitSet kDefault{64, 448 * 64 * 64, 448, 200000,
                                           64, 96000, 1500 * 64 * 64, 6144};
  static constexpr JacobiLimitSet kAmdAvx512{64, 420000, kAnyRows, 420000, 0, 0, 0, 0};
  static constexpr JacobiLimitSet kAmdAvx2{64, 448 * 64 * 64, 448, 200000,
                                           64, 192000, 3000 * 64 * 64, 10000};
};
template <> struct JacobiCrossover<double> {
  static constexpr JacobiLimitSet kDefault{48, 300000, 128, 32000, 60, 64000, 1000 * 56 * 56, 6144};
  static constexpr JacobiLimitSet kAmdAvx512{48, 120000, kAnyRows, 120000, 0, 0, 0, 0};
  static constexpr JacobiLimitSet kAmdAvx2{48, 300000, 128, 12000 * 4 * 4,
                                           48, 144000, 3000 * 48 * 48, 12000};
};
template <> struct JacobiCrossover<std::complex<float>> {
  static constexpr JacobiLimitSet kDefault{48, 300000, kAnyRows, 300000, 0, 0, 0, 0};
  static constexpr JacobiLimitSet kAmdAvx512 = kDefault;
  static constexpr JacobiLimitSet kAmdAvx2 = kDefault;
};
template <> struct JacobiCrossover<std::complex<double>> {
  static constexpr JacobiLimitSet kDefault{24, 30000, kAnyRows, 30000, 0, 0, 0, 0};
  static constexpr JacobiLimitSet kAmdAvx512 = kDefault;
  static constexpr JacobiLimitSet kAmdAvx2 = kDefault;
};

// AMD CPUs with AVX-512 (Zen 4 and later), where the second limit sets were measured.
bool IsAmdCpuWithAvx512() {
  static const bool amd_avx512 = IsAmdCpu() && CpuRunsIsa("avx512");
  return amd_avx512;
}

template <typename T>
bool AutoPicksJacobi(const SvdProblem& p) {
  const Index k = p.k(), rows = std::max(p.m, p.n);
  const JacobiLimitSet& limits = IsAmdCpuWithAvx512() ? JacobiCrossover<T>::kAmdAvx512
                                 : IsAmdCpu()          ? JacobiCrossover<T>::kAmdAvx2
                                                       : JacobiCrossover<T>::kDefault;
  const Index work = rows * k * k;
  if (k <= limits.max_k &&
      work <= (rows <= limits.max_rows ? limits.max_work : limits.long_max_work)) {
    return true;
  }
  // Past max_k only matrices at least twice as long as wide (float64's square ones tied or lost).
  if (k > limits.max_k && rows < 2 * k) return false;
  return jacobi::JacobiPreconditioned(rows, k, kIsComplex<T>) && k <= limits.precond_max_k &&
         rows * k <= limits.precond_max_size && work <= limits.precond_max_work &&
         rows <= limits.precond_max_rows;
}

// When kAuto runs kParallelGesdd instead of gesdd: min(m, n) >= kMinK (kMinKAmd on AMD CPUs with
// AVX-512: the choice depends on the machine, never on the batch or the thread count), or >=
// kTallMinK for shapes that take its QR path (max >= 11/6 min). Measured on the 2-core AMD EPYC
// (Zen 4) dev machine, ms per matrix, gesdd / parallel_gesdd: one thread each over a batch | one
// matrix on two threads (noise about 10%):
//               float32                 float64                 complex64     complex128
//   128x128   1.38/1.38 | 1.70/1.58   1.96/2.02 | 1.88/1.97   2.21/2.40 |   3.74/4.59 |
//                                                             2.18/2.42     4.38/4.78
//   192x192   3.03/2.89 | 2.89/2.34   4.81/4.73 | 4.59/4.11   6.58/6.33 |   9.39/11.0 |
//                                                             5.42/5.12     11.2/9.59
//   256x256   5.86/5.33 | 5.80/3.94   11.7/10.4 | 11.6/9.24   13.2/15.0 |   26.8/26.9 |
//                                                             14.3/8.53     26.3/19.0
//   384x384   14.1/14.1 | 13.9/9.88   27.7/31.1 | 29.0/24.0   31.8/32.3 |   70.9/65.1 |
//                                                             30.3/21.6     60.3/45.3
//   320x160   3.35/2.88 | 3.31/3.08   6.26/5.88 | 6.35/5.11   6.58/6.54 |   11.9/12.5 |
//                                                             6.59/6.87     11.2/10.3
//   4096x32   3.72/2.34 | 2.38/2.47   3.06/2.52 | 2.55/2.37
//   1000x64   1.44/1.20 | 1.31/1.27   2.67/2.29 | 1.99/1.85
//   4096x128  17.5/12.6 | 17.8/10.5   31.5/23.4 | 31.4/16.9
//   128x8192  33.8/22.4 | 33.0/17.9   63.7/40.5 | 62.5/31.2
// On the QR path the real kernels win even on one thread (the QR and its back-transformation
// are blocked more coarsely than gesdd's orgqr + gemm); complex ones do not.
// On the 2-core Intel Xeon (family 6 model 207), once the bidiagonalisation's column pass loaded
// aligned vectors and prefetched, the real kernels won on one thread from min(M, N) = 128, where
// BidiagonalSvd starts splitting (ms per matrix, batches of 20, min of 9 runs, gesdd /
// parallel_gesdd): float32 96x96 0.75/0.76, 112x112 0.95/0.98, 128x128 1.37/1.26, 160x160
// 2.06/1.91, 150x220 2.15/1.96, 220x150 1.99/1.80; float64 96x96 0.93/0.96, 112x112 1.21/1.23,
// 128x128 1.74/1.62, 160x160 2.55/2.33, 150x220 2.65/2.41. On the 2-core AMD EPYC (Zen 3, no
// AVX-512; batches of 4-20, min of 5 runs, one thread each over a batch | one matrix on two
// threads, gesdd / parallel_gesdd), as on the Xeon: float32 96x96 0.87/0.87 | 0.87/1.08, 112x112
// 1.10/1.11 | 1.10/1.33, 128x128 1.61/1.46 | 1.67/1.49, 160x160 2.30/2.14 | 2.26/2.10, 192x192
// 3.48/3.19 | 3.43/2.79, 220x150 2.43/2.22 | 2.48/2.20; float64 112x112 1.67/1.67 | 1.69/1.84,
// 128x128 2.40/2.27 | 2.40/2.40, 144x144 2.83/2.73 | 2.86/2.94, 160x160 3.64/3.43 | 3.66/3.52. So
// only AMD CPUs with AVX-512 (Zen 4 on: the table above, 128x128 a tie) keep kMinKAmd.
// Real long thin matrices past the Jacobi limits take the QR path with any number of columns:
// gesdd forms fewer than 32 reflectors' U in orgqr's unblocked code (a rank-one update of all of U
// per reflector), where ParallelGesdd's blocked Q wins on one thread as well as on two. Zen 3, ms
// per matrix, gesdd / parallel_gesdd, one thread each over a batch of 4 | one matrix on two
// threads: float32 100000x1 1.18/0.88 | 1.15/0.59, 100000x3 2.51/1.66 | 2.41/1.23, 50000x4
// 1.62/0.99 | 1.59/0.80, 12000x8 0.78/0.52 | 0.77/0.58, 20000x16 3.04/2.24 | 3.05/1.60, 6500x20
// 1.34/1.14 | 1.33/1.05, 15000x24 4.01/3.25 | 4.03/2.15; float64 100000x2 2.17/1.55 | 2.22/1.17,
// 12000x8 1.06/0.81 | 1.03/0.72, 4000x12 0.61/0.53 | 0.61/0.55, 8000x16 1.81/1.58 | 1.81/1.28
// (kTallMinK was 32).
template <typename T> struct ParallelCrossover;
template <> struct ParallelCrossover<float> {
  static constexpr Index kMinK = 128, kMinKAmd = 192, kTallMinK = 1;
};
template <> struct ParallelCrossover<double> {
  static constexpr Index kMinK = 128, kMinKAmd = 192, kTallMinK = 1;
};
template <> struct ParallelCrossover<std::complex<float>> {
  static constexpr Index kMinK = 192, kMinKAmd = 192, kTallMinK = 192;
};
template <> struct ParallelCrossover<std::complex<double>> {
  static constexpr Index kMinK = 256, kMinKAmd = 256, kTallMinK = 256;
};

template <typename T>
bool AutoPicksParallel(const SvdProblem& p) {
  const Index k = p.k(), rows = std::max(p.m, p.n);
  const Index min_k =
      IsAmdCpuWithAvx512() ? ParallelCrossover<T>::kMinKAmd : ParallelCrossover<T>::kMinK;
  if (k >= min_k) return true;
  return k >= ParallelCrossover<T>::kTallMinK && ParallelGesdd<T>::TakesQrPath(rows, k);
}

// Whether kGram's kernel takes the problem's matrices: float32, at most kGramMaxK columns or rows
// (full factors: its thin ones completed to a basis, as on every path).
template <typename T>
bool GramTakes(const SvdProblem& p) {
  return std::is_same<T, float>::value && GramSvdTakes(p.m, p.n);
}

// When kAuto runs kGram: wherever its kernel takes the shape and max(m, n) is at least 48 for one
// column (or row), else 32 per column. Below that the Jacobi kernels, 16 matrices to a vector,
// win: kGram's cost per matrix starts at its eigensolver and the passes' setup (about 0.2 us for
// 3 columns). Measured on the 2-core Intel Xeon (family 6 model 207, AVX-512), float32, one
// thread, batches of 4000 (2000 from 1024 rows), us per matrix, jacobi / gram: 16x1 0.04 / 0.06,
// 32x1 0.06 / 0.07, 64x1 0.10 / 0.08; 32x2 0.11 / 0.15, 64x2 0.18 / 0.18, 96x2 0.26 / 0.21, 128x2
// 0.32 / 0.24; 32x3 0.19 / 0.29, 64x3 0.33 / 0.34, 96x3 0.45 / 0.40, 128x3 0.59 / 0.44, 512x3
// 2.50 / 1.08, 1024x3 5.75 / 2.62, 10000x3 (batch 200) 62.7 / 18.8; 32x4 0.27 / 0.50, 64x4 0.47
// / 0.58, 96x4 0.71 / 0.67, 128x4 0.94 / 0.75, 256x4 2.18 / 1.31; wide: 2x64 0.15 / 0.08, 3x32
// 0.17 / 0.19, 3x64 0.29 / 0.22, 4x64 0.43 / 0.39, 3x1024 5.08 / 1.41. Five to eight columns
// (batches of 2000, 1000 from 192 rows, 512 from 1000): 96x5 1.22 / 0.93, 160x5 2.18 / 1.21,
// 1000x5 15.4 / 4.54; 128x6 1.89 / 1.52, 192x6 2.68 / 1.88, 1000x6 17.0 / 6.13; 160x7 2.74 /
// 2.42, 224x7 3.44 / 2.81, 1000x7 20.0 / 9.40; 192x8 3.48 / 3.25, 224x8 3.83 / 3.57, 256x8 5.32 /
// 3.75, 1000x8 20.6 / 11.0; wide 5x160 1.70 / 0.87, 8x256 4.38 / 2.92, 8x1000 18.2 / 8.25. Not
// measured on AMD CPUs, which keep the same limits.
template <typename T>
bool AutoPicksGram(const SvdProblem& p) {
  const Index rows = std::max(p.m, p.n), k = p.k();
  return GramTakes<T>(p) && rows >= (k == 1 ? 48 : 32 * k);
}

// What kAuto runs without kGram (also what kGram hands the matrices it does not solve).
template <typename T>
SvdAlgorithm AutoAlgorithmBesidesGram(const SvdProblem& p) {
  if (AutoPicksJacobi<T>(p)) return SvdAlgorithm::kJacobi;
  if (AutoPicksParallel<T>(p)) return SvdAlgorithm::kParallelGesdd;
  return SvdAlgorithm::kGesdd;
}

template <typename T>
SvdAlgorithm ResolveSvdAlgorithm(const SvdProblem& p) {
  if (p.algorithm != SvdAlgorithm::kAuto) return p.algorithm;
  if (AutoPicksGram<T>(p)) return SvdAlgorithm::kGram;
  return AutoAlgorithmBesidesGram<T>(p);
}

// The algorithm that runs the problem's matrices in batches: kGram's fallback where its kernel
// does not take the shape.
template <typename T>
SvdAlgorithm BatchAlgorithm(const SvdProblem& p) {
  const SvdAlgorithm algorithm = ResolveSvdAlgorithm<T>(p);
  if (algorithm == SvdAlgorithm::kGram && !GramTakes<T>(p)) return AutoAlgorithmBesidesGram<T>(p);
  return algorithm;
}

template <typename T>
Index SvdBatchAlignment(const SvdProblem& p, Index threads) {
  if (p.k() == 0 || BatchAlgorithm<T>(p) != SvdAlgorithm::kJacobi) return 1;
  // A batch that the lone kernels could take a range per thread at a time: unaligned, so that it
  // spreads over the threads instead of into groups on a few (20 64x64 matrices on 16 threads: one
  // or two lone ones each, not groups of 8 on three).
  const JacobiRunLimits limits = JacobiRunLimitsOf<T>(p);
  if (p.batch <= std::max<Index>(1, threads) * limits.lone_limit) return 1;
  // Ranges of whole half-width groups where JacobiRange runs a short tail on those kernels.
  return limits.half_lanes > 0 ? limits.half_lanes : limits.lanes;
}

template <typename T>
double SvdRangeCost(const SvdProblem& p, Index count) {
  if (p.k() == 0 || BatchAlgorithm<T>(p) != SvdAlgorithm::kJacobi) {
    return static_cast<double>(count);
  }
  // JacobiRange's runs, in lone matrices: a half-width group about lone_limit + 1 of them
  // (JacobiLoneLimit), a full group 1.6 half-width ones where there are (1.4-1.8 measured, see
  // NextJacobiRun), else itself lone_limit + 1.
  const JacobiRunLimits limits = JacobiRunLimitsOf<T>(p);
  const double half_cost = static_cast<double>(limits.lone_limit + 1);
  const double group_cost = limits.half_lanes > 0 ? 1.6 * half_cost : half_cost;
  double cost = 0.0;
  for (Index remaining = count; remaining > 0;) {
    const JacobiRun run = NextJacobiRun(remaining, limits);
    cost += run.kind == JacobiRunKind::kLone        ? 1.0
            : run.kind == JacobiRunKind::kHalfGroup ? half_cost
                                                    : group_cost;
    remaining -= run.count;
  }
  return cost;
}

template <typename T>
bool SvdUsesTeam(const SvdProblem& p) {
  return p.k() > 0 && BatchAlgorithm<T>(p) == SvdAlgorithm::kParallelGesdd;
}

namespace {

// Matrices that kGram could not certify, gathered into a batch of their own for `rest`'s
// algorithm (Jacobi runs them in groups; a matrix gets the same bits anywhere in a batch).
template <typename T>
class GramLeftovers {
 public:
  explicit GramLeftovers(const SvdProblem& rest) : rest_(rest) {}

  void Add(Index i) { indices_[count_++] = i; }
  bool Full() const { return count_ == kCapacity; }

  // Solves the gathered matrices of b and writes their outputs back.
  void Solve(const SvdBuffers<T>& b, ThreadTeam* team) {
    if (count_ == 0) return;
    const Index as = rest_.a_size(), k = rest_.k(), us = rest_.u_size(), vs = rest_.v_size();
    a_.Resize(count_ * as);
    s_.Resize(count_ * k);
    u_.Resize(std::max<Index>(1, count_ * us));
    v_.Resize(std::max<Index>(1, count_ * vs));
    for (Index j = 0; j < count_; ++j) {
      std::copy(b.a + indices_[j] * as, b.a + (indices_[j] + 1) * as, a_.data() + j * as);
    }
    SvdBuffers<T> gathered{a_.data(), s_.data(), u_.data(), v_.data()};
    SvdRange(rest_, gathered, 0, count_, team);
    for (Index j = 0; j < count_; ++j) {
      const Index i = indices_[j];
      std::copy(s_.data() + j * k, s_.data() + (j + 1) * k, b.s + i * k);
      if (rest_.compute_uv) {
        std::copy(u_.data() + j * us, u_.data() + (j + 1) * us, b.u + i * us);
        std::copy(v_.data() + j * vs, v_.data() + (j + 1) * vs, b.v + i * vs);
      }
    }
    count_ = 0;
  }

 private:
  static constexpr Index kCapacity = 64;
  const SvdProblem rest_;
  Index indices_[kCapacity];
  Index count_ = 0;
  AlignedArray<T> a_, u_, v_;
  AlignedArray<RealOf<T>> s_;
};

// The full factor q (rows x rows, row-major) of the thin one (rows x k): its first k columns, the
// rest completed to a basis (complete_basis.h), as the other paths do. x: rows values of scratch.
void ExtendToFull(const float* thin, Index rows, Index k, float* q, float* x, ThreadTeam* team) {
  CopyStrided(rows, k, thin, k, q, rows);
  if (k < rows) CompleteBasis(q, rows, rows, k, x, team);
}

// kGram over [begin, end): gram_svd.h's kernel for each matrix it takes, the rest (shapes it does
// not take, matrices it cannot certify) through AutoAlgorithmBesidesGram. Full factors: the
// kernel's thin ones, extended.
template <typename T>
void GramRange(const SvdProblem& p, const SvdBuffers<T>& b, Index begin, Index end,
               ThreadTeam* team) {
  SvdProblem rest = p;
  rest.algorithm = AutoAlgorithmBesidesGram<T>(p);
  if constexpr (std::is_same<T, float>::value) {
    if (GramTakes<T>(p)) {
      GramSvd gram(p.m, p.n, p.compute_uv, p.jacobi_isa);
      GramLeftovers<T> leftovers(rest);
      const Index as = p.a_size(), k = p.k(), us = p.u_size(), vs = p.v_size();
      constexpr Index kChunk = 64, kInPlaceRun = 16;
      const bool full = p.compute_uv && p.full_matrices;
      AlignedArray<float> thin_u, thin_v, x;
      if (full) {
        thin_u.Resize(std::min(kChunk, end - begin) * p.m * k);
        thin_v.Resize(std::min(kChunk, end - begin) * p.n * k);
        x.Resize(std::max(p.m, p.n));
      }
      bool ok[kChunk];
      for (Index first = begin; first < end; first += kChunk) {
        const Index count = std::min(kChunk, end - first);
        float* u = !p.compute_uv ? nullptr : full ? thin_u.data() : b.u + first * us;
        float* v = !p.compute_uv ? nullptr : full ? thin_v.data() : b.v + first * vs;
        gram.Run(count, b.a + first * as, b.s + first * k, u, v, ok);
        for (Index i = 0; i < count;) {
          if (ok[i]) {
            if (full) {
              ExtendToFull(u + i * p.m * k, p.m, k, b.u + (first + i) * us, x.data(), team);
              ExtendToFull(v + i * p.n * k, p.n, k, b.v + (first + i) * vs, x.data(), team);
            }
            ++i;
            continue;
          }
          // A run of uncertified matrices long enough to fill the fallback's groups is solved
          // where it lies (a batch of ill-conditioned ones: no copies in and out); shorter runs
          // are gathered. A matrix's bits do not depend on its neighbours either way.
          Index run = i + 1;
          while (run < count && !ok[run]) ++run;
          if (run - i >= kInPlaceRun) {
            SvdRange(rest, b, first + i, first + run, team);
          } else {
            for (Index j = i; j < run; ++j) {
              leftovers.Add(first + j);
              if (leftovers.Full()) leftovers.Solve(b, team);
            }
          }
          i = run;
        }
      }
      leftovers.Solve(b, team);
      return;
    }
  }
  SvdRange(rest, b, begin, end, team);
}

}  // namespace

template <typename T>
void SvdRange(const SvdProblem& p, const SvdBuffers<T>& b, Index begin, Index end,
              ThreadTeam* team) {
  const Index us = p.u_size(), vs = p.v_size();
  if (p.k() == 0) {
    // Empty matrices: no singular values; full factors are identities (as tf.linalg.svd).
    if (!p.compute_uv) return;
    for (Index i = begin; i < end; ++i) {
      SetIdentity(b.u + i * us, p.m, p.u_cols());
      SetIdentity(b.v + i * vs, p.n, p.v_cols());
    }
    return;
  }
  // Also before Jacobi: OpenBLAS's idle worker threads otherwise compete for the cores.
  lapack::UseSingleThreadedBlas();
  const SvdAlgorithm algorithm = ResolveSvdAlgorithm<T>(p);
  if (algorithm == SvdAlgorithm::kGram) {
    GramRange(p, b, begin, end, team);
    return;
  }
  if (algorithm == SvdAlgorithm::kJacobi) {
    JacobiRange(p, b, begin, end);
    return;
  }
  ThreadTeam alone(nullptr, 0);
  ThreadTeam& runner = team != nullptr ? *team : alone;
  LapackSvd<T> solver(p);
  for (Index i = begin; i < end; ++i) SolveWithLapack(solver, algorithm, runner, p, b, i);
}

#define TFSVD_INSTANTIATE(T)                                                               \
  template bool AutoPicksJacobi<T>(const SvdProblem&);                                     \
  template SvdAlgorithm ResolveSvdAlgorithm<T>(const SvdProblem&);                         \
  template Index SvdBatchAlignment<T>(const SvdProblem&, Index);                           \
  template double SvdRangeCost<T>(const SvdProblem&, Index);                               \
  template bool SvdUsesTeam<T>(const SvdProblem&);                                         \
  template void SvdRange<T>(const SvdProblem&, const SvdBuffers<T>&, Index, Index,         \
                            ThreadTeam*);
TFSVD_INSTANTIATE(float)
TFSVD_INSTANTIATE(double)
TFSVD_INSTANTIATE(std::complex<float>)
TFSVD_INSTANTIATE(std::complex<double>)
#undef TFSVD_INSTANTIATE

}  // namespace tfsvd
