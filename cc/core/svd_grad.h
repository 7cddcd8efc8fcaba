// The backward pass of the SVD (DESIGN.md section 3), framework-free.
//
// Given a = u diag(s) v^H from the forward pass and the cotangents (gs, gu, gv), computes
// ga with TensorFlow's convention dL = Re tr(ga^H da). Every shape class: square, tall, wide,
// thin or full factors with any |m - n|; values-only (gu, gv unused) needs no second SVD.
#pragma once

#include <string>

#include "core/scalar.h"
#include "core/thread_team.h"

namespace tfsvd {

// How 1/(s_j - s_i), 1/(s_j + s_i) and 1/s_i are evaluated (DESIGN.md section 3).
enum class GradMethod { kStable, kExact, kLorentzian, kTaylor };

// Parses "stable" | "exact" | "lorentzian" | "taylor"; returns false on anything else.
bool ParseGradMethod(const std::string& name, GradMethod* method);

struct SvdGradProblem {
  Index batch = 0;
  Index m = 0;
  Index n = 0;
  bool full_matrices = false;  // u is m x m and v is n x n (else m x k and n x k)
  bool uses_vectors = true;    // false: gu and gv are absent (values-only loss)
  GradMethod method = GradMethod::kStable;
  double eps = -1.0;  // method parameter; negative selects the method's default
  int order = 9;      // taylor only
  // Tests: -1 picks BLAS or plain loops by size (svd_grad.cc); k >= 0 forces the loops for
  // min(m, n) <= k (and max(m, n) <= 32), so 0 forces BLAS everywhere.
  int loop_limit = -1;
  // Tests: the instruction set of the thin products (thin_grad.h) for real matrices with
  // min(m, n) up to the kernels' limit: "auto", "sse2", "avx2", "avx512", or "off" (the BLAS
  // products everywhere).
  std::string thin_isa = "auto";

  Index k() const { return m < n ? m : n; }
  Index u_cols() const { return full_matrices ? m : k(); }
  Index v_cols() const { return full_matrices ? n : k(); }
};

template <typename T>
struct SvdGradBuffers {
  const RealOf<T>* s = nullptr;   // [batch, k]
  const T* u = nullptr;           // [batch, m, u_cols]
  const T* v = nullptr;           // [batch, n, v_cols]
  const RealOf<T>* gs = nullptr;  // [batch, k]
  const T* gu = nullptr;          // [batch, m, u_cols] when uses_vectors
  const T* gv = nullptr;          // [batch, n, v_cols] when uses_vectors
  T* ga = nullptr;                // [batch, m, n]
};

// Empty when solvable, else a message naming what is out of range.
std::string ValidateSvdGradProblem(const SvdGradProblem& problem);

double SvdGradCostPerMatrix(const SvdGradProblem& problem);


// Whether a matrix of this problem is large enough for a ThreadTeam to speed up its products
// (worth it for the matrices of a batch that are fewer than the threads: all of a small batch,
// the remainder of a larger one).
template <typename T>
bool SvdGradUsesTeam(const SvdGradProblem& problem);

// Computes ga for matrices [begin, end). Thread-safe. A matrix whose singular values are not
// finite (the forward isolated it) gets a NaN gradient. `team` (null: the caller alone) runs the
// products of one matrix after the other; the chunks depend only on the sizes, so the bits do not
// depend on the team.
template <typename T>
void SvdGradRange(const SvdGradProblem& problem, const SvdGradBuffers<T>& buffers, Index begin,
                  Index end, ThreadTeam* team = nullptr);

}  // namespace tfsvd
