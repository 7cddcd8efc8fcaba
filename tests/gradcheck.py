"""Central finite differences for losses of a batch of matrices, with gauge-invariant SVD losses.

TensorFlow's convention for complex inputs: the gradient is dL/dRe(a) + i dL/dIm(a).
All perturbations are evaluated in one batched call, so a check costs one SVD call per side.
"""

import numpy as np
import tensorflow as tf


def finite_difference(loss_of_stack, a, step):
    """Central differences of a real loss at `a` (numpy, any shape).

    `loss_of_stack(x)` maps a tensor [P, *a.shape] to the loss of each of its P entries."""
    units = [1.0, 1j] if np.iscomplexobj(a) else [1.0]
    plus, minus = [], []
    for index in np.ndindex(a.shape):
        for unit in units:
            e = np.zeros_like(a)
            e[index] = unit * step
            plus.append(a + e)
            minus.append(a - e)
    f_plus = loss_of_stack(tf.constant(np.stack(plus))).numpy()
    f_minus = loss_of_stack(tf.constant(np.stack(minus))).numpy()
    slopes = (f_plus - f_minus) / (2 * step)
    grad = np.zeros_like(a)
    for i, index in enumerate(np.ndindex(a.shape)):
        for j, unit in enumerate(units):
            grad[index] += unit * slopes[i * len(units) + j]
    return grad


def analytic_gradient(loss_of_stack, a):
    x = tf.constant(a[None])
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(loss_of_stack(x))
    return tape.gradient(loss, x).numpy()[0]


def relative_error(got, want):
    return np.abs(got - want).max() / max(np.abs(want).max(), 1e-300)


# Worst relative error against finite differences per (shape class, method), printed at the end
# of the run by tests/tf/conftest.py.
WORST_GRADIENT_ERRORS = {}


def record_gradient_error(shape_class, method, error):
    key = (shape_class, method)
    WORST_GRADIENT_ERRORS[key] = max(WORST_GRADIENT_ERRORS.get(key, 0.0), float(error))


class SvdLoss:
    """A gauge-invariant loss of (s, u, v) with random weights, reduced to one value per
    leading stack entry:

        sum w_s * s + Re <C, U1 diag(w) V1^H> [+ Re <D, U2 U2^H> + Re <E, V2 V2^H> (full)]

    U1 diag(w) V1^H and the projectors U2 U2^H, V2 V2^H do not change under the sign/phase
    freedom of singular vectors, nor under rotations of the extra columns of full factors.
    """

    def __init__(self, svd_fn, shape, dtype, rng, full_matrices=False, compute_uv=True):
        m, n = shape[-2:]
        k = min(m, n)
        complex_ = np.issubdtype(dtype, np.complexfloating)

        def rand(*dims):
            x = rng.standard_normal(dims)
            return x + 1j * rng.standard_normal(dims) if complex_ else x

        self.svd_fn, self.full, self.uv = svd_fn, full_matrices, compute_uv
        self.k = k
        self.w_s = rng.standard_normal(k)
        self.w = rng.standard_normal(k)
        self.c = rand(*shape)
        self.d = rand(*shape[:-2], m, m)
        self.e = rand(*shape[:-2], n, n)

    def __call__(self, x):
        if not self.uv:
            s = self.svd_fn(x, full_matrices=self.full, compute_uv=False)
            return tf.reduce_sum(s * self.w_s, axis=list(range(1, len(s.shape))))
        s, u, v = self.svd_fn(x, full_matrices=self.full)
        k = self.k
        loss = tf.reduce_sum(s * self.w_s, axis=list(range(1, len(s.shape))))
        u1, v1 = u[..., :k], v[..., :k]
        low_rank = tf.matmul(u1 * tf.cast(self.w, u.dtype), v1, adjoint_b=True)
        loss += _real_inner(self.c, low_rank)
        if self.full:
            u2, v2 = u[..., k:], v[..., k:]
            loss += _real_inner(self.d, tf.matmul(u2, u2, adjoint_b=True))
            loss += _real_inner(self.e, tf.matmul(v2, v2, adjoint_b=True))
        return loss


def _real_inner(weights, x):
    """Re sum(conj(weights) * x) over all but the leading axis."""
    w = tf.constant(np.conj(weights), dtype=x.dtype)
    return tf.reduce_sum(tf.math.real(w * x), axis=list(range(1, len(x.shape))))
