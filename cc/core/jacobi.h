// One-sided (Hestenes) Jacobi SVD of small matrices: the per-matrix math, written once for every
// "lane" type.
//
// A lane type V holds the same scalar of several independent matrices (one per SIMD lane) or of
// just one (V = float/double: one matrix per CUDA thread, or scalar host code). Everything here is
// plain arithmetic on V through a handful of primitives (LaneSqrt, LaneAbs, LaneFma, LaneFnma,
// LaneSelect, LaneAny, LaneAll, LaneAnd, LaneOr, LaneNot, LaneFrexpExponent, LanePow2): the scalar
// versions are below, the SIMD versions live next to the SIMD pack type (jacobi_simd.inc) and are
// found by argument-dependent lookup. No branch depends on one lane's data alone: a rotation is
// computed for every lane and applied through a select, and a lane that rotated nothing in a sweep
// is left bit-for-bit alone afterwards, so a matrix gets the same bits alone or anywhere inside a
// batch. Multiply-adds are fused (LaneFma) where the hardware has FMA, so the AVX2, AVX-512 and
// CUDA builds of this code round identically; the SSE2 build rounds them separately.
//
// Storage: B is rows x cols, column-major (column j at b + j * rows), V is cols x cols likewise.
// Complex matrices are split into real and imaginary planes (re at b, im at b + rows * cols).
// Pipeline per matrix: JacobiScaleInput, JacobiSweeps, JacobiFinish; larger real matrices first
// go through JacobiQr and sweep R^T (JacobiPreconditioned).
//
// Internal linkage on purpose: this header is compiled once per instruction set (SSE2, AVX2,
// AVX-512 translation units) and each must keep its own copy, or the linker could merge an
// AVX-512 instantiation into the baseline path.
#pragma once

#include <cmath>
#include <utility>

#include "core/scalar.h"

namespace tfsvd {
namespace jacobi {
namespace {

// ---- scalar lanes ---------------------------------------------------------------------------------

TFSVD_HD inline float LaneSqrt(float x) { return ::sqrtf(x); }
TFSVD_HD inline double LaneSqrt(double x) { return ::sqrt(x); }
TFSVD_HD inline float LaneAbs(float x) { return ::fabsf(x); }
TFSVD_HD inline double LaneAbs(double x) { return ::fabs(x); }
TFSVD_HD inline float LaneFma(float a, float b, float c) { return ::fmaf(a, b, c); }
TFSVD_HD inline double LaneFma(double a, double b, double c) { return ::fma(a, b, c); }
// c - a b, fused.
TFSVD_HD inline float LaneFnma(float a, float b, float c) { return ::fmaf(-a, b, c); }
TFSVD_HD inline double LaneFnma(double a, double b, double c) { return ::fma(-a, b, c); }
TFSVD_HD inline float LaneSelect(bool m, float a, float b) { return m ? a : b; }
TFSVD_HD inline double LaneSelect(bool m, double a, double b) { return m ? a : b; }
TFSVD_HD inline bool LaneAny(bool m) { return m; }
TFSVD_HD inline bool LaneAll(bool m) { return m; }
TFSVD_HD inline bool LaneAnd(bool a, bool b) { return a && b; }
TFSVD_HD inline bool LaneOr(bool a, bool b) { return a || b; }
TFSVD_HD inline bool LaneNot(bool a) { return !a; }

// e with x = f 2^e, f in [0.5, 1) (frexp), as a floating-point value; 0 for x == 0.
TFSVD_HD inline float LaneFrexpExponent(float x) {
  int e = 0;
  ::frexpf(x, &e);
  return static_cast<float>(e);
}
TFSVD_HD inline double LaneFrexpExponent(double x) {
  int e = 0;
  ::frexp(x, &e);
  return static_cast<double>(e);
}

// 2^k for an integral k (held as a floating-point value) as two normal factors, first * second =
// 2^k with second = 2^clamp(k) over the normal exponents: x * first * second, in that order,
// rounds at most once for every x and k the scaling of a matrix and of its singular values needs.
TFSVD_HD inline void LanePow2(float k, float* first, float* second) {
  const float kc = k < -126.0f ? -126.0f : (k > 127.0f ? 127.0f : k);
  *first = ::ldexpf(1.0f, static_cast<int>(k - kc));
  *second = ::ldexpf(1.0f, static_cast<int>(kc));
}
TFSVD_HD inline void LanePow2(double k, double* first, double* second) {
  const double kc = k < -1022.0 ? -1022.0 : (k > 1023.0 ? 1023.0 : k);
  *first = ::ldexp(1.0, static_cast<int>(k - kc));
  *second = ::ldexp(1.0, static_cast<int>(kc));
}

template <class V>
using MaskOf = decltype(std::declval<V>() < std::declval<V>());

template <class V, class R>
TFSVD_HD inline MaskOf<V> AllLanes() {
  return V(R(0)) < V(R(1));
}
template <class V, class R>
TFSVD_HD inline MaskOf<V> NoLanes() {
  return V(R(0)) < V(R(0));
}

// ---- constants --------------------------------------------------------------------------------------

template <class R> struct JacobiLimits;
template <> struct JacobiLimits<float> {
  static constexpr float kEps = 1.1920928955078125e-07f;   // 2^-23
  static constexpr float kTiny = 1.1754943508222875e-38f;  // smallest normal
  static constexpr float kMax = 3.4028234663852886e+38f;
  // |zeta| from which 1 + zeta^2 rounds to zeta^2 (so sqrt(1 + zeta^2) == |zeta|), far from overflow.
  static constexpr float kBig = 16777216.0f;  // 2^24
};
template <> struct JacobiLimits<double> {
  static constexpr double kEps = 2.220446049250313e-16;  // 2^-52
  static constexpr double kTiny = 2.2250738585072014e-308;
  static constexpr double kMax = 1.7976931348623157e+308;
  static constexpr double kBig = 9007199254740992.0;  // 2^53
};

// Tolerances of one problem shape (rows >= cols; the input is scaled so its largest entry has
// magnitude in [0.5, 1)).
template <class R>
struct JacobiTolerances {
  // Columns p, q count as orthogonal when |b_p^H b_q| <= tol |b_p| |b_q|: the relative criterion
  // of Demmel and Veselic that gives singular values to high relative accuracy. tol =
  // max(sqrt(rows), 2) eps: LAPACK's xGESVJ takes half that, which sits at the rounding level of
  // the computed dot products, and small matrices then ping-pong between tiny rotations (6 in
  // 5000 random 2x2 float matrices hit the sweep cap); with rows * eps instead, |I - U^H U|
  // grows like rows * eps (LAPACK's orthogonality ratio reached 24 at 64x64).
  R tol;
  // Columns with |b_j|^2 below this are numerically zero (their dot products would run into
  // gradual underflow): they are not rotated and their left singular vectors are completed to an
  // orthonormal basis instead. Relative to the largest entry (~1) this is ~1e-31 in float.
  R small;
  int max_sweeps;  // LAPACK's xGESVJ uses 30
};

template <class R>
TFSVD_HD inline JacobiTolerances<R> MakeJacobiTolerances(Index rows) {
  JacobiTolerances<R> t;
  const R root = static_cast<R>(::sqrt(static_cast<double>(rows)));
  t.tol = (root > R(2) ? root : R(2)) * JacobiLimits<R>::kEps;
  t.small = static_cast<R>(rows) * (JacobiLimits<R>::kTiny / JacobiLimits<R>::kEps);
  t.max_sweeps = 30;
  return t;
}

// A column whose squared norm, updated through a rotation, fell below this fraction of its old
// value is summed again: the update alpha - t gamma cancels, and its error is ~eps * old / new.
template <class R> TFSVD_HD inline R ShrinkToRecompute() { return R(1) / R(64); }

// Real sweeps take disjoint pairs two at a time (JacobiStepReal2) from kPairedCols columns on, as
// long as B and V fit in kPairedBytes (about the L1 cache): the round-robin order touches every
// column each round, while the cyclic order keeps column p cached through its row of pairs. One
// group, us per matrix, float32, AVX-512 (cyclic / paired): 8x8 0.67 / 0.59, 16x16 4.5 / 3.8,
// 24x24 (beyond L1) 15 / 20, 32x32 36 / 51. The size test counts 64-byte (AVX-512) elements
// whatever the lane type, and V whether or not it is accumulated, so that every build, the lone
// kernels (one matrix) and both compute_uv settings pick the same order (and give the same bits).
constexpr Index kPairedCols = 4;
constexpr Index kPairedBytes = 40 << 10;
constexpr Index kPairedElementBytes = 64;
// Larger real matrices take the cyclic order two rows at a time, skewed into pairs of disjoint
// pairs (JacobiSweeps), while a column of a group is at most this size (rows <= 128), so that the
// four columns of a step stay in L1. One full group, us per matrix, float32, AVX-512, Zen 5,
// cyclic / skewed: 32x32 20.9 / 17.9, 48x48 61 / 53, 64x64 166 / 151, 96x96 547 / 508, 100x64
// 212 / 190; float64 48x48 144 / 123, 64x64 341 / 311; but with longer columns 200x48 143 / 161,
// 150x32 50 / 54, 300x24 49 / 56 (float32).
constexpr Index kSkewedColumnBytes = 8 << 10;

// ---- sums -------------------------------------------------------------------------------------------

// Columns longer than kSumBlockRows are summed in blocks of that many rows, each block's partial
// sums added to the running ones: one chain through rows / 4 additions drifts like rows / 4 eps
// where the terms are alike (a float32 column of 200000 entries 0.1: |b|^2 off by 3000 eps, its
// singular value and u by 1500, against 1 for gesdd), and blocks of 1024 rows keep that near 8.
// Shorter columns are summed exactly as one block. A multiple of 4, so that row i goes to partial
// sum i mod 4 in every block.
constexpr Index kSumBlockRows = 1024;

// One block of DotReal's sums into fresh acc[0 .. 3].
template <class V, class R>
TFSVD_HD inline void DotRealBlock(const V* x, const V* y, Index rows, V* acc) {
  V acc0(R(0)), acc1(R(0)), acc2(R(0)), acc3(R(0));
  Index i = 0;
  for (; i + 4 <= rows; i += 4) {
    acc0 = LaneFma(x[i], y[i], acc0);
    acc1 = LaneFma(x[i + 1], y[i + 1], acc1);
    acc2 = LaneFma(x[i + 2], y[i + 2], acc2);
    acc3 = LaneFma(x[i + 3], y[i + 3], acc3);
  }
  if (i < rows) acc0 = LaneFma(x[i], y[i], acc0);
  if (i + 1 < rows) acc1 = LaneFma(x[i + 1], y[i + 1], acc1);
  if (i + 2 < rows) acc2 = LaneFma(x[i + 2], y[i + 2], acc2);
  acc[0] = acc0;
  acc[1] = acc1;
  acc[2] = acc2;
  acc[3] = acc3;
}

// acc[0 .. 3] = the four sums of block(start, length, out) over rows in blocks of kSumBlockRows,
// added up sum by sum: DotReal's and DotComplex's long columns.
template <class V, class Block>
TFSVD_HD inline void SumInBlocks(Index rows, Block block, V* acc) {
  block(Index{0}, rows < kSumBlockRows ? rows : kSumBlockRows, acc);
  for (Index start = kSumBlockRows; start < rows; start += kSumBlockRows) {
    const Index left = rows - start;
    V part[4];
    block(start, left < kSumBlockRows ? left : kSumBlockRows, part);
    for (int l = 0; l < 4; ++l) acc[l] = acc[l] + part[l];
  }
}

// DotReal of columns longer than kSumBlockRows. Out of line: a long column's sums take far longer
// than the call, and DotReal's callers stay small.
template <class V, class R>
__attribute__((noinline)) TFSVD_HD V DotRealLong(const V* x, const V* y, Index rows) {
  V acc[4];
  SumInBlocks<V>(rows, [x, y](Index start, Index length, V* out) {
    DotRealBlock<V, R>(x + start, y + start, length, out);
  }, acc);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

// Sums over rows split four ways (independent dependency chains, the same order on every lane
// type), in blocks of kSumBlockRows: x^T y, |x|^2. The loop of a single block is written out
// here rather than called from DotRealBlock: through it, groups of 8 float32 took 2-5% longer
// (us, one thread, Zen 3: 64x64 2210 / 2276, 48x48 915 / 937, 16x16 43.6 / 46.1).
template <int kRows, class V, class R>
TFSVD_HD inline V DotReal(const V* x, const V* y, Index rows_rt) {
  const Index rows = kRows > 0 ? kRows : rows_rt;
  if (kRows == 0 && rows > kSumBlockRows) return DotRealLong<V, R>(x, y, rows);
  V acc0(R(0)), acc1(R(0)), acc2(R(0)), acc3(R(0));
  Index i = 0;
  for (; i + 4 <= rows; i += 4) {
    acc0 = LaneFma(x[i], y[i], acc0);
    acc1 = LaneFma(x[i + 1], y[i + 1], acc1);
    acc2 = LaneFma(x[i + 2], y[i + 2], acc2);
    acc3 = LaneFma(x[i + 3], y[i + 3], acc3);
  }
  if (i < rows) acc0 = LaneFma(x[i], y[i], acc0);
  if (i + 1 < rows) acc1 = LaneFma(x[i + 1], y[i + 1], acc1);
  if (i + 2 < rows) acc2 = LaneFma(x[i + 2], y[i + 2], acc2);
  return (acc0 + acc1) + (acc2 + acc3);
}

// One block of DotComplex's sums into fresh acc: real parts in acc[0 .. 1], imaginary in [2 .. 3].
template <class V, class R>
TFSVD_HD inline void DotComplexBlock(const V* xr, const V* xi, const V* yr, const V* yi,
                                     Index rows, V* acc) {
  V r0(R(0)), r1(R(0)), i0(R(0)), i1(R(0));
  Index i = 0;
  for (; i + 2 <= rows; i += 2) {
    r0 = LaneFma(xr[i], yr[i], LaneFma(xi[i], yi[i], r0));
    i0 = LaneFma(xr[i], yi[i], LaneFnma(xi[i], yr[i], i0));
    r1 = LaneFma(xr[i + 1], yr[i + 1], LaneFma(xi[i + 1], yi[i + 1], r1));
    i1 = LaneFma(xr[i + 1], yi[i + 1], LaneFnma(xi[i + 1], yr[i + 1], i1));
  }
  if (i < rows) {
    r0 = LaneFma(xr[i], yr[i], LaneFma(xi[i], yi[i], r0));
    i0 = LaneFma(xr[i], yi[i], LaneFnma(xi[i], yr[i], i0));
  }
  acc[0] = r0;
  acc[1] = r1;
  acc[2] = i0;
  acc[3] = i1;
}

// x^H y of complex columns (re, im planes): (real part, imaginary part); two chains each, in
// blocks of kSumBlockRows (one block written out, as in DotReal).
template <int kRows, class V, class R>
TFSVD_HD inline void DotComplex(const V* xr, const V* xi, const V* yr, const V* yi, Index rows_rt,
                                V* re, V* im) {
  const Index rows = kRows > 0 ? kRows : rows_rt;
  V acc[4];
  if (kRows == 0 && rows > kSumBlockRows) {
    SumInBlocks<V>(rows, [xr, xi, yr, yi](Index start, Index length, V* out) {
      DotComplexBlock<V, R>(xr + start, xi + start, yr + start, yi + start, length, out);
    }, acc);
  } else {
    DotComplexBlock<V, R>(xr, xi, yr, yi, rows, acc);
  }
  *re = acc[0] + acc[1];
  *im = acc[2] + acc[3];
}

template <int kRows, bool kComplex, class V, class R>
TFSVD_HD inline V SquaredNorm(const V* x, const V* x_im, Index rows) {
  if (kComplex) {
    return DotReal<kRows, V, R>(x, x, rows) + DotReal<kRows, V, R>(x_im, x_im, rows);
  }
  return DotReal<kRows, V, R>(x, x, rows);
}

// |b_j|^2 of every column.
template <int kRows, int kCols, bool kComplex, class V, class R>
TFSVD_HD inline void ColumnSquaredNorms(const V* b, Index rows_rt, Index cols_rt, V* out) {
  const Index rows = kRows > 0 ? kRows : rows_rt;
  const Index cols = kCols > 0 ? kCols : cols_rt;
  for (Index j = 0; j < cols; ++j) {
    out[j] = SquaredNorm<kRows, kComplex, V, R>(b + j * rows, b + rows * cols + j * rows, rows);
  }
}

// ---- scaling ----------------------------------------------------------------------------------------

// Scales every lane's matrix (x: `size` values, all planes) by a power of two so that its largest
// entry (real or imaginary part) has magnitude in [0.5, 1), into out (which may be x): exact, and
// it keeps matrices near overflow or underflow in range. Lanes holding NaN/Inf become zero.
// Returns those lanes; *exponent gets e (entries were multiplied by 2^-e). From kScaleChainValues
// values on, the maximum is taken in four chains: one compare-and-select chain through a long
// group was latency bound, and a maximum of magnitudes does not depend on the order (NaN lanes are
// zeroed anyway).
constexpr Index kScaleChainValues = 64;

template <class V, class R>
TFSVD_HD inline MaskOf<V> JacobiScaleInput(const V* x, Index size, V* out, V* exponent) {
  const V big(JacobiLimits<R>::kMax);
  V amax[4] = {V(R(0)), V(R(0)), V(R(0)), V(R(0))};
  MaskOf<V> finite = AllLanes<V, R>();
  Index i = 0;
  // Small matrices in one chain (fewer operations; its latency hides behind the other work).
  for (; size >= kScaleChainValues && i + 4 <= size; i += 4) {
    for (int c = 0; c < 4; ++c) {
      const V a = LaneAbs(x[i + c]);
      finite = LaneAnd(finite, a <= big);  // false for NaN too
      amax[c] = LaneSelect(a > amax[c], a, amax[c]);
    }
  }
  for (; i < size; ++i) {
    const V a = LaneAbs(x[i]);
    finite = LaneAnd(finite, a <= big);
    amax[0] = LaneSelect(a > amax[0], a, amax[0]);
  }
  amax[0] = LaneSelect(amax[1] > amax[0], amax[1], amax[0]);
  amax[2] = LaneSelect(amax[3] > amax[2], amax[3], amax[2]);
  amax[0] = LaneSelect(amax[2] > amax[0], amax[2], amax[0]);
  const MaskOf<V> bad = LaneNot(finite);
  const V e = LaneFrexpExponent(LaneSelect(bad, V(R(0)), amax[0]));
  V first, second;
  LanePow2(V(R(0)) - e, &first, &second);
  for (i = 0; i < size; ++i) out[i] = LaneSelect(bad, V(R(0)), (x[i] * first) * second);
  *exponent = e;
  return bad;
}

// ---- the rotation -----------------------------------------------------------------------------------

// For columns with |b_p|^2 = alpha, |b_q|^2 = beta and b_p^H b_q = g (real, or the modulus of the
// complex product): the rotation [b_p b_q] <- [c b_p - s b_q, s b_p + c b_q] that makes them
// orthogonal. t = s / c is the smaller root of t^2 + 2 zeta t - 1 = 0, zeta = (beta - alpha) / 2g
// (Rutishauser), so |t| <= 1 (inner rotation). Lanes with g == 0 produce garbage and must be masked.
template <class V, class R>
TFSVD_HD inline void JacobiRotation(V alpha, V beta, V g, V* c, V* s, V* t) {
  const V zeta = (beta - alpha) / (V(R(2)) * g);
  const V az = LaneAbs(zeta);
  // Past kBig, sqrt(1 + zeta^2) == |zeta| exactly in floating point; this also avoids overflow.
  const V root = LaneSelect(az < V(JacobiLimits<R>::kBig), LaneSqrt(LaneFma(az, az, V(R(1)))), az);
  const V t_abs = V(R(1)) / (az + root);
  *t = LaneSelect(zeta < V(R(0)), V(R(0)) - t_abs, t_abs);
  *c = V(R(1)) / LaneSqrt(LaneFma(*t, *t, V(R(1))));
  *s = *t * *c;
}

// The lanes on which columns with squared norms alpha, beta and product gamma are rotated: not
// yet orthogonal to the tolerance, and neither numerically zero.
template <class V, class R>
TFSVD_HD inline MaskOf<V> JacobiRotates(V alpha, V beta, V gamma, const JacobiTolerances<R>& t) {
  const V small(t.small);
  return LaneAnd(LaneAbs(gamma) > V(t.tol) * LaneSqrt(alpha) * LaneSqrt(beta),
                 LaneAnd(alpha >= small, beta >= small));
}

// x <- c x - s y, y <- s x + c y on the lanes of `mask` (all lanes when `all`).
template <int kN, class V, class M>
TFSVD_HD inline void RotateReal(V* x, V* y, Index n_rt, V c, V s, M mask, bool all) {
  const Index n = kN > 0 ? kN : n_rt;
  if (all) {
    for (Index i = 0; i < n; ++i) {
      const V xi = x[i], yi = y[i];
      x[i] = LaneFnma(s, yi, c * xi);
      y[i] = LaneFma(s, xi, c * yi);
    }
  } else {
    for (Index i = 0; i < n; ++i) {
      const V xi = x[i], yi = y[i];
      x[i] = LaneSelect(mask, LaneFnma(s, yi, c * xi), xi);
      y[i] = LaneSelect(mask, LaneFma(s, xi, c * yi), yi);
    }
  }
}

// Complex: with b_p^H b_q = g e^{i phi}, [b_p b_q] <- [c b_p - s e^{-i phi} b_q, s e^{i phi} b_p +
// c b_q] (a unitary 2x2); (er, ei) = e^{i phi}.
template <int kN, class V, class M>
TFSVD_HD inline void RotateComplex(V* xr, V* xi, V* yr, V* yi, Index n_rt, V c, V s, V er, V ei,
                                   M mask, bool all) {
  const Index n = kN > 0 ? kN : n_rt;
  const V ser = s * er, sei = s * ei;  // s e^{i phi}
  for (Index i = 0; i < n; ++i) {
    const V ar = xr[i], ai = xi[i], br = yr[i], bi = yi[i];
    // c a - s e^{-i phi} b
    const V nar = LaneFnma(ser, br, LaneFnma(sei, bi, c * ar));
    const V nai = LaneFma(sei, br, LaneFnma(ser, bi, c * ai));
    // s e^{i phi} a + c b
    const V nbr = LaneFnma(sei, ai, LaneFma(ser, ar, c * br));
    const V nbi = LaneFma(sei, ar, LaneFma(ser, ai, c * bi));
    if (all) {
      xr[i] = nar;
      xi[i] = nai;
      yr[i] = nbr;
      yi[i] = nbi;
    } else {
      xr[i] = LaneSelect(mask, nar, ar);
      xi[i] = LaneSelect(mask, nai, ai);
      yr[i] = LaneSelect(mask, nbr, br);
      yi[i] = LaneSelect(mask, nbi, bi);
    }
  }
}

// Updates the squared norms of a rotated pair: alpha - t g and beta + t g (exact for the exact
// rotation), summed again where that cancels. Lanes outside `rotate` keep theirs.
template <int kRows, bool kComplex, class V, class R>
TFSVD_HD inline void UpdateNorms(const V* bp, const V* bp_im, const V* bq, const V* bq_im,
                                 Index rows, MaskOf<V> rotate, V t, V g, V* alpha_p, V* alpha_q) {
  const V alpha = *alpha_p, beta = *alpha_q;
  V new_p = LaneFnma(t, g, alpha), new_q = LaneFma(t, g, beta);
  const V shrink(ShrinkToRecompute<R>());
  const MaskOf<V> redo_p = LaneAnd(rotate, new_p < alpha * shrink);
  const MaskOf<V> redo_q = LaneAnd(rotate, new_q < beta * shrink);
  if (LaneAny(redo_p)) {
    new_p = LaneSelect(redo_p, SquaredNorm<kRows, kComplex, V, R>(bp, bp_im, rows), new_p);
  }
  if (LaneAny(redo_q)) {
    new_q = LaneSelect(redo_q, SquaredNorm<kRows, kComplex, V, R>(bq, bq_im, rows), new_q);
  }
  *alpha_p = LaneSelect(rotate, new_p, alpha);
  *alpha_q = LaneSelect(rotate, new_q, beta);
}

// One Jacobi step on columns p, q of a real B (and of V when kWithV), given their squared norms
// (updated). Returns the lanes rotated.
template <int kRows, int kCols, bool kWithV, class V, class R>
TFSVD_HD inline MaskOf<V> JacobiStepReal(V* bp, V* bq, Index rows, V* vp, V* vq, Index vrows,
                                         V* alpha_p, V* alpha_q, const JacobiTolerances<R>& t) {
  const V gamma = DotReal<kRows, V, R>(bp, bq, rows);
  const V alpha = *alpha_p, beta = *alpha_q;
  const MaskOf<V> rotate = JacobiRotates<V, R>(alpha, beta, gamma, t);
  if (!LaneAny(rotate)) return rotate;
  V c, s, tn;
  JacobiRotation<V, R>(alpha, beta, gamma, &c, &s, &tn);
  const bool all = LaneAll(rotate);
  RotateReal<kRows>(bp, bq, rows, c, s, rotate, all);
  if (kWithV) RotateReal<kCols>(vp, vq, vrows, c, s, rotate, all);
  UpdateNorms<kRows, false, V, R>(bp, bp, bq, bq, rows, rotate, tn, gamma, alpha_p, alpha_q);
  return rotate;
}

template <int kRows, int kCols, bool kWithV, class V, class R>
TFSVD_HD inline MaskOf<V> JacobiStepComplex(V* bpr, V* bpi, V* bqr, V* bqi, Index rows, V* vpr,
                                            V* vpi, V* vqr, V* vqi, Index vrows, V* alpha_p,
                                            V* alpha_q, const JacobiTolerances<R>& t) {
  V gr, gi;
  DotComplex<kRows, V, R>(bpr, bpi, bqr, bqi, rows, &gr, &gi);
  const V alpha = *alpha_p, beta = *alpha_q;
  // g = |b_p^H b_q| without squaring: a product of two tiny columns squared would underflow (and
  // pass the convergence test it fails).
  const V agr = LaneAbs(gr), agi = LaneAbs(gi);
  const MaskOf<V> re_larger = agr > agi;
  const V big = LaneSelect(re_larger, agr, agi), little = LaneSelect(re_larger, agi, agr);
  const V ratio = little / big;  // 0/0 where g == 0: masked out
  const V g = LaneSelect(big > V(R(0)), big * LaneSqrt(LaneFma(ratio, ratio, V(R(1)))), V(R(0)));
  const MaskOf<V> rotate = JacobiRotates<V, R>(alpha, beta, g, t);  // |g| = g
  if (!LaneAny(rotate)) return rotate;
  V c, s, tn;
  JacobiRotation<V, R>(alpha, beta, g, &c, &s, &tn);
  const V er = gr / g, ei = gi / g;
  const bool all = LaneAll(rotate);
  RotateComplex<kRows>(bpr, bpi, bqr, bqi, rows, c, s, er, ei, rotate, all);
  if (kWithV) RotateComplex<kCols>(vpr, vpi, vqr, vqi, vrows, c, s, er, ei, rotate, all);
  UpdateNorms<kRows, true, V, R>(bpr, bpi, bqr, bqi, rows, rotate, tn, g, alpha_p, alpha_q);
  return rotate;
}

// Two pairs' rotations in one pass over the rows (independent columns: more instruction-level
// parallelism); each element gets exactly RotateReal's arithmetic.
template <int kN, class V, class M>
TFSVD_HD inline void RotateReal2(V* __restrict__ x0, V* __restrict__ y0, V c0, V s0, M m0,
                                 V* __restrict__ x1, V* __restrict__ y1, V c1, V s1, M m1,
                                 Index n_rt, bool all) {
  const Index n = kN > 0 ? kN : n_rt;
  if (all) {
    for (Index i = 0; i < n; ++i) {
      const V a0 = x0[i], b0 = y0[i], a1 = x1[i], b1 = y1[i];
      x0[i] = LaneFnma(s0, b0, c0 * a0);
      y0[i] = LaneFma(s0, a0, c0 * b0);
      x1[i] = LaneFnma(s1, b1, c1 * a1);
      y1[i] = LaneFma(s1, a1, c1 * b1);
    }
  } else {
    for (Index i = 0; i < n; ++i) {
      const V a0 = x0[i], b0 = y0[i], a1 = x1[i], b1 = y1[i];
      x0[i] = LaneSelect(m0, LaneFnma(s0, b0, c0 * a0), a0);
      y0[i] = LaneSelect(m0, LaneFma(s0, a0, c0 * b0), b0);
      x1[i] = LaneSelect(m1, LaneFnma(s1, b1, c1 * a1), a1);
      y1[i] = LaneSelect(m1, LaneFma(s1, a1, c1 * b1), b1);
    }
  }
}

// Two disjoint pairs (p0, q0), (p1, q1) of a real B: per pair exactly JacobiStepReal's
// arithmetic, interleaved so that one pair's long latency chains (dot product, square roots,
// divisions) overlap with the other's.
template <int kRows, int kCols, bool kWithV, class V, class R>
TFSVD_HD inline MaskOf<V> JacobiStepReal2(V* b, Index rows_rt, V* v, Index cols_rt, Index p0,
                                          Index q0, Index p1, Index q1, V* alpha,
                                          const JacobiTolerances<R>& t) {
  const Index rows = kRows > 0 ? kRows : rows_rt;
  const Index cols = kCols > 0 ? kCols : cols_rt;
  V* bp0 = b + p0 * rows;
  V* bq0 = b + q0 * rows;
  V* bp1 = b + p1 * rows;
  V* bq1 = b + q1 * rows;
  const V gamma0 = DotReal<kRows, V, R>(bp0, bq0, rows);
  const V gamma1 = DotReal<kRows, V, R>(bp1, bq1, rows);
  const V a0 = alpha[p0], b0 = alpha[q0], a1 = alpha[p1], b1 = alpha[q1];
  const MaskOf<V> rot0 = JacobiRotates<V, R>(a0, b0, gamma0, t);
  const MaskOf<V> rot1 = JacobiRotates<V, R>(a1, b1, gamma1, t);
  const bool any0 = LaneAny(rot0), any1 = LaneAny(rot1);
  if (!any0 && !any1) return rot0;
  V c0, s0, t0, c1, s1, t1;
  JacobiRotation<V, R>(a0, b0, gamma0, &c0, &s0, &t0);
  JacobiRotation<V, R>(a1, b1, gamma1, &c1, &s1, &t1);
  V* vp0 = v + p0 * cols;
  V* vq0 = v + q0 * cols;
  V* vp1 = v + p1 * cols;
  V* vq1 = v + q1 * cols;
  if (any0 && any1) {
    const bool all = LaneAll(rot0) && LaneAll(rot1);
    RotateReal2<kRows>(bp0, bq0, c0, s0, rot0, bp1, bq1, c1, s1, rot1, rows, all);
    if (kWithV) RotateReal2<kCols>(vp0, vq0, c0, s0, rot0, vp1, vq1, c1, s1, rot1, cols, all);
  } else if (any0) {
    const bool all = LaneAll(rot0);
    RotateReal<kRows>(bp0, bq0, rows, c0, s0, rot0, all);
    if (kWithV) RotateReal<kCols>(vp0, vq0, cols, c0, s0, rot0, all);
  } else {
    const bool all = LaneAll(rot1);
    RotateReal<kRows>(bp1, bq1, rows, c1, s1, rot1, all);
    if (kWithV) RotateReal<kCols>(vp1, vq1, cols, c1, s1, rot1, all);
  }
  if (any0) {
    UpdateNorms<kRows, false, V, R>(bp0, bp0, bq0, bq0, rows, rot0, t0, gamma0, alpha + p0,
                                    alpha + q0);
  }
  if (any1) {
    UpdateNorms<kRows, false, V, R>(bp1, bp1, bq1, bq1, rows, rot1, t1, gamma1, alpha + p1,
                                    alpha + q1);
  }
  return LaneOr(rot0, rot1);
}

// Player at `position` (0 .. players-1) in round `round` of a round-robin tournament of an even
// number of players: 0 stays, the others rotate. The pairs (position i, players - 1 - i) of a
// round are disjoint and every two players meet once in players - 1 rounds.
TFSVD_HD inline Index RoundRobinPlayer(Index players, Index round, Index position) {
  return position == 0 ? 0 : 1 + (position - 1 + round) % (players - 1);
}

// The order of the pairs of a sweep, fixed by the shape alone (so that every lane type and
// instruction set gives the same bits): round-robin for small real matrices, the skewed cyclic
// order for real ones with short columns, cyclic by rows otherwise.
enum class SweepOrder { kRoundRobin, kSkewed, kCyclic };
TFSVD_HD inline SweepOrder JacobiSweepOrder(Index rows, Index cols, bool complex) {
  if (complex) return SweepOrder::kCyclic;
  if (cols >= kPairedCols && cols * (rows + cols) * kPairedElementBytes <= kPairedBytes) {
    return SweepOrder::kRoundRobin;
  }
  return rows * kPairedElementBytes <= kSkewedColumnBytes ? SweepOrder::kSkewed
                                                          : SweepOrder::kCyclic;
}

// One sweep's steps in `order`: one(p, q) for a pair p < q alone, two(p0, q0, p1, q1) for two
// disjoint pairs taken together. Every pair of columns comes once.
template <class One, class Two>
TFSVD_HD inline void ForEachSweepStep(SweepOrder order, Index cols, One&& one, Two&& two) {
  if (order == SweepOrder::kRoundRobin) {
    // Two disjoint pairs of a round at a time.
    const Index players = cols + (cols & 1);  // odd: a bye (the player numbered cols)
    for (Index round = 0; round + 1 < players; ++round) {
      Index pending_p = -1, pending_q = -1;
      for (Index pos = 0; pos < players / 2; ++pos) {
        Index p = RoundRobinPlayer(players, round, pos);
        Index q = RoundRobinPlayer(players, round, players - 1 - pos);
        if (p == cols || q == cols) continue;
        if (p > q) {
          const Index swap = p;
          p = q;
          q = swap;
        }
        if (pending_p < 0) {
          pending_p = p;
          pending_q = q;
          continue;
        }
        two(pending_p, pending_q, p, q);
        pending_p = -1;
      }
      if (pending_p >= 0) one(pending_p, pending_q);
    }
  } else if (order == SweepOrder::kSkewed) {
    // Rows p and p + 1 of the cyclic-by-rows order at a time, skewed into disjoint pairs:
    // (p, p+1), (p, p+2), then (p, q+1) with (p+1, q) for q = p+2 .. cols-2, then (p+1, cols-1).
    // Each pair meets once per sweep, columns p and p+1 stay cached through both rows as in the
    // cyclic order, and the two pairs of a step are independent, so that one pair's latency
    // chains (dot product, square roots, divisions) overlap with the other's.
    for (Index p = 0; p + 1 < cols; p += 2) {
      one(p, p + 1);
      if (p + 2 == cols) break;
      one(p, p + 2);
      for (Index q = p + 2; q + 1 < cols; ++q) two(p, q + 1, p + 1, q);
      one(p + 1, cols - 1);
    }
  } else {
    for (Index p = 0; p + 1 < cols; ++p) {
      for (Index q = p + 1; q < cols; ++q) one(p, q);
    }
  }
}

// Sweeps, each over every pair of columns once in JacobiSweepOrder, until a sweep rotates nothing
// (per lane; a lane that rotated nothing in a sweep never rotates again, so it is left
// bit-for-bit alone while other lanes go on) or until t.max_sweeps. kRows/kCols > 0 fix the sizes
// at compile time (loops unroll); 0 takes rows/cols. B is overwritten by A V, V (when kWithV;
// must hold the identity on entry) by the rotations; alpha (cols values) is scratch. Returns the
// lanes that were still rotating in the last sweep (not converged); *sweeps gets the number of
// sweeps run.
template <int kRows, int kCols, bool kWithV, bool kComplex, class V, class R>
TFSVD_HD inline MaskOf<V> JacobiSweeps(V* b, Index rows_rt, Index cols_rt, V* v, V* alpha,
                                       const JacobiTolerances<R>& t, int* sweeps) {
  const Index rows = kRows > 0 ? kRows : rows_rt;
  const Index cols = kCols > 0 ? kCols : cols_rt;
  const Index b_plane = rows * cols, v_plane = cols * cols;
  const SweepOrder order = JacobiSweepOrder(rows, cols, kComplex);
  MaskOf<V> any = NoLanes<V, R>();
  // One Jacobi step on columns p < q (and V's).
  const auto one = [&](Index p, Index q) {
    if (kComplex) {
      any = LaneOr(any, JacobiStepComplex<kRows, kCols, kWithV>(
                            b + p * rows, b + b_plane + p * rows, b + q * rows,
                            b + b_plane + q * rows, rows, v + p * cols, v + v_plane + p * cols,
                            v + q * cols, v + v_plane + q * cols, cols, alpha + p, alpha + q, t));
    } else {
      any = LaneOr(any, JacobiStepReal<kRows, kCols, kWithV>(b + p * rows, b + q * rows, rows,
                                                            v + p * cols, v + q * cols, cols,
                                                            alpha + p, alpha + q, t));
    }
  };
  // Two disjoint pairs (never complex: only real orders take them).
  const auto two = [&](Index p0, Index q0, Index p1, Index q1) {
    any = LaneOr(any, JacobiStepReal2<kRows, kCols, kWithV>(b, rows, v, cols, p0, q0, p1, q1,
                                                           alpha, t));
  };
  MaskOf<V> rotated = AllLanes<V, R>();
  int sweep = 0;
  while (sweep < t.max_sweeps) {
    ++sweep;
    // Squared norms summed afresh each sweep, so the updates' rounding never accumulates.
    ColumnSquaredNorms<kRows, kCols, kComplex, V, R>(b, rows, cols, alpha);
    any = NoLanes<V, R>();
    ForEachSweepStep(order, cols, one, two);
    rotated = any;
    if (!LaneAny(any)) break;
  }
  *sweeps = sweep;
  return rotated;
}

// ---- QR preconditioning ---------------------------------------------------------------------------

// Real matrices with at least kPreconditionCols columns, or at least kPreconditionTallCols and
// kPreconditionTallRatio times as many rows, are first factored B = Q R, and the sweeps run on X =
// R^T (Drmač and Veselić's preconditioning, as in LAPACK's xGEJSV): X's Gram matrix R R^T is much
// closer to diagonal than B's (R^T R = B^T B), so fewer sweeps converge, and a tall B's sweeps
// work on cols instead of rows rows. With X W = U_x S: B = (Q [W; 0]) S U_x^T, so B's left factor
// is Q [W; 0] (orthonormal as it comes) and its right factor X's normalised columns. The caller
// sorts B's rows and columns first (jacobi_batched.cc), which keeps the QR row-wise stable and so
// Jacobi's relative accuracy. One AVX-512 group of 16 gaussian float32 matrices, the kernel alone,
// us, plain / preconditioned (sweeps): 16x16 41 / 44, 20x20 75 / 75 (8 / 7), 24x24 132 / 121
// (9 / 7), 32x32 300 / 287, 64x64 2471 / 2239 (11 / 9); tall: 16x8 7 / 8, 24x12 22 / 23, 36x12
// 34 / 29, 100x8 26 / 21, 300x12 242 / 141, 400x16 732 / 332, 200x48 3335 / 1680; float64 (8
// lanes) 32x32 397 / 368, 48x48 1248 / 1184, 128x32 983 / 566. Complex matrices are not
// preconditioned. Four columns no longer are: the plain sweeps stream them in whole blocks of rows
// (jacobi_moves.inc), while the QR path's row sort and sorted packing cost more than the sweeps
// they save. A group of 8 float32 matrices (AVX2, Zen 3), us, preconditioned / plain: 20x4 5.0 /
// 3.5, 200x4 37 / 17, 1024x4 217 / 92, 4000x4 841 / 351, 10000x4 2127 / 913, wide 4x1000 134 /
// 85; float64, groups of 4: 1000x4 111 / 95, 4000x4 454 / 375. From five columns on it is mixed
// (300x6 61 / 73, 4000x6 1273 / 1029, 300x5 56 / 63), so they keep the QR.
constexpr Index kPreconditionCols = 24;
constexpr Index kPreconditionTallCols = 5, kPreconditionTallRatio = 4;

TFSVD_HD inline bool JacobiPreconditioned(Index rows, Index cols, bool complex) {
  if (complex) return false;
  return cols >= kPreconditionCols ||
         (cols >= kPreconditionTallCols && rows >= kPreconditionTallRatio * cols);
}

// Rows of the matrix the sweeps run on: X (cols x cols) when preconditioned, else B.
TFSVD_HD inline Index JacobiSweepRows(Index rows, Index cols, bool complex) {
  return JacobiPreconditioned(rows, cols, complex) ? cols : rows;
}

// Scratch of the preconditioned path in lane values: the QR factors (rows x cols), W (cols x cols),
// the reflectors' scalars (cols) and JacobiApplyQ's (2 cols x cols).
TFSVD_HD inline Index JacobiPreconditionScratch(Index rows, Index cols) {
  return rows * cols + 3 * cols * cols + cols;
}

// DotReal's four partial sums of x[i] y_c[1 + i], i < n, for kCount columns y_c sharing x:
// acc[c][l] sums the i = l mod 4. A struct, so that jacobi_simd.inc can specialise it for a lone
// matrix (Lane1: a column's four sums in one vector register).
template <class V>
struct PartialSums {
  template <int kCount, class R>
  TFSVD_HD static void Run(const V* x, V* const* y, Index n, V (*acc)[4]) {
    for (int c = 0; c < kCount; ++c) {
      for (int l = 0; l < 4; ++l) acc[c][l] = V(R(0));
    }
    Index i = 0;
    for (; i + 4 <= n; i += 4) {
      for (int l = 0; l < 4; ++l) {
        const V xi = x[i + l];
        for (int c = 0; c < kCount; ++c) acc[c][l] = LaneFma(xi, y[c][1 + i + l], acc[c][l]);
      }
    }
    for (int l = 0; l < 3; ++l) {
      if (i + l < n) {
        for (int c = 0; c < kCount; ++c) acc[c][l] = LaneFma(x[i + l], y[c][1 + i + l], acc[c][l]);
      }
    }
  }
};

// out[c] = v^T y_c, v = [1; x[1 .. below]] (a reflector with its implicit unit diagonal), for
// kCount columns y_c sharing v, each in DotReal's summation order after y_c[0].
template <int kCount, class V, class R>
TFSVD_HD inline void ReflectorProducts(const V* x, Index below, V* const* y, V* out) {
  V acc[kCount][4];
  PartialSums<V>::template Run<kCount, R>(x + 1, y, below, acc);
  for (int c = 0; c < kCount; ++c) {
    out[c] = y[c][0] + ((acc[c][0] + acc[c][1]) + (acc[c][2] + acc[c][3]));
  }
}

// y_c <- H y_c = y_c - tau v (v^T y_c) for kCount columns y_c at once (H = I - tau v v^T, v = [1;
// x[1 .. below]]): the loads of x are shared and the columns' dependency chains overlap. Each
// column gets DotReal's summation order whatever kCount. Exactly y_c where tau = 0.
template <int kCount, class V, class R>
TFSVD_HD inline void ReflectColumns(const V* x, Index below, V tau, V* const* y) {
  V f[kCount];
  ReflectorProducts<kCount, V, R>(x, below, y, f);
  for (int c = 0; c < kCount; ++c) {
    f[c] = tau * f[c];
    y[c][0] = y[c][0] - f[c];
  }
  // One pass over the rows for all the columns (x loaded once).
  for (Index r = 1; r <= below; ++r) {
    const V xr = x[r];
    for (int c = 0; c < kCount; ++c) y[c][r] = LaneFnma(f[c], xr, y[c][r]);
  }
}

// Reflector k of JacobiQr's h (rows x cols) applied to `count` (at most 4) consecutive columns of
// the column-major rows-row matrix starting at y0, from row k down; nothing where tau = 0 in
// every lane.
template <class V, class R>
TFSVD_HD inline void ReflectBlock(const V* h, Index rows, Index k, V tau, V* y0, Index count) {
  if (!LaneAny(tau > V(R(0)))) return;
  const V* x = h + k * rows + k;
  V* y[4];
  for (Index c = 0; c < count; ++c) y[c] = y0 + c * rows + k;
  if (count == 4) {
    ReflectColumns<4, V, R>(x, rows - k - 1, tau, y);
  } else {
    for (Index c = 0; c < count; ++c) ReflectColumns<1, V, R>(x, rows - k - 1, tau, y + c);
  }
}

// How many columns at a time JacobiQr streams through its earlier reflectors fused
// (ReflectBlockFused); 0: one ReflectBlock per reflector (a lone matrix, whose row loops
// vectorise down its columns). jacobi_simd.inc specialises it: AVX-512 has the registers for 4.
template <class V>
struct FusedReflections {
  static constexpr int kColumns = 2;
};

// The next reflector from k on (k < end) that reflects in some lane, or end.
template <class V, class R>
TFSVD_HD inline Index NextReflector(const V* tau, Index k, Index end) {
  while (k < end && !LaneAny(tau[k] > V(R(0)))) ++k;
  return k;
}

// ReflectBlock for reflectors 0 .. end - 1 in turn on kCount columns (column c at y0 + c rows, from
// row 0): each reflection's update pass also takes the next reflection's products, so the block
// streams through the caches once per reflector rather than twice. Each value sees exactly
// ReflectColumns' operations in the same order (the update, then the partial sums by row mod 4),
// so the bits are ReflectBlock's.
template <int kCount, class V, class R>
TFSVD_HD inline void ReflectBlockFused(const V* h, Index rows, Index end, const V* tau, V* y0) {
  Index k = NextReflector<V, R>(tau, 0, end);
  if (k == end) return;
  V* y[kCount];
  for (int c = 0; c < kCount; ++c) y[c] = y0 + c * rows;
  V f[kCount];
  {
    V* yk[kCount];
    for (int c = 0; c < kCount; ++c) yk[c] = y[c] + k;
    ReflectorProducts<kCount, V, R>(h + k * rows + k, rows - k - 1, yk, f);
  }
  while (true) {
    const Index next = NextReflector<V, R>(tau, k + 1, end);
    const V* x = h + k * rows;  // x[r], r > k: reflector k below its diagonal
    for (int c = 0; c < kCount; ++c) {
      f[c] = tau[k] * f[c];
      y[c][k] = y[c][k] - f[c];
    }
    const Index plain_end = next == end ? rows : next + 1;
    for (Index r = k + 1; r < plain_end; ++r) {
      const V xr = x[r];
      for (int c = 0; c < kCount; ++c) y[c][r] = LaneFnma(f[c], xr, y[c][r]);
    }
    if (next == end) return;
    // Rows below next: reflector k's update, then reflector next's partial sums (PartialSums'
    // order: sum l takes the rows next + 1 + i with i = l mod 4, ascending).
    const V* xn = h + next * rows + next + 1;  // xn[i]: row next + 1 + i
    const Index below = rows - next - 1;
    V acc[kCount][4];
    for (int c = 0; c < kCount; ++c) {
      for (int l = 0; l < 4; ++l) acc[c][l] = V(R(0));
    }
    V* yn[kCount];
    for (int c = 0; c < kCount; ++c) yn[c] = y[c] + next + 1;
    const V* xk = x + next + 1;
    // Row next + 1 + i into partial sum l (a constant in the unrolled loop, so acc stays in
    // registers).
    const auto row = [&](Index i, int l) {
      const V xr = xk[i], xnr = xn[i];
      for (int c = 0; c < kCount; ++c) {
        const V updated = LaneFnma(f[c], xr, yn[c][i]);
        yn[c][i] = updated;
        acc[c][l] = LaneFma(xnr, updated, acc[c][l]);
      }
    };
    Index i = 0;
    for (; i + 4 <= below; i += 4) {
      for (int l = 0; l < 4; ++l) row(i + l, l);
    }
    for (int l = 0; i + l < below; ++l) row(i + l, l);
    for (int c = 0; c < kCount; ++c) {
      f[c] = y[c][next] + ((acc[c][0] + acc[c][1]) + (acc[c][2] + acc[c][3]));
    }
    k = next;
  }
}

// The earlier reflectors 0 .. end - 1 on `count` (at most 4) columns from y0.
template <class V, class R>
TFSVD_HD inline void ReflectEarlier(const V* h, Index rows, Index end, const V* tau, V* y0,
                                    Index count) {
  constexpr int kColumns = FusedReflections<V>::kColumns;
  if constexpr (kColumns == 0) {
    for (Index k = 0; k < end; ++k) ReflectBlock<V, R>(h, rows, k, tau[k], y0, count);
  } else {
    Index c = 0;
    for (; c + kColumns <= count; c += kColumns) {
      ReflectBlockFused<kColumns, V, R>(h, rows, end, tau, y0 + c * rows);
    }
    for (; c < count; ++c) ReflectBlockFused<1, V, R>(h, rows, end, tau, y0 + c * rows);
  }
}

// Householder QR of the real rows x cols h (rows >= cols, column-major) in place: R on and above
// the diagonal, each reflector's vector below it (with an implicit 1 on the diagonal), its scalar
// in tau (0: no reflection). H_k = I - tau_k v_k v_k^T, beta_k = -sign(alpha_k) |x_k| (LAPACK's
// xLARFG, without its rescaling: the input is scaled to entries below 1 and a column whose part
// from the diagonal down has |x|^2 < small is left as it is, numerically zero, as the sweeps
// treat such columns). Left-looking in blocks of four columns, so that a block stays in L1 while
// the reflectors stream past it; each column meets H_0, H_1, ... in order as in the textbook.
template <class V, class R>
TFSVD_HD inline void JacobiQr(V* h, Index rows, Index cols, V* tau, R small) {
  for (Index j0 = 0; j0 < cols; j0 += 4) {
    const Index count = cols - j0 < 4 ? cols - j0 : 4;
    ReflectEarlier<V, R>(h, rows, j0, tau, h + j0 * rows, count);
    for (Index k = j0; k < j0 + count; ++k) {
      V* x = h + k * rows + k;
      const Index below = rows - k - 1;
      const V sigma = DotReal<0, V, R>(x + 1, x + 1, below);
      const V alpha = x[0];
      const V norm2 = LaneFma(alpha, alpha, sigma);
      const MaskOf<V> reflect = LaneAnd(sigma > V(R(0)), norm2 >= V(small));
      tau[k] = V(R(0));
      if (!LaneAny(reflect)) continue;
      const V norm = LaneSqrt(norm2);
      const V beta = LaneSelect(alpha < V(R(0)), norm, V(R(0)) - norm);
      // Lanes that do not reflect may compute inf or NaN here; the selects drop them.
      const V t = LaneSelect(reflect, (beta - alpha) / beta, V(R(0)));
      const V scale = V(R(1)) / (alpha - beta);
      for (Index i = 1; i <= below; ++i) x[i] = LaneSelect(reflect, x[i] * scale, x[i]);
      x[0] = LaneSelect(reflect, beta, alpha);
      tau[k] = t;
      // A group's later columns in the block together (x loaded once; each column's arithmetic
      // as alone); a lone matrix's one by one (measured 5-10% faster for a lone 64x64).
      V* y[3];
      const Index later = j0 + count - k - 1;
      for (Index j = 0; j < later; ++j) y[j] = h + (k + 1 + j) * rows + k;
      if (FusedReflections<V>::kColumns == 0 || later == 1) {
        for (Index j = 0; j < later; ++j) ReflectColumns<1, V, R>(x, below, t, y + j);
      } else if (later == 3) {
        ReflectColumns<3, V, R>(x, below, t, y);
      } else if (later == 2) {
        ReflectColumns<2, V, R>(x, below, t, y);
      }
    }
  }
}

// X = R^T (cols x cols, column-major, lower triangular) from JacobiQr's h.
template <class V, class R>
TFSVD_HD inline void JacobiTransposeR(const V* h, Index rows, Index cols, V* x) {
  for (Index j = 0; j < cols; ++j) {
    for (Index i = 0; i < j; ++i) x[j * cols + i] = V(R(0));
    for (Index i = j; i < cols; ++i) x[j * cols + i] = h[i * rows + j];
  }
}

// JacobiApplyQ takes the compact WY form from kBlockedMinRows rows with kBlockedMinRatio times as
// many rows as columns: there four 64-byte (AVX-512) columns of a group no longer fit a 48 KB L1,
// and the form's work, cubic in cols, stays small. One 16-lane float32 group, us, reflector by
// reflector / compact WY (noise about 15%): 1000x16 798 / 565, 500x24 876 / 617, 384x48 3330 /
// 2700, 256x32 1050 / 830, 300x12 138 / 109, 200x24 510 / 390, 192x16 160 / 134; but 192x48 1770
// / 2130, 128x32 440 / 650, 150x12 60 / 60. A lone matrix's cost barely changes (1000x16 100 /
// 102). Once the form's last product was register-tiled (JacobiQzTiled), it also paid from
// kBlockedLongMinRows rows with kBlockedLongMinRatio times as many as columns. Whole pipeline, us
// per matrix, one thread, a group | a lone matrix, reflector by reflector / compact WY (noise
// 5-8%), AVX-512 kernels: float32 500x64 625 / 464 | 731 / 702, 448x64 563 / 454 | 683 / 668,
// 384x64 504 / 421 | 627 / 601; float64 384x56 732 / 619 | 737 / 746. The AVX2 kernels (4 x 2
// register tiles) gain less: float32 500x64 620 / 545 | 711 / 731, 384x64 476 / 452 | 612 / 619,
// float64 384x56 769 / 758 | 866 / 794. Between 256 and 384 rows AVX-512 still gains (float32
// 256x64 369 / 334, 256x48 178 / 161; float64 256x60 672 / 590, 300x48 424 / 366) but AVX2 loses
// up to 10% (float32 256x64 362-391 / 402-419, float64 256x48 397-417 / 433-440), and 192 rows tie
// on both; the kernels of every instruction set must take the same form (they give the same
// bits), so the limit is 384. The lone kernels need rows >= 2 cols (their scratch is in out). The
// choice depends on the shape alone, so groups and lone kernels give the same bits.
constexpr Index kBlockedMinRows = 192, kBlockedMinRatio = 8;
constexpr Index kBlockedLongMinRows = 384, kBlockedLongMinRatio = 4;
// Bytes of a column of h and of out at a time in JacobiApplyQBlocked's last product: 16 rows of a
// 16-lane float group, so that up to 24 columns of both stay in L1; a lone matrix's 256 float
// rows, long enough to vectorise.
constexpr Index kBlockedChunkBytes = 1024;

// Register tile of JacobiQzTiled's product: kRows x kCols entries of out in registers while the
// cols terms go by. jacobi_simd.inc specialises it: AVX-512 has the registers for 4 x 4, and a
// lone matrix (kRows = 0) takes the row loop, which vectorises down its contiguous columns.
template <class V>
struct ProductTile {
  static constexpr int kRows = 4, kCols = 2;
};

// JacobiApplyQBlocked's two products for a lone matrix where its ISA's kernels vectorise them
// (jacobi_simd.inc), each entry with the arithmetic of the generic loops; false: those loops.
// T: T from S in place. Z: z = T (Y1^T w) (out: scratch). LowerRows: out's rows from cols on
// (-Y z). kProductColumns: the columns of S whose products with one reflector run together.
template <class V>
struct LoneWyProducts {
  static constexpr int kProductColumns = 4;
  static TFSVD_HD bool T(V*, const V*, Index) { return false; }
  static TFSVD_HD bool Z(const V*, Index, Index, const V*, const V*, V*, V*) { return false; }
  static TFSVD_HD bool LowerRows(const V*, Index, Index, const V*, V*) { return false; }
};

// T(i, j), i < j, of JacobiApplyQBlocked's compact WY form: -tau_j times the sum of T(i, l)
// S(l, j) over l = i .. j - 1, from t's earlier columns (T) and column j (S, rows >= i).
template <class V, class R>
TFSVD_HD inline V WyTEntry(const V* t, const V* tau, Index cols, Index i, Index j) {
  V sum(R(0));
  for (Index l = i; l < j; ++l) sum = LaneFma(t[l * cols + i], t[j * cols + l], sum);
  return V(R(0)) - tau[j] * sum;
}

// Rows r .. r + kR - 1 (all >= cols) and columns c .. c + kC - 1 of out = -Y z, the terms
// j = 0, 1, ... in order from 0 as in JacobiApplyQBlocked's row loop.
template <int kR, int kC, class V, class R>
TFSVD_HD inline void QzTile(const V* h, Index rows, Index cols, const V* z, V* out, Index r,
                            Index c) {
  V acc[kR][kC];
  for (int a = 0; a < kR; ++a) {
    for (int b = 0; b < kC; ++b) acc[a][b] = V(R(0));
  }
  for (Index j = 0; j < cols; ++j) {
    V y[kR];
    for (int a = 0; a < kR; ++a) y[a] = h[j * rows + r + a];
    for (int b = 0; b < kC; ++b) {
      const V zjc = z[(c + b) * cols + j];
      for (int a = 0; a < kR; ++a) acc[a][b] = LaneFnma(y[a], zjc, acc[a][b]);
    }
  }
  for (int a = 0; a < kR; ++a) {
    for (int b = 0; b < kC; ++b) out[(c + b) * rows + r + a] = acc[a][b];
  }
}

template <int kR, class V, class R>
TFSVD_HD inline void QzTileRow(const V* h, Index rows, Index cols, const V* z, V* out, Index r) {
  constexpr int kC = ProductTile<V>::kCols;
  Index c = 0;
  for (; c + kC <= cols; c += kC) QzTile<kR, kC, V, R>(h, rows, cols, z, out, r, c);
  for (; c < cols; ++c) QzTile<kR, 1, V, R>(h, rows, cols, z, out, r, c);
}

// JacobiApplyQBlocked's out = [w; 0] - Y z with out's entries held in registers across the terms
// (ProductTile), the same arithmetic on each entry as the row loop: the top cols rows start from
// w and end on Y's unit diagonal, the rows below start from 0 and take every term.
template <class V, class R>
TFSVD_HD inline void JacobiQzTiled(const V* h, Index rows, Index cols, const V* w, const V* z,
                                   V* out) {
  for (Index c = 0; c < cols; ++c) {
    for (Index r = 0; r < cols; ++r) {
      V o = w[c * cols + r];
      for (Index j = 0; j < r; ++j) o = LaneFnma(h[j * rows + r], z[c * cols + j], o);
      out[c * rows + r] = o - z[c * cols + r];  // Y(r, r) = 1
    }
  }
  constexpr int kR = ProductTile<V>::kRows;
  Index r = cols;
  for (; r + kR <= rows; r += kR) QzTileRow<kR, V, R>(h, rows, cols, z, out, r);
  for (; r < rows; ++r) QzTileRow<1, V, R>(h, rows, cols, z, out, r);
}

// out (rows x cols) = Q [w; 0] through the compact WY form Q = H_0 ... H_{cols-1} = I - Y T Y^T
// (Schreiber and Van Loan; LAPACK's xLARFT): Y the unit lower trapezoidal reflectors of h, T upper
// triangular from the reflectors' products Y^T Y and scalars. Then out = [w; 0] - Y (T (Y1^T w))
// with Y1 Y's top cols x cols: one pass over out's rows, by chunks that stay in L1, where the
// reflector-by-reflector product streams each block of out through the caches twice per
// reflector. scratch: 2 cols x cols values.
template <class V, class R>
TFSVD_HD inline void JacobiApplyQBlocked(const V* h, Index rows, Index cols, const V* tau,
                                         const V* w, V* out, V* scratch) {
  V* t = scratch;                // column-major: t[j * cols + i] = T(i, j), i <= j
  V* z = scratch + cols * cols;  // column-major: z[c * cols + j] = (T Y1^T w)(j, c)
  // S(i, j) = y_i^T y_j for i < j, into t's column j: h_i[j] + sum over r > j of h_i[r] h_j[r]
  // (y_j's unit diagonal meets h_i[j]), up to kWidth columns i at a time sharing y_j.
  constexpr int kWidth = LoneWyProducts<V>::kProductColumns;
  for (Index j = 1; j < cols; ++j) {
    const V* yj = h + j * rows + j;
    V* sj = t + j * cols;
    for (Index i0 = 0; i0 < j; i0 += kWidth) {
      const Index count = j - i0 < kWidth ? j - i0 : kWidth;
      V* yi[kWidth];
      for (Index c = 0; c < count; ++c) yi[c] = const_cast<V*>(h + (i0 + c) * rows + j);
      if (count == kWidth) {
        ReflectorProducts<kWidth, V, R>(yj, rows - j - 1, yi, sj + i0);
        continue;
      }
      Index c = 0;
      if (kWidth > 4 && count >= 4) {
        ReflectorProducts<4, V, R>(yj, rows - j - 1, yi, sj + i0);
        c = 4;
      }
      for (; c < count; ++c) ReflectorProducts<1, V, R>(yj, rows - j - 1, yi + c, sj + i0 + c);
    }
  }
  // T(j, j) = tau_j, T(0 .. j-1, j) = -tau_j T(0 .. j-1, 0 .. j-1) S(0 .. j-1, j): row i of
  // column j needs S(l, j) for l >= i only, so it overwrites S(i, j) in place, i ascending.
  if (!LoneWyProducts<V>::T(t, tau, cols)) {
    for (Index j = 0; j < cols; ++j) {
      for (Index i = 0; i < j; ++i) t[j * cols + i] = WyTEntry<V, R>(t, tau, cols, i, j);
      t[j * cols + j] = tau[j];
    }
  }
  // z = Y1^T w (Y1 unit lower triangular), then z = T z in place (row i needs rows >= i).
  if (!LoneWyProducts<V>::Z(h, rows, cols, t, w, z, out)) {
    for (Index c = 0; c < cols; ++c) {
      const V* wc = w + c * cols;
      V* zc = z + c * cols;
      for (Index j = 0; j < cols; ++j) {
        V sum = wc[j];
        for (Index r = j + 1; r < cols; ++r) sum = LaneFma(h[j * rows + r], wc[r], sum);
        zc[j] = sum;
      }
      for (Index i = 0; i < cols; ++i) {
        V sum(R(0));
        for (Index l = i; l < cols; ++l) sum = LaneFma(t[l * cols + i], zc[l], sum);
        zc[i] = sum;
      }
    }
  }
  // out = [w; 0] - Y z: each entry takes its terms j = 0, 1, ... in order.
  if constexpr (ProductTile<V>::kRows > 0) {
    JacobiQzTiled<V, R>(h, rows, cols, w, z, out);
    return;
  }
  const bool lower_done = LoneWyProducts<V>::LowerRows(h, rows, cols, z, out);
  const Index loop_rows = lower_done ? cols : rows;
  const Index chunk = kBlockedChunkBytes / static_cast<Index>(sizeof(V));
  for (Index r0 = 0; r0 < loop_rows; r0 += chunk) {
    const Index r1 = loop_rows - r0 < chunk ? loop_rows : r0 + chunk;
    for (Index c = 0; c < cols; ++c) {
      V* oc = out + c * rows;
      for (Index r = r0; r < r1; ++r) oc[r] = r < cols ? w[c * cols + r] : V(R(0));
      for (Index j = 0; j < cols && j < r1; ++j) {
        const V zjc = z[c * cols + j];
        Index r = r0 > j ? r0 : j;
        if (r == j) {
          oc[r] = oc[r] - zjc;  // Y(j, j) = 1
          ++r;
        }
        const V* yj = h + j * rows;
        for (; r < r1; ++r) oc[r] = LaneFnma(yj[r], zjc, oc[r]);
      }
    }
  }
}

// out (rows x cols) = Q [w; 0] = H_0 H_1 ... H_{cols-1} [w; 0], w cols x cols. Long thin shapes
// (kBlockedMinRows, kBlockedLongMinRows) through the compact WY form (JacobiApplyQBlocked,
// scratch: 2 cols x cols values); the others four columns at a time through all the reflectors
// (the columns stay in L1; the reflectors stream).
template <class V, class R>
TFSVD_HD inline void JacobiApplyQ(const V* h, Index rows, Index cols, const V* tau, const V* w,
                                  V* out, V* scratch) {
  if ((rows >= kBlockedMinRows && rows >= kBlockedMinRatio * cols) ||
      (rows >= kBlockedLongMinRows && rows >= kBlockedLongMinRatio * cols)) {
    JacobiApplyQBlocked<V, R>(h, rows, cols, tau, w, out, scratch);
    return;
  }
  for (Index j = 0; j < cols; ++j) {
    for (Index i = 0; i < cols; ++i) out[j * rows + i] = w[j * cols + i];
    for (Index i = cols; i < rows; ++i) out[j * rows + i] = V(R(0));
  }
  for (Index j0 = 0; j0 < cols; j0 += 4) {
    const Index count = cols - j0 < 4 ? cols - j0 : 4;
    for (Index k = cols - 1; k >= 0; --k) {
      ReflectBlock<V, R>(h, rows, k, tau[k], out + j0 * rows, count);
    }
  }
}

// ---- after the sweeps -----------------------------------------------------------------------------

// Multiplies the complex column (xr, xi) of length n by (pr, pi), or the real column x by pr.
template <bool kComplex, class V, class M>
TFSVD_HD inline void ScaleColumnBy(V* xr, V* xi, Index n, V pr, V pi, M mask) {
  for (Index i = 0; i < n; ++i) {
    if (kComplex) {
      const V ar = xr[i], ai = xi[i];
      xr[i] = LaneSelect(mask, LaneFnma(ai, pi, ar * pr), ar);
      xi[i] = LaneSelect(mask, LaneFma(ar, pi, ai * pr), ai);
    } else {
      xr[i] = LaneSelect(mask, xr[i] * pr, xr[i]);
    }
  }
}

// One chain of FindColumnPivot's scan: the largest |.|^2 so far, its position (u_index's value,
// or its row), its value and (complex) its row.
template <class V>
struct PivotCandidate {
  V best, position, re, im, row;
};

// Takes entry (a2 = |.|^2, position, re, im, row) into the candidate c where it is larger, or (with
// `ties`) as large and first by position.
template <bool kComplex, class V>
TFSVD_HD inline void TakeLarger(PivotCandidate<V>* c, V a2, V position, V re, V im, V row,
                                bool ties) {
  MaskOf<V> larger = a2 > c->best;
  if (ties) larger = LaneOr(larger, LaneAnd(a2 == c->best, position < c->position));
  c->best = LaneSelect(larger, a2, c->best);
  c->position = LaneSelect(larger, position, c->position);
  c->re = LaneSelect(larger, re, c->re);
  if (kComplex) {
    c->im = LaneSelect(larger, im, c->im);
    c->row = LaneSelect(larger, row, c->row);
  }
}

// The pivot of the column (ur, ui) of U, u_rows long: its first entry of largest |.|^2, or where
// u_index is given (U's rows in another order than the matrix's), the one first in the matrix.
// *pr, *pi get its value, *pivot its row (complex only); 0 where no |.|^2 compares (NaN). From
// kPivotChainRows rows on, rows i = c mod 4 go to chain c, merged by (|.|^2, position): the same
// entry as one scan, without one compare-and-select chain through the whole column (latency bound
// on long groups); shorter columns take one chain, which costs fewer operations (the four chains
// made groups of 3x3 to 6x6 matrices 2-5% slower).
constexpr Index kPivotChainRows = 16;

template <bool kComplex, class V, class R>
TFSVD_HD inline void FindColumnPivot(const V* ur, const V* ui, Index u_rows, const V* u_index,
                                     V* pr, V* pi, V* pivot) {
  const V zero(R(0));
  PivotCandidate<V> chain[4];
  for (int c = 0; c < 4; ++c) chain[c] = PivotCandidate<V>{V(R(-1)), zero, zero, zero, zero};
  // Within a chain, positions only grow without u_index: the first of equal entries stays.
  const bool ties = u_index != nullptr;
  const auto take = [&](int c, Index i) {
    const V a2 = kComplex ? LaneFma(ur[i], ur[i], ui[i] * ui[i]) : ur[i] * ur[i];
    const V row = V(R(i));
    TakeLarger<kComplex>(&chain[c], a2, ties ? u_index[i] : row, ur[i],
                         kComplex ? ui[i] : zero, row, ties);
  };
  if (u_rows < kPivotChainRows) {
    for (Index i = 0; i < u_rows; ++i) take(0, i);
  } else {
    Index i = 0;
    for (; i + 4 <= u_rows; i += 4) {
      for (int c = 0; c < 4; ++c) take(c, i + c);
    }
    for (int c = 0; c < 3 && i + c < u_rows; ++c) take(c, i + c);  // i is a multiple of 4
    for (int c = 1; c < 4; ++c) {
      TakeLarger<kComplex>(&chain[0], chain[c].best, chain[c].position, chain[c].re, chain[c].im,
                           chain[c].row, true);
    }
  }
  *pr = chain[0].re;
  *pi = kComplex ? chain[0].im : zero;
  *pivot = kComplex ? chain[0].row : zero;
}

// FindColumnPivot, as a struct so that jacobi_simd.inc can specialise it for a lone real matrix,
// whose scan above would run on scalars.
template <class V>
struct ColumnPivot {
  template <bool kComplex, class R>
  TFSVD_HD static void Find(const V* ur, const V* ui, Index u_rows, const V* u_index, V* pr,
                            V* pi, V* pivot) {
    FindColumnPivot<kComplex, V, R>(ur, ui, u_rows, u_index, pr, pi, pivot);
  }
};

// rank[j] = the place of column j when sumsq is sorted in descending order, equal values in
// column order (JacobiFinish's rank_out). Returns the lanes where a column moves.
template <class V, class R>
TFSVD_HD inline MaskOf<V> RankColumns(const V* sumsq, Index cols, V* rank) {
  MaskOf<V> moved = NoLanes<V, R>();
  for (Index j = 0; j < cols; ++j) {
    V r(R(0));
    for (Index i = 0; i < cols; ++i) {
      const MaskOf<V> before = i < j ? sumsq[i] >= sumsq[j] : sumsq[i] > sumsq[j];
      r = r + LaneSelect(before, V(R(1)), V(R(0)));
    }
    rank[j] = r;
    moved = LaneOr(moved, LaneNot(r == V(R(j))));
  }
  return moved;
}

// The preconditioned path, between the sweeps and Q [W; 0]: X's and W's columns (cols x cols
// each) in JacobiFinish's rank order, on the lanes where no column of X is numerically zero (the
// lanes it finishes; the others keep their order for the scalar completion). Q [W; 0] then comes
// out with U's columns in their output places, which the caller's scatter stores as whole vectors
// instead of value by value (a fifth of a group of 1000x16 float32 matrices). Every column keeps
// its values and JacobiApplyQ computes each output column on its own, so the bits are those of
// the unsorted path, and JacobiFinish ranks the sorted columns in place. sumsq, rank: cols values;
// temp: cols x cols.
template <class V, class R>
TFSVD_HD inline void JacobiSortColumns(V* x, V* w, Index cols, const JacobiTolerances<R>& t,
                                       V* sumsq, V* rank, V* temp) {
  ColumnSquaredNorms<0, 0, false, V, R>(x, cols, cols, sumsq);
  MaskOf<V> deficient = NoLanes<V, R>();
  for (Index j = 0; j < cols; ++j) deficient = LaneOr(deficient, sumsq[j] < V(t.small));
  const MaskOf<V> sorted = LaneAnd(RankColumns<V, R>(sumsq, cols, rank), LaneNot(deficient));
  if (!LaneAny(sorted)) return;
  V* const factors[] = {x, w};
  for (V* m : factors) {
    for (Index c = 0; c < cols; ++c) {
      V* out = temp + c * cols;
      for (Index i = 0; i < cols; ++i) out[i] = m[c * cols + i];
      for (Index j = 0; j < cols; ++j) {
        const MaskOf<V> from = LaneAnd(sorted, rank[j] == V(R(c)));
        if (!LaneAny(from)) continue;
        for (Index i = 0; i < cols; ++i) out[i] = LaneSelect(from, m[j * cols + i], out[i]);
      }
    }
    for (Index i = 0; i < cols * cols; ++i) m[i] = temp[i];
  }
}

// Singular values and, with kWithV, the factors in tfsvd's conventions, column by column:
//  - sumsq[j] = |b_j|^2, s_out[j] = |b_j| 2^exponent (the unscaled singular value of column j);
//  - rank_out[j] = the place of column j in descending order (equal values keep column order);
//  - kWithV, on the lanes where no column is numerically zero (|b_j|^2 >= t.small; returned):
//    b_j /= |b_j|, then the canonical phase of canonical.h: in each column of U (B when `u_on_b`,
//    else V), the entry of largest |.|^2 (first on ties) is made real positive, and the paired
//    column of the other factor gets the same phase. The other lanes keep B and V as the sweeps
//    left them, for the scalar completion path.
// V holds the orthonormal partners of B's columns, v_rows each: cols after plain sweeps; on the
// preconditioned path B is X (rows = cols) and V is Q W (v_rows = the input's rows). u_index
// (nullptr: 0, 1, ...) numbers U's rows in the matrix's own order, for the first-on-ties rule
// when the preconditioned path has sorted them.
template <int kRows, int kCols, bool kWithV, bool kComplex, class V, class R>
TFSVD_HD inline MaskOf<V> JacobiFinish(V* b, Index rows_rt, Index cols_rt, V* v, Index v_rows_rt,
                                       bool u_on_b, const V* u_index,
                                       const JacobiTolerances<R>& t, V exponent, V* sumsq,
                                       V* s_out, V* rank_out) {
  const Index rows = kRows > 0 ? kRows : rows_rt;
  const Index cols = kCols > 0 ? kCols : cols_rt;
  const Index v_rows = kCols > 0 ? kCols : v_rows_rt;
  const Index b_plane = rows * cols, v_plane = v_rows * cols;
  ColumnSquaredNorms<kRows, kCols, kComplex, V, R>(b, rows, cols, sumsq);
  V up1, up2;
  LanePow2(exponent, &up1, &up2);
  const V small(t.small);
  MaskOf<V> deficient = NoLanes<V, R>();
  for (Index j = 0; j < cols; ++j) {
    s_out[j] = (LaneSqrt(sumsq[j]) * up1) * up2;
    deficient = LaneOr(deficient, sumsq[j] < small);
  }
  RankColumns<V, R>(sumsq, cols, rank_out);
  const MaskOf<V> ok = LaneNot(deficient);
  if (!kWithV || !LaneAny(ok)) return ok;
  for (Index j = 0; j < cols; ++j) {
    V* br = b + j * rows;
    V* bi = b + b_plane + j * rows;
    const V norm = LaneSqrt(sumsq[j]);
    for (Index i = 0; i < rows; ++i) {
      br[i] = LaneSelect(ok, br[i] / norm, br[i]);
      if (kComplex) bi[i] = LaneSelect(ok, bi[i] / norm, bi[i]);
    }
    V* vr = v + j * v_rows;
    V* vi = v + v_plane + j * v_rows;
    // The column of U decides: pivot = first entry of largest |.|^2.
    V* ur = u_on_b ? br : vr;
    V* ui = u_on_b ? bi : vi;
    const Index u_rows = u_on_b ? rows : v_rows;
    V pr, pi, pivot;
    ColumnPivot<V>::template Find<kComplex, R>(ur, ui, u_rows, u_index, &pr, &pi, &pivot);
    if (kComplex) {
      // phase = conj(p) / |p|; then the pivot is set to |p| exactly (as canonical.h does).
      const V mag = LaneSqrt(LaneFma(pr, pr, pi * pi));
      const V phr = pr / mag, phi = (V(R(0)) - pi) / mag;
      const MaskOf<V> apply =
          LaneAnd(ok, LaneNot(LaneAnd(phr == V(R(1)), phi == V(R(0)))));  // phase != 1
      if (LaneAny(apply)) {
        ScaleColumnBy<true>(br, bi, rows, phr, phi, apply);
        ScaleColumnBy<true>(vr, vi, v_rows, phr, phi, apply);
        for (Index i = 0; i < u_rows; ++i) {
          const MaskOf<V> at = LaneAnd(apply, V(R(i)) == pivot);
          ur[i] = LaneSelect(at, mag, ur[i]);
          ui[i] = LaneSelect(at, V(R(0)), ui[i]);
        }
      }
    } else {
      const MaskOf<V> flip = LaneAnd(ok, pr < V(R(0)));
      if (LaneAny(flip)) {
        ScaleColumnBy<false>(br, br, rows, V(R(-1)), V(R(0)), flip);
        ScaleColumnBy<false>(vr, vr, v_rows, V(R(-1)), V(R(0)), flip);
      }
    }
  }
  return ok;
}

}  // namespace
}  // namespace jacobi
}  // namespace tfsvd
