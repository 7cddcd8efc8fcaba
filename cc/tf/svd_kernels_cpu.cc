// CPU OpKernel of TfsvdSvd: validates, allocates, and hands the batch to cc/core.
#include <complex>
#include <string>

#include "core/svd.h"
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

template <typename T>
class SvdCpuOp : public OpKernel {
 public:
  explicit SvdCpuOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("compute_uv", &compute_uv_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("full_matrices", &full_matrices_));
    bool keep_uv = false;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("keep_uv", &keep_uv));
    if (!compute_uv_ && keep_uv) {  // thin vectors kept for the gradient (see ops.cc)
      compute_uv_ = true;
      full_matrices_ = false;
    }
    std::string algorithm;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("algorithm", &algorithm));
    OP_REQUIRES(ctx, ParseSvdAlgorithm(algorithm, &algorithm_),
                absl::InvalidArgumentError("tfsvd: unknown SVD algorithm '" + algorithm + "'"));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& input = ctx->input(0);
    const TensorShape& shape = input.shape();
    OP_REQUIRES(ctx, shape.dims() >= 2,
                absl::InvalidArgumentError("tfsvd.svd: input must have rank >= 2 (a batch of "
                                           "matrices), got shape " + shape.DebugString()));
    SvdProblem p;
    p.batch = BatchSize(shape);
    p.m = shape.dim_size(shape.dims() - 2);
    p.n = shape.dim_size(shape.dims() - 1);
    p.compute_uv = compute_uv_;
    p.full_matrices = full_matrices_;
    p.algorithm = algorithm_;
    const std::string problem_error = ValidateSvdProblem(p);
    OP_REQUIRES(ctx, problem_error.empty(), absl::InvalidArgumentError("tfsvd.svd: " + problem_error));

    Tensor *s = nullptr, *u = nullptr, *v = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, BatchShapeWith(shape, -1, p.k()), &s));
    const TensorShape empty({0});
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            1, compute_uv_ ? BatchShapeWith(shape, p.m, p.u_cols()) : empty, &u));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            2, compute_uv_ ? BatchShapeWith(shape, p.n, p.v_cols()) : empty, &v));
    if (p.batch == 0) return;
    for (const Tensor* output : {s, u, v}) AdviseHugePages(*output);

    SvdBuffers<T> buffers;
    buffers.a = input.flat<T>().data();
    buffers.s = s->flat<RealOf<T>>().data();
    buffers.u = compute_uv_ ? u->flat<T>().data() : nullptr;
    buffers.v = compute_uv_ ? v->flat<T>().data() : nullptr;
    const Index threads = ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
    ForEachMatrix(
        ctx, p.batch, SvdCostPerMatrix(p), SvdUsesTeam<T>(p), SvdBatchAlignment<T>(p, threads),
        [&](std::int64_t begin, std::int64_t end, ThreadTeam* team) {
          SvdRange<T>(p, buffers, begin, end, team);
        },
        [&p](std::int64_t count) { return SvdRangeCost<T>(p, count); });
  }

 private:
  bool compute_uv_ = true;
  bool full_matrices_ = false;
  SvdAlgorithm algorithm_ = SvdAlgorithm::kAuto;
};

#define TFSVD_REGISTER(T, R)                                                              \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("TfsvdSvd").Device(::tensorflow::DEVICE_CPU).TypeConstraint<T>("T").TypeConstraint<R>( \
          "Treal"),                                                                       \
      SvdCpuOp<T>);
TFSVD_REGISTER(float, float)
TFSVD_REGISTER(double, double)
TFSVD_REGISTER(std::complex<float>, float)
TFSVD_REGISTER(std::complex<double>, double)
#undef TFSVD_REGISTER

}  // namespace
}  // namespace tfsvd
