// Registration of the tfsvd ops and their shape functions. Every attribute has a default, so
// graphs and SavedModels stay loadable as attributes are added.
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tfsvd {
namespace {

using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

absl::Status SvdShape(InferenceContext* c) {
  bool compute_uv = true, full_matrices = false, keep_uv = false;
  TF_RETURN_IF_ERROR(c->GetAttr("compute_uv", &compute_uv));
  TF_RETURN_IF_ERROR(c->GetAttr("full_matrices", &full_matrices));
  TF_RETURN_IF_ERROR(c->GetAttr("keep_uv", &keep_uv));
  // Values-only calls that may be differentiated still output thin u and v for the gradient.
  if (!compute_uv && keep_uv) {
    compute_uv = true;
    full_matrices = false;
  }
  ShapeHandle input;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 2, &input));
  if (!c->RankKnown(input)) {
    c->set_output(0, c->UnknownShape());
    c->set_output(1, compute_uv ? c->UnknownShape() : c->Vector(0));
    c->set_output(2, compute_uv ? c->UnknownShape() : c->Vector(0));
    return absl::OkStatus();
  }
  ShapeHandle batch;
  TF_RETURN_IF_ERROR(c->Subshape(input, 0, -2, &batch));
  const DimensionHandle m = c->Dim(input, -2), n = c->Dim(input, -1);
  DimensionHandle k;
  TF_RETURN_IF_ERROR(c->Min(m, n, &k));
  ShapeHandle s;
  TF_RETURN_IF_ERROR(c->Concatenate(batch, c->Vector(k), &s));
  c->set_output(0, s);
  if (!compute_uv) {
    c->set_output(1, c->Vector(0));
    c->set_output(2, c->Vector(0));
    return absl::OkStatus();
  }
  ShapeHandle u, v;
  TF_RETURN_IF_ERROR(c->Concatenate(batch, c->Matrix(m, full_matrices ? m : k), &u));
  TF_RETURN_IF_ERROR(c->Concatenate(batch, c->Matrix(n, full_matrices ? n : k), &v));
  c->set_output(1, u);
  c->set_output(2, v);
  return absl::OkStatus();
}

absl::Status SvdGradShape(InferenceContext* c) {
  ShapeHandle u, v;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(1), 2, &u));
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(2), 2, &v));
  if (!c->RankKnown(u) || !c->RankKnown(v)) {
    c->set_output(0, c->UnknownShape());
    return absl::OkStatus();
  }
  ShapeHandle batch, grad_a;
  TF_RETURN_IF_ERROR(c->Subshape(u, 0, -2, &batch));
  TF_RETURN_IF_ERROR(c->Concatenate(batch, c->Matrix(c->Dim(u, -2), c->Dim(v, -2)), &grad_a));
  c->set_output(0, grad_a);
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("TfsvdSvd")
    .Input("input: T")
    .Output("s: Treal")
    .Output("u: T")
    .Output("v: T")
    .Attr("T: {float, double, complex64, complex128}")
    .Attr("Treal: {float, double} = DT_FLOAT")
    .Attr("full_matrices: bool = false")
    .Attr("compute_uv: bool = true")
    // With compute_uv = false: still output thin u and v, which the gradient needs (so the
    // backward pass never runs a second SVD). The Python wrapper sets it when a gradient may be
    // taken.
    .Attr("keep_uv: bool = false")
    // The gradient's settings travel with the forward op so graphs and SavedModels keep them.
    .Attr("grad_method: {'stable', 'exact', 'lorentzian', 'taylor'} = 'stable'")
    .Attr("grad_eps: float = -1.0")
    .Attr("grad_order: int >= 0 = 9")
    // Forces one per-matrix algorithm (tests and tuning); "auto" picks by size.
    .Attr("algorithm: {'auto', 'gesdd', 'gesvd', 'jacobi', 'parallel_gesdd', 'gram'} = 'auto'")
    .SetShapeFn(SvdShape)
    .Doc(R"doc(
Singular value decomposition of a batch of matrices: input = u diag(s) v^H, s descending,
canonical signs (the largest-magnitude entry of each column of u is real positive). With
compute_uv = false, u and v are empty vectors
unless keep_uv is set (then they are the thin factors). Matrices holding NaN/Inf give NaN outputs.
)doc");

REGISTER_OP("TfsvdSvdGrad")
    .Input("s: Treal")
    .Input("u: T")
    .Input("v: T")
    .Input("grad_s: Treal")
    .Input("grad_u: T")
    .Input("grad_v: T")
    .Output("grad_input: T")
    .Attr("T: {float, double, complex64, complex128}")
    .Attr("Treal: {float, double} = DT_FLOAT")
    .Attr("full_matrices: bool = false")
    // false: the loss sees only s; grad_u and grad_v are ignored (pass empty tensors).
    .Attr("compute_uv: bool = true")
    .Attr("grad_method: {'stable', 'exact', 'lorentzian', 'taylor'} = 'stable'")
    .Attr("grad_eps: float = -1.0")
    .Attr("grad_order: int >= 0 = 9")
    .SetShapeFn(SvdGradShape)
    .Doc(R"doc(
Backward pass of TfsvdSvd: the gradient with respect to its input from the forward outputs
(s, u, v) and their cotangents, with TensorFlow's convention dL = Re tr(G^H dA).
)doc");

}  // namespace tfsvd
