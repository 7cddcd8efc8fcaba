#include "core/svd_grad.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <type_traits>
#include <utility>

#include "core/lapack.h"
#include "core/thin_grad.h"
#include "core/transpose.h"
#include "core/workspace.h"

namespace tfsvd {

bool ParseGradMethod(const std::string& name, GradMethod* method) {
  if (name == "stable") {
    *method = GradMethod::kStable;
  } else if (name == "exact") {
    *method = GradMethod::kExact;
  } else if (name == "lorentzian") {
    *method = GradMethod::kLorentzian;
  } else if (name == "taylor") {
    *method = GradMethod::kTaylor;
  } else {
    return false;
  }
  return true;
}

std::string ValidateSvdGradProblem(const SvdGradProblem& p) {
  if (p.batch < 0 || p.m < 0 || p.n < 0) return "negative dimension";
  if (std::isnan(p.eps)) return "grad_eps is NaN";
  if (p.order < 0) return "grad_order must be >= 0, got " + std::to_string(p.order);
  if (p.thin_isa != "off" && ThinGradKernelsFor(p.thin_isa) == nullptr) {
    return "thin_isa '" + p.thin_isa + "' is not an instruction set this CPU runs";
  }
  return lapack::CheckMatrixFitsInt32(p.m, p.n, p.u_cols(), p.v_cols());
}

double SvdGradCostPerMatrix(const SvdGradProblem& p) {
  const double mx = static_cast<double>(std::max(p.m, p.n));
  const double k = static_cast<double>(p.k());
  return (p.uses_vectors ? 8.0 : 2.0) * mx * mx * k + 1.0;
}

namespace {

// Row-major C (m x n) = alpha op(A) op(B) + beta C with op(A) m x k; op in {'N', 'C'}.
// Column-major BLAS sees each row-major buffer transposed, so it computes C^T = op(B)^T op(A)^T.
template <typename T>
void MatMul(char op_a, char op_b, Index m, Index n, Index k, T alpha, const T* a, Index lda,
            const T* b, Index ldb, T beta, T* c, Index ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (Index i = 0; i < m; ++i) {
      for (Index j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    }
    return;
  }
  using Int = lapack::Int;
  lapack::Gemm<T>(op_b, op_a, static_cast<Int>(n), static_cast<Int>(m), static_cast<Int>(k), alpha,
                  b, static_cast<Int>(std::max<Index>(1, ldb)), a,
                  static_cast<Int>(std::max<Index>(1, lda)), beta, c,
                  static_cast<Int>(std::max<Index>(1, ldc)));
}

// x * y without std::complex's NaN/Inf recovery (a library call per product); the same value for
// finite operands.
template <typename T> inline T PlainMul(T x, T y) { return x * y; }
template <typename R>
inline std::complex<R> PlainMul(std::complex<R> x, std::complex<R> y) {
  return std::complex<R>(x.real() * y.real() - x.imag() * y.imag(),
                         x.real() * y.imag() + x.imag() * y.real());
}

// MatMul with plain loops, for tiny matrices (see UsesLoops): same operands, same formula; only
// the summation order may differ from BLAS (rounding). kM/kN/kK > 0: sizes fixed at compile time.
template <char kOpA, char kOpB, Index kM = 0, Index kN = 0, Index kK = 0, typename T>
inline __attribute__((always_inline)) void LoopMatMul(Index m_rt, Index n_rt, Index k_rt, T alpha,
                                                      const T* a, Index lda, const T* b,
                                                      Index ldb, T beta, T* c, Index ldc) {
  const Index m = kM > 0 ? kM : m_rt, n = kN > 0 ? kN : n_rt, k = kK > 0 ? kK : k_rt;
  for (Index i = 0; i < m; ++i) {
    for (Index j = 0; j < n; ++j) {
      T acc(0);
      for (Index l = 0; l < k; ++l) {
        const T x = kOpA == 'N' ? a[i * lda + l] : Conj(a[l * lda + i]);
        const T y = kOpB == 'N' ? b[l * ldb + j] : Conj(b[j * ldb + l]);
        acc += PlainMul(x, y);
      }
      T& out = c[i * ldc + j];
      out = beta == T(0) ? PlainMul(alpha, acc) : PlainMul(alpha, acc) + PlainMul(beta, out);
    }
  }
}

// Below these sizes the backward runs without BLAS: a BLAS call costs more than the whole product
// there. us per matrix on this 2-core Xeon (AVX-512, loaded; min of 7), BLAS / loops, thin,
// stable, s/u/v cotangents (square: sizes fixed at compile time, RunSquare):
//   shape  float32       float64       complex64     complex128
//   2x2    0.227/0.022   0.283/0.022   0.625/0.066   0.579/0.069
//   3x3    0.268/0.051   0.261/0.086   0.839/0.252   0.769/0.317
//   4x4    0.928/0.069   0.299/0.091   1.242/0.545   0.858/0.376
//   5x5    0.377/0.141   0.403/0.157   0.957/0.808   1.259/0.654
//   6x6    0.436/0.202   0.319/0.227   0.798/1.328   0.802/0.947
//   8x8    0.596/0.371   0.499/0.682   1.126/3.086   1.248/2.333
//   6x3    0.421/0.278   0.378/0.273   0.843/0.498   0.748/0.471
//   9x2    0.453/0.400   0.513/0.258   0.842/0.534   1.127/0.560
//   10x4   0.554/0.571   0.586/0.658   1.047/1.074   0.997/1.183
//   32x3   1.155/1.183   1.158/1.103   2.681/2.320   2.188/3.314
// Real squares up to 12x12 unrolled (RunSquare), against BLAS, on a 2-core AMD EPYC (Zen 3, AVX2;
// separate processes alternated, min of 4 x 7), float32 and float64:
//   7x7 2.40/0.58 2.00/0.45   8x8 2.28/0.71 1.95/0.67   9x9 1.35/0.73 1.48/0.92
//   10x10 1.56/1.02 1.78/1.16   11x11 2.07/1.47 2.44/1.75   12x12 1.79/1.58 2.51/2.15
constexpr Index kLoopSquareReal = 12;    // square k x k, real
constexpr Index kLoopSquareComplex = 5;  // square k x k, complex
constexpr Index kLoopSquareMax = std::max(kLoopSquareReal, kLoopSquareComplex);  // RunSquare sizes
constexpr Index kLoopThinK = 3;          // non-square: min(m, n) <= 3 and max(m, n) <= 9
constexpr Index kLoopThinMax = 9;

// f(std::integral_constant<Index, k>()) if 1 <= k <= kMax, else false: one instance of f per
// size up to the limit, so raising a loop limit brings its compile-time sizes along.
template <class F, Index... kKs>
bool WithFixedKOf(Index k, F& f, std::integer_sequence<Index, kKs...>) {
  return ((k == kKs + 1 && (f(std::integral_constant<Index, kKs + 1>()), true)) || ...);
}
template <Index kMax, class F>
bool WithFixedK(Index k, F&& f) {
  return WithFixedKOf(k, f, std::make_integer_sequence<Index, kMax>());
}

template <typename T>
bool UsesLoops(const SvdGradProblem& p) {
  const Index k = p.k(), mx = std::max(p.m, p.n);
  if (p.loop_limit >= 0) return k <= p.loop_limit && mx <= 32;
  if (p.m == p.n) return k <= (kIsComplex<T> ? kLoopSquareComplex : kLoopSquareReal);
  return k <= kLoopThinK && mx <= kLoopThinMax;
}

// Chunk boundaries of the products fall on multiples of this many rows or columns.
constexpr Index kChunkAlign = 16;
// Tiles of Gamma (BuildGammaTiled): 32 x 32 entries of J and Kv each stay in L1.
constexpr Index kGammaTile = 32;
// Chunks of the matrix products. Each chunk is one BLAS call, which packs the whole operand that
// the chunks share (U, V or G) again, so chunks are at least kMinProductChunk rows or columns
// (but two, where StepChunks allows, so that two threads can still share a matrix). Square,
// float32, ms per matrix, StepChunks' chunks of 64 / these: one thread 512 7.4 / 6.3, 768 23 /
// 19.7, 1024 53 / 47; two threads 384 1.7 / 1.5, 512 3.9 / 3.2 (2-core Xeon). Still a function of
// the sizes only, so the bits do not depend on the team.
constexpr Index kMinProductChunk = 256;
inline Index ProductChunks(Index length, Index elements) {
  return std::min(StepChunks(length, elements), std::max<Index>(2, length / kMinProductChunk));
}
// From this max(m, n) min(m, n)^2 on, a matrix alone is worth a team (about 1 ms of products).
constexpr double kGradTeamMinWork = 128.0 * 128.0 * 128.0;

// Default relative tolerance of "stable" is kStableTolFactor * eps * max(m, n) (times s_max): an
// exact tie formed in floating point comes back from LAPACK split by a few eps * s_max * max(m, n)
// (1.35x that was seen on 4x4), and gaps this small are beyond what the singular vectors resolve
// anyway (their error is ~eps * s_max / gap). Same constant as the Python composite.
constexpr double kStableTolFactor = 16.0;

// The method's stand-ins for 1/x (x = s_j -/+ s_i) and 1/s_i, for one matrix.
template <typename Real>
class Reciprocals {
 public:
  Reciprocals(const SvdGradProblem& p, Real s_max) : method_(p.method), s_max_(s_max) {
    const Real machine_eps = std::numeric_limits<Real>::epsilon();
    const Real rel = p.eps >= 0 ? static_cast<Real>(p.eps)
                                : static_cast<Real>(kStableTolFactor) * machine_eps *
                                      static_cast<Real>(std::max(p.m, p.n));
    tol_ = rel * s_max;
    lorentz_ = p.eps >= 0 ? static_cast<Real>(p.eps) : Real(1e-12);
  }

  // Stand-in for 1/x where x is a difference or sum of singular values.
  Real Gap(Real x) const {
    switch (method_) {
      case GradMethod::kExact:
        return Real(1) / x;
      case GradMethod::kLorentzian: {
        // x / (x^2 + e s_max^2), evaluated relative to s_max so it cannot overflow.
        if (s_max_ == Real(0)) return Real(0);
        const Real xs = x / s_max_;
        const Real den = s_max_ * (xs * xs + lorentz_);
        return den == Real(0) ? Real(0) : xs / den;
      }
      case GradMethod::kStable:
      case GradMethod::kTaylor:
        return std::abs(x) <= tol_ ? Real(0) : Real(1) / x;
    }
    return Real(0);
  }

  // Stand-in for 1/s.
  Real Inverse(Real s) const { return Gap(s); }

  Real tol() const { return tol_; }

 private:
  GradMethod method_;
  Real s_max_;
  Real tol_ = 0;
  Real lorentz_ = 0;
};

// Taylor expansion of 1/(s_j^2 - s_i^2) (Wang et al., TPAMI 2022) with l = (s / s_max)^2:
// (1/hi) sum_{k=0..order} (lo/hi)^k, signed. Returned in units of 1/s_max^2 (that is, it
// approximates s_max^2 / (s_j^2 - s_i^2)): the raw value under- or overflows at extreme scales.
template <typename Real>
Real TaylorInverseSquareGap(Real si, Real sj, Index i, Index j, Real s_max, Real tol, int order) {
  if (s_max == Real(0)) return Real(0);
  const Real li = (si / s_max) * (si / s_max), lj = (sj / s_max) * (sj / s_max);
  const Real hi = std::max(li, lj), lo = std::min(li, lj);
  const Real tol_n = tol / s_max;
  if (hi <= tol_n * tol_n) return Real(0);
  const Real ratio = lo / hi;
  Real sum = Real(0), power = Real(1);
  for (int t = 0; t <= order; ++t) {
    sum += power;
    power *= ratio;
  }
  // 1/(l_j - l_i) is negative when l_i > l_j; at exact ties the index order decides.
  const bool negative = li > lj || (li == lj && i < j);
  const Real value = sum / hi;
  return negative ? -value : value;
}

// x (rows x k, dense) = a (rows x k of leading dimension lda) diag(d). Restrict-qualified so that
// the rows vectorise (one scalar loop was 5% of a 32x1000x16 float32 forward + backward).
template <typename T>
void ScaleColumns(Index rows, Index k, const T* __restrict a, Index lda,
                  const RealOf<T>* __restrict d, T* __restrict x) {
  for (Index i = 0; i < rows; ++i) {
    for (Index c = 0; c < k; ++c) x[i * k + c] = a[i * lda + c] * d[c];
  }
}

// y (k x cols, dense) = diag(d) a^H for a (cols x k of leading dimension lda), through a by rows.
template <typename T>
void ScaleColumnsAdjoint(Index cols, Index k, const T* __restrict a, Index lda,
                         const RealOf<T>* __restrict d, T* __restrict y) {
  for (Index j = 0; j < cols; ++j) {
    for (Index r = 0; r < k; ++r) y[r * cols + j] = Conj(a[j * lda + r]) * d[r];
  }
}

template <typename T>
class SvdGradSolver {
 public:
  using Real = RealOf<T>;

  explicit SvdGradSolver(const SvdGradProblem& p)
      : p_(p), small_(UsesLoops<T>(p)), thin_(small_ ? nullptr : ThinKernels(p)) {
    const Index k = p.k(), mx = std::max(p.m, p.n);
    j_.Resize(k * k);
    kv_.Resize(k * k);
    x_.Resize(mx * k);
    if (small_) {
      gamma_.Resize(k * k);
      w_.Resize(mx * k);
      z_.Resize((mx - k) * k + 1);
    } else {
      g_.Resize(mx * k);
      inv_.Resize(k);
    }
    if (thin_ != nullptr) thin_work_.Resize((kMaxStepChunks + 3) * k * k);
  }

  // ga for one matrix; `team` runs the matrix products of the BLAS path.
  void Run(ThreadTeam& team, const Real* s, const T* u, const T* v, const Real* gs, const T* gu,
           const T* gv, T* ga) {
    const Index m = p_.m, n = p_.n, k = p_.k();
    for (Index i = 0; i < k; ++i) {
      if (!std::isfinite(s[i])) {
        std::fill(ga, ga + m * n, T(std::numeric_limits<Real>::quiet_NaN()));
        return;
      }
    }
    const Real s_max = s[0];  // descending
    const Reciprocals<Real> recip(p_, s_max);
    if (thin_ != nullptr) return RunThin(team, s, u, v, gs, gu, gv, ga, s_max, recip);
    if (!small_) return RunBlas(team, s, u, v, gs, gu, gv, ga, s_max, recip);
    if (m == n && WithFixedK<kLoopSquareMax>(k, [&](auto fixed_k) {
          RunSquare<decltype(fixed_k)::value>(s, u, v, gs, gu, gv, ga, s_max, recip);
        })) {
      return;
    }
    // Thin shapes with k known at compile time, so the k-long loops unroll: ns per float32
    // matrix, one thread, Zen 5, runtime k / compile-time k: 4x3 114/88, 3x4 106/80, 9x3 213/157,
    // 5x2 81/51. Larger k reach the loops only through tests.
    if (WithFixedK<kLoopThinK>(k, [&](auto fixed_k) {
          RunLoops<decltype(fixed_k)::value>(s, u, v, gs, gu, gv, ga, s_max, recip);
        })) {
      return;
    }
    RunLoops(s, u, v, gs, gu, gv, ga, s_max, recip);
  }

 private:
  // Tiny non-square matrices: the products in plain loops (kK > 0: k known at compile time).
  template <Index kK = 0>
  void RunLoops(const Real* s, const T* u, const T* v, const Real* gs, const T* gu, const T* gv,
                T* ga, Real s_max, const Reciprocals<Real>& recip) {
    const Index m = p_.m, n = p_.n, k = kK > 0 ? kK : p_.k(), uc = p_.u_cols(), vc = p_.v_cols();
    const bool vectors = p_.uses_vectors;
    if (vectors) {
      LoopMatMul<'C', 'N', kK, kK>(k, k, m, T(1), u, uc, gu, uc, T(0), j_.data(), k);
      LoopMatMul<'C', 'N', kK, kK>(k, k, n, T(1), v, vc, gv, vc, T(0), kv_.data(), k);
    }
    BuildGamma<kK>(s, gs, s_max, recip, j_.data(), kv_.data(), gamma_.data());

    if (m >= n) {
      // ga = (U1 Gamma + [gU1 - U1 J - U2 (gU2^H U1)] S^-1) V1^H; the bracket vanishes if m == n.
      LoopMatMul<'N', 'N', 0, kK, kK>(m, k, k, T(1), u, uc, gamma_.data(), k, T(0), x_.data(), k);
      if (vectors && m > k) {
        ProjectOut<kK>(m, k, u, uc, gu, uc, j_.data(), w_.data());
        for (Index i = 0; i < m; ++i) {
          for (Index c = 0; c < k; ++c) x_[i * k + c] += w_[i * k + c] * recip.Inverse(s[c]);
        }
      }
      LoopMatMul<'N', 'C', 0, 0, kK>(m, n, k, T(1), x_.data(), k, v, vc, T(0), ga, n);
    } else {
      // ga = U1 (Gamma V1^H + S^-1 [gV1 - V1 Kv - V2 (gV2^H V1)]^H).
      T* y = x_.data();  // k x n
      LoopMatMul<'N', 'C', kK, 0, kK>(k, n, k, T(1), gamma_.data(), k, v, vc, T(0), y, n);
      if (vectors) {
        ProjectOut<kK>(n, k, v, vc, gv, vc, kv_.data(), w_.data());
        for (Index r = 0; r < k; ++r) {
          const Real inv = recip.Inverse(s[r]);
          for (Index c = 0; c < n; ++c) y[r * n + c] += inv * Conj(w_[c * k + r]);
        }
      }
      LoopMatMul<'N', 'N', 0, 0, kK>(m, n, k, T(1), u, uc, y, n, T(0), ga, n);
    }
  }

  // Larger matrices: the same formula with the products regrouped so that there are as few as
  // possible, each cut into row or column chunks of the output that `team` runs. For m >= n
  //   ga = X V1^H,  X = gU1 S^-1 + U G,  G = [Gamma - J S^-1; -(gU2^H U1) S^-1]
  // (the second block only with full u), which is (U1 Gamma + [gU1 - U1 J - U2 gU2^H U1] S^-1)
  // V1^H with U1 J folded into U G; for m < n the mirror image with V. Values only:
  // X = U1 diag(gs).
  void RunBlas(ThreadTeam& team, const Real* s, const T* u, const T* v, const Real* gs,
               const T* gu, const T* gv, T* ga, Real s_max, const Reciprocals<Real>& recip) {
    const Index m = p_.m, n = p_.n, k = p_.k(), uc = p_.u_cols(), vc = p_.v_cols();
    const bool vectors = p_.uses_vectors;
    T* const J = j_.data();
    T* const Kv = kv_.data();
    if (vectors) {
      // J = U1^H gU1 and Kv = V1^H gV1, by column chunks of both.
      const Index cj = ProductChunks(k, m * k), ck = ProductChunks(k, n * k);
      team.ForEachChunk(cj + ck, [&](Index chunk) {
        const bool left = chunk < cj;
        Index b, e;
        ChunkBounds(k, left ? cj : ck, kChunkAlign, left ? chunk : chunk - cj, &b, &e);
        if (b == e) return;
        if (left) {
          MatMul<T>('C', 'N', k, e - b, m, T(1), u, uc, gu + b, uc, T(0), J + b, k);
        } else {
          MatMul<T>('C', 'N', k, e - b, n, T(1), v, vc, gv + b, vc, T(0), Kv + b, k);
        }
      });
    }
    Real* const inv = inv_.data();
    for (Index c = 0; c < k; ++c) inv[c] = recip.Inverse(s[c]);
    T* const G = g_.data();

    if (m >= n) {
      // G (g_rows x k): Gamma, less J S^-1 when gU has a part outside span(U1), and the full-u
      // block -(gU2^H U1) S^-1 below.
      const bool project = vectors && m > k;
      const Index g_rows = project ? uc : k;
      if (vectors) {
        BuildGammaTiled(team, s, gs, s_max, recip, J, Kv, false, G);
        if (project) SubtractScaled(team, k, J, inv, G);
      }
      if (project && uc > k) FullBlock(team, m, k, uc, gu, u, inv, G + k * k);
      const Index chunks = ProductChunks(m, m * (n + g_rows));
      team.ForEachRange(m, chunks, kChunkAlign, [&](Index b, Index e) {
        T* x = x_.data() + b * k;  // rows [b, e) of X
        const Index rows = e - b;
        if (!vectors) {
          ScaleColumns(rows, k, u + b * uc, uc, gs, x);
        } else {
          if (project) {
            ScaleColumns(rows, k, gu + b * uc, uc, inv, x);
          } else {
            std::fill(x, x + rows * k, T(0));
          }
          MatMul<T>('N', 'N', rows, k, g_rows, T(1), u + b * uc, uc, G, k, T(1), x, k);
        }
        MatMul<T>('N', 'C', rows, n, k, T(1), x, k, v, vc, T(0), ga + b * n, n);
      });
      return;
    }
    // m < n: ga = U1 Y, Y = S^-1 gV1^H + H V^H, H = [Gamma - S^-1 Kv^H, -S^-1 (gV2^H V1)^H]
    // (k x h_cols), or Y = diag(gs) V1^H for values only.
    const bool project = vectors;  // n > k here
    const Index h_cols = vc;
    // G holds H^H (h_cols x k), so that both cases share the full-block routine: its first k rows
    // are Gamma^H - Kv S^-1.
    if (project) {
      BuildGammaTiled(team, s, gs, s_max, recip, J, Kv, true, G);
      SubtractScaled(team, k, Kv, inv, G);
      if (vc > k) FullBlock(team, n, k, vc, gv, v, inv, G + k * k);
    }
    const Index chunks = ProductChunks(n, n * (m + h_cols));
    team.ForEachRange(n, chunks, kChunkAlign, [&](Index b, Index e) {
      const Index cols = e - b;
      T* y = x_.data() + b * k;  // Y's columns [b, e), as a k x cols row-major block
      ScaleColumnsAdjoint(cols, k, vectors ? gv + b * vc : v + b * vc, vc, vectors ? inv : gs, y);
      if (vectors) {
        // Y += H V(cols, :)^H = (V(cols, :) H^H)^H: with G = H^H, Y += G^H V(cols, :)^H.
        MatMul<T>('C', 'C', k, cols, h_cols, T(1), G, k, v + b * vc, vc, T(1), y, cols);
      }
      MatMul<T>('N', 'N', m, cols, k, T(1), u, uc, y, cols, T(0), ga + b, n);
    });
  }

  // The thin products' kernels where they apply: a real non-square matrix whose long factor is
  // thin (not full_matrices on that side) with k within the kernels' limit; else null.
  static const ThinGradKernels* ThinKernels(const SvdGradProblem& p) {
    if (kIsComplex<T> || p.thin_isa == "off" || p.m == p.n) return nullptr;
    const Index k = p.k();
    if ((p.m > p.n ? p.u_cols() : p.v_cols()) != k) return nullptr;
    return ThinGradKernelsForColumns<Real>(p.thin_isa, k, p.m > p.n ? p.m : p.n);
  }

  // RunBlas' formula for a thin real matrix through thin_grad.h's kernels. Tall (m > n = k):
  //   ga = X V^T = gU P + U Q,  P = S^-1 V^T,  Q = G V^T,  G = Gamma - J S^-1;
  // wide (the mirror image): ga^T = gV P + V Q, P = S^-1 U^T, Q = G U^T, G = Gamma^T - Kv S^-1,
  // into x_ and then transposed. Values only: ga = U diag(gs) V^T, Q = diag(gs) V^T (or U^T).
  // The long Gram matrix (J, or Kv when wide) sums fixed row chunks in order, so the bits do not
  // depend on the team.
  void RunThin(ThreadTeam& team, const Real* s, const T* u, const T* v, const Real* gs,
               const T* gu, const T* gv, T* ga, Real s_max, const Reciprocals<Real>& recip) {
    if constexpr (!kIsComplex<T>) {
      const Index m = p_.m, n = p_.n, k = p_.k();
      const bool tall = m > n, vectors = p_.uses_vectors;
      const Index rows = tall ? m : n;
      const T* q_long = tall ? u : v;  // rows x k
      const T* g_long = tall ? gu : gv;
      const T* q_short = tall ? v : u;  // k x k
      const T* g_short = tall ? gv : gu;
      T* const J = j_.data();
      T* const Kv = kv_.data();
      T* const partial = thin_work_.data();  // kMaxStepChunks x k x k
      T* const st = partial + kMaxStepChunks * k * k;  // q_short^T
      T* const P = st + k * k;
      T* const Q = P + k * k;
      const ThinGramKernel<T> gram = ThinGramOf<T>(*thin_);
      const ThinProductKernel<T> product = ThinProductOf<T>(*thin_);
      if (vectors) {
        T* long_gram = tall ? J : Kv;
        const Index chunks = StepChunks(rows, rows * k);
        team.ForEachChunk(chunks, [&](Index chunk) {
          Index b, e;
          ChunkBounds(rows, chunks, kChunkAlign, chunk, &b, &e);
          T* out = chunks == 1 ? long_gram : partial + chunk * k * k;
          if (b == e) {
            std::fill(out, out + k * k, T(0));
          } else {
            gram(e - b, k, q_long + b * k, g_long + b * k, out);
          }
        });
        if (chunks > 1) {
          std::copy(partial, partial + k * k, long_gram);
          for (Index c = 1; c < chunks; ++c) {
            for (Index i = 0; i < k * k; ++i) long_gram[i] += partial[c * k * k + i];
          }
        }
        gram(k, k, q_short, g_short, tall ? Kv : J);
      }
      Real* const inv = inv_.data();
      for (Index c = 0; c < k; ++c) inv[c] = recip.Inverse(s[c]);
      for (Index b = 0; b < k; ++b) {
        for (Index c = 0; c < k; ++c) st[b * k + c] = q_short[c * k + b];
      }
      if (vectors) {
        T* const G = g_.data();
        BuildGammaTiled(team, s, gs, s_max, recip, J, Kv, !tall, G);
        SubtractScaled(team, k, tall ? J : Kv, inv, G);
        for (Index b = 0; b < k; ++b) {
          for (Index c = 0; c < k; ++c) P[b * k + c] = inv[b] * st[b * k + c];
        }
        product(k, k, nullptr, nullptr, G, st, Q);
      } else {
        for (Index a = 0; a < k; ++a) {
          for (Index c = 0; c < k; ++c) Q[a * k + c] = gs[a] * st[a * k + c];
        }
      }
      T* const out = tall ? ga : x_.data();  // rows x k
      const Index chunks = ProductChunks(rows, 2 * rows * k);
      team.ForEachRange(rows, chunks, kChunkAlign, [&](Index b, Index e) {
        product(e - b, k, vectors ? g_long + b * k : nullptr, P, q_long + b * k, Q, out + b * k);
      });
      if (!tall) CopyTransposed(team, m, n, x_.data(), m, ga, n, [](T x) { return x; });
    }
  }

  // out (k x k) = Gamma, or Gamma^H with `adjoint`, for the BLAS path (with vectors): the
  // entries of GammaEntry, by row chunks of out in kGammaTile x kGammaTile tiles, so that the
  // transposed reads of J and Kv stay in cache. For the stable and exact methods each tile first
  // copies the transposed entries of J and Kv it needs, so that the loop over a row reads
  // everything in order and compiles to vector divisions (GammaEntry's two scalar divisions per
  // entry: float32, one thread, backward of 768^2 19.4 -> 18.6 ms, of 200x128^2 30.5 -> 25.4);
  // the arithmetic is GammaEntry's, entry for entry (the same bits).
  void BuildGammaTiled(ThreadTeam& team, const Real* s, const Real* gs, Real s_max,
                       const Reciprocals<Real>& recip, const T* J, const T* K, bool adjoint,
                       T* out) {
    const bool split = p_.method == GradMethod::kStable || p_.method == GradMethod::kExact;
    // Gap(x) of those methods: 0 where |x| <= cut (never for exact), else 1 / x.
    const Real cut = p_.method == GradMethod::kStable ? recip.tol() : Real(-1);
    const Index k = p_.k();
    const Index chunks = StepChunks(k, k * k);
    team.ForEachRange(k, chunks, kChunkAlign, [&](Index b, Index e) {
      T tile_j[kGammaTile * kGammaTile], tile_k[kGammaTile * kGammaTile];
      for (Index r0 = b; r0 < e; r0 += kGammaTile) {
        const Index r1 = std::min(e, r0 + kGammaTile);
        for (Index c0 = 0; c0 < k; c0 += kGammaTile) {
          const Index c1 = std::min(k, c0 + kGammaTile);
          if (!split) {
            for (Index r = r0; r < r1; ++r) {
              for (Index c = c0; c < c1; ++c) {
                out[r * k + c] = adjoint ? Conj(GammaEntry(c, r, k, s, gs, s_max, recip, J, K))
                                         : GammaEntry(r, c, k, s, gs, s_max, recip, J, K);
              }
            }
            continue;
          }
          // tile_x[(r - r0) kGammaTile + (c - c0)] = X[c k + r].
          for (Index c = c0; c < c1; ++c) {
            for (Index r = r0; r < r1; ++r) {
              tile_j[(r - r0) * kGammaTile + (c - c0)] = J[c * k + r];
              tile_k[(r - r0) * kGammaTile + (c - c0)] = K[c * k + r];
            }
          }
          for (Index r = r0; r < r1; ++r) {
            const T* tj = tile_j + (r - r0) * kGammaTile;
            const T* tk = tile_k + (r - r0) * kGammaTile;
            if (adjoint) {
              SplitGammaRow<true>(c0, c1, s[r], s, J + r * k, K + r * k, tj, tk, cut,
                                  out + r * k);
            } else {
              SplitGammaRow<false>(c0, c1, s[r], s, J + r * k, K + r * k, tj, tk, cut,
                                   out + r * k);
            }
            if (c0 <= r && r < c1) {
              const T diag = GammaEntry(r, r, k, s, gs, s_max, recip, J, K);
              out[r * k + r] = adjoint ? Conj(diag) : diag;
            }
          }
        }
      }
    });
  }

  // Row r of BuildGammaTiled's out over columns [c0, c1) for the split form (the diagonal entry
  // is overwritten afterwards): jrow[c] = X[r k + c] and trans[c - c0] = X[c k + r] for X = J, K.
  // Without kAdjoint, GammaEntry(r, c); with it, conj(GammaEntry(c, r)).
  template <bool kAdjoint>
  static void SplitGammaRow(Index c0, Index c1, Real s_r, const Real* s, const T* jrow,
                            const T* krow, const T* jtrans, const T* ktrans, Real cut, T* out) {
    // Vectorised with both sides of the select computed, which CMakeLists.txt's
    // -fno-trapping-math for this file allows (values are unchanged).
    const auto gap = [cut](Real x) { return std::abs(x) <= cut ? Real(0) : Real(1) / x; };
    for (Index c = c0; c < c1; ++c) {
      const T jt = jtrans[c - c0], kt = ktrans[c - c0];
      const T jh = kAdjoint ? jt - Conj(jrow[c]) : jrow[c] - Conj(jt);
      const T kh = kAdjoint ? kt - Conj(krow[c]) : krow[c] - Conj(kt);
      const Real difference = kAdjoint ? s_r - s[c] : s[c] - s_r;
      const Real sum = kAdjoint ? s_r + s[c] : s[c] + s_r;
      const T entry = Real(0.5) * (jh + kh) * gap(difference) + Real(0.5) * (jh - kh) * gap(sum);
      out[c] = kAdjoint ? Conj(entry) : entry;
    }
  }

  // Gamma_ij (uses_vectors), J and K k x k: the split form off the diagonal (or the Taylor series),
  // gs_i plus the complex term on it.
  inline __attribute__((always_inline)) T GammaEntry(Index i, Index j, Index k, const Real* s,
                                                    const Real* gs, Real s_max,
                                                    const Reciprocals<Real>& recip, const T* J,
                                                    const T* K) const {
    if (i == j) {
      T diag = T(gs[i]);
      if constexpr (kIsComplex<T>) diag += T(0, ImagPart(J[i * k + i]) * recip.Inverse(s[i]));
      return diag;
    }
    const T jh = J[i * k + j] - Conj(J[j * k + i]);
    const T kh = K[i * k + j] - Conj(K[j * k + i]);
    if (p_.method == GradMethod::kTaylor) {
      // (jh s_j + s_i kh) / (s_j^2 - s_i^2), every factor in units of s_max.
      const Real t = TaylorInverseSquareGap(s[i], s[j], i, j, s_max, recip.tol(), p_.order);
      return (jh * (s[j] / s_max) + (s[i] / s_max) * kh) * (t / s_max);
    }
    return Real(0.5) * (jh + kh) * recip.Gap(s[j] - s[i]) +
           Real(0.5) * (jh - kh) * recip.Gap(s[j] + s[i]);
  }

  // g (k x k) -= x S^-1 (column c of x scaled by inv[c]), by row chunks.
  void SubtractScaled(ThreadTeam& team, Index k, const T* x, const Real* inv, T* g) {
    const Index chunks = StepChunks(k, k * k);
    team.ForEachRange(k, chunks, kChunkAlign, [&](Index b, Index e) {
      for (Index i = b; i < e; ++i) {
        for (Index c = 0; c < k; ++c) g[i * k + c] -= x[i * k + c] * inv[c];
      }
    });
  }

  // block (cols - k) x k = -(g2^H q1) S^-1 for q = [q1 q2], g = [g1 g2] (rows x cols, row-major):
  // the full-factor term, by row chunks of the block.
  void FullBlock(ThreadTeam& team, Index rows, Index k, Index cols, const T* g, const T* q,
                 const Real* inv, T* block) {
    const Index extra = cols - k;
    const Index chunks = StepChunks(extra, rows * extra);
    team.ForEachRange(extra, chunks, kChunkAlign, [&](Index b, Index e) {
      MatMul<T>('C', 'N', e - b, k, rows, T(-1), g + k + b, cols, q, cols, T(0), block + b * k, k);
      for (Index i = b; i < e; ++i) {
        for (Index c = 0; c < k; ++c) block[i * k + c] *= inv[c];
      }
    });
  }

  // Square k x k (m == n, so thin and full factors coincide and nothing is projected out): the
  // products above with every size known at compile time, on the stack.
  template <Index kK>
  void RunSquare(const Real* s, const T* u, const T* v, const Real* gs, const T* gu, const T* gv,
                 T* ga, Real s_max, const Reciprocals<Real>& recip) {
    T j[kK * kK], kv[kK * kK], gamma[kK * kK], x[kK * kK];
    if (p_.uses_vectors) {
      LoopMatMul<'C', 'N', kK, kK, kK>(kK, kK, kK, T(1), u, kK, gu, kK, T(0), j, kK);
      LoopMatMul<'C', 'N', kK, kK, kK>(kK, kK, kK, T(1), v, kK, gv, kK, T(0), kv, kK);
    }
    BuildGamma<kK>(s, gs, s_max, recip, j, kv, gamma);
    LoopMatMul<'N', 'N', kK, kK, kK>(kK, kK, kK, T(1), u, kK, gamma, kK, T(0), x, kK);
    LoopMatMul<'N', 'C', kK, kK, kK>(kK, kK, kK, T(1), x, kK, v, kK, T(0), ga, kK);
  }

  // w = g1 - q1 (q1^H g1) - q2 (g2^H q1) for q = [q1 q2] (rows x cols), g likewise, where q1^H g1
  // was already computed in `qhg`. The q2 term exists only for full factors (cols > k).
  template <Index kK = 0>
  void ProjectOut(Index rows, Index k, const T* q, Index cols, const T* g, Index ldg,
                  const T* qhg, T* w) {
    for (Index i = 0; i < rows; ++i) std::copy(g + i * ldg, g + i * ldg + k, w + i * k);
    LoopMatMul<'N', 'N', 0, kK, kK>(rows, k, k, T(-1), q, cols, qhg, k, T(1), w, k);
    if (cols > k) {
      LoopMatMul<'C', 'N', 0, kK>(cols - k, k, rows, T(1), g + k, ldg, q, cols, T(0), z_.data(),
                                  k);
      LoopMatMul<'N', 'N', 0, kK>(rows, k, cols - k, T(-1), q + k, cols, z_.data(), k, T(1), w,
                                  k);
    }
  }

  // kK > 0: k known at compile time.
  template <Index kK = 0>
  void BuildGamma(const Real* s, const Real* gs, Real s_max, const Reciprocals<Real>& recip,
                  const T* J, const T* K, T* gamma) {
    const Index k = kK > 0 ? kK : p_.k();
    if (!p_.uses_vectors) {
      std::fill(gamma, gamma + k * k, T(0));
      for (Index i = 0; i < k; ++i) gamma[i * k + i] = T(gs[i]);
      return;
    }
    for (Index i = 0; i < k; ++i) {
      for (Index j = 0; j < k; ++j) {
        gamma[i * k + j] = GammaEntry(i, j, k, s, gs, s_max, recip, J, K);
      }
    }
  }

  const SvdGradProblem& p_;
  const bool small_;  // LoopMatMul instead of BLAS
  const ThinGradKernels* const thin_;  // thin_grad.h's kernels (RunThin), or null
  AlignedArray<T> j_, kv_, gamma_, x_, w_, z_, g_, thin_work_;
  AlignedArray<Real> inv_;
};

}  // namespace


template <typename T>
void SvdGradRange(const SvdGradProblem& p, const SvdGradBuffers<T>& b, Index begin, Index end,
                  ThreadTeam* team) {
  const Index m = p.m, n = p.n, k = p.k();
  const Index us = m * p.u_cols(), vs = n * p.v_cols();
  if (k == 0) {
    std::fill(b.ga + begin * m * n, b.ga + end * m * n, T(0));
    return;
  }
  lapack::UseSingleThreadedBlas();
  SvdGradSolver<T> solver(p);
  ThreadTeam alone(nullptr, 0);
  ThreadTeam& runner = team != nullptr ? *team : alone;
  for (Index i = begin; i < end; ++i) {
    solver.Run(runner, b.s + i * k, b.u + i * us, b.v + i * vs, b.gs + i * k,
               p.uses_vectors ? b.gu + i * us : nullptr, p.uses_vectors ? b.gv + i * vs : nullptr,
               b.ga + i * m * n);
  }
}

template <typename T>
bool SvdGradUsesTeam(const SvdGradProblem& p) {
  const double k = static_cast<double>(p.k());
  return !UsesLoops<T>(p) && k > 0 && static_cast<double>(std::max(p.m, p.n)) * k * k >=
                                          kGradTeamMinWork;
}

#define TFSVD_INSTANTIATE(T)                                                                     \
  template void SvdGradRange<T>(const SvdGradProblem&, const SvdGradBuffers<T>&, Index, Index,   \
                                ThreadTeam*);                                                    \
  template bool SvdGradUsesTeam<T>(const SvdGradProblem&);
TFSVD_INSTANTIATE(float)
TFSVD_INSTANTIATE(double)
TFSVD_INSTANTIATE(std::complex<float>)
TFSVD_INSTANTIATE(std::complex<double>)
#undef TFSVD_INSTANTIATE

}  // namespace tfsvd
