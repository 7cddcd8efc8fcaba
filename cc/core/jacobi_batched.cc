// Batched one-sided Jacobi SVD on the CPU: packs groups of matrices across SIMD lanes, runs the
// kernel of the best instruction set this CPU has, and unpacks each lane into tfsvd's conventions.
//
// Per matrix: scale by a power of two so the largest entry has magnitude in [0.5, 1) (exact; keeps
// matrices near overflow or underflow in range), work on B = A (m >= n) or B = A^H (m < n) so that
// B has at least as many rows as columns, orthogonalise B's columns by rotations (B V = U S), then
// s_j = |b_j|, u_j = b_j / s_j, sorted descending. Larger real matrices (jacobi.h,
// JacobiPreconditioned) are packed with their rows and columns sorted, factored B = Q R and swept
// as R^T instead; then the right factor is normalised and Q W comes orthonormal. Columns too small
// to normalise reliably (and, for full_matrices, the extra columns) are completed to an
// orthonormal basis. Finally the canonical signs of canonical.h, as every other path.
//
// Everything here runs per lane in plain scalar code; the kernels (jacobi_kernels.h) are SIMD, and
// so are the moves of real groups in and out of the layout (GroupMoves, jacobi_moves.inc).
#include "core/jacobi_batched.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/canonical.h"
#include "core/complete_basis.h"
#include "core/cpu_isa.h"
#include "core/jacobi.h"
#include "core/lapack.h"
#include "core/transpose.h"

namespace tfsvd {
namespace {

using jacobi::KernelTable;

const KernelTable* TableFor(const std::string& name) {
  return KernelsForIsa<KernelTable, &jacobi::sse2::Table, &jacobi::avx2::Table,
                       &jacobi::avx512::Table>(name);
}

// The widest instruction set the CPU runs, or the one named by TFSVD_JACOBI_ISA if it can.
const KernelTable* BestTable() {
  if (const char* forced = std::getenv("TFSVD_JACOBI_ISA")) {
    if (const KernelTable* table = TableFor(forced)) return table;
  }
  return &WidestKernels<KernelTable, &jacobi::sse2::Table, &jacobi::avx2::Table,
                        &jacobi::avx512::Table>();
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
template <class R> const jacobi::GroupMoves<R>& MovesOf(const KernelTable& t);
template <> const jacobi::GroupMoves<float>& MovesOf<float>(const KernelTable& t) {
  return t.moves_float;
}
template <> const jacobi::GroupMoves<double>& MovesOf<double>(const KernelTable& t) {
  return t.moves_double;
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

}  // namespace

const char* JacobiIsa() { return DefaultTable()->name; }

bool JacobiIsaAvailable(const std::string& name) { return TableOf(name) != nullptr; }

template <typename T>
Index JacobiLanes(const std::string& isa) {
  return LanesOf<RealOf<T>>(*TableOf(isa));
}

bool JacobiLoneScheduled(const std::string& isa) { return TableOf(isa)->lone_scheduled; }

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
      tall_(p.m >= p.n),
      preconditioned_(jacobi::JacobiPreconditioned(rows_, cols_, kIsComplex<T>)) {
  // ValidateSvdProblem rejects instruction sets this CPU lacks.
  const KernelTable& table = *TableOf(p.jacobi_isa);
  kernel_ = KernelOf<Real>(table, lone);
  lanes_ = lone ? 1 : LanesOf<Real>(table);
  moves_ = lone || kIsComplex<T> ? nullptr : &MovesOf<Real>(table);
  const Index planes = kIsComplex<T> ? 2 : 1;
  plane_ = rows_ * cols_ * lanes_;
  b_.Resize(planes * plane_);
  v_.Resize(p.compute_uv || preconditioned_ ? planes * cols_ * cols_ * lanes_ : 1);
  sumsq_.Resize(cols_ * lanes_);
  s_.Resize(cols_ * lanes_);
  rank_.Resize(cols_ * lanes_);
  place_.Resize(cols_ * lanes_);
  exponent_.Resize(lanes_);
  status_.Resize(lanes_);
  norms_.Resize(cols_);
  order_.Resize(cols_);
  work_.Resize(rows_);
  if (preconditioned_) {
    kernel_work_.Resize(jacobi::JacobiPreconditionScratch(rows_, cols_) * lanes_);
    row_index_.Resize(rows_ * lanes_);
    col_index_.Resize(cols_ * lanes_);
    row_order_.Resize(rows_ * lanes_);
    col_order_.Resize(cols_ * lanes_);
    sort_key_.Resize((rows_ + cols_) * lanes_);
    sort_exponent_.Resize(rows_);
  }
}

// B (rows x cols, column-major) of a real matrix alone, from A (row-major) in its own order: A
// transposed when tall, else A's own layout (one copy). A lone 500000x1 float32 SVD spent 42% of
// its time packing through the general loops (a lane stride and order lookups per value).
template <typename Real>
void PackAlone(const Real* a, bool tall, Index rows, Index cols, Real* b) {
  if (!tall || cols == 1) {
    std::memcpy(b, a, sizeof(Real) * rows * cols);
    return;
  }
  // Row by row rather than transpose.h's CopyTransposed, whose 32 x 32 tiles took 5-10% longer
  // for a lone long thin matrix (100000x3 float32 980 / 1065 us, 4001x7 174 / 188).
  for (Index i = 0; i < rows; ++i) {
    for (Index j = 0; j < cols; ++j) b[j * rows + i] = a[i * cols + j];
  }
}

template <typename T>
void JacobiBatchSvd<T>::Pack(const T* a, Index lane) {
  const Index m = p_.m, n = p_.n, w = lanes_;
  if constexpr (!kIsComplex<T>) {
    if (w == 1) return PackAlone(a, tall_, rows_, cols_, b_.data());
  }
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

// The QR of the preconditioned path is not row-wise backward stable in general (Cox and Higham),
// and Jacobi then loses its relative accuracy on matrices with rows of very different sizes.
// Rows sorted by decreasing max |entry| (Cox and Higham's row sorting), and columns likewise in
// place of column pivoting, bring it back. Float32 64x64, B gaussian with unit rows or columns
// graded over 5 decades, max relative error of s over 32 matrices in eps, QR unsorted / sorted /
// plain sweeps: rows ascending 3.3e6 / 4.8e3 / 1.8e3, rows shuffled 2.3e5 / 830 / 350, columns
// 300 / 520 / 950 (the bound n eps cond(B) is about 1.5e4; test_graded_relative_accuracy).
// Sorting by binary exponent is enough for that and costs O(count): keys within a
// factor of two keep their order, and keys whose exponents span at most kSortSpread need no
// sorting at all (rows of gaussian matrices, for one). A lane's own data decide its order, so its
// bits do not depend on the batch.
constexpr int kSortSpread = 3;

// frexp's exponent of a finite x > 0, from the exponent bits where x is normal (jacobi.h's
// LaneFrexpExponent calls frexp, which cost a graded lane's sort more than the rest of it).
template <class Real>
int FrexpExponent(Real x) {
  if (x < std::numeric_limits<Real>::min()) {
    int e = 0;
    std::frexp(x, &e);
    return e;
  }
  using Bits = std::conditional_t<sizeof(Real) == 4, std::uint32_t, std::uint64_t>;
  constexpr int kFractionBits = std::numeric_limits<Real>::digits - 1;     // 23, 52
  constexpr int kMaxExponent = std::numeric_limits<Real>::max_exponent;  // 128, 1024
  Bits bits;
  std::memcpy(&bits, &x, sizeof(x));
  // Biased exponent E (bias kMaxExponent - 1): x = 1.f 2^(E - bias) = 0.1f 2^(E - bias + 1).
  return static_cast<int>((bits >> kFractionBits) & (2 * kMaxExponent - 1)) - (kMaxExponent - 2);
}

// order = 0 .. count-1, stably sorted by decreasing frexp exponent of key, zero keys last; returns
// whether that is not the identity. Keys whose exponents span at most kSortSpread keep their
// order but for the zeros, which still go last: a zero column of B then gives exact zero rows of R
// and exact zero singular values, as without the QR. The identity when a key is not finite (the
// matrix's outputs are NaN anyway). exponent: count scratch values; buckets: scratch.
template <class Real>
bool OrderByExponent(const Real* key, Index count, Index* exponent, std::vector<Index>* buckets,
                     Index* order) {
  for (Index i = 0; i < count; ++i) order[i] = i;
  // The common case first, from the extreme keys alone (keys are >= 0; exponents grow with them),
  // in four chains (one chain of compares was a fair part of packing a long thin group).
  const Real inf = std::numeric_limits<Real>::infinity();
  Real key_lo[4] = {inf, inf, inf, inf}, key_hi[4] = {0, 0, 0, 0};
  bool finite = true;
  Index at = 0;
  for (; at + 4 <= count; at += 4) {
    for (int c = 0; c < 4; ++c) {
      const Real k = key[at + c];
      finite = finite & (k < inf);  // false for NaN too
      key_lo[c] = std::min(key_lo[c], k);
      key_hi[c] = std::max(key_hi[c], k);
    }
  }
  for (; at < count; ++at) {
    finite = finite & (key[at] < inf);
    key_lo[0] = std::min(key_lo[0], key[at]);
    key_hi[0] = std::max(key_hi[0], key[at]);
  }
  if (!finite) return false;
  const Real min_key = std::min(std::min(key_lo[0], key_lo[1]), std::min(key_lo[2], key_lo[3]));
  const Real max_key = std::max(std::max(key_hi[0], key_hi[1]), std::max(key_hi[2], key_hi[3]));
  if (max_key == Real(0)) return false;  // all zero
  if (min_key > Real(0) && FrexpExponent(max_key) - FrexpExponent(min_key) <= kSortSpread) {
    return false;
  }
  constexpr Index kZero = std::numeric_limits<Index>::min();
  Index lo = std::numeric_limits<Index>::max(), hi = kZero;
  for (Index i = 0; i < count; ++i) {
    exponent[i] = key[i] > Real(0) ? FrexpExponent(key[i]) : kZero;
    if (key[i] > Real(0)) {
      lo = std::min(lo, exponent[i]);
      hi = std::max(hi, exponent[i]);
    }
  }
  const bool graded = hi - lo > kSortSpread;  // else there are zeros to move last
  // Counting sort: bucket hi - e for exponent e (0 for all when not graded), the zeros after.
  const Index zero_bucket = graded ? hi - lo + 1 : 1;
  buckets->assign(zero_bucket + 2, 0);
  const auto bucket = [&](Index i) {
    return exponent[i] == kZero ? zero_bucket : (graded ? hi - exponent[i] : 0);
  };
  for (Index i = 0; i < count; ++i) ++(*buckets)[bucket(i) + 1];
  for (Index b = 1; b <= zero_bucket + 1; ++b) (*buckets)[b] += (*buckets)[b - 1];
  for (Index i = 0; i < count; ++i) order[(*buckets)[bucket(i)]++] = i;
  for (Index i = 0; i < count; ++i) {
    if (order[i] != i) return true;
  }
  return false;
}

// The sort keys of B from its packed values (w lanes), lane by lane: row_key[l * rows + i],
// col_key[l * cols + j], the max |entry| of each row and column. A NaN drops out of std::max; the
// kernel spots it. GroupMoves::maxima does the same for SIMD groups.
template <class Real>
void PackedMaxima(const Real* b, Index rows, Index cols, Index w, Real* row_key, Real* col_key) {
  std::fill(row_key, row_key + rows * w, Real(0));
  std::fill(col_key, col_key + cols * w, Real(0));
  if (w == 1) {
    // A lone matrix: each column's maximum in four chains (a maximum does not depend on the
    // order; one chain through memory bound lone long thin matrices).
    for (Index j = 0; j < cols; ++j) {
      const Real* column = b + j * rows;
      for (Index i = 0; i < rows; ++i) row_key[i] = std::max(row_key[i], std::abs(column[i]));
      Real max0(0), max1(0), max2(0), max3(0);
      Index i = 0;
      for (; i + 4 <= rows; i += 4) {
        max0 = std::max(max0, std::abs(column[i]));
        max1 = std::max(max1, std::abs(column[i + 1]));
        max2 = std::max(max2, std::abs(column[i + 2]));
        max3 = std::max(max3, std::abs(column[i + 3]));
      }
      for (; i < rows; ++i) max0 = std::max(max0, std::abs(column[i]));
      col_key[j] = std::max(std::max(max0, max1), std::max(max2, max3));
    }
    return;
  }
  for (Index j = 0; j < cols; ++j) {
    for (Index i = 0; i < rows; ++i) {
      for (Index l = 0; l < w; ++l) {
        const Real x = std::abs(b[(j * rows + i) * w + l]);
        col_key[l * cols + j] = std::max(col_key[l * cols + j], x);
        row_key[l * rows + i] = std::max(row_key[l * rows + i], x);
      }
    }
  }
}

// Real types, lane `lane` alone, element by element: B'(i, j) = B(ro[i], co[j]) (null orders: the
// identity), zero when a is null.
template <typename T>
void JacobiBatchSvd<T>::PackLane(const T* a, Index lane, const Index* ro, const Index* co) {
  if constexpr (!kIsComplex<T>) {
    const Index rows = rows_, cols = cols_, w = lanes_;
    if (w == 1 && a != nullptr && ro == nullptr && co == nullptr) {
      return PackAlone(a, tall_, rows, cols, b_.data());
    }
    // A's row r is B's row r (tall) or column r.
    const Index stride_i = tall_ ? p_.n : 1, stride_j = tall_ ? 1 : p_.n;
    Real* b = b_.data() + lane;
    const auto put = [&](Index i, Index j) {
      b[(j * rows + i) * w] =
          a == nullptr ? Real(0)
                       : a[(ro ? ro[i] : i) * stride_i + (co ? co[j] : j) * stride_j];
    };
    // Through A in its memory order.
    if (tall_) {
      for (Index i = 0; i < rows; ++i) {
        for (Index j = 0; j < cols; ++j) put(i, j);
      }
    } else {
      for (Index j = 0; j < cols; ++j) {
        for (Index i = 0; i < rows; ++i) put(i, j);
      }
    }
  }
}

// Real types: the whole group at once, lanes count .. lanes_-1 zero; when preconditioned_, rows
// and columns in the orders of OrderByExponent. SIMD groups are transposed in W x W blocks
// (GroupMoves::interleave); Interleave's comment says which orders it takes.
template <typename T>
void JacobiBatchSvd<T>::PackGroup(const T* a, Index count) {
  if constexpr (kIsComplex<T>) {
    return;  // complex matrices go through Pack
  } else {
    const Index w = lanes_, rows = rows_, cols = cols_;
    if (moves_ != nullptr) {
      Interleave(a, count, nullptr);
    } else {
      for (Index lane = 0; lane < w; ++lane) {
        PackLane(lane < count ? a + lane * p_.m * p_.n : nullptr, lane, nullptr, nullptr);
      }
    }
    if (!preconditioned_) return;
    // The sort keys come from the values just packed; lanes whose order is not the identity are
    // packed again.
    Real* row_key = sort_key_.data();
    Real* col_key = row_key + rows * w;
    if (moves_ != nullptr && cols <= jacobi::kMaxGroupCols) {
      moves_->maxima(b_.data(), rows, cols, row_key, col_key);
    } else {
      PackedMaxima(b_.data(), rows, cols, w, row_key, col_key);
    }
    const Index* a_row_orders[kMaxLanes] = {};  // per lane, where not the identity
    bool any_a_row_order = false;
    // Lanes packed again element by element: sorted within A's rows, or any sorted lone matrix.
    Index by_lane[kMaxLanes], by_lane_count = 0;
    // The identity for every lane, a line at a time; sorted lanes overwrite theirs below.
    for (Index i = 0; i < rows; ++i) std::fill_n(row_index_.data() + i * w, w, Real(i));
    for (Index j = 0; j < cols; ++j) std::fill_n(col_index_.data() + j * w, w, Real(j));
    for (Index lane = 0; lane < count; ++lane) {
      Index* ro = row_order_.data() + lane * rows;
      Index* co = col_order_.data() + lane * cols;
      const bool rows_sorted =
          OrderByExponent(row_key + lane * rows, rows, sort_exponent_.data(), &sort_buckets_, ro);
      const bool cols_sorted =
          OrderByExponent(col_key + lane * cols, cols, sort_exponent_.data(), &sort_buckets_, co);
      if (rows_sorted) {
        for (Index i = 0; i < rows; ++i) row_index_[i * w + lane] = static_cast<Real>(ro[i]);
      }
      if (cols_sorted) {
        for (Index j = 0; j < cols; ++j) col_index_[j * w + lane] = static_cast<Real>(co[j]);
      }
      // Sorting B's rows (tall) or columns (wide) picks other rows of A; the other order moves
      // values within A's rows.
      const bool across = tall_ ? rows_sorted : cols_sorted;
      const bool within = tall_ ? cols_sorted : rows_sorted;
      if (within || (across && moves_ == nullptr)) {
        by_lane[by_lane_count++] = lane;
      } else if (across) {
        a_row_orders[lane] = tall_ ? ro : co;
        any_a_row_order = true;
      }
    }
    if (any_a_row_order) Interleave(a, count, a_row_orders);
    for (Index k = 0; k < by_lane_count; ++k) {
      const Index lane = by_lane[k];
      PackLane(a + lane * p_.m * p_.n, lane, row_order_.data() + lane * rows,
               col_order_.data() + lane * cols);
    }
  }
}

// SIMD groups of real matrices: B'(i, j) = B(i, j), or with lane l's A rows in the order
// a_row_order[l] where a_row_order and a_row_order[l] are not null: B's rows (tall) or columns
// (wide) sorted.
template <typename T>
void JacobiBatchSvd<T>::Interleave(const T* a, Index count, const Index* const* a_row_order) {
  if constexpr (!kIsComplex<T>) {
    const Index m = p_.m, n = p_.n, w = lanes_, rows = rows_, cols = cols_;
    Real* b = b_.data();
    const Real* src[kMaxLanes];
    if (tall_) {
      // Row i of A is row i of B: W columns at a time, one block per row.
      for (Index j0 = 0; j0 < cols; j0 += w) {
        for (Index l = 0; l < count; ++l) src[l] = a + l * m * n + j0;
        moves_->interleave(src, a_row_order, count, n, std::min(w, cols - j0), rows,
                           b + j0 * rows * w, rows * w, w);
      }
    } else {
      // Row j of A is column j of B: W rows at a time.
      const Index blocks = rows / w, rest = rows - blocks * w;
      for (Index j = 0; j < cols; ++j) {
        for (Index l = 0; l < count; ++l) {
          const Index from = a_row_order != nullptr && a_row_order[l] != nullptr
                                 ? a_row_order[l][j] : j;
          src[l] = a + l * m * n + from * n;
        }
        Real* column = b + j * rows * w;
        moves_->interleave(src, nullptr, count, w, w, blocks, column, w, w * w);
        if (rest > 0) {
          for (Index l = 0; l < count; ++l) src[l] += blocks * w;
          moves_->interleave(src, nullptr, count, 0, rest, 1, column + blocks * w * w, w, 0);
        }
      }
    }
  }
}

template <typename T>
const Index* JacobiBatchSvd<T>::RowPlaces(Index lane) const {
  return preconditioned_ ? row_order_.data() + lane * rows_ : nullptr;
}

template <typename T>
const Index* JacobiBatchSvd<T>::ColumnPlaces(Index lane) const {
  return preconditioned_ ? col_order_.data() + lane * cols_ : nullptr;
}

template <typename T>
void JacobiBatchSvd<T>::Scatter(Index lane, Real* s, T* u, T* v, bool b_side_done) {
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
  // The same loops with the identity known at compile time where the rows were not sorted (the
  // scatter is a fair part of a tiny matrix's cost).
  const Index q_rows = b_side_done ? 0 : rows;  // ScatterGroup wrote q already
  const auto copy = [&](auto row_place, auto col_place) {
    for (Index i = 0; i < q_rows; ++i) {
      for (Index j = 0; j < cols; ++j) {
        const Index pos = (j * rows + i) * w;
        q[row_place(i) * qc + order_[j]] =
            FromParts<T>(b_re[pos], kIsComplex<T> ? b_im[pos] : Real(0));
      }
    }
    for (Index i = 0; i < cols; ++i) {
      for (Index j = 0; j < cols; ++j) {
        const Index pos = (j * cols + i) * w;
        o[col_place(i) * oc + order_[j]] =
            FromParts<T>(v_re[pos], kIsComplex<T> ? v_im[pos] : Real(0));
      }
    }
  };
  if (preconditioned_) {
    const Index* row_place = RowPlaces(lane);
    const Index* col_place = ColumnPlaces(lane);
    copy([&](Index i) { return row_place[i]; }, [&](Index i) { return col_place[i]; });
  } else {
    copy([](Index i) { return i; }, [](Index i) { return i; });
  }
  if (qc > cols) {
    // full_matrices, m != n: the extra columns complete an orthonormal basis and, unpaired, get
    // their canonical phase on their own.
    CompleteBasis(q, rows, qc, cols, work_.data());
    ThreadTeam alone(nullptr, 0);
    ColumnScratch<T> phase(qc - cols);
    CanonicalizeColumns(q, rows, qc, cols, &phase[0], alone);
  }
}

// B's side of the lanes Scatter would take (the finished ones) at once: each 64-byte line of
// b_ read once rather than once per lane.
template <typename T>
bool JacobiBatchSvd<T>::ScatterGroup(const SvdBuffers<T>& buffers, Index first, Index count) {
  if constexpr (kIsComplex<T>) {
    return false;
  } else {
    if (moves_ == nullptr || !p_.compute_uv) return false;
    const Index qc = tall_ ? p_.u_cols() : p_.v_cols();
    T* dst[kMaxLanes];
    const Index* row_place[kMaxLanes];
    int* place = place_.data();  // [lane][cols]
    bool any = false;
    for (Index lane = 0; lane < lanes_; ++lane) {
      dst[lane] = nullptr;
      row_place[lane] = nullptr;
      if (lane >= count) continue;
      const unsigned status = status_[lane];
      if ((status & (jacobi::kLaneNonFinite | jacobi::kLaneUnconverged)) ||
          !(status & jacobi::kLaneFinished)) {
        continue;
      }
      const Index i = first + lane;
      dst[lane] = tall_ ? buffers.u + i * p_.u_size() : buffers.v + i * p_.v_size();
      row_place[lane] = RowPlaces(lane);
      any = true;
      for (Index j = 0; j < cols_; ++j) {
        place[lane * cols_ + j] = static_cast<int>(rank_[j * lanes_ + lane]);
      }
    }
    if (any) moves_->scatter_rows(b_.data(), rows_, cols_, dst, row_place, qc, place);
    return any;
  }
}

template <typename T>
void JacobiBatchSvd<T>::Finish(Index lane, Real* s, T* u, T* v) {
  const Index w = lanes_, rows = rows_, cols = cols_;
  const Index* row_place = RowPlaces(lane);
  const Index* col_place = ColumnPlaces(lane);
  const jacobi::JacobiTolerances<Real> tol = jacobi::MakeJacobiTolerances<Real>(
      jacobi::JacobiSweepRows(rows, cols, kIsComplex<T>));
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
  // The scaled columns (B's, or X's when preconditioned) are normalised up to `good` and the rest
  // completed to an orthonormal basis; their partners are orthonormal already.
  const Real* b_re = b_.data() + lane;
  const Real* b_im = b_re + plane_;
  const Real* v_re = v_.data() + lane;
  const Real* v_im = v_re + cols * cols * w;
  const Index b_normalised = preconditioned_ ? cols : good;
  for (Index j = 0; j < b_normalised; ++j) {
    const Index src = order_[j];
    const Real norm = preconditioned_ ? Real(1) : norms_[src];
    for (Index i = 0; i < rows; ++i) {
      const Index pos = (src * rows + i) * w;
      q[(row_place != nullptr ? row_place[i] : i) * qc + j] =
          FromParts<T>(b_re[pos], kIsComplex<T> ? b_im[pos] : Real(0)) / norm;
    }
  }
  const Index v_normalised = preconditioned_ ? good : cols;
  for (Index j = 0; j < v_normalised; ++j) {
    const Index src = order_[j];
    const Real norm = preconditioned_ ? norms_[src] : Real(1);
    for (Index i = 0; i < cols; ++i) {
      const Index pos = (src * cols + i) * w;
      o[(col_place != nullptr ? col_place[i] : i) * oc + j] =
          FromParts<T>(v_re[pos], kIsComplex<T> ? v_im[pos] : Real(0)) / norm;
    }
  }
  if (b_normalised < qc) CompleteBasis(q, rows, qc, b_normalised, work_.data());
  if (v_normalised < oc) CompleteBasis(o, cols, oc, v_normalised, work_.data());
  CanonicalizeSigns(p_.m, uc, p_.n, vc, p_.k(), u, v);
}

template <typename T>
void JacobiBatchSvd<T>::Run(const SvdBuffers<T>& buffers, Index first, Index count,
                            bool* needs_fallback) {
  const Index m = p_.m, n = p_.n, k = p_.k();
  const Index us = p_.u_size(), vs = p_.v_size();
  const Index planes = kIsComplex<T> ? 2 : 1;
  // A group whose B fits in L1 stays packed lane by lane: packing it whole element by element
  // measured 4-6% slower over the whole SVD of 10000x8x8 float32 (one thread); in SIMD blocks
  // (GroupMoves) it measured within noise of lane by lane (2000x8x8 to 1000x16x16, 320x32x32).
  const bool whole_group =
      !kIsComplex<T> && (preconditioned_ || plane_ * sizeof(Real) > (32 << 10));
  if (whole_group) {
    PackGroup(buffers.a + first * m * n, count);
  } else {
    for (Index lane = 0; lane < lanes_; ++lane) {
      if (lane < count) {
        Pack(buffers.a + (first + lane) * m * n, lane);
      } else {
        Real* re = b_.data() + lane;
        for (Index i = 0; i < planes * rows_ * cols_; ++i) re[i * lanes_] = Real(0);
      }
    }
  }
  jacobi::GroupArgs<Real> args;
  args.b = b_.data();
  args.v = v_.data();
  args.work = kernel_work_.data();
  args.row_index = row_index_.data();
  args.col_index = col_index_.data();
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
  // Past one vector of columns, ScatterGroupRows stores a row's values a vector at a time only
  // where they are in their places, else one by one. The sort moves 4 cols^2 values per lane and
  // saves rows cols stores one by one: a group of 8 float32 (AVX2, Zen 3), us, unsorted / sorted:
  // 1000x16 508 / 468, 500x24 533 / 511, 1000x48 3720 / 3490-3640, 200x24 280 / 275, 640x64
  // 5970-5990 / 5930-6030, 256x64 3560-3600 / 3570-3660, 64x64 2190-2210 / 2240-2260. The lone
  // kernels' Scatter places values one by one anyway.
  args.sort_columns = moves_ != nullptr && cols_ > lanes_ && rows_ >= 8 * cols_;
  kernel_(args);
  const bool b_side_done = ScatterGroup(buffers, first, count);
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
      Scatter(lane, s, u, v, b_side_done);
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
