"""tfsvd.svd: a drop-in for tf.linalg.svd backed by the TfsvdSvd op."""

import math
import numbers

import tensorflow as tf
from tensorflow.python.eager import record

from . import _ops, _xla

GRAD_METHODS = ("stable", "exact", "lorentzian", "taylor")
NATIVE_DTYPES = (tf.float32, tf.float64, tf.complex64, tf.complex128)
# Computed in float32 and returned in the input dtype.
HALF_DTYPES = (tf.float16, tf.bfloat16)


def check_grad_options(grad_method, grad_eps, grad_order):
    """Raises ValueError/TypeError for gradient options the op would reject later."""
    if grad_method not in GRAD_METHODS:
        raise ValueError(
            f"tfsvd.svd: unknown grad_method {grad_method!r}; expected one of {GRAD_METHODS}"
        )
    if grad_eps is not None:
        if not isinstance(grad_eps, numbers.Real) or isinstance(grad_eps, bool):
            raise TypeError(f"tfsvd.svd: grad_eps must be a float or None, got {grad_eps!r}")
        if not math.isfinite(grad_eps) or grad_eps < 0:
            raise ValueError(f"tfsvd.svd: grad_eps must be finite and >= 0, got {grad_eps!r}")
    if not isinstance(grad_order, numbers.Integral) or isinstance(grad_order, bool):
        raise TypeError(f"tfsvd.svd: grad_order must be an int, got {grad_order!r}")
    if grad_order < 0:
        raise ValueError(f"tfsvd.svd: grad_order must be >= 0, got {grad_order}")


def _as_matrix_batch(a):
    a = tf.convert_to_tensor(a, name="a")
    if a.dtype not in NATIVE_DTYPES + HALF_DTYPES:
        raise TypeError(
            f"tfsvd.svd: unsupported dtype {a.dtype.name}; expected one of float16, bfloat16, "
            "float32, float64, complex64, complex128"
        )
    if a.shape.rank is not None and a.shape.rank < 2:
        raise ValueError(
            f"tfsvd.svd: input must have rank >= 2 (a batch of matrices [..., M, N]), "
            f"got shape {a.shape}"
        )
    return a


def _gradient_may_be_taken(a):
    # Whether a tape records `a`, eagerly or while a graph is traced (a tf.function whose
    # GradientTape is inside it, Keras' train_step). A graph traced without one (inference,
    # serving) computes values only; if it is differentiated after all, the gradient computes the
    # vectors itself (_gradients.py).
    return record.should_record_backprop([a])


def svd(a, full_matrices=False, compute_uv=True, name=None, *, grad_method="stable",
        grad_eps=None, grad_order=9, gauge_monitor=None):
    """Singular value decomposition of a batch of matrices, differentiable everywhere.

    Same signature, outputs and order as `tf.linalg.svd`: for `a` of shape [..., M, N],
    returns `s` [..., K] (real, descending, K = min(M, N)), `u` [..., M, K] ([..., M, M] with
    full_matrices) and `v` [..., N, K] ([..., N, N]) with a = u @ diag(s) @ adjoint(v), or `s`
    alone with compute_uv=False. Signs are canonical: the largest-magnitude entry of each column
    of u is real positive. Matrices holding NaN/Inf give NaN outputs; the rest are untouched.

    Gradient options (kept in the graph with the op):
      grad_method: "stable" (default; finite always, exact wherever singular values are
        separated by more than grad_eps * s_max), "exact" (no guard: inf/NaN at ties),
        "lorentzian" (1/x -> x / (x^2 + grad_eps * s_max^2), grad_eps default 1e-12),
        "taylor" (truncated series of order grad_order for 1/(s_j^2 - s_i^2)).
      grad_eps: the method's tolerance, relative to the largest singular value; None picks the
        method's default (stable: 16 * eps(dtype) * max(M, N)).
      grad_order: the Taylor order (default 9).
      gauge_monitor: an optional tfsvd.GaugeMonitor; for complex input its `violation`
        records whether the loss depends on the (arbitrary) phases of the singular vectors.
    """
    check_grad_options(grad_method, grad_eps, grad_order)
    with tf.name_scope(name or "svd"):
        a = _as_matrix_batch(a)
        if a.dtype in HALF_DTYPES:
            result = svd(tf.cast(a, tf.float32), full_matrices, compute_uv,
                         grad_method=grad_method, grad_eps=grad_eps, grad_order=grad_order)
            if not compute_uv:
                return tf.cast(result, a.dtype)
            return tuple(tf.cast(x, a.dtype) for x in result)
        if _xla.in_xla_context():
            # Custom ops have no XLA kernel: the composite has the same signs and gradients.
            result = _xla.svd(a, full_matrices, compute_uv, grad_method, grad_eps, grad_order)
        else:
            result = _native_svd(a, full_matrices, compute_uv, grad_method, grad_eps, grad_order)
        if not compute_uv:
            return result
        s, u, v = result
        if gauge_monitor is not None and a.dtype.is_complex:
            u, v = gauge_monitor.watch(u, v)
        return s, u, v


def _native_svd(a, full_matrices, compute_uv, grad_method, grad_eps, grad_order):
    """The TfsvdSvd op: (s, u, v), or s alone without compute_uv."""
    s, u, v = _ops.tfsvd_svd(
        a,
        Treal=a.dtype.real_dtype,
        full_matrices=full_matrices,
        compute_uv=compute_uv,
        # Values-only calls keep thin vectors when a gradient is being recorded (no second SVD).
        keep_uv=not compute_uv and _gradient_may_be_taken(a),
        grad_method=grad_method,
        grad_eps=-1.0 if grad_eps is None else float(grad_eps),
        grad_order=int(grad_order),
    )
    return (s, u, v) if compute_uv else s
