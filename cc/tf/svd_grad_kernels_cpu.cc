// CPU OpKernel of TfsvdSvdGrad: checks that the six inputs describe one SVD, then hands the
// batch to cc/core.
#include <complex>
#include <string>

#include "core/svd_grad.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tf/cpu_parallel.h"
#include "tf/huge_pages.h"

namespace tfsvd {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;

absl::Status ShapeError(const std::string& what, const TensorShape& got, const TensorShape& want) {
  return absl::InvalidArgumentError("tfsvd TfsvdSvdGrad: " + what + " has shape " +
                                    got.DebugString() + ", expected " + want.DebugString());
}

template <typename T>
class SvdGradCpuOp : public OpKernel {
 public:
  explicit SvdGradCpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("full_matrices", &full_matrices_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("compute_uv", &uses_vectors_));
    std::string method;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("grad_method", &method));
    OP_REQUIRES(ctx, ParseGradMethod(method, &method_),
                absl::InvalidArgumentError("tfsvd: unknown grad_method '" + method + "'"));
    float eps = -1.0f;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("grad_eps", &eps));
    eps_ = eps;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("grad_order", &order_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& s = ctx->input(0);
    const Tensor& u = ctx->input(1);
    const Tensor& v = ctx->input(2);
    const Tensor& gs = ctx->input(3);
    const Tensor& gu = ctx->input(4);
    const Tensor& gv = ctx->input(5);
    OP_REQUIRES(ctx, u.dims() >= 2 && v.dims() == u.dims() && s.dims() == u.dims() - 1,
                absl::InvalidArgumentError(
                    "tfsvd TfsvdSvdGrad: expected s [..., K], u [..., M, *], v [..., N, *], got " +
                    s.shape().DebugString() + ", " + u.shape().DebugString() + ", " +
                    v.shape().DebugString()));
    SvdGradProblem p;
    p.m = u.dim_size(u.dims() - 2);
    p.n = v.dim_size(v.dims() - 2);
    p.batch = BatchSize(u.shape());
    p.full_matrices = full_matrices_;
    p.uses_vectors = uses_vectors_;
    p.method = method_;
    p.eps = eps_;
    p.order = order_;
    const TensorShape& shape = u.shape();
    const TensorShape s_shape = BatchShapeWith(shape, -1, p.k());
    const TensorShape u_shape = BatchShapeWith(shape, p.m, p.u_cols());
    const TensorShape v_shape = BatchShapeWith(shape, p.n, p.v_cols());
    OP_REQUIRES(ctx, s.shape() == s_shape, ShapeError("s", s.shape(), s_shape));
    OP_REQUIRES(ctx, u.shape() == u_shape, ShapeError("u", u.shape(), u_shape));
    OP_REQUIRES(ctx, v.shape() == v_shape, ShapeError("v", v.shape(), v_shape));
    OP_REQUIRES(ctx, gs.shape() == s_shape, ShapeError("grad_s", gs.shape(), s_shape));
    if (uses_vectors_) {
      OP_REQUIRES(ctx, gu.shape() == u_shape, ShapeError("grad_u", gu.shape(), u_shape));
      OP_REQUIRES(ctx, gv.shape() == v_shape, ShapeError("grad_v", gv.shape(), v_shape));
    }
    const std::string problem_error = ValidateSvdGradProblem(p);
    OP_REQUIRES(ctx, problem_error.empty(),
                absl::InvalidArgumentError("tfsvd TfsvdSvdGrad: " + problem_error));

    Tensor* ga = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, BatchShapeWith(shape, p.m, p.n), &ga));
    if (p.batch == 0) return;
    AdviseHugePages(*ga);
    SvdGradBuffers<T> b;
    b.s = s.flat<RealOf<T>>().data();
    b.u = u.flat<T>().data();
    b.v = v.flat<T>().data();
    b.gs = gs.flat<RealOf<T>>().data();
    b.gu = uses_vectors_ ? gu.flat<T>().data() : nullptr;
    b.gv = uses_vectors_ ? gv.flat<T>().data() : nullptr;
    b.ga = ga->flat<T>().data();
    ForEachMatrix(ctx, p.batch, SvdGradCostPerMatrix(p), SvdGradUsesTeam<T>(p), /*align=*/1,
                  [&](std::int64_t begin, std::int64_t end, ThreadTeam* team) {
                    SvdGradRange<T>(p, b, begin, end, team);
                  });
  }

 private:
  bool full_matrices_ = false;
  bool uses_vectors_ = true;
  GradMethod method_ = GradMethod::kStable;
  double eps_ = -1.0;
  int order_ = 9;
};

#define TFSVD_REGISTER(T, R)                                                               \
  REGISTER_KERNEL_BUILDER(Name("TfsvdSvdGrad")                                             \
                              .Device(::tensorflow::DEVICE_CPU)                            \
                              .TypeConstraint<T>("T")                                      \
                              .TypeConstraint<R>("Treal"),                                 \
                          SvdGradCpuOp<T>);
TFSVD_REGISTER(float, float)
TFSVD_REGISTER(double, double)
TFSVD_REGISTER(std::complex<float>, float)
TFSVD_REGISTER(std::complex<double>, double)
#undef TFSVD_REGISTER

}  // namespace
}  // namespace tfsvd
