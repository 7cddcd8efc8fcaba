"""tfsvd.svd inside XLA clusters (jit_compile=True): the composite fallback matches eager."""

import numpy as np
import pytest
import tensorflow as tf

import tfsvd
from gradcheck import SvdLoss, relative_error
from test_gradient import matrix_with_spectrum

# XLA's SVD is a one-sided Jacobi that stops at a relative off-diagonal tolerance of 1e-6
# (xla::SVD's default epsilon), so its factors carry errors ~1e-6 * s_max / gap, in float64 too;
# float32 rounding (1e-7) is below that. Allow a factor 10 over it.
XLA_SVD_TOL = 1e-6


def spectrum(k):
    return np.linspace(3.0, 1.0, k)


def tolerance(k):
    s = spectrum(k)
    gap = np.min(-np.diff(s)) if k > 1 else s[0]
    return 10 * XLA_SVD_TOL * s[0] / gap


def both(fn, *args):
    return fn(*args), tf.function(fn, jit_compile=True)(*args)


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("shape", [(4, 4), (6, 3), (3, 6), (2, 5, 3)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_eager_with_the_same_signs(dtype, shape, full_matrices):
    rng = np.random.default_rng(0)
    k = min(shape[-2:])
    a = tf.constant(matrix_with_spectrum(rng, shape, spectrum(k), dtype))
    (s0, u0, v0), (s1, u1, v1) = both(lambda x: tfsvd.svd(x, full_matrices=full_matrices), a)
    tol = tolerance(k)
    assert relative_error(s1.numpy(), s0.numpy()) <= tol
    # Paired columns carry the canonical signs on both paths, so they agree entrywise.
    assert np.abs(u1.numpy()[..., :k] - u0.numpy()[..., :k]).max() <= tol
    assert np.abs(v1.numpy()[..., :k] - v0.numpy()[..., :k]).max() <= tol
    if full_matrices:
        # The complement's basis is arbitrary on every path; its projector is not.
        for x0, x1 in ((u0, u1), (v0, v1)):
            p0 = tf.matmul(x0[..., k:], x0[..., k:], adjoint_b=True).numpy()
            p1 = tf.matmul(x1[..., k:], x1[..., k:], adjoint_b=True).numpy()
            assert np.abs(p1 - p0).max() <= tol


# Each XLA compile costs about a second: every method once, every shape class with full factors,
# and values-only, rather than the whole product.
GRADIENT_CASES = (
    [((4, 4), method, False, True) for method in ("stable", "exact", "lorentzian", "taylor")]
    + [(shape, "stable", True, True) for shape in ((4, 4), (6, 3), (3, 6))]
    + [(shape, "stable", False, True) for shape in ((6, 3), (3, 6))]
    + [(shape, "stable", False, False) for shape in ((6, 3), (3, 6))]
)


@pytest.mark.parametrize("shape,method,full_matrices,compute_uv", GRADIENT_CASES, ids=str)
def test_gradient_matches_eager(shape, method, full_matrices, compute_uv):
    rng = np.random.default_rng(1)
    k = min(shape)
    a = tf.constant(matrix_with_spectrum(rng, shape, spectrum(k), np.float64))

    def svd_fn(x, **kw):
        return tfsvd.svd(x, grad_method=method, **kw)

    loss = SvdLoss(svd_fn, shape, np.float64, rng, full_matrices, compute_uv)

    def gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = tf.reduce_sum(loss(x[None]))
        return tape.gradient(value, x)

    eager, xla = both(gradient, a)
    # The gradient divides factor errors by gaps once more.
    assert relative_error(xla.numpy(), eager.numpy()) <= tolerance(k) * spectrum(k)[0] / (2 / k)


def test_xla_output_has_canonical_signs_and_isolates_nan():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 5, 4))
    a[1, 2, 3] = np.nan
    s, u, v = tf.function(lambda x: tfsvd.svd(x), jit_compile=True)(tf.constant(a))
    s, u, v = s.numpy(), u.numpy(), v.numpy()
    assert np.all(np.isnan(s[1])) and np.all(np.isnan(u[1])) and np.all(np.isnan(v[1]))
    for b in (0, 2):
        assert np.all(np.isfinite(s[b]))
        pivots = u[b][np.argmax(np.abs(u[b]), axis=0), np.arange(u.shape[-1])]
        assert np.all(pivots > 0)


def test_complex_input_in_xla_fails_clearly():
    a = tf.constant(np.eye(3, dtype=np.complex64))
    with pytest.raises(Exception, match="XLA has no complex SVD"):
        tf.function(lambda x: tfsvd.svd(x), jit_compile=True)(a)


def test_second_order_in_xla():
    rng = np.random.default_rng(3)
    a = tf.constant(matrix_with_spectrum(rng, (4, 3), spectrum(3), np.float64))
    direction = tf.constant(rng.standard_normal((4, 3)))

    def hvp(x):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                s, u, v = tfsvd.svd(x)
                value = tf.reduce_sum(s ** 3) + tf.reduce_sum(u[:, 0] * u[:, 1])
            g = inner.gradient(value, x)
            projected = tf.reduce_sum(g * direction)
        return outer.gradient(projected, x)

    eager, xla = both(hvp, a)
    assert relative_error(xla.numpy(), eager.numpy()) <= 100 * tolerance(3)
