// The Gram path's passes for baseline x86-64 (SSE2) and their run-time choice
// (gram_svd_kernels.h); the error bound, the order and signs, and the outputs of gram_svd.h.
#define TFSVD_GRAM_ISA sse2
#include "core/gram_svd.inc"

#include "core/gram_svd.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/canonical.h"
#include "core/cpu_isa.h"
#include "core/gram_svd_kernels.h"

namespace tfsvd {
namespace {

constexpr double kEps64 = 0x1p-53;
// The backward error of one of the eigensolver's rotations, in eps64 trace(G) (gram_svd.h).
constexpr double kRotationError = 16;
// Accept when delta <= 2^-28 lambda_min: a sixteenth of float32's unit roundoff 2^-24.
constexpr double kAcceptRatio = 0x1p-28;

// The rest of the factorization of the tall view X = left diag(s) w^T (gram_svd_kernels.h) once
// g holds the eigenvalues on its diagonal and w the eigenvectors, from the Gram matrix of the given
// trace after `rotations` rotations: s (K), left (rows x K) and w_out (K x K), row-major; s alone
// when both are null. False when gram_svd.h's bound does not certify it.
template <int K>
bool Finish(const GramKernels& kernels, const float* a, Index ld, Index rows, bool tall,
            double trace, int rotations, const double (&g)[K][K], const double (&w)[K][K],
            float* s, float* left, float* w_out) {
  // Eigenvalues descending, ties in their order: an insertion sort (std::stable_sort takes a heap
  // buffer).
  int order[K];
  for (int i = 0; i < K; ++i) {
    int j = i;
    for (; j > 0 && g[i][i] > g[order[j - 1]][order[j - 1]]; --j) order[j] = order[j - 1];
    order[j] = i;
  }
  const double lambda_min = g[order[K - 1]][order[K - 1]];
  const double sums =
      static_cast<double>(std::min(rows, kGramBlockRows) / 2 + rows / kGramBlockRows + 6);
  const double delta = (sums + K + kRotationError * rotations) * kEps64 * trace;
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
    Index pivot[K];
    float top[K];
    ColumnPivots(w_out, K, 0, K, 0, K, pivot, top);
    for (int j = 0; j < K; ++j) {
      if (w_out[pivot[j] * K + j] < 0) {
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

// Matrices whose Gram matrices are diagonalised together (a multiple of every set's lanes).
constexpr Index kGroup = 16;

// Matrices [0, count) of a batch of m x n matrices (count <= kGroup): the Gram matrices one by
// one, their eigensolver across the group, then the rest one by one. Tall: X = A = u diag(s) v^T,
// so u = left, v = w. Wide: X = A^T, A = w diag(s) left^T, so u = w, v = left.
template <int K>
void FactorGroup(const GramKernels& kernels, Index m, Index n, bool compute_uv, Index count,
                 const float* a, float* s, float* u, float* v, bool* ok) {
  const bool tall = m >= n;
  const Index rows = tall ? m : n, size = m * n;
  double g[kGroup][K][K], w[kGroup][K][K], trace[kGroup];
  int rotations[kGroup];
  for (Index i = 0; i < count; ++i) {
    kernels.gram(rows, K, a + i * size, n, tall, &g[i][0][0]);
    trace[i] = 0;
    for (int r = 0; r < K; ++r) {
      for (int c = 0; c < r; ++c) g[i][r][c] = g[i][c][r];
      trace[i] += g[i][r][r];
    }
  }
  kernels.eigen(count, K, &g[0][0][0], &w[0][0][0], rotations);
  for (Index i = 0; i < count; ++i) {
    float* left = nullptr;
    float* w_out = nullptr;
    if (compute_uv) {
      left = tall ? u + i * m * K : v + i * n * K;
      w_out = tall ? v + i * n * K : u + i * m * K;
    }
    ok[i] = Finish<K>(kernels, a + i * size, n, rows, tall, trace[i], rotations[i], g[i], w[i],
                      s + i * K, left, w_out);
  }
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

void GramSvd::Run(Index count, const float* a, float* s, float* u, float* v, bool* ok) {
  const Index k = std::min(m_, n_);
  for (Index first = 0; first < count; first += kGroup) {
    const Index c = std::min(kGroup, count - first), size = m_ * n_;
    const float* ai = a + first * size;
    float* si = s + first * k;
    float* ui = compute_uv_ ? u + first * m_ * k : nullptr;
    float* vi = compute_uv_ ? v + first * n_ * k : nullptr;
    // row_blocks.inc's width switch, from this file's (baseline) copy of the passes.
    gram::WithRowLength<kGramMaxK>(k, [&](auto width) {
      FactorGroup<width()>(*kernels_, m_, n_, compute_uv_, c, ai, si, ui, vi, ok + first);
    });
  }
}

}  // namespace tfsvd
