"""Gradients of tfsvd.svd (TfsvdSvdGrad) against central finite differences, every shape class
and method, degenerate spectra, second order, float32 against float64."""

import numpy as np
import pytest
import tensorflow as tf

import tfsvd
from gradcheck import (SvdLoss, analytic_gradient, finite_difference, record_gradient_error,
                       relative_error)
import matrix_types as mt

# Central differences with step h on matrices whose singular values are O(1) and separated by
# O(1/K): truncation ~ h^2 / gap^3, rounding ~ eps / h; with h = 1e-6 both are far below 1e-6.
FD_STEP = 1e-6
FD_TOL = 1e-6

SHAPES = {
    "square": (4, 4),
    "tall": (6, 3),
    "wide": (3, 6),
    "tall_far": (9, 2),  # |M - N| > 1, refused by tf.linalg.svd's gradient with full_matrices
    "wide_far": (2, 9),
    "row": (1, 5),
    "column": (5, 1),
    "scalar": (1, 1),
    "batch": (2, 3, 4, 3),
}
# The default method also on the largest real square whose backward runs without BLAS (unrolled).
# Not in the per-method test below: linspace(3, 1, 12) has consecutive ratios (s_j/s_i)^2 up to
# 0.88, beyond what its 60-term Taylor series resolves to 1e-6.
FD_SHAPES = {**SHAPES, "square_unrolled": (12, 12)}


def matrix_with_spectrum(rng, shape, spectrum, dtype):
    """Q1 diag(spectrum) Q2^H with Haar-random unitary Q1, Q2 (complex for complex dtypes)."""
    m, n = shape[-2:]
    complex_ = np.issubdtype(dtype, np.complexfloating)

    def haar(size):
        z = rng.standard_normal((size, size))
        if complex_:
            z = z + 1j * rng.standard_normal((size, size))
        q, r = np.linalg.qr(z)
        return q * (np.diagonal(r) / np.abs(np.diagonal(r)))

    batch = int(np.prod(shape[:-2], dtype=int))
    out = []
    for _ in range(batch):
        d = np.zeros((m, n))
        d[np.arange(len(spectrum)), np.arange(len(spectrum))] = spectrum
        out.append(haar(m) @ d @ haar(n).conj().T)
    return np.array(out).reshape(shape).astype(dtype)


def separated(rng, shape, dtype):
    k = min(shape[-2:])
    return matrix_with_spectrum(rng, shape, np.linspace(3.0, 1.0, k), dtype)


def check_fd(loss, a, shape_class, method="stable"):
    got = analytic_gradient(loss, a)
    want = finite_difference(loss, a, FD_STEP)
    assert np.all(np.isfinite(got))
    err = relative_error(got, want)
    record_gradient_error(shape_class, method, err)
    assert err <= FD_TOL, f"relative error {err:.2e} against finite differences"
    return err


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "values"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("shape_class", list(FD_SHAPES))
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_gradient_matches_finite_differences(dtype, shape_class, full_matrices, compute_uv):
    rng = mt.rng_for("fd", shape_class, full_matrices, compute_uv)
    shape = FD_SHAPES[shape_class]
    a = separated(rng, shape, dtype)
    loss = SvdLoss(tfsvd.svd, shape, dtype, rng, full_matrices, compute_uv)
    label = f"{shape_class} {'full' if full_matrices else 'thin'}"
    check_fd(loss, a, label if compute_uv else "values only (compute_uv=False)")


METHOD_OPTIONS = {
    "stable": {},
    "exact": {},
    # x / (x^2 + e s_max^2) differs from 1/x by a factor 1 - e (s_max/gap)^2: ~1e-11 here.
    "lorentzian": {},
    # Truncation (l_j/l_i)^(order+1) <= 0.6^61 ~ 1e-14 for these spectra.
    "taylor": {"grad_order": 60},
}


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("shape_class", list(SHAPES))
@pytest.mark.parametrize("method", list(METHOD_OPTIONS))
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_each_method_is_exact_on_separated_spectra(dtype, method, shape_class, full_matrices):
    rng = np.random.default_rng(7)
    shape = SHAPES[shape_class]
    a = separated(rng, shape, dtype)

    def svd_fn(x, **kw):
        return tfsvd.svd(x, grad_method=method, **METHOD_OPTIONS[method], **kw)

    label = f"{shape_class} {'full' if full_matrices else 'thin'}"
    check_fd(SvdLoss(svd_fn, shape, dtype, rng, full_matrices), a, label, method)


DEGENERATE = {
    "identity": lambda rng, shape, dt: np.eye(*shape[-2:], dtype=dt) * np.ones(shape, dt),
    "zero": lambda rng, shape, dt: np.zeros(shape, dt),
    "repeated": lambda rng, shape, dt: matrix_with_spectrum(
        rng, shape, [2.0] + [1.0] * (min(shape[-2:]) - 1), dt),
    "rank_deficient": lambda rng, shape, dt: matrix_with_spectrum(
        rng, shape, [2.0, 1.0] + [0.0] * (min(shape[-2:]) - 2), dt),
}


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "values"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("shape", [(4, 4), (6, 4), (4, 6)], ids=str)
@pytest.mark.parametrize("kind", list(DEGENERATE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
def test_stable_is_finite_on_degenerate_spectra(dtype, kind, shape, full_matrices, compute_uv):
    rng = np.random.default_rng(3)
    a = DEGENERATE[kind](rng, shape, dtype)
    loss = SvdLoss(tfsvd.svd, shape, dtype, rng, full_matrices, compute_uv)
    grad = analytic_gradient(loss, a)
    assert np.all(np.isfinite(grad)), f"non-finite gradient on {kind}"


def subspace_loss(blocks, rng, shape, dtype):
    """Loss through the projectors onto groups of singular vectors (each group's whole
    subspace) and the sum of each group's singular values: well defined even where a group's
    values tie (a different weight per tied value would not be differentiable)."""
    m, n = shape
    weights = [(rng.standard_normal((m, m)), rng.standard_normal((n, n))) for _ in blocks]
    w_s = np.zeros(min(m, n))
    for lo, hi in blocks:
        w_s[lo:hi] = rng.standard_normal()

    def loss(x):
        s, u, v = tfsvd.svd(x)
        total = tf.reduce_sum(s * w_s, axis=-1)
        for (lo, hi), (wu, wv) in zip(blocks, weights):
            pu = tf.matmul(u[..., lo:hi], u[..., lo:hi], adjoint_b=True)
            pv = tf.matmul(v[..., lo:hi], v[..., lo:hi], adjoint_b=True)
            total += tf.reduce_sum(tf.math.real(pu) * wu, axis=[-2, -1])
            total += tf.reduce_sum(tf.math.real(pv) * wv, axis=[-2, -1])
        return total

    return loss


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
@pytest.mark.parametrize("shape", [(5, 5), (7, 5), (5, 7)], ids=str)
def test_stable_is_exact_for_losses_on_separated_subspaces(dtype, shape):
    # Spectrum 3, 1, 1, 1, 0.2: the tied block {1, 2, 3} is seen only as a whole.
    rng = np.random.default_rng(11)
    a = matrix_with_spectrum(rng, shape, [3.0, 1.0, 1.0, 1.0, 0.2], dtype)
    loss = subspace_loss([(0, 1), (1, 4), (4, 5)], rng, shape, dtype)
    check_fd(loss, a, "tied block, subspace loss")


@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_stable_is_exact_on_the_range_of_a_rank_deficient_matrix(dtype):
    rng = np.random.default_rng(12)
    shape = (5, 5)
    a = matrix_with_spectrum(rng, shape, [2.0, 1.0, 0.0, 0.0, 0.0], dtype)
    loss = subspace_loss([(0, 1), (1, 2)], rng, shape, dtype)
    # Perturbations lift the zero singular values to O(h); the loss does not see them.
    check_fd(loss, a, "rank deficient, range loss")


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("shape", [(4, 4), (6, 3), (3, 6)], ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_hessian_vector_product_matches_finite_differences(dtype, shape, full_matrices):
    rng = np.random.default_rng(5)
    a = separated(rng, shape, dtype)
    loss = SvdLoss(tfsvd.svd, shape, dtype, rng, full_matrices)
    direction = separated(rng, shape, dtype)

    def gradient_at(x):
        return analytic_gradient(loss, x)

    # HVP = gradient of Re <T, grad L(a)>; second order runs through TfsvdSvdGrad's gradient.
    x = tf.constant(a[None])
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            value = tf.reduce_sum(loss(x))
        g = inner.gradient(value, x)
        projected = tf.reduce_sum(tf.math.real(tf.math.conj(tf.constant(direction[None])) * g))
    hvp = outer.gradient(projected, x).numpy()[0]
    # Central difference of gradients: error ~ h^2 (third derivatives) + eps |g| / h.
    h = 1e-5
    want = (gradient_at(a + h * direction) - gradient_at(a - h * direction)) / (2 * h)
    err = relative_error(hvp, want)
    record_gradient_error("Hessian-vector product", "stable", err)
    assert err <= FD_TOL, f"HVP relative error {err:.2e}"


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("shape", [(5, 5), (8, 4), (4, 8)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_single_precision_gradient_matches_double_reference(dtype, shape, full_matrices):
    rng = np.random.default_rng(9)
    k = min(shape)
    spectrum = np.linspace(3.0, 1.0, k)
    a = matrix_with_spectrum(rng, shape, spectrum, dtype)
    double = np.complex128 if np.issubdtype(dtype, np.complexfloating) else np.float64
    loss32 = SvdLoss(tfsvd.svd, shape, dtype, np.random.default_rng(1), full_matrices)
    loss64 = SvdLoss(tfsvd.svd, shape, double, np.random.default_rng(1), full_matrices)
    got = analytic_gradient(loss32, a)
    want = analytic_gradient(loss64, a.astype(double))
    assert got.dtype == a.dtype
    # Singular vectors of the rounded input carry errors ~ eps * s_max / gap; the gradient
    # divides by gaps once more. Allow a factor 10 * max(M, N) of rounding on top.
    eps = np.finfo(dtype).eps
    gap = np.min(np.diff(spectrum[::-1]))
    tol = 10 * max(shape) * eps * (spectrum[0] / gap) ** 2
    assert relative_error(got, want) <= tol


def test_half_precision_gradient_flows_in_input_dtype():
    a = tf.constant(separated(np.random.default_rng(2), (4, 3), np.float32), tf.float16)
    with tf.GradientTape() as tape:
        tape.watch(a)
        s = tfsvd.svd(a, compute_uv=False)
        loss = tf.reduce_sum(s)
    grad = tape.gradient(loss, a)
    assert grad.dtype == tf.float16 and s.dtype == tf.float16
    # d(sum s)/da = U V^T; float16 rounding of the input and output: eps16 ~ 1e-3.
    u, _, vh = np.linalg.svd(a.numpy().astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(grad.numpy().astype(np.float64), u @ vh, atol=4e-3)
