// Batched one-sided Jacobi SVD on the CPU: packs groups of matrices across SIMD lanes, runs the
// kernel of the best instruction set this CPU has, and unpacks each lane into tfsvd's conventions.
//
// Per matrix: scale by a power of two so the largest entry has magnitude in [0.5, 1) (exact; keeps
// matrices near overflow or underflow in range), work on B = A (m >= n) or B = A^H (m < n) so that
// B has at least as many rows as columns, orthogonalise B's columns by rotations (B V = U S), then
// s_j = |b_j|, u_j = b_j / s_j, sorted descending. Columns too small to normalise reliably (and,
// for full_matrices, the extra columns) are completed to an orthonormal basis. Finally the
// canonical signs of canonical.h, as every other path.
//
// Everything here runs per lane in plain scalar code; only the sweeps (jacobi_kernels.h) are SIMD.
#include "core/jacobi_batched.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdlib>
#include <limits>

#include "core/canonical.h"
#include "core/cpu_isa.h"
#include "core/jacobi.h"

namespace tfsvd {
namespace {

using jacobi::KernelTable;

const KernelTable* TableFor(const std::string& name) {
  if (!CpuRunsIsa(name)) return nullptr;
  if (name == "sse2") {
    static const KernelTable table = jacobi::sse2::Table();
    return &table;
  }
  if (name == "avx2") {
    static const KernelTable table = jacobi::avx2::Table();
    return &table;
  }
  static const KernelTable table = jacobi::avx512::Table();
  return &table;
}

// The widest instruction set the CPU runs, or the one named by TFSVD_JACOBI_ISA if it can.
const KernelTable* BestTable() {
  if (const char* forced = std::getenv("TFSVD_JACOBI_ISA")) {
    if (const KernelTable* table = TableFor(forced)) return table;
  }
  for (const char* name : {"avx512", "avx2"}) {
    if (const KernelTable* table = TableFor(name)) return table;
  }
  return TableFor("sse2");
}

// Decided once per process (the CPU does not change); never modified afterwards.
const KernelTable* DefaultTable() {
  static const KernelTable* const table = BestTable();
  return table;
}

const KernelTable* TableOf(const std::string& name) {
  return name == "auto" ? DefaultTable() : TableFor(name);
}

template <class R> jacobi::GroupKernel<R> KernelOf(const KernelTable& t, bool lone);
template <> jacobi::GroupKernel<float> KernelOf<float>(const KernelTable& t, bool lone) {
  return lone ? t.run_lone_float : t.run_float;
}
template <> jacobi::GroupKernel<double> KernelOf<double>(const KernelTable& t, bool lone) {
  return lone ? t.run_lone_double : t.run_double;
}
template <class R> int LanesOf(const KernelTable& t);
template <> int LanesOf<float>(const KernelTable& t) { return t.lanes_float; }
template <> int LanesOf<double>(const KernelTable& t) { return t.lanes_double; }

// x * 2^k with at most one rounding, for every k the scaling of a float/double matrix can need.
template <class R> struct Pow2Scale;
template <> struct Pow2Scale<float> {
  double factor;
  explicit Pow2Scale(int k) : factor(std::ldexp(1.0, k)) {}
  float operator()(float x) const { return static_cast<float>(static_cast<double>(x) * factor); }
};
template <> struct Pow2Scale<double> {
  // 2^k itself is a normal double for k in [-1022, 1023]; beyond, two exact steps.
  double factor, first, second;
  bool split;
  explicit Pow2Scale(int k)
      : factor(std::ldexp(1.0, std::clamp(k, -1022, 1023))),
        first(std::ldexp(1.0, k / 2)),
        second(std::ldexp(1.0, k - k / 2)),
        split(k < -1022 || k > 1023) {}
  double operator()(double x) const { return split ? (x * first) * second : x * factor; }
};

template <class T>
T FromParts(RealOf<T> re, RealOf<T> im) {
  if constexpr (kIsComplex<T>) {
    return T(re, im);
  } else {
    (void)im;
    return re;
  }
}

// Orthonormal columns first..cols-1 of the row-major rows x cols matrix q, orthogonal to its
// (orthonormal) columns 0..first-1: the unit vector least represented in the columns so far,
// orthogonalised twice (classical Gram-Schmidt twice is enough when, as here, the vector keeps a
// norm of at least 1/sqrt(rows)) and normalised. Deterministic: first index on ties.
template <class T>
void CompleteBasis(T* q, Index rows, Index cols, Index first, T* x) {
  using Real = RealOf<T>;
  for (Index c = first; c < cols; ++c) {
    Index best = 0;
    Real best_weight = -1;
    for (Index i = 0; i < rows; ++i) {
      Real weight = 1;
      for (Index j = 0; j < c; ++j) weight -= AbsSquared(q[i * cols + j]);
      if (weight > best_weight) {
        best_weight = weight;
        best = i;
      }
    }
    for (Index i = 0; i < rows; ++i) x[i] = T(0);
    x[best] = T(1);
    for (int pass = 0; pass < 2; ++pass) {
      for (Index j = 0; j < c; ++j) {
        T dot(0);
        for (Index i = 0; i < rows; ++i) dot += Conj(q[i * cols + j]) * x[i];
        for (Index i = 0; i < rows; ++i) x[i] -= q[i * cols + j] * dot;
      }
    }
    Real norm2 = 0;
    for (Index i = 0; i < rows; ++i) norm2 += AbsSquared(x[i]);
    const Real norm = std::sqrt(norm2);
    for (Index i = 0; i < rows; ++i) q[i * cols + c] = x[i] / norm;
  }
}

}  // namespace

const char* JacobiIsa() { return DefaultTable()->name; }

bool JacobiIsaAvailable(const std::string& name) { return TableOf(name) != nullptr; }

template <typename T>
Index JacobiLanes(const std::string& isa) {
  return LanesOf<RealOf<T>>(*TableOf(isa));
}

// A short last group runs on the AVX2 kernels (the same bits) where that costs less than an
// AVX-512 group: on AMD family 19h with AVX-512 (Zen 4), which runs 512-bit operations as two
// 256-bit halves, and on Intel CPUs with AVX-512, where a group is far from twice as slow with
// twice the lanes (2-core Xeon, family 6 model 207, one group, us, float32 AVX2 8 lanes / AVX-512
// 16 lanes: 16x16 38 / 56, 32x32 310 / 380, 48x48 795 / 1183, 64x64 2028 / 2935; float64 4 / 8
// lanes: 32x32 324 / 473, 64x64 2367 / 3465). Zen 5 takes as long for an AVX2 group as for an
// AVX-512 group of twice the lanes, so half-width groups would only cost it more groups.
std::string JacobiHalfWidthIsa(const std::string& isa) {
  static const bool half_width_pays = [] {
    __builtin_cpu_init();
    return (__builtin_cpu_is("amdfam19h") || __builtin_cpu_is("intel")) &&
           __builtin_cpu_supports("avx512f");
  }();
  if (isa != "auto" || !half_width_pays || std::string(DefaultTable()->name) != "avx512") return "";
  return TableFor("avx2") != nullptr ? "avx2" : "";
}

template <typename T>
JacobiBatchSvd<T>::JacobiBatchSvd(const SvdProblem& p, bool lone)
    : p_(p),
      rows_(std::max(p.m, p.n)),
      cols_(std::min(p.m, p.n)),
      tall_(p.m >= p.n) {
  // ValidateSvdProblem rejects instruction sets this CPU lacks.
  const KernelTable& table = *TableOf(p.jacobi_isa);
  kernel_ = KernelOf<Real>(table, lone);
  lanes_ = lone ? 1 : LanesOf<Real>(table);
  const Index planes = kIsComplex<T> ? 2 : 1;
  plane_ = rows_ * cols_ * lanes_;
  b_.Resize(planes * plane_);
  v_.Resize(p.compute_uv ? planes * cols_ * cols_ * lanes_ : 1);
  sumsq_.Resize(cols_ * lanes_);
  s_.Resize(cols_ * lanes_);
  rank_.Resize(cols_ * lanes_);
  exponent_.Resize(lanes_);
  status_.Resize(lanes_);
  norms_.Resize(cols_);
  order_.Resize(cols_);
  work_.Resize(rows_);
}

template <typename T>
void JacobiBatchSvd<T>::Pack(const T* a, Index lane) {
  const Index m = p_.m, n = p_.n, w = lanes_;
  Real* re = b_.data() + lane;
  Real* im = re + plane_;
  if (tall_) {
    // B = A: element (i, j) of B goes to column-major position j * m + i.
    for (Index i = 0; i < m; ++i) {
      for (Index j = 0; j < n; ++j) {
        const T x = a[i * n + j];
        re[(j * m + i) * w] = RealPart(x);
        if (kIsComplex<T>) im[(j * m + i) * w] = ImagPart(x);
      }
    }
  } else {
    // B = A^H (n x m): column j of B is row j of A, conjugated: the same linear order.
    for (Index i = 0; i < m * n; ++i) {
      re[i * w] = RealPart(a[i]);
      if (kIsComplex<T>) im[i * w] = -ImagPart(a[i]);
    }
  }
}

template <typename T>
void JacobiBatchSvd<T>::Scatter(Index lane, Real* s, T* u, T* v) {
  const Index w = lanes_, rows = rows_, cols = cols_;
  const Real* rank = rank_.data() + lane;
  for (Index j = 0; j < cols; ++j) {
    order_[j] = static_cast<Index>(rank[j * w]);
    s[order_[j]] = s_[j * w + lane];
  }
  if (!p_.compute_uv) return;
  const Index uc = p_.u_cols(), vc = p_.v_cols();
  // q (rows x qc) gets B's columns, o (cols x cols) V's.
  T* q = tall_ ? u : v;
  const Index qc = tall_ ? uc : vc;
  T* o = tall_ ? v : u;
  const Index oc = tall_ ? vc : uc;
  const Real* b_re = b_.data() + lane;
  const Real* b_im = b_re + plane_;
  const Real* v_re = v_.data() + lane;
  const Real* v_im = v_re + cols * cols * w;
  for (Index i = 0; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) {
      const Index pos = (j * rows + i) * w;
      q[i * qc + order_[j]] = FromParts<T>(b_re[pos], kIsComplex<T> ? b_im[pos] : Real(0));
    }
  }
  for (Index i = 0; i < cols; ++i) {
    for (Index j = 0; j < cols; ++j) {
      const Index pos = (j * cols + i) * w;
      o[i * oc + order_[j]] = FromParts<T>(v_re[pos], kIsComplex<T> ? v_im[pos] : Real(0));
    }
  }
  if (qc > cols) {
    // full_matrices, m != n: the extra columns complete an orthonormal basis and, unpaired, get
    // their canonical phase on their own.
    CompleteBasis(q, rows, qc, cols, work_.data());
    for (Index c = cols; c < qc; ++c) {
      const Index pivot = ArgMaxAbsInColumn(q, rows, qc, c);
      ScaleColumn(q, rows, qc, c, PhaseToPositive(q[pivot * qc + c]), pivot);
    }
  }
}

template <typename T>
void JacobiBatchSvd<T>::Finish(Index lane, Real* s, T* u, T* v) {
  const Index w = lanes_, rows = rows_, cols = cols_;
  const jacobi::JacobiTolerances<Real> tol = jacobi::MakeJacobiTolerances<Real>(rows);
  const Real* sumsq = sumsq_.data() + lane;
  for (Index j = 0; j < cols; ++j) norms_[j] = std::sqrt(sumsq[j * w]);
  // Descending; equal norms keep their column order.
  for (Index j = 0; j < cols; ++j) {
    const Index x = j;
    Index i = j;
    while (i > 0 && norms_[order_[i - 1]] < norms_[x]) {
      order_[i] = order_[i - 1];
      --i;
    }
    order_[i] = x;
  }
  const Pow2Scale<Real> unscale(static_cast<int>(exponent_[lane]));
  for (Index j = 0; j < cols; ++j) s[j] = unscale(norms_[order_[j]]);
  if (!p_.compute_uv) return;

  const Index uc = p_.u_cols(), vc = p_.v_cols();
  // q (rows x qc) gets the normalised columns of B, o (cols x cols) the rotations V.
  T* q = tall_ ? u : v;
  const Index qc = tall_ ? uc : vc;
  T* o = tall_ ? v : u;
  const Index oc = tall_ ? vc : uc;
  Index good = 0;
  while (good < cols && sumsq[order_[good] * w] >= tol.small) ++good;
  const Real* b_re = b_.data() + lane;
  const Real* b_im = b_re + plane_;
  for (Index j = 0; j < good; ++j) {
    const Index src = order_[j];
    const Real norm = norms_[src];
    for (Index i = 0; i < rows; ++i) {
      const Index pos = (src * rows + i) * w;
      q[i * qc + j] = FromParts<T>(b_re[pos], kIsComplex<T> ? b_im[pos] : Real(0)) / norm;
    }
  }
  const Real* v_re = v_.data() + lane;
  const Real* v_im = v_re + cols * cols * w;
  for (Index j = 0; j < cols; ++j) {
    const Index src = order_[j];
    for (Index i = 0; i < cols; ++i) {
      const Index pos = (src * cols + i) * w;
      o[i * oc + j] = FromParts<T>(v_re[pos], kIsComplex<T> ? v_im[pos] : Real(0));
    }
  }
  if (good < qc) CompleteBasis(q, rows, qc, good, work_.data());
  CanonicalizeSigns(p_.m, uc, p_.n, vc, p_.k(), u, v);
}

template <typename T>
void JacobiBatchSvd<T>::Run(const SvdBuffers<T>& buffers, Index first, Index count,
                            bool* needs_fallback) {
  const Index m = p_.m, n = p_.n, k = p_.k();
  const Index us = p_.u_size(), vs = p_.v_size();
  const Index planes = kIsComplex<T> ? 2 : 1;
  for (Index lane = 0; lane < lanes_; ++lane) {
    if (lane < count) {
      Pack(buffers.a + (first + lane) * m * n, lane);
    } else {
      Real* re = b_.data() + lane;
      for (Index i = 0; i < planes * rows_ * cols_; ++i) re[i * lanes_] = Real(0);
    }
  }
  jacobi::GroupArgs<Real> args;
  args.b = b_.data();
  args.v = v_.data();
  args.sumsq = sumsq_.data();
  args.s = s_.data();
  args.rank = rank_.data();
  args.exponent = exponent_.data();
  args.status = status_.data();
  args.rows = rows_;
  args.cols = cols_;
  args.tall = tall_;
  args.with_v = p_.compute_uv;
  args.complex = kIsComplex<T>;
  args.max_sweeps = p_.jacobi_max_sweeps;
  kernel_(args);
  const Real nan = std::numeric_limits<Real>::quiet_NaN();
  for (Index lane = 0; lane < count; ++lane) {
    const Index i = first + lane;
    Real* s = buffers.s + i * k;
    T* u = p_.compute_uv ? buffers.u + i * us : nullptr;
    T* v = p_.compute_uv ? buffers.v + i * vs : nullptr;
    const unsigned status = status_[lane];
    needs_fallback[lane] = false;
    if (status & jacobi::kLaneNonFinite) {
      std::fill(s, s + k, nan);
      if (p_.compute_uv) {
        std::fill(u, u + us, T(nan));
        std::fill(v, v + vs, T(nan));
      }
    } else if (status & jacobi::kLaneUnconverged) {
      needs_fallback[lane] = true;
    } else if (status & jacobi::kLaneFinished) {
      Scatter(lane, s, u, v);
    } else {
      Finish(lane, s, u, v);
    }
  }
}

template class JacobiBatchSvd<float>;
template class JacobiBatchSvd<double>;
template class JacobiBatchSvd<std::complex<float>>;
template class JacobiBatchSvd<std::complex<double>>;
template Index JacobiLanes<float>(const std::string&);
template Index JacobiLanes<double>(const std::string&);
template Index JacobiLanes<std::complex<float>>(const std::string&);
template Index JacobiLanes<std::complex<double>>(const std::string&);

}  // namespace tfsvd
