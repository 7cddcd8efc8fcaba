// The Gram path's passes for baseline x86-64 (SSE2) and their run-time choice
// (gram_svd_kernels.h); the eigensolver, the error bound and the output of gram_svd.h.
#define TFSVD_GRAM_ISA sse2
#include "core/gram_svd.inc"

#include "core/gram_svd.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/cpu_isa.h"
#include "core/gram_svd_kernels.h"

namespace tfsvd {
namespace {

constexpr double kEps64 = 0x1p-53;
// Accept when delta <= 2^-28 lambda_min: a sixteenth of float32's unit roundoff 2^-24.
constexpr double kAcceptRatio = 0x1p-28;
constexpr int kMaxSweeps = 30;

// Cyclic Jacobi on the symmetric K x K g: on return g's diagonal holds the eigenvalues and the
// columns of w the eigenvectors (g_in = w diag(g) w^T). A pair is rotated while its off-diagonal
// entry exceeds eps64 sqrt(|g_pp g_qq|), the criterion under which positive definite matrices get
// their eigenvalues to high relative accuracy. NaN entries are never rotated.
template <int K>
void SymmetricEigen(double g[K][K], double w[K][K]) {
  for (int i = 0; i < K; ++i) {
    for (int j = 0; j < K; ++j) w[i][j] = i == j ? 1.0 : 0.0;
  }
  for (int sweep = 0; sweep < kMaxSweeps; ++sweep) {
    bool rotated = false;
    for (int p = 0; p < K; ++p) {
      for (int q = p + 1; q < K; ++q) {
        const double gpq = g[p][q], gpp = g[p][p], gqq = g[q][q];
        if (!(gpq * gpq > kEps64 * kEps64 * std::abs(gpp * gqq))) continue;
        rotated = true;
        // The rotation that zeroes g_pq (Golub & Van Loan, Algorithm 8.4.1); t = tan of the
        // smaller of the two angles that do.
        const double theta = (gqq - gpp) / (2 * gpq);
        const double t = std::abs(theta) > 1e150
                             ? 0.5 / theta
                             : (theta >= 0 ? 1.0 : -1.0) /
                                   (std::abs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        g[p][p] = gpp - t * gpq;
        g[q][q] = gqq + t * gpq;
        g[p][q] = g[q][p] = 0;
        for (int r = 0; r < K; ++r) {
          if (r != p && r != q) {
            const double grp = g[r][p], grq = g[r][q];
            g[r][p] = g[p][r] = c * grp - s * grq;
            g[r][q] = g[q][r] = s * grp + c * grq;
          }
          const double wrp = w[r][p], wrq = w[r][q];
          w[r][p] = c * wrp - s * wrq;
          w[r][q] = s * wrp + c * wrq;
        }
      }
    }
    if (!rotated) break;
  }
}

// The factorization of the tall view X = left diag(s) w^T (gram_svd_kernels.h): s (K), left
// (rows x K) and w (K x K), row-major; s alone when both are null. False when gram_svd.h's bound
// does not certify it.
template <int K>
bool Factor(const GramKernels& kernels, const float* a, Index ld, Index rows, bool tall, float* s,
            float* left, float* w_out) {
  double g[K][K], w[K][K];
  kernels.gram(rows, K, a, ld, tall, &g[0][0]);
  for (int i = 0; i < K; ++i) {
    for (int j = 0; j < i; ++j) g[i][j] = g[j][i];
  }
  double trace = 0;
  for (int i = 0; i < K; ++i) trace += g[i][i];
  SymmetricEigen<K>(g, w);
  // Eigenvalues descending (ties keep their order).
  int order[K];
  for (int i = 0; i < K; ++i) order[i] = i;
  std::stable_sort(order, order + K, [&g](int x, int y) { return g[x][x] > g[y][y]; });
  const double lambda_min = g[order[K - 1]][order[K - 1]];
  const double sums =
      static_cast<double>(std::min(rows, kGramBlockRows) / 2 + rows / kGramBlockRows + 2);
  const double delta = (sums + 32 * K) * kEps64 * trace;
  // Also false for NaN or Inf entries (float32 squares cannot overflow float64, so the trace is
  // finite exactly when the matrix is) and for lambda_min <= 0 (a zero matrix: delta = 0).
  if (!(std::isfinite(trace) && lambda_min > 0 && delta <= kAcceptRatio * lambda_min)) {
    return false;
  }
  double sigma[K];
  for (int j = 0; j < K; ++j) {
    sigma[j] = std::sqrt(g[order[j]][order[j]]);
    s[j] = static_cast<float>(sigma[j]);
  }
  if (w_out == nullptr) return true;
  // Columns in descending order; signs by the canonical rule (canonical.h) on the float32
  // outputs: for a tall matrix u = left, whose signs the product pass fixes; for a wide one
  // u = w, fixed here before left = X p is formed from it.
  double ws[K][K];
  for (int t = 0; t < K; ++t) {
    for (int j = 0; j < K; ++j) {
      ws[t][j] = w[t][order[j]];
      w_out[t * K + j] = static_cast<float>(ws[t][j]);
    }
  }
  if (!tall) {
    for (int j = 0; j < K; ++j) {
      int pivot = 0;
      for (int t = 1; t < K; ++t) {
        if (w_out[t * K + j] * w_out[t * K + j] > w_out[pivot * K + j] * w_out[pivot * K + j]) {
          pivot = t;
        }
      }
      if (w_out[pivot * K + j] < 0) {
        for (int t = 0; t < K; ++t) {
          ws[t][j] = -ws[t][j];
          w_out[t * K + j] = -w_out[t * K + j];
        }
      }
    }
  }
  double p[K * K];  // w diag(sigma)^-1
  for (int t = 0; t < K; ++t) {
    for (int j = 0; j < K; ++j) p[t * K + j] = ws[t][j] / sigma[j];
  }
  bool negated[K];
  kernels.product(rows, K, a, ld, tall, p, left, tall ? negated : nullptr);
  if (tall) {
    for (int j = 0; j < K; ++j) {
      if (!negated[j]) continue;
      for (int t = 0; t < K; ++t) w_out[t * K + j] = -w_out[t * K + j];
    }
  }
  return true;
}

template <int K>
bool FactorEither(const GramKernels& kernels, Index m, Index n, const float* a, bool compute_uv,
                  float* s, float* u, float* v) {
  // Tall: X = A = u diag(s) v^T, so u = left, v = w. Wide: X = A^T, A = w diag(s) left^T, so
  // u = w, v = left.
  const bool tall = m >= n;
  const Index rows = tall ? m : n;
  if (!compute_uv) return Factor<K>(kernels, a, n, rows, tall, s, nullptr, nullptr);
  return tall ? Factor<K>(kernels, a, n, rows, tall, s, u, v)
              : Factor<K>(kernels, a, n, rows, tall, s, v, u);
}

}  // namespace

const GramKernels* GramKernelsFor(const std::string& isa) {
  constexpr auto kSse2 = &gram::sse2::Kernels, kAvx2 = &gram::avx2::Kernels,
                 kAvx512 = &gram::avx512::Kernels;
  if (isa != "auto") return KernelsForIsa<GramKernels, kSse2, kAvx2, kAvx512>(isa);
  // As the Jacobi kernels: TFSVD_JACOBI_ISA where it names a set this CPU runs.
  if (const char* forced = std::getenv("TFSVD_JACOBI_ISA")) {
    if (const GramKernels* k = KernelsForIsa<GramKernels, kSse2, kAvx2, kAvx512>(forced)) return k;
  }
  return &WidestKernels<GramKernels, kSse2, kAvx2, kAvx512>();
}

GramSvd::GramSvd(Index m, Index n, bool compute_uv, const std::string& isa)
    : m_(m), n_(n), compute_uv_(compute_uv), kernels_(GramKernelsFor(isa)) {}

bool GramSvd::Run(const float* a, float* s, float* u, float* v) {
  const Index k = std::min(m_, n_);
  bool ok = false;
  switch (k) {
    case 1: ok = FactorEither<1>(*kernels_, m_, n_, a, compute_uv_, s, u, v); break;
    case 2: ok = FactorEither<2>(*kernels_, m_, n_, a, compute_uv_, s, u, v); break;
    case 3: ok = FactorEither<3>(*kernels_, m_, n_, a, compute_uv_, s, u, v); break;
    case 4: ok = FactorEither<4>(*kernels_, m_, n_, a, compute_uv_, s, u, v); break;
    default: return false;
  }
  return ok;
}

}  // namespace tfsvd
