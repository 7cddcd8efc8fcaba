// tfsvd._core: the framework-free kernels on NumPy arrays, for tests and benchmarks without TF.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <chrono>
#include <complex>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/bidiag_pass.h"
#include "core/bidiagonal_svd.h"
#include "core/jacobi_batched.h"
#include "core/svd.h"
#include "core/svd_grad.h"
#include "core/lapack.h"
#include "core/scratch_pool.h"
#include "core/thin_grad.h"
#include "core/thread_team.h"
#include "core/transpose.h"
#include "core/workspace.h"

namespace py = pybind11;

namespace tfsvd {
namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

std::vector<py::ssize_t> BatchDims(const py::array& a, int drop) {
  std::vector<py::ssize_t> dims(a.shape(), a.shape() + a.ndim() - drop);
  return dims;
}

std::vector<py::ssize_t> With(std::vector<py::ssize_t> dims, std::initializer_list<Index> tail) {
  for (Index d : tail) dims.push_back(static_cast<py::ssize_t>(d));
  return dims;
}

Index Product(const std::vector<py::ssize_t>& dims) {
  Index p = 1;
  for (auto d : dims) p *= d;
  return p;
}

// Lends freshly started std::threads, joined when the lender goes away: teams for tests and
// benchmarks without TensorFlow. A start delay makes the helpers join late (tests: the result
// must not depend on when, or whether, helpers arrive).
class StdThreadLender : public ThreadLender {
 public:
  StdThreadLender(int helpers, int start_delay_ms)
      : helpers_(helpers), start_delay_ms_(start_delay_ms) {}
  ~StdThreadLender() override {
    for (auto& t : threads_) t.join();
  }
  int MaxHelpers() const override { return helpers_; }
  void Lend(std::function<void()> fn) override {
    const int delay = start_delay_ms_;
    threads_.emplace_back([fn = std::move(fn), delay] {
      if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
      fn();
    });
  }

 private:
  int helpers_;
  int start_delay_ms_;
  std::vector<std::thread> threads_;
};

template <typename T>
py::tuple SvdTyped(const py::array& input, bool full_matrices, bool compute_uv,
                   const std::string& algorithm, const std::string& jacobi_isa,
                   int jacobi_max_sweeps, int jacobi_lone_limit, int threads,
                   int helper_delay_ms) {
  CArray<T> a = CArray<T>::ensure(input);
  if (a.ndim() < 2) throw std::invalid_argument("svd: input must have rank >= 2");
  SvdProblem p;
  p.m = a.shape(a.ndim() - 2);
  p.n = a.shape(a.ndim() - 1);
  const auto batch_dims = BatchDims(a, 2);
  p.batch = Product(batch_dims);
  p.compute_uv = compute_uv;
  p.full_matrices = full_matrices;
  if (!ParseSvdAlgorithm(algorithm, &p.algorithm)) {
    throw std::invalid_argument("svd: unknown algorithm '" + algorithm + "'");
  }
  p.jacobi_isa = jacobi_isa;
  p.jacobi_max_sweeps = jacobi_max_sweeps;
  p.jacobi_lone_limit = jacobi_lone_limit;
  const std::string error = ValidateSvdProblem(p);
  if (!error.empty()) throw std::invalid_argument("svd: " + error);
  py::array_t<RealOf<T>> s(With(batch_dims, {p.k()}));
  py::array_t<T> u(With(batch_dims, {p.m, compute_uv ? p.u_cols() : 0}));
  py::array_t<T> v(With(batch_dims, {p.n, compute_uv ? p.v_cols() : 0}));
  SvdBuffers<T> b;
  b.a = a.data();
  b.s = s.mutable_data();
  b.u = compute_uv ? u.mutable_data() : nullptr;
  b.v = compute_uv ? v.mutable_data() : nullptr;
  if (threads < 1) throw std::invalid_argument("svd: threads must be >= 1");
  {
    py::gil_scoped_release release;
    if (threads > 1 && SvdUsesTeam<T>(p)) {
      StdThreadLender lender(threads - 1, helper_delay_ms);
      ThreadTeam team(&lender, threads - 1);
      SvdRange<T>(p, b, 0, p.batch, &team);
    } else {
      SvdRange<T>(p, b, 0, p.batch);
    }
  }
  return py::make_tuple(s, u, v);
}

template <typename T>
py::array SvdGradTyped(const py::array& s_in, const py::array& u_in, const py::array& v_in,
                       const py::array& gs_in, const py::array& gu_in, const py::array& gv_in,
                       bool full_matrices, bool compute_uv, const std::string& method,
                       double eps, int order, int loop_limit, const std::string& thin_isa,
                       int threads) {
  using Real = RealOf<T>;
  CArray<Real> s = CArray<Real>::ensure(s_in), gs = CArray<Real>::ensure(gs_in);
  CArray<T> u = CArray<T>::ensure(u_in), v = CArray<T>::ensure(v_in);
  CArray<T> gu = CArray<T>::ensure(gu_in), gv = CArray<T>::ensure(gv_in);
  if (u.ndim() < 2 || v.ndim() != u.ndim() || s.ndim() != u.ndim() - 1) {
    throw std::invalid_argument("svd_grad: expected s [..., K], u [..., M, *], v [..., N, *]");
  }
  SvdGradProblem p;
  p.m = u.shape(u.ndim() - 2);
  p.n = v.shape(v.ndim() - 2);
  const auto batch_dims = BatchDims(u, 2);
  p.batch = Product(batch_dims);
  p.full_matrices = full_matrices;
  p.uses_vectors = compute_uv;
  p.eps = eps;
  p.order = order;
  p.loop_limit = loop_limit;
  p.thin_isa = thin_isa;
  if (!ParseGradMethod(method, &p.method)) {
    throw std::invalid_argument("svd_grad: unknown grad_method '" + method + "'");
  }
  const auto expect = [&](const py::array& x, std::vector<py::ssize_t> want, const char* name) {
    if (std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()) != want) {
      throw std::invalid_argument(std::string("svd_grad: inconsistent shape of ") + name);
    }
  };
  expect(s, With(batch_dims, {p.k()}), "s");
  expect(gs, With(batch_dims, {p.k()}), "grad_s");
  expect(u, With(batch_dims, {p.m, p.u_cols()}), "u");
  expect(v, With(batch_dims, {p.n, p.v_cols()}), "v");
  if (compute_uv) {
    expect(gu, With(batch_dims, {p.m, p.u_cols()}), "grad_u");
    expect(gv, With(batch_dims, {p.n, p.v_cols()}), "grad_v");
  }
  const std::string error = ValidateSvdGradProblem(p);
  if (!error.empty()) throw std::invalid_argument("svd_grad: " + error);
  py::array_t<T> ga(With(batch_dims, {p.m, p.n}));
  SvdGradBuffers<T> b;
  b.s = s.data();
  b.u = u.data();
  b.v = v.data();
  b.gs = gs.data();
  b.gu = compute_uv ? gu.data() : nullptr;
  b.gv = compute_uv ? gv.data() : nullptr;
  b.ga = ga.mutable_data();
  if (threads < 1) throw std::invalid_argument("svd_grad: threads must be >= 1");
  {
    py::gil_scoped_release release;
    if (threads > 1 && SvdGradUsesTeam<T>(p)) {
      StdThreadLender lender(threads - 1, 0);
      ThreadTeam team(&lender, threads - 1);
      SvdGradRange<T>(p, b, 0, p.batch, &team);
    } else {
      SvdGradRange<T>(p, b, 0, p.batch);
    }
  }
  return ga;
}

// BidiagonalSvd on an upper bidiagonal matrix (diagonal d, superdiagonal e): (s, u, vt), u and vt
// Fortran-ordered n x n (empty without vectors). Tests of the divide and conquer's split and merge.
template <typename R>
py::tuple BidiagonalSvdTyped(const py::array& d_in, const py::array& e_in, bool compute_uv,
                             int threads) {
  CArray<R> d_arr = CArray<R>::ensure(d_in), e_arr = CArray<R>::ensure(e_in);
  const bool shapes_ok = d_arr.ndim() == 1 && e_arr.ndim() == 1 && d_arr.shape(0) >= 1 &&
                         e_arr.shape(0) + 1 == d_arr.shape(0);
  if (!shapes_ok) {
    throw std::invalid_argument("bidiagonal_svd: expected d [n] and e [n - 1], n >= 1");
  }
  if (threads < 1) throw std::invalid_argument("bidiagonal_svd: threads must be >= 1");
  const Index n = d_arr.shape(0);
  py::array_t<R> s(n);
  std::copy(d_arr.data(), d_arr.data() + n, s.mutable_data());
  std::vector<R> e(e_arr.data(), e_arr.data() + e_arr.shape(0));
  e.push_back(R(0));
  const Index vn = compute_uv ? n : 0;
  py::array_t<R, py::array::f_style> u({vn, vn}), vt({vn, vn});
  lapack::Int info = 0;
  {
    py::gil_scoped_release release;
    BidiagonalSvd<R> solver(n, compute_uv);
    StdThreadLender lender(threads - 1, 0);
    ThreadTeam team(&lender, threads - 1);
    // The leading dimension ParallelGesdd gives it (padded for some n), copied out after.
    const Index ld = PaddedLeadingDimension<R>(n);
    std::vector<R> u_work(compute_uv ? ld * n : 0), vt_work(compute_uv ? ld * n : 0);
    info = solver.Run(team, s.mutable_data(), e.data(), compute_uv ? u_work.data() : nullptr,
                      compute_uv ? vt_work.data() : nullptr, ld);
    CopyStrided(vn, n, u_work.data(), ld, u.mutable_data(), n);
    CopyStrided(vn, n, vt_work.data(), ld, vt.mutable_data(), n);
  }
  if (info != 0) throw std::runtime_error("bidiagonal_svd: LAPACK info " + std::to_string(info));
  return py::make_tuple(s, u, vt);
}

// The bidiagonalisation's column pass (bidiag_pass.h) of instruction set `isa` on columns
// a[j, :mc] (a is [len, lda], lda >= mc: column-major with leading dimension lda), with y and w
// holding the corrections on entry; returns the new (y, w, z).
template <typename R>
py::tuple BidiagPassTyped(const py::array& a_in, Index mc, const py::array& v_in, double tq,
                          const py::array& y_in, const py::array& w_in, const py::array& z_in,
                          const std::string& isa, Index offset) {
  CArray<R> a = CArray<R>::ensure(a_in), v = CArray<R>::ensure(v_in);
  const BidiagPassKernels* kernels = BidiagPassKernelsFor(isa);
  if (kernels == nullptr) {
    throw std::invalid_argument("bidiag_pass: this CPU does not run '" + isa + "'");
  }
  const bool shapes_ok = a.ndim() == 2 && mc >= 1 && a.shape(1) >= mc && v.ndim() == 1 &&
                         v.shape(0) == mc && y_in.ndim() == 1 && y_in.shape(0) == a.shape(0) &&
                         w_in.ndim() == 1 && w_in.shape(0) == a.shape(0) && z_in.ndim() == 1 &&
                         z_in.shape(0) == mc - 1;
  if (!shapes_ok) {
    throw std::invalid_argument("bidiag_pass: expected a [len, lda >= mc], v [mc], y and w [len], "
                                "z [mc - 1]");
  }
  // Fresh copies: the kernel updates y, w and z in place.
  py::array_t<R> y = CArray<R>::ensure(y_in).attr("copy")();
  py::array_t<R> w = CArray<R>::ensure(w_in).attr("copy")();
  py::array_t<R> z = CArray<R>::ensure(z_in).attr("copy")();
  const BidiagPassKernel<R> pass = PassKernelOf<R>(*kernels);
  const Index len = a.shape(0);
  if (offset < 0) {
    pass(mc, len, a.data(), a.shape(1), v.data(), static_cast<R>(tq), y.mutable_data(),
         w.mutable_data(), z.mutable_data(), 0);
    return py::make_tuple(y, w, z);
  }
  // The layout of the bidiagonalisation (the kernel's aligned loads): v and a's columns side by
  // side from row `offset` of a 64-byte aligned matrix whose leading dimension is a multiple of
  // 64 bytes, z placed to match with kPassZPad spare entries each side; every other entry NaN,
  // which the kernel must ignore.
  constexpr Index kLine = 64 / sizeof(R);
  const R nan = std::numeric_limits<R>::quiet_NaN();
  const Index ld = (offset + mc + kLine - 1) / kLine * kLine + kLine;
  const Index block_size = ld * (len + 1);
  AlignedArray<R> block(block_size);
  std::fill(block.data(), block.data() + block_size, nan);
  std::copy(v.data(), v.data() + mc, block.data() + offset);
  for (Index j = 0; j < len; ++j) {
    std::copy(a.data() + j * a.shape(1), a.data() + j * a.shape(1) + mc,
              block.data() + offset + (j + 1) * ld);
  }
  const Index z_size = mc - 1 + 2 * kPassZPad + kLine;
  AlignedArray<R> z_block(z_size);
  std::fill(z_block.data(), z_block.data() + z_size, nan);
  R* z_at = z_block.data() + kPassZPad + (offset + 1) % kLine;
  std::copy(z.data(), z.data() + mc - 1, z_at);
  pass(mc, len, block.data() + offset + ld, ld, block.data() + offset, static_cast<R>(tq),
       y.mutable_data(), w.mutable_data(), z_at, kPassZPad);
  std::copy(z_at, z_at + mc - 1, z.mutable_data());
  return py::make_tuple(y, w, z);
}

// Calls fn.template operator()<T>() for the scalar type named by a NumPy dtype.
template <typename Fn>
auto DispatchDtype(const py::dtype& dtype, Fn&& fn) {
  const char kind = dtype.kind();
  const auto size = dtype.itemsize();
  if (kind == 'f' && size == 4) return fn(float{});
  if (kind == 'f' && size == 8) return fn(double{});
  if (kind == 'c' && size == 8) return fn(std::complex<float>{});
  if (kind == 'c' && size == 16) return fn(std::complex<double>{});
  throw py::type_error("tfsvd: unsupported dtype " + std::string(py::str(dtype)) +
                       "; use float32, float64, complex64 or complex128");
}

}  // namespace
}  // namespace tfsvd

PYBIND11_MODULE(_core, m) {
  using namespace tfsvd;
  m.doc() = "tfsvd core kernels on NumPy arrays (no TensorFlow)";
  m.def(
      "svd",
      [](const py::array& a, bool full_matrices, bool compute_uv, const std::string& algorithm,
         const std::string& jacobi_isa, int jacobi_max_sweeps, int jacobi_lone_limit,
         int threads, int helper_delay_ms) {
        return DispatchDtype(a.dtype(), [&](auto tag) {
          return SvdTyped<decltype(tag)>(a, full_matrices, compute_uv, algorithm, jacobi_isa,
                                         jacobi_max_sweeps, jacobi_lone_limit, threads,
                                         helper_delay_ms);
        });
      },
      py::arg("a"), py::arg("full_matrices") = false, py::arg("compute_uv") = true,
      py::arg("algorithm") = "auto", py::arg("jacobi_isa") = "auto",
      py::arg("jacobi_max_sweeps") = 0, py::arg("jacobi_lone_limit") = -1, py::arg("threads") = 1,
      py::arg("helper_delay_ms") = 0,
      "SVD of a batch [..., M, N] -> (s, u, v) with tfsvd's conventions (canonical signs, NaN "
      "isolation); u, v are [..., M, 0], [..., N, 0] without compute_uv. threads > 1 lends a "
      "team of that many threads to each large matrix (parallel_gesdd), as the TensorFlow kernel "
      "does with its pool. Tests and benchmarks: jacobi_isa picks the Jacobi kernels' (and the "
      "gram path's) instruction set, jacobi_max_sweeps (> 0) caps their sweeps to exercise the LAPACK "
      "fallback, jacobi_lone_limit (>= 0) runs the matrices one at a time while at most that many "
      "are left (the same bits as in groups), helper_delay_ms starts the team's helpers that "
      "late.");
  m.def(
      "svd_grad",
      [](const py::array& s, const py::array& u, const py::array& v, const py::array& gs,
         const py::array& gu, const py::array& gv, bool full_matrices, bool compute_uv,
         const std::string& method, double eps, int order, int loop_limit,
         const std::string& thin_isa, int threads) {
        return DispatchDtype(u.dtype(), [&](auto tag) {
          return SvdGradTyped<decltype(tag)>(s, u, v, gs, gu, gv, full_matrices, compute_uv,
                                             method, eps, order, loop_limit, thin_isa, threads);
        });
      },
      py::arg("s"), py::arg("u"), py::arg("v"), py::arg("grad_s"), py::arg("grad_u"),
      py::arg("grad_v"), py::arg("full_matrices") = false, py::arg("compute_uv") = true,
      py::arg("grad_method") = "stable", py::arg("grad_eps") = -1.0, py::arg("grad_order") = 9,
      py::arg("loop_limit") = -1, py::arg("thin_isa") = "auto", py::arg("threads") = 1,
      "Backward of svd: the gradient with respect to a from (s, u, v) and their cotangents. "
      "threads > 1 lends a team to each large matrix, as the TensorFlow kernel does. "
      "loop_limit (tests): -1 picks BLAS or plain loops by size; k >= 0 forces the loops for "
      "min(M, N) <= k, so 0 forces BLAS. thin_isa (tests): the instruction set of the thin "
      "products of a real matrix with small min(M, N) ('auto', 'sse2', 'avx2', 'avx512'), or "
      "'off' for the BLAS products.");
  m.def(
      "bidiagonal_svd",
      [](const py::array& d, const py::array& e, bool compute_uv, int threads) {
        const py::dtype dtype = d.dtype();
        if (dtype.kind() == 'f' && dtype.itemsize() == 4) {
          return BidiagonalSvdTyped<float>(d, e, compute_uv, threads);
        }
        if (dtype.kind() == 'f' && dtype.itemsize() == 8) {
          return BidiagonalSvdTyped<double>(d, e, compute_uv, threads);
        }
        throw py::type_error("bidiagonal_svd: d must be float32 or float64");
      },
      py::arg("d"), py::arg("e"), py::arg("compute_uv") = true, py::arg("threads") = 1,
      "Divide-and-conquer SVD of the upper bidiagonal matrix with diagonal d and superdiagonal e "
      "(parallel_gesdd's solver, its halves on a team of `threads`): (s descending, u, vt) with "
      "B = u diag(s) vt, u and vt Fortran-ordered (empty without compute_uv).");
  m.def(
      "bidiag_pass",
      [](const py::array& a, Index mc, const py::array& v, double tq, const py::array& y,
         const py::array& w, const py::array& z, const std::string& isa, Index offset) {
        const py::dtype dtype = a.dtype();
        if (dtype.kind() == 'f' && dtype.itemsize() == 4) {
          return BidiagPassTyped<float>(a, mc, v, tq, y, w, z, isa, offset);
        }
        if (dtype.kind() == 'f' && dtype.itemsize() == 8) {
          return BidiagPassTyped<double>(a, mc, v, tq, y, w, z, isa, offset);
        }
        throw py::type_error("bidiag_pass: a must be float32 or float64");
      },
      py::arg("a"), py::arg("mc"), py::arg("v"), py::arg("tq"), py::arg("y"), py::arg("w"),
      py::arg("z"), py::arg("isa") = "auto", py::arg("offset") = -1,
      "The bidiagonalisation's fused column pass (tests): for columns a[j, :mc], "
      "y[j] = tq (a_j . v - y[j]), w[j] = (a_j[0] - y[j]) - w[j], z += a_j[1:mc] w[j]; returns "
      "(y, w, z). isa: 'sse2', 'avx2', 'avx512' or 'auto'. offset >= 0 runs it on the "
      "bidiagonalisation's layout (aligned loads), the columns starting `offset` rows into "
      "64-byte aligned columns among NaNs; -1 on the arrays as given, without spare z entries.");
  m.def("jacobi_isa", &JacobiIsa,
        "Instruction set of the batched Jacobi kernels in use: 'sse2', 'avx2' or 'avx512'.");
  m.def("jacobi_isa_available", &JacobiIsaAvailable, py::arg("name"),
        "Whether this CPU runs the Jacobi kernels of an instruction set ('sse2', 'avx2', "
        "'avx512'; 'auto' always).");
  m.def(
      "jacobi_lanes",
      [](const py::dtype& dtype, const std::string& isa) {
        return DispatchDtype(dtype, [&](auto tag) {
          SvdProblem p;
          p.m = p.n = 2;
          p.jacobi_isa = isa;
          const std::string error = ValidateSvdProblem(p);
          if (!error.empty()) throw std::invalid_argument("jacobi_lanes: " + error);
          return JacobiBatchSvd<decltype(tag)>(p).lanes();
        });
      },
      py::arg("dtype"), py::arg("isa") = "auto",
      "Matrices per SIMD group of the Jacobi kernels of an instruction set for a dtype.");
  m.def(
      "thin_grad_max_k",
      [](const py::dtype& dtype, const std::string& isa) -> Index {
        const ThinGradKernels* kernels = ThinGradKernelsFor(isa);
        if (kernels == nullptr) return 0;
        if (dtype.kind() != 'f') return 0;
        return dtype.itemsize() == 4 ? kernels->max_k_float : kernels->max_k_double;
      },
      py::arg("dtype"), py::arg("isa") = "auto",
      "The largest min(M, N) whose backward runs the thin products (thin_grad.h) of an "
      "instruction set for a real dtype; 0 where the CPU lacks the set or for complex dtypes.");
  m.def("kept_scratch_bytes", &KeptScratchBytes,
        "Bytes of freed scratch blocks this module keeps for reuse (scratch_pool.h).");
  m.attr("MIN_KEPT_SCRATCH_BYTES") = kMinKeptBytes;
  m.attr("MAX_KEPT_SCRATCH_BYTES") = kMaxKeptBytes;
}
