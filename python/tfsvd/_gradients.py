"""Gradient registrations for TfsvdSvd (first order, fused C++ op) and TfsvdSvdGrad (higher
orders, by differentiating the same formula written in TF ops)."""

import tensorflow as tf

from . import _ops
from ._grad_composite import svd_grad_composite


def _grad_attrs(op):
    """The gradient options recorded on a TfsvdSvd or TfsvdSvdGrad op."""
    return dict(
        grad_method=_decoded(op.get_attr("grad_method")),
        grad_eps=op.get_attr("grad_eps"),
        grad_order=op.get_attr("grad_order"),
    )


def _decoded(value):
    return value.decode() if isinstance(value, bytes) else value


@tf.RegisterGradient("TfsvdSvd")
def _svd_grad(op, grad_s, grad_u, grad_v):
    compute_uv = op.get_attr("compute_uv")
    if not compute_uv and not op.get_attr("keep_uv"):
        # Values only, traced or run while no gradient was recorded, and differentiated after all
        # (a tape around the tf.function, tf.gradients, a loaded SavedModel): the vectors were
        # never computed, so the backward pass computes the thin ones now, with the op's own
        # algorithm and options. The only case with a second SVD.
        a = op.inputs[0]
        s, u, v = _ops.tfsvd_svd(
            a, Treal=a.dtype.real_dtype, full_matrices=False, compute_uv=True,
            algorithm=_decoded(op.get_attr("algorithm")), **_grad_attrs(op))
    else:
        s, u, v = op.outputs
    if grad_s is None:
        grad_s = tf.zeros_like(s)
    if not compute_uv:
        # The user saw only s: the gradient is U diag(gs) V^H, from the kept vectors.
        empty = tf.zeros([0], dtype=u.dtype)
        grad_u = grad_v = empty
    else:
        grad_u = tf.zeros_like(u) if grad_u is None else grad_u
        grad_v = tf.zeros_like(v) if grad_v is None else grad_v
    return _ops.tfsvd_svd_grad(
        s, u, v, grad_s, grad_u, grad_v,
        full_matrices=op.get_attr("full_matrices") and compute_uv,
        compute_uv=compute_uv,
        **_grad_attrs(op),
    )


@tf.RegisterGradient("TfsvdSvdGrad")
def _svd_grad_grad(op, grad_grad_a):
    # Second and higher orders: autodiff of the same formula in TF ops, evaluated at the same
    # forward outputs, so first order stays on the fused kernel.
    inputs = list(op.inputs)
    attrs = _grad_attrs(op)
    compute_uv = op.get_attr("compute_uv")
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        s, u, v, gs, gu, gv = inputs
        if not compute_uv:
            gu, gv = tf.zeros_like(u), tf.zeros_like(v)
        grad_a = svd_grad_composite(
            s, u, v, gs, gu, gv,
            full_matrices=op.get_attr("full_matrices"),
            compute_uv=compute_uv,
            method=attrs["grad_method"],
            eps=None if attrs["grad_eps"] < 0 else attrs["grad_eps"],
            order=attrs["grad_order"],
        )
    return tape.gradient(grad_a, inputs, output_gradients=grad_grad_a,
                         unconnected_gradients=tf.UnconnectedGradients.NONE)
