"""tfsvd.svd inside XLA clusters (jit_compile=True, Keras fit's jit_compile="auto").

Custom ops have no XLA kernel, so there tfsvd.svd is a composite of ops XLA compiles: the
forward through tf.linalg.svd, then the same canonical signs and NaN isolation as the native
kernels, and the same gradient formula and methods (svd_grad_composite) as the fused op.

Limits, both XLA's: its SVD is a one-sided Jacobi that stops at a relative tolerance of 1e-6,
so float64 factors are accurate to about 1e-6 (float32 to its own precision); and it has no
complex SVD, so complex input raises. The extra columns of full factors are an arbitrary
orthonormal basis of the complement on every path; only their span is defined.
"""

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from ._grad_composite import svd_grad_composite


def in_xla_context():
    """True while tracing a function that XLA will compile."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _abs_squared(x):
    # |x|^2 as re^2 + im^2, the same arithmetic as the C++ kernels, so pivot ties resolve alike.
    if x.dtype.is_complex:
        return tf.math.square(tf.math.real(x)) + tf.math.square(tf.math.imag(x))
    return tf.math.square(x)


def canonical_phases(x):
    """Per column of x [..., rows, cols], the unit factor [..., cols] that makes the column's
    entry of largest magnitude (first index on ties) real and positive."""
    magnitude = _abs_squared(x)
    rows = tf.shape(x)[-2]
    row_index = tf.range(rows)[:, None]  # broadcasts against [..., rows, cols]
    is_largest = magnitude == tf.reduce_max(magnitude, axis=-2, keepdims=True)
    first = tf.reduce_min(tf.where(is_largest, row_index, rows), axis=-2, keepdims=True)
    pivot = tf.reduce_sum(tf.where(row_index == first, x, tf.zeros_like(x)), axis=-2)
    if x.dtype.is_complex:
        size = tf.abs(pivot)
        safe = tf.where(size > 0, size, tf.ones_like(size))
        return tf.where(size > 0, tf.math.conj(pivot) / tf.cast(safe, x.dtype),
                        tf.ones_like(pivot))
    return tf.where(pivot < 0, -tf.ones_like(pivot), tf.ones_like(pivot))


def _canonicalize(s, u, v):
    """tfsvd's sign convention on tf.linalg.svd's factors: u's columns fix the phases of the
    paired columns of v; unpaired columns of full factors are fixed on their own."""
    k = s.shape[-1] if s.shape[-1] is not None else tf.shape(s)[-1]
    phase = canonical_phases(u)
    u = u * phase[..., None, :]
    v_paired = v[..., :k] * phase[..., None, :k]
    v_rest = v[..., k:]
    v_rest = v_rest * canonical_phases(v_rest)[..., None, :]
    return u, tf.concat([v_paired, v_rest], axis=-1)


def _power_of_two(exponent, dtype):
    """2**exponent exactly (integer tensor, within the normal range of dtype), via the bits."""
    if dtype == tf.float64:
        bits = tf.bitwise.left_shift(tf.cast(exponent, tf.int64) + 1023, 52)
        return tf.bitcast(bits, tf.float64)
    bits = tf.bitwise.left_shift(tf.cast(exponent, tf.int32) + 127, 23)
    return tf.bitcast(bits, tf.float32)


def _unit_scale(x):
    """Per matrix, a power of two near 1 / max|x| (1 for zero or non-finite matrices).

    XLA's Jacobi SVD tests convergence against an absolute threshold: without scaling it stops
    early on tiny matrices (singular values 80% off at 1e-8) and overflows on huge ones (NaN at
    1e19 in float32). A power of two scales exactly."""
    real = x.dtype.real_dtype
    largest = tf.reduce_max(tf.abs(x), axis=[-2, -1])
    usable = tf.logical_and(largest > 0, tf.math.is_finite(largest))
    safe = tf.where(usable, largest, tf.ones_like(largest))
    exponent = tf.round(tf.math.log(safe) / tf.constant(0.6931471805599453, real))
    limit = 1020.0 if real == tf.float64 else 124.0  # keep 2**-exponent a normal number
    exponent = tf.clip_by_value(tf.where(usable, exponent, tf.zeros_like(exponent)),
                                -limit, limit)
    return _power_of_two(-exponent, real)


def _nan_where_not_finite(a, s, u, v):
    """Matrices holding NaN/Inf get NaN outputs, as from the native kernels."""
    finite = tf.reduce_all(tf.math.is_finite(tf.abs(a)), axis=[-2, -1])

    def isolate(x, extra_dims):
        mask = tf.reshape(finite, tf.concat([tf.shape(finite), [1] * extra_dims], 0))
        return tf.where(mask, x, tf.constant(float("nan"), x.dtype))

    return isolate(s, 1), isolate(u, 2), isolate(v, 2)


def svd(a, full_matrices, compute_uv, grad_method, grad_eps, grad_order):
    """tfsvd.svd for XLA: same outputs, signs and gradient as the native op."""
    if a.dtype.is_complex:
        raise TypeError(
            f"tfsvd.svd: {a.dtype.name} input inside an XLA-compiled function "
            "(jit_compile=True) is not supported: XLA has no complex SVD. Compile this part "
            "without XLA (tf.function(jit_compile=False), or Keras compile(jit_compile=False)).")

    def forward(x):
        scale = _unit_scale(x)
        scaled = x * tf.cast(scale, x.dtype)[..., None, None]
        s, u, v = tf.linalg.svd(scaled, full_matrices=full_matrices if compute_uv else False)
        s = s / scale[..., None]
        u, v = _canonicalize(s, u, v)
        return _nan_where_not_finite(x, s, u, v)

    def backward(s, u, v, grad_s, grad_u, grad_v):
        grad_s = tf.zeros_like(s) if grad_s is None else grad_s
        grad_u = tf.zeros_like(u) if grad_u is None else grad_u
        grad_v = tf.zeros_like(v) if grad_v is None else grad_v
        return svd_grad_composite(s, u, v, grad_s, grad_u, grad_v,
                                  full_matrices=full_matrices and compute_uv,
                                  compute_uv=compute_uv, method=grad_method, eps=grad_eps,
                                  order=grad_order)

    if compute_uv:
        @tf.custom_gradient
        def svd_with_vectors(x):
            s, u, v = forward(x)
            return (s, u, v), lambda gs, gu, gv: backward(s, u, v, gs, gu, gv)

        return svd_with_vectors(a)

    @tf.custom_gradient
    def singular_values(x):
        s, u, v = forward(x)
        return s, lambda gs: backward(s, u, v, gs, None, None)

    return singular_values(a)
