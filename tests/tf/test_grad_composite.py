"""Tests of the TF-ops SVD backward (python/tfsvd/_grad_composite.py).

These tests do not need the tfsvd op library: the forward SVD is
tf.linalg.svd (float64/complex128 unless stated), the module file is imported
directly, and gradients are checked against central finite differences of
gauge-invariant losses of A.

Error model for the finite-difference (FD) checks.  The step is
h = 1e-6 * s_max.  The central difference has truncation error
~ h^2 |L'''| / 6 and rounding error ~ delta_L / h, where delta_L is the
absolute error of the computed loss: ~ eps64 * |L| * (s_max / gap) for the
singular-vector losses (LAPACK's singular vectors are accurate to
eps * s_max / gap).  The test spectra have s_max ~ 2 and relative gaps
>= ~0.2 (and s_min >= ~0.8), so |L'''| / |L'| is O(10) and:
truncation ~ 1e-12 * 10 = 1e-11, rounding ~ 2e-16 * 10 / 1e-6 = 2e-9
(relative to |G|).  The tolerance FD_RTOL = 1e-6 (DESIGN.md section 6) is
thus >= 100x above the expected FD error, and far below any formula error
(a wrong sign or a missing term changes G by O(1) relative).
"""

import importlib.util
import pathlib
import zlib

import numpy as np
import pytest
import tensorflow as tf

_MODULE_PATH = (pathlib.Path(__file__).resolve().parents[2]
                / "python" / "tfsvd" / "_grad_composite.py")
_spec = importlib.util.spec_from_file_location("tfsvd_grad_composite_under_test",
                                               _MODULE_PATH)
gc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gc)
svd_grad_composite = gc.svd_grad_composite

FD_RTOL = 1e-6
REL_STEP = 1e-6

# Parameters that make each method (near-)exact on well-separated spectra.
# lorentzian: 1e-30 * s_max^2 vs gaps^2 >= ~0.1 changes R by a relative 1e-29.
# taylor: consecutive ratios (s_{k+1}/s_k)^2 <= 0.75^2 * 1.06^2 < 0.64, so the
# truncation of the series at order 200 is below 0.64^201 ~ 1e-39.
METHOD_ARGS = {
    "exact": dict(method="exact", eps=None, order=9),
    "stable": dict(method="stable", eps=None, order=9),
    "lorentzian": dict(method="lorentzian", eps=1e-30, order=9),
    "taylor": dict(method="taylor", eps=None, order=200),
}

MEASURED = {}


def _record(key, err):
    MEASURED[key] = max(MEASURED.get(key, 0.0), float(err))


@pytest.fixture(scope="module", autouse=True)
def _report_measured():
    yield
    if MEASURED:
        print("\nmeasured max relative errors (test_grad_composite):")
        for key in sorted(MEASURED):
            print("  %-60s %.3e" % (" / ".join(str(k) for k in key), MEASURED[key]))


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _random_unitary(rng, n, complex_):
    z = rng.standard_normal((n, n))
    if complex_:
        z = z + 1j * rng.standard_normal((n, n))
    q, r = np.linalg.qr(z)
    d = np.diag(r)
    return q * (d / np.abs(d))


def _make_matrix(rng, batch, m, n, complex_, spectrum=None):
    """A = Q1 diag(s) Q2^H with Haar-like Q1, Q2 and a chosen spectrum.

    Default spectrum: well separated, s_k = 2 * 0.75^k * (1 + U(-0.03, 0.03)).
    """
    k = min(m, n)
    mats = []
    for _ in range(int(np.prod(batch, dtype=int))):
        if spectrum is None:
            s = 2.0 * 0.75 ** np.arange(k) * (1.0 + 0.03 * rng.uniform(-1, 1, k))
        else:
            s = np.asarray(spectrum, dtype=np.float64)
        q1 = _random_unitary(rng, m, complex_)
        q2 = _random_unitary(rng, n, complex_)
        sm = np.zeros((m, n))
        sm[np.arange(k), np.arange(k)] = s
        mats.append(q1 @ sm @ q2.conj().T)
    a = np.stack(mats).reshape(tuple(batch) + (m, n))
    return a if complex_ else a.real.copy()


class LossParams:
    """Fixed random data for the gauge-invariant losses of one (M, N, dtype)."""

    def __init__(self, rng, m, n, complex_):
        k = min(m, n)
        dt = np.complex128 if complex_ else np.float64

        def rnd(*shape):
            x = rng.standard_normal(shape)
            if complex_:
                x = x + 1j * rng.standard_normal(shape)
            return tf.constant(x.astype(dt))

        self.k = k
        self.r = max(1, (k + 1) // 2)
        self.w = tf.constant(rng.uniform(0.5, 1.5, k))
        self.w2 = tf.constant(rng.uniform(0.5, 1.5, k))
        self.c = rnd(m, n)
        self.x = rnd(m, 2)
        self.y = rnd(n, 2)


def _sq_norm(z):
    return tf.reduce_sum(tf.math.real(z * tf.math.conj(z)), axis=[-2, -1])


def loss_s(p, s, u, v):
    """Weighted singular values (plus a nonlinear term)."""
    return tf.reduce_sum(p.w * s + 0.25 * p.w2 * s * s, axis=-1)


def loss_uv(p, s, u, v):
    """sum(w s) + Re tr(C^H U1 diag(w2) V1^H)."""
    u1 = u[..., :, :p.k]
    v1 = v[..., :, :p.k]
    w2 = tf.cast(p.w2, u.dtype)
    mat = tf.linalg.matmul(u1 * w2, v1, adjoint_b=True)
    return (tf.reduce_sum(p.w * s, axis=-1)
            + tf.reduce_sum(tf.math.real(tf.math.conj(p.c) * mat), axis=[-2, -1]))


def loss_proj(p, s, u, v):
    """||U1[:, :r] U1[:, :r]^H X||^2 + ||V1[:, :r] V1[:, :r]^H Y||^2 + 0.5 sum(w s)."""
    ur = u[..., :, :p.r]
    vr = v[..., :, :p.r]
    px = tf.linalg.matmul(ur, tf.linalg.matmul(ur, p.x, adjoint_a=True))
    py = tf.linalg.matmul(vr, tf.linalg.matmul(vr, p.y, adjoint_a=True))
    return _sq_norm(px) + _sq_norm(py) + 0.5 * tf.reduce_sum(p.w * s, axis=-1)


def loss_full(p, s, u, v):
    """loss_uv + ||U2 U2^H X||^2 + ||V2 V2^H Y||^2 (full_matrices only)."""
    u2 = u[..., :, p.k:]
    v2 = v[..., :, p.k:]
    px = tf.linalg.matmul(u2, tf.linalg.matmul(u2, p.x, adjoint_a=True))
    py = tf.linalg.matmul(v2, tf.linalg.matmul(v2, p.y, adjoint_a=True))
    return loss_uv(p, s, u, v) + _sq_norm(px) + _sq_norm(py)


LOSSES_THIN = {"s": loss_s, "uv": loss_uv, "proj": loss_proj}
LOSSES_FULL = dict(LOSSES_THIN, full=loss_full)


def fd_gradient(loss, p, a, full_matrices, compute_uv=True, rel_step=REL_STEP):
    """Central FD of the per-matrix losses; TF convention G = dL/dRe + i dL/dIm.

    Entry (k, l) of every matrix of the batch is perturbed at once: the
    losses are per matrix, so matrix b's loss only sees its own perturbation.
    """
    a = np.asarray(a)
    complex_ = np.iscomplexobj(a)
    batch = a.shape[:-2]
    m, n = a.shape[-2:]
    smax = np.max(np.linalg.svd(a, compute_uv=False)) if a.size else 0.0
    h = rel_step * max(smax, 1.0 if smax == 0 else smax)
    parts = [1.0, 1j] if complex_ else [1.0]
    dirs = np.zeros((m, n, len(parts), m, n), dtype=a.dtype)
    for i in range(m):
        for j in range(n):
            for c, ph in enumerate(parts):
                dirs[i, j, c, i, j] = ph
    dirs = dirs.reshape((m * n * len(parts),) + (1,) * len(batch) + (m, n))
    stacked = np.concatenate([a[None] + h * dirs, a[None] - h * dirs])
    x = tf.constant(stacked)
    if compute_uv:
        s, u, v = tf.linalg.svd(x, full_matrices=full_matrices)
        vals = loss(p, s, u, v).numpy()
    else:
        s = tf.linalg.svd(x, compute_uv=False)
        vals = loss(p, s, None, None).numpy()
    npert = m * n * len(parts)
    dl = (vals[:npert] - vals[npert:]) / (2.0 * h)       # [P, *batch]
    dl = dl.reshape((m, n, len(parts)) + batch)
    dl = np.moveaxis(dl, (0, 1, 2), (-3, -2, -1))      # [*batch, m, n, parts]
    g = dl[..., 0].astype(a.dtype)
    if complex_:
        g = g + 1j * dl[..., 1]
    return g


def cotangents(loss, p, a, full_matrices):
    s, u, v = tf.linalg.svd(tf.constant(a), full_matrices=full_matrices)
    with tf.GradientTape() as tape:
        tape.watch([s, u, v])
        total = tf.reduce_sum(loss(p, s, u, v))
    gs, gu, gv = tape.gradient(total, [s, u, v],
                               unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return s, u, v, gs, gu, gv


def rel_err(g, g_ref):
    """Max over the batch of ||g - g_ref||_F / ||g_ref||_F (0/0 counts as 0)."""
    g = np.asarray(g)
    g_ref = np.asarray(g_ref)
    num = np.sqrt(np.sum(np.abs(g - g_ref) ** 2, axis=(-2, -1)))
    den = np.sqrt(np.sum(np.abs(g_ref) ** 2, axis=(-2, -1)))
    assert np.all(np.isfinite(num)) and np.all(np.isfinite(den))
    ratio = np.where(num == 0, 0.0, num / np.where(den == 0, 1.0, den))
    ratio = np.where((den == 0) & (num != 0), np.inf, ratio)
    return float(np.max(ratio))


SHAPES = {
    "square": ((), 4, 4),
    "tall": ((), 4, 3),
    "wide": ((), 3, 4),
    "tall|M-N|>1": ((), 6, 3),
    "wide|M-N|>1": ((), 2, 5),
    "1xN": ((), 1, 4),
    "Nx1": ((), 5, 1),
    "1x1": ((), 1, 1),
    "batch2x3 tall": ((2, 3), 5, 3),
    "batch2 wide": ((2,), 3, 5),
    "batch3 square": ((3,), 3, 3),
}


# ----------------------------------------------------------------------------
# first order against finite differences
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("complex_", [False, True], ids=["f64", "c128"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_matches_finite_differences(shape_name, full_matrices, complex_):
    batch, m, n = SHAPES[shape_name]
    rng = _rng("fd", shape_name, full_matrices, complex_)
    a = _make_matrix(rng, batch, m, n, complex_)
    p = LossParams(rng, m, n, complex_)
    losses = LOSSES_FULL if full_matrices else LOSSES_THIN
    for loss_name, loss in losses.items():
        g_fd = fd_gradient(loss, p, a, full_matrices)
        s, u, v, gs, gu, gv = cotangents(loss, p, a, full_matrices)
        for mname, kw in METHOD_ARGS.items():
            g = svd_grad_composite(s, u, v, gs, gu, gv, full_matrices=full_matrices,
                                   compute_uv=True, **kw)
            assert g.dtype == u.dtype
            assert g.shape == a.shape
            err = rel_err(g, g_fd)
            _record(("fd", shape_name, "full" if full_matrices else "thin",
                     "c128" if complex_ else "f64", mname), err)
            assert err <= FD_RTOL, (loss_name, mname, err)


@pytest.mark.parametrize("complex_", [False, True], ids=["f64", "c128"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("shape_name", ["square", "tall|M-N|>1", "wide", "1xN", "Nx1",
                                        "batch2x3 tall"])
def test_singular_values_only(shape_name, full_matrices, complex_):
    """compute_uv=False: G = U1 diag(gs) V1^H; grad_u/grad_v are ignored."""
    batch, m, n = SHAPES[shape_name]
    rng = _rng("sv", shape_name, full_matrices, complex_)
    a = _make_matrix(rng, batch, m, n, complex_)
    p = LossParams(rng, m, n, complex_)
    g_fd = fd_gradient(loss_s, p, a, full_matrices, compute_uv=False)
    s, u, v = tf.linalg.svd(tf.constant(a), full_matrices=full_matrices)
    with tf.GradientTape() as tape:
        tape.watch(s)
        total = tf.reduce_sum(loss_s(p, s, None, None))
    gs = tape.gradient(total, s)
    # Garbage cotangents for u, v: they must be ignored.
    gu = tf.constant(rng.standard_normal(u.shape).astype(u.dtype.as_numpy_dtype))
    gv = tf.constant(rng.standard_normal(v.shape).astype(v.dtype.as_numpy_dtype))
    for mname, kw in METHOD_ARGS.items():
        g = svd_grad_composite(s, u, v, gs, gu, gv, full_matrices=full_matrices,
                               compute_uv=False, **kw)
        err = rel_err(g, g_fd)
        _record(("fd compute_uv=False", shape_name, "full" if full_matrices else "thin",
                 "c128" if complex_ else "f64", mname), err)
        assert err <= FD_RTOL, (mname, err)


def test_taylor_converges_with_order():
    """Taylor differs from exact at low order, and converges as the order grows.

    With r = max (s_{k+1}/s_k)^2 the truncation error of T is ~ r^(order+1),
    so the error must shrink geometrically: it guards against the order being
    ignored or the sign convention being flipped.
    """
    rng = _rng("taylor-order")
    a = _make_matrix(rng, (), 5, 4, True)
    p = LossParams(rng, 5, 4, True)
    s, u, v, gs, gu, gv = cotangents(loss_uv, p, a, False)
    common = dict(full_matrices=False, compute_uv=True, eps=None)
    g_exact = svd_grad_composite(s, u, v, gs, gu, gv, method="exact", order=0, **common)
    errs = []
    for order in (0, 3, 9, 30, 200):
        g = svd_grad_composite(s, u, v, gs, gu, gv, method="taylor", order=order, **common)
        errs.append(rel_err(g, g_exact))
    r = float(np.max((s.numpy()[1:] / s.numpy()[:-1]) ** 2))
    assert errs[0] > 1e-2                      # order 0 is a crude approximation
    for e0, e1 in zip(errs, errs[1:]):
        assert e1 < e0 or e1 < 1e-14
    assert errs[2] <= 10.0 * r ** 10          # order 9: error ~ r^10
    assert errs[-1] <= 1e-13


def test_default_eps_methods_near_exact_on_separated_spectrum():
    """Default lorentzian (1e-12 relative) and taylor (order 9) are approximations.

    lorentzian shifts 1/x by a relative e * s_max^2 / x^2 <= 1e-12 / 0.1;
    stable with default tol equals exact when gaps exceed tol.
    """
    rng = _rng("defaults")
    a = _make_matrix(rng, (2,), 4, 6, True)
    p = LossParams(rng, 4, 6, True)
    s, u, v, gs, gu, gv = cotangents(loss_uv, p, a, False)
    common = dict(full_matrices=False, compute_uv=True, order=9)
    g_exact = svd_grad_composite(s, u, v, gs, gu, gv, method="exact", eps=None, **common)
    g_stable = svd_grad_composite(s, u, v, gs, gu, gv, method="stable", eps=None, **common)
    g_lor = svd_grad_composite(s, u, v, gs, gu, gv, method="lorentzian", eps=None, **common)
    assert rel_err(g_stable, g_exact) <= 1e-14
    assert rel_err(g_lor, g_exact) <= 1e-10


# ----------------------------------------------------------------------------
# degenerate spectra
# ----------------------------------------------------------------------------

def _degenerate_cases():
    cases = []
    for (m, n) in [(4, 4), (5, 3), (3, 5), (1, 3), (3, 1)]:
        k = min(m, n)
        cases.append(("identity", m, n, np.ones(k)))
        cases.append(("zero", m, n, np.zeros(k)))
        if k >= 3:
            cases.append(("repeated", m, n, np.array([2.0, 2.0] + [1.0] * (k - 2))))
            cases.append(("rank-deficient", m, n, np.array([3.0, 2.0] + [0.0] * (k - 2))))
            cases.append(("tiny-gap", m, n, np.array([1.0, 1.0 - 1e-14] + [0.5] * (k - 2))))
    return cases


@pytest.mark.parametrize("complex_", [False, True], ids=["f64", "c128"])
@pytest.mark.parametrize("case", _degenerate_cases(),
                         ids=lambda c: "%s-%dx%d" % (c[0], c[1], c[2]))
def test_degenerate_spectra_are_finite(case, complex_):
    name, m, n, spectrum = case
    rng = _rng("degen", name, m, n, complex_)
    if name == "identity":
        a = np.eye(m, n) * (1.0 + 0j if complex_ else 1.0)
    elif name == "zero":
        a = np.zeros((m, n), dtype=np.complex128 if complex_ else np.float64)
    else:
        a = _make_matrix(rng, (), m, n, complex_, spectrum=spectrum)
    p = LossParams(rng, m, n, complex_)
    for full_matrices in (False, True):
        losses = LOSSES_FULL if full_matrices else LOSSES_THIN
        for loss_name, loss in losses.items():
            s, u, v, gs, gu, gv = cotangents(loss, p, a, full_matrices)
            for method, eps, order in [("stable", None, 9), ("stable", 1e-8, 9),
                                       ("lorentzian", None, 9), ("taylor", None, 9),
                                       ("taylor", None, 200)]:
                for compute_uv in (True, False):
                    g = svd_grad_composite(s, u, v, gs, gu, gv,
                                           full_matrices=full_matrices,
                                           compute_uv=compute_uv, method=method,
                                           eps=eps, order=order)
                    assert np.all(np.isfinite(g.numpy())), (
                        name, loss_name, method, eps, full_matrices, compute_uv)


@pytest.mark.parametrize("complex_", [False, True], ids=["f64", "c128"])
@pytest.mark.parametrize("mn", [(4, 4), (6, 4), (3, 5)])
def test_stable_exact_for_subspace_loss_with_tie_inside_block(mn, complex_):
    """A tie inside the projected block, separated from the rest (DESIGN 3).

    The loss sees the tied pair only through the projector onto the top-2
    left/right singular subspaces, so the exact gradient exists and the
    stable method (tie term dropped) must reproduce it.  grad_eps = 1e-10
    (relative) covers the O(eps * s_max) splitting of the tie by rounding in
    forming A and in LAPACK; the true gaps (>= 1) are far above it.
    """
    m, n = mn
    k = min(m, n)
    rng = _rng("tie", m, n, complex_)
    spectrum = np.array([3.0, 3.0] + [1.0 / (i + 1) for i in range(k - 2)])
    a = _make_matrix(rng, (), m, n, complex_, spectrum=spectrum)
    p = LossParams(rng, m, n, complex_)
    p.r = 2

    def loss(p_, s, u, v):   # projector part only (no weighted-s term: s_1 = s_2)
        ur = u[..., :, :2]
        vr = v[..., :, :2]
        px = tf.linalg.matmul(ur, tf.linalg.matmul(ur, p_.x, adjoint_a=True))
        py = tf.linalg.matmul(vr, tf.linalg.matmul(vr, p_.y, adjoint_a=True))
        return _sq_norm(px) + 0.7 * _sq_norm(py) + tf.reduce_sum(s[..., :2], axis=-1)

    for full_matrices in (False, True):
        g_fd = fd_gradient(loss, p, a, full_matrices)
        s, u, v, gs, gu, gv = cotangents(loss, p, a, full_matrices)
        g = svd_grad_composite(s, u, v, gs, gu, gv, full_matrices=full_matrices,
                               compute_uv=True, method="stable", eps=1e-10, order=9)
        err = rel_err(g, g_fd)
        _record(("tie-in-block stable eps=1e-10", "%dx%d" % mn,
                 "full" if full_matrices else "thin", "c128" if complex_ else "f64"), err)
        assert err <= FD_RTOL, err


# ----------------------------------------------------------------------------
# second order: Hessian-vector products through a custom_gradient wrapper
# ----------------------------------------------------------------------------

def _make_svd_op(full_matrices, method, eps, order):
    """svd(a) whose gradient is the composite, recursively.

    The backward re-enters svd_op (same deterministic tf.linalg.svd), so the
    second derivative goes through the composite twice: autodiff of the
    composite for the outer level and the composite itself for d(s,u,v)/dA.
    This is how tfsvd wires TfsvdSvd -> TfsvdSvdGrad -> composite.
    """
    @tf.custom_gradient
    def svd_op(a):
        s, u, v = tf.linalg.svd(tf.stop_gradient(a), full_matrices=full_matrices)

        def grad(gs, gu, gv):
            s2, u2, v2 = svd_op(a)
            gs = tf.zeros_like(s2) if gs is None else gs
            gu = tf.zeros_like(u2) if gu is None else gu
            gv = tf.zeros_like(v2) if gv is None else gv
            return svd_grad_composite(s2, u2, v2, gs, gu, gv,
                                      full_matrices=full_matrices, compute_uv=True,
                                      method=method, eps=eps, order=order)

        return (s, u, v), grad

    return svd_op


def _loss_grad(svd_op, loss, p, a):
    with tf.GradientTape() as t1:
        t1.watch(a)
        s, u, v = svd_op(a)
        total = tf.reduce_sum(loss(p, s, u, v))
    return t1.gradient(total, a)


HVP_CASES = [
    # (shape_name, full_matrices, complex_, method)
    ("square", False, False, "stable"),
    ("square", False, True, "exact"),
    ("tall", True, True, "stable"),
    ("wide|M-N|>1", True, False, "lorentzian"),
    ("tall|M-N|>1", True, True, "taylor"),
    ("wide", False, True, "stable"),
    ("1xN", True, True, "stable"),
    ("batch2 wide", False, False, "exact"),
]


@pytest.mark.parametrize("case", HVP_CASES, ids=lambda c: "-".join(map(str, c)))
def test_hessian_vector_product(case):
    """Reverse-over-reverse HVP vs central FD of the gradient.

    FD of gradients: truncation ~ h^2 |G'''|, rounding ~ eps64 * |G| *
    (s_max/gap) / h ~ 2e-16 * 10 / 1e-6 = 2e-9 relative: FD_RTOL holds
    with a wide margin.
    """
    shape_name, full_matrices, complex_, method = case
    batch, m, n = SHAPES[shape_name]
    kw = dict(METHOD_ARGS[method])
    rng = _rng("hvp", case)
    a_np = _make_matrix(rng, batch, m, n, complex_)
    p = LossParams(rng, m, n, complex_)
    w_np = rng.standard_normal(a_np.shape)
    if complex_:
        w_np = w_np + 1j * rng.standard_normal(a_np.shape)
    a = tf.constant(a_np)
    w = tf.constant(w_np.astype(a_np.dtype))
    loss = loss_full if full_matrices else loss_uv

    def loss2(p_, s, u, v):
        return loss(p_, s, u, v) + loss_proj(p_, s, u, v)

    svd_op = _make_svd_op(full_matrices, **kw)

    # The first-order gradient through the wrapper is the composite itself.
    g1 = _loss_grad(svd_op, loss2, p, a)
    g1_fd = fd_gradient(loss2, p, a_np, full_matrices)
    assert rel_err(g1, g1_fd) <= FD_RTOL

    with tf.GradientTape() as t2:
        t2.watch(a)
        g = _loss_grad(svd_op, loss2, p, a)
        z = tf.reduce_sum(tf.math.real(tf.math.conj(w) * g))
    hvp = t2.gradient(z, a)
    assert hvp is not None

    h = REL_STEP * float(np.max(np.linalg.svd(a_np, compute_uv=False)))
    gp = _loss_grad(svd_op, loss2, p, tf.constant(a_np + h * w_np))
    gm = _loss_grad(svd_op, loss2, p, tf.constant(a_np - h * w_np))
    hvp_fd = (gp - gm) / (2.0 * h)
    err = rel_err(hvp, hvp_fd)
    _record(("hvp",) + tuple(str(c) for c in case), err)
    assert err <= FD_RTOL, err


# ----------------------------------------------------------------------------
# graph mode: XLA and unknown shapes
# ----------------------------------------------------------------------------

def _random_inputs(rng, batch, m, n, complex_, full_matrices, dtype=None):
    a = _make_matrix(rng, batch, m, n, complex_)
    if dtype is not None:
        a = a.astype(dtype)
    s, u, v = tf.linalg.svd(tf.constant(a), full_matrices=full_matrices)

    def rnd(t):
        x = rng.standard_normal(t.shape)
        if t.dtype.is_complex:
            x = x + 1j * rng.standard_normal(t.shape)
        return tf.constant(x.astype(t.dtype.as_numpy_dtype))

    return s, u, v, rnd(s), rnd(u), rnd(v)


# Graph vs eager: the same ops in possibly different order/fusion; results
# agree to a few ulps times the amplification (s_max / min gap ~ 10, K terms).
GRAPH_RTOL = 1e-12


@pytest.mark.parametrize("method", list(METHOD_ARGS))
def test_jit_compile_matches_eager(method):
    kw = METHOD_ARGS[method]
    rng = _rng("jit", method)
    configs = [((), 5, 3, True, True), ((2,), 3, 6, True, True), ((), 4, 4, False, False),
               ((2,), 4, 3, False, False)]
    for batch, m, n, complex_, full_matrices in configs:
        args = _random_inputs(rng, batch, m, n, complex_, full_matrices)
        for compute_uv in (True, False):
            def f(*xs):
                return svd_grad_composite(*xs, full_matrices=full_matrices,
                                          compute_uv=compute_uv, **kw)
            eager = f(*args)
            jitted = tf.function(f, jit_compile=True)(*args)
            assert rel_err(jitted, eager) <= GRAPH_RTOL


def test_jit_compile_second_order_matches_eager():
    """The gradient of the composite (used for HVPs) also compiles with XLA."""
    rng = _rng("jit2")
    args = _random_inputs(rng, (2,), 5, 3, True, True)
    w = tf.constant((rng.standard_normal((2, 5, 3))
                     + 1j * rng.standard_normal((2, 5, 3))).astype(np.complex128))

    def f(*xs):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            g = svd_grad_composite(*xs, full_matrices=True, compute_uv=True,
                                   method="stable", eps=None, order=9)
            z = tf.reduce_sum(tf.math.real(tf.math.conj(w) * g))
        return tape.gradient(z, xs)

    eager = f(*args)
    jitted = tf.function(f, jit_compile=True)(*args)
    for e, j in zip(eager, jitted):
        assert rel_err(tf.reshape(j, [1, -1]), tf.reshape(e, [1, -1])) <= GRAPH_RTOL


@pytest.mark.parametrize("signature", ["matrix", "unknown-rank"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
def test_unknown_static_shapes(signature, full_matrices):
    """tf.function with input_signature [None, None] / unknown rank.

    One trace serves square, tall and wide inputs (so the M vs N branches
    are decided at run time) and must agree with eager, for every method,
    both for the composite and its gradient (tf.cond is differentiated).
    """
    dt = tf.complex128
    if signature == "matrix":
        specs = [tf.TensorSpec([None], tf.float64)] + [tf.TensorSpec([None, None], dt)] * 2
        specs += [tf.TensorSpec([None], tf.float64)] + [tf.TensorSpec([None, None], dt)] * 2
        shapes = [((), 4, 4), ((), 5, 2), ((), 2, 5), ((), 1, 3)]
    else:
        specs = [tf.TensorSpec(None, tf.float64)] + [tf.TensorSpec(None, dt)] * 2
        specs += [tf.TensorSpec(None, tf.float64)] + [tf.TensorSpec(None, dt)] * 2
        shapes = [((2,), 4, 4), ((), 5, 2), ((2, 1), 2, 5), ((3,), 3, 1)]
    rng = _rng("dyn", signature, full_matrices)
    inputs = [_random_inputs(rng, b, m, n, True, full_matrices) for (b, m, n) in shapes]
    for mname, kw in METHOD_ARGS.items():
        for compute_uv in (True, False):
            def f(*xs):
                return svd_grad_composite(*xs, full_matrices=full_matrices,
                                          compute_uv=compute_uv, **kw)

            def f_grad(*xs):
                with tf.GradientTape() as tape:
                    tape.watch(xs)
                    g = f(*xs)
                    z = tf.reduce_sum(tf.math.real(g * tf.math.conj(g)))
                return tape.gradient(z, xs, unconnected_gradients=tf.UnconnectedGradients.ZERO)

            fg = tf.function(f, input_signature=specs)
            fgg = tf.function(f_grad, input_signature=specs)
            for args in inputs:
                out = fg(*args)
                assert out.shape == tuple(args[1].shape[:-1]) + (args[2].shape[-2],)
                assert rel_err(out, f(*args)) <= GRAPH_RTOL, (mname, compute_uv)
            if compute_uv and mname in ("stable", "taylor"):
                for args in inputs:
                    for e, gph in zip(f_grad(*args), fgg(*args)):
                        assert rel_err(tf.reshape(gph, [1, -1]),
                                       tf.reshape(e, [1, -1])) <= GRAPH_RTOL


# ----------------------------------------------------------------------------
# dtypes and arguments
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
@pytest.mark.parametrize("method", list(METHOD_ARGS))
def test_single_precision_against_double(dtype, method):
    """float32/complex64 stay in single precision and agree with float64.

    Expected error: a few eps32 (1.2e-7) times the amplification of the
    formula (s_max / min gap ~ 10) times a small K-dependent factor;
    1e-5 is ~10x above that estimate.
    """
    complex_ = np.dtype(dtype).kind == "c"
    rng = _rng("f32", dtype, method)
    kw = METHOD_ARGS[method]
    args64 = _random_inputs(rng, (2,), 5, 3, complex_, True)
    args32 = [tf.cast(x, tf.float32 if x.dtype.is_floating else tf.complex64) for x in args64]
    g64 = svd_grad_composite(*args64, full_matrices=True, compute_uv=True, **kw)
    g32 = svd_grad_composite(*args32, full_matrices=True, compute_uv=True, **kw)
    assert g32.dtype == (tf.complex64 if complex_ else tf.float32)
    err = rel_err(g32, g64)
    _record(("single vs double", np.dtype(dtype).name, method), err)
    assert err <= 1e-5, err


def test_unknown_method_raises():
    rng = _rng("bad")
    args = _random_inputs(rng, (), 3, 3, False, False)
    with pytest.raises(ValueError, match="grad_method"):
        svd_grad_composite(*args, full_matrices=False, compute_uv=True,
                           method="bogus", eps=None, order=9)
    with pytest.raises(ValueError, match="grad_order"):
        svd_grad_composite(*args, full_matrices=False, compute_uv=True,
                           method="taylor", eps=None, order=-1)
