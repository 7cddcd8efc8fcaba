"""Reliability of tfsvd.svd and its ops (issue 7): an op inside a training loop runs millions of
times on data nobody looked at; it must never crash, hang, leak or silently return a wrong
number.

1. Bad input raises ValueError/TypeError/InvalidArgumentError naming the problem (public API and
   the raw ops, static and dynamic shapes).
2. Non-finite input is isolated per matrix, forward and backward, for every dtype, thin/full,
   with and without vectors, and every algorithm the op offers: poisoned matrices get NaN, the
   others are bit-identical to the same matrices computed alone.
3. Extreme scales (single 1e+-30, double 1e+-300, and entries spanning many decades): LAPACK
   ratios below 35 and gradients that scale exactly as the math says.
4. Determinism: bit-identical run to run, for 1, 2 and 4 intra-op threads, alone or anywhere in
   batches of any size.
5. Concurrency: 8 Python threads in the ops at once, eagerly and through one shared tf.function.
6. Memory: the resident set stays flat over thousands of calls.
7. Scale: millions of tiny matrices in one batch; 64-bit offsets (the > 2^31-element batch is
   opt-in, see test_batch_beyond_2_31_elements).

Exact claims are checked bit for bit (the bytes of the arrays). Gradients for bitwise checks are
taken with fixed cotangents (tape.gradient(..., output_gradients=...)), so the only arithmetic in
them is TfsvdSvdGrad's, not TensorFlow's own ops.
"""

import os
import pathlib
import re
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import op_def_registry

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import matrix_types as mt  # noqa: E402
from rss import rss_growth  # noqa: E402

import tfsvd  # noqa: E402
from tfsvd import _ops  # noqa: E402

NATIVE = mt.NATIVE_DTYPES
NATIVE_IDS = [d.name for d in NATIVE]
INVALID = (ValueError, TypeError, tf.errors.InvalidArgumentError)
TESTS_DIR = pathlib.Path(__file__).resolve().parents[1]


def op_algorithms():
    """The values TfsvdSvd's `algorithm` attribute accepts."""
    op_def = op_def_registry.get("TfsvdSvd")
    for attr in op_def.attr:
        if attr.name == "algorithm":
            return [x.decode() for x in attr.allowed_values.list.s]
    return ["auto"]


ALGORITHMS = op_algorithms()
# Gradient methods whose kernel is exact at every scale (all: each computes in units of s_max).
SCALE_SAFE_METHODS = ("stable", "exact", "lorentzian", "taylor")


def cotangents(a, full_matrices, compute_uv, seed):
    """Fixed random cotangents (gs, gu, gv) for svd(a); per matrix, so a matrix gets the same
    ones in any batch. Values-only calls get cotangents for s only (gu, gv are None)."""
    batch = a.shape[:-2]
    m, n = a.shape[-2:]
    k = min(m, n)
    uc, vc = (m, n) if full_matrices else (k, k)
    count = int(np.prod(batch, dtype=np.int64))
    gs = np.empty((count, k), mt.real_dtype(a.dtype))
    gu = np.empty((count, m, uc), a.dtype)
    gv = np.empty((count, n, vc), a.dtype)
    for i in range(count):
        rng = mt.rng_for("cotangent", seed, i)
        gs[i] = rng.standard_normal(k)
        gu[i] = mt.random_like((m, uc), a.dtype, rng)
        gv[i] = mt.random_like((n, vc), a.dtype, rng)
    gs = gs.reshape(batch + (k,))
    if not compute_uv:
        return gs, None, None
    return gs, gu.reshape(batch + (m, uc)), gv.reshape(batch + (n, vc))


def raw_svd(x, algorithm="auto", full_matrices=False, compute_uv=True, keep_uv=False):
    return _ops.tfsvd_svd(x, Treal=x.dtype.real_dtype, full_matrices=full_matrices,
                          compute_uv=compute_uv, keep_uv=keep_uv, algorithm=algorithm)


def svd_and_grad(a, cot, algorithm="auto", full_matrices=False, compute_uv=True):
    """(s, u, v, grad) as numpy from the raw op and its registered gradient, for cotangents
    `cot`. Values-only: u, v are the thin vectors kept for the gradient (keep_uv)."""
    x = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(x)
        s, u, v = raw_svd(x, algorithm, full_matrices, compute_uv, keep_uv=not compute_uv)
    gs, gu, gv = cot
    if compute_uv:
        ga = tape.gradient([s, u, v], x, output_gradients=[tf.constant(gs), tf.constant(gu),
                                                             tf.constant(gv)])
    else:
        ga = tape.gradient(s, x, output_gradients=tf.constant(gs))
    return s.numpy(), u.numpy(), v.numpy(), ga.numpy()


# ==================================================================================================
# 1. bad input


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "values"])
@pytest.mark.parametrize("value", [1.0, [1.0, 2.0]], ids=["scalar", "vector"])
def test_rank_below_two_static(value, compute_uv):
    for dtype in (tf.float32, tf.float64, tf.complex64, tf.float16):
        with pytest.raises(ValueError, match=r"rank >= 2.*got shape"):
            tfsvd.svd(tf.constant(value, dtype), compute_uv=compute_uv)


@pytest.mark.parametrize("signature", [tf.TensorSpec(None, tf.float32),
                                       tf.TensorSpec(None, tf.complex128)],
                         ids=["float32", "complex128"])
def test_rank_below_two_dynamic(signature):
    """Unknown rank at trace time: the kernel refuses a vector or scalar at run time, also when
    a gradient was requested in the same function."""

    @tf.function(input_signature=[signature])
    def forward_and_gradient(a):
        with tf.GradientTape() as tape:
            tape.watch(a)
            s = tfsvd.svd(a, compute_uv=False)
        return s, tape.gradient(tf.reduce_sum(s), a)

    @tf.function(input_signature=[signature])
    def forward(a):
        return tfsvd.svd(a)

    for value in ([1.0, 2.0, 3.0], 2.0):
        x = tf.constant(value, signature.dtype)
        for fn in (forward_and_gradient, forward):
            with pytest.raises(tf.errors.InvalidArgumentError, match=r"rank >= 2.*got shape"):
                fn(x)
    # The same functions still work on matrices afterwards.
    ok = forward(tf.constant([[3.0, 0.0], [4.0, 5.0]], signature.dtype))
    np.testing.assert_allclose(ok[0].numpy(), [np.sqrt(45.0), np.sqrt(5.0)], rtol=1e-6)


def test_rank_one_known_at_trace_time():
    with pytest.raises(ValueError, match="rank >= 2"):
        tf.function(tfsvd.svd, input_signature=[tf.TensorSpec([None], tf.float64)]
                    ).get_concrete_function()


@pytest.mark.parametrize("dtype", [tf.int32, tf.int64, tf.bool, tf.string, tf.uint8, tf.int16])
def test_unsupported_dtype(dtype):
    value = tf.constant([["a", "b"], ["c", "d"]]) if dtype == tf.string else tf.zeros([2, 2], dtype)
    with pytest.raises(TypeError, match=f"unsupported dtype {dtype.name}"):
        tfsvd.svd(value)
    with pytest.raises(TypeError, match=f"unsupported dtype {dtype.name}"):
        tfsvd.svd(value, compute_uv=False)


def test_python_ints_are_refused_not_truncated():
    with pytest.raises(TypeError, match="unsupported dtype int32"):
        tfsvd.svd([[1, 2], [3, 4]])


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"grad_method": "fast"}, ValueError, "unknown grad_method 'fast'"),
    ({"grad_method": "STABLE"}, ValueError, "unknown grad_method 'STABLE'"),
    ({"grad_method": None}, ValueError, "unknown grad_method None"),
    ({"grad_eps": -1e-3}, ValueError, "grad_eps must be finite and >= 0"),
    ({"grad_eps": -float("inf")}, ValueError, "grad_eps must be finite and >= 0"),
    ({"grad_eps": float("nan")}, ValueError, "grad_eps must be finite and >= 0"),
    ({"grad_eps": float("inf")}, ValueError, "grad_eps must be finite and >= 0"),
    ({"grad_eps": "1e-3"}, TypeError, "grad_eps must be a float"),
    ({"grad_order": -1}, ValueError, "grad_order must be >= 0"),
    ({"grad_order": 2.5}, TypeError, "grad_order must be an int"),
    ({"grad_order": True}, TypeError, "grad_order must be an int"),
], ids=lambda x: repr(x) if isinstance(x, dict) else None)
def test_bad_gradient_options(kwargs, error, pattern):
    """Refused at call time, eagerly and while tracing, whatever else the call does."""
    a = tf.eye(3, dtype=tf.float64)
    for compute_uv in (True, False):
        with pytest.raises(error, match=re.escape(pattern)):
            tfsvd.svd(a, compute_uv=compute_uv, **kwargs)
    with pytest.raises(error, match=re.escape(pattern)):
        tf.function(lambda x: tfsvd.svd(x, **kwargs))(a)


def test_raw_op_rejects_bad_attributes():
    a = tf.eye(3, dtype=tf.float64)
    for attrs, name in (({"algorithm": "magic"}, "algorithm"),
                        ({"grad_method": "fast"}, "grad_method"),
                        ({"grad_order": -1}, "grad_order")):
        with pytest.raises(INVALID, match=name):
            _ops.tfsvd_svd(a, Treal=tf.float64, **attrs)
    s, u, v = tfsvd.svd(a)
    with pytest.raises(INVALID, match="grad_eps"):
        _ops.tfsvd_svd_grad(s, u, v, s, u, v, grad_eps=float("nan"))


def _grad_inputs(shape=(2, 4, 3), dtype=tf.float64):
    a = tf.constant(mt.random_like(shape, dtype.as_numpy_dtype, np.random.default_rng(1)))
    s, u, v = tfsvd.svd(a)
    return dict(s=s, u=u, v=v, grad_s=tf.ones_like(s), grad_u=tf.ones_like(u),
                grad_v=tf.ones_like(v))


# case: (how to break the inputs of TfsvdSvdGrad, the input the message must name)
GRAD_SHAPE_ERRORS = {
    "wrong_k_in_s_and_grad_s": (lambda d: d.update(s=d["s"][..., :2], grad_s=d["grad_s"][..., :2]), "s"),
    "wrong_k_in_grad_s": (lambda d: d.update(grad_s=d["grad_s"][..., :2]), "grad_s"),
    "wrong_batch_in_s": (lambda d: d.update(s=d["s"][:1], grad_s=d["grad_s"][:1]), "s"),
    "wrong_batch_in_v": (lambda d: d.update(v=d["v"][:1], grad_v=d["grad_v"][:1]), "v"),
    "wrong_batch_in_grad_u": (lambda d: d.update(grad_u=d["grad_u"][:1]), "grad_u"),
    "wrong_columns_in_grad_u": (lambda d: d.update(grad_u=d["grad_u"][..., :2]), "grad_u"),
    "wrong_rows_in_grad_u": (lambda d: d.update(grad_u=d["grad_u"][:, :3]), "grad_u"),
    "wrong_rows_in_grad_v": (lambda d: d.update(grad_v=d["grad_v"][:, :2]), "grad_v"),
    "grad_v_transposed": (lambda d: d.update(grad_v=tf.zeros([2, 3, 4], tf.float64)), "grad_v"),
}


def _names_input(message, name):
    # "s has shape" must not be satisfied by "grad_s has shape".
    return re.search(rf"(?<![\w]){re.escape(name)} has shape", message) is not None


@pytest.mark.parametrize("mode", ["eager", "graph"])
@pytest.mark.parametrize("case", list(GRAD_SHAPE_ERRORS))
def test_raw_grad_op_inconsistent_shapes_name_the_input(case, mode):
    inputs = _grad_inputs()
    breaker, name = GRAD_SHAPE_ERRORS[case]
    breaker(inputs)
    names = ("s", "u", "v", "grad_s", "grad_u", "grad_v")
    args = [inputs[k] for k in names]

    def call(*xs):
        return _ops.tfsvd_svd_grad(*xs, full_matrices=False, compute_uv=True)

    fn = call if mode == "eager" else tf.function(call)
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn(*args)
    assert _names_input(info.value.message, name), info.value.message


def test_raw_grad_op_rank_mismatch_and_full_flag():
    inputs = _grad_inputs()
    args = [inputs[k] for k in ("s", "u", "v", "grad_s", "grad_u", "grad_v")]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected s \[\.\.\., K\].*got \[3\]"):
        _ops.tfsvd_svd_grad(args[0][0], *args[1:])
    # Thin factors declared full: u is the first mismatch.
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        _ops.tfsvd_svd_grad(*args, full_matrices=True)
    assert _names_input(info.value.message, "u"), info.value.message
    # Dynamic shapes: the same checks run in the kernel.
    spec = tf.TensorSpec(None, tf.float64)
    fn = tf.function(lambda *xs: _ops.tfsvd_svd_grad(*xs), input_signature=[spec] * 6)
    bad = list(args)
    bad[4] = bad[4][:1]
    with pytest.raises(tf.errors.InvalidArgumentError) as info:
        fn(*bad)
    assert _names_input(info.value.message, "grad_u"), info.value.message


# ==================================================================================================
# 2. non-finite input, isolated per matrix, forward and backward

# Positions 1, 3, 4, 6 are poisoned; 0, 2, 5, 7 stay clean (and are of different types).
CLEAN_KINDS = ["random", "geometric", "random", "repeated_few", "random", "overflow", "identity",
               "underflow"]
BAD = (1, 3, 4, 6)
GOOD = (0, 2, 5, 7)
NONFINITE_SHAPES = ((1, 1), (2, 2), (3, 3), (4, 3), (3, 5), (20, 12))


def poisoned_batch(m, n, dtype, seed=0):
    a = mt.make_batch(CLEAN_KINDS, m, n, dtype, seed=seed)
    clean = a.copy()
    a[1, 0, 0] = np.nan
    a[3, m - 1, n - 1] = np.inf
    a[4, m // 2, n // 2] = -np.inf
    if mt.is_complex(dtype):
        a[6, m - 1, 0] = complex(0.5, np.nan)  # NaN hiding in an imaginary part
        a[4, 0, n - 1] = complex(np.inf, -np.inf)
    else:
        a[6] = np.nan
    return a, clean


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "values"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", NATIVE, ids=NATIVE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nonfinite_isolated_forward_and_backward(algorithm, dtype, full_matrices, compute_uv):
    failures = []
    for m, n in NONFINITE_SHAPES:
        a, _ = poisoned_batch(m, n, dtype)
        cot = cotangents(a, full_matrices, compute_uv, seed=(m, n))
        got = svd_and_grad(a, cot, algorithm, full_matrices, compute_uv)
        # Values only without a gradient: the op computes no vectors at all (another LAPACK job).
        s_only = raw_svd(tf.constant(a), algorithm, full_matrices, False)[0].numpy()
        for i in BAD:
            outs = got if compute_uv else (got[0], got[3], s_only)
            if not all(np.all(np.isnan(x[i])) for x in outs):
                failures.append(f"{m}x{n} [{i}] poisoned: not every output is NaN")
        for i in GOOD:
            one = tuple(None if c is None else c[i:i + 1] for c in cot)
            alone = svd_and_grad(a[i:i + 1], one, algorithm, full_matrices, compute_uv)
            alone_s = raw_svd(tf.constant(a[i:i + 1]), algorithm, full_matrices, False)[0].numpy()
            for name, x, y in zip(("s", "u", "v", "grad", "s (values only)"),
                                  got + (s_only,), alone + (alone_s,)):
                if not np.all(np.isfinite(x[i])):
                    failures.append(f"{m}x{n} [{i}] clean: {name} not finite")
                elif x[i].tobytes() != y[0].tobytes():
                    failures.append(f"{m}x{n} [{i}] clean: {name} differs from the matrix alone")
    assert not failures, f"{algorithm} {dtype.name}:\n" + "\n".join(failures)


@pytest.mark.parametrize("grad_method", SCALE_SAFE_METHODS)
@pytest.mark.parametrize("dtype", NATIVE, ids=NATIVE_IDS)
def test_nonfinite_isolated_through_a_loss(dtype, grad_method):
    """End to end through tfsvd.svd and a gauge-invariant loss: the gradient of every clean
    matrix is bit for bit what it is when the poisoned matrices are replaced by clean ones
    (same batch, same TF ops), and finite; the poisoned ones get NaN. Also in a tf.function."""
    a, clean = poisoned_batch(5, 4, dtype, seed=3)
    rng = np.random.default_rng(3)
    w = rng.standard_normal(4)
    c = mt.random_like((8, 5, 4), dtype, rng)

    def grads(x):
        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            s, u, v = tfsvd.svd(x, grad_method=grad_method)
            low_rank = tf.matmul(u * tf.cast(w, u.dtype), v, adjoint_b=True)
            loss = tf.reduce_sum(s * w, axis=-1) + tf.reduce_sum(
                tf.math.real(tf.math.conj(tf.constant(c)) * low_rank), axis=[-2, -1])
        return loss.numpy(), tape.gradient(loss, x).numpy()

    loss_bad, g_bad = grads(a)
    loss_clean, g_clean = grads(clean)
    for i in BAD:
        assert np.isnan(loss_bad[i]) and np.all(np.isnan(g_bad[i])), i
    for i in GOOD:
        assert np.all(np.isfinite(g_bad[i])), i
        mt.assert_bitwise_equal(g_bad[i], g_clean[i], f"gradient of clean matrix {i}")
        assert loss_bad[i] == loss_clean[i]

    @tf.function
    def graph_grads(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            s = tfsvd.svd(x, compute_uv=False, grad_method=grad_method)
            loss = tf.reduce_sum(s * w, axis=-1)
        return tape.gradient(loss, x)

    g_bad = graph_grads(tf.constant(a)).numpy()
    g_clean = graph_grads(tf.constant(clean)).numpy()
    for i in BAD:
        assert np.all(np.isnan(g_bad[i])), i
    for i in GOOD:
        mt.assert_bitwise_equal(g_bad[i], g_clean[i], f"graph values-only gradient of matrix {i}")


@pytest.mark.parametrize("dtype", mt.HALF_DTYPES, ids=[d.name for d in mt.HALF_DTYPES])
def test_nonfinite_isolated_half_precision(dtype):
    a = np.random.default_rng(4).standard_normal((8, 4, 3))
    a[1, 0, 0], a[3, 3, 2], a[4, 2, 1], a[6] = np.nan, np.inf, -np.inf, np.nan
    a = a.astype(dtype)
    s, u, v = (x.numpy() for x in tfsvd.svd(tf.constant(a)))
    for i in BAD:
        assert np.all(np.isnan(mt.upcast(s[i]))) and np.all(np.isnan(mt.upcast(u[i]))), i
    for i in GOOD:
        alone = [x.numpy() for x in tfsvd.svd(tf.constant(a[i:i + 1]))]
        for name, x, y in zip("suv", (s, u, v), alone):
            mt.assert_bitwise_equal(x[i], y[0], f"{dtype.name} matrix {i} {name}")


# ==================================================================================================
# 3. extreme scales

SCALES = {"float32": (1e30, 1e-30), "complex64": (1e30, 1e-30),
          "float64": (1e300, 1e-300), "complex128": (1e300, 1e-300)}
# Decades spanned by the entries of graded matrices diag(r) A diag(c): the products r_i c_j
# reach 10^+-SPAN (and the entries 10^+-(SPAN+1) or so) without leaving the normal range.
GRADED_SPAN = {"float32": 30, "complex64": 30, "float64": 290, "complex128": 290}


def graded(m, n, dtype, rng):
    span = GRADED_SPAN[np.dtype(dtype).name] / 2
    r = 10.0 ** np.linspace(-span, span, m)
    c = 10.0 ** np.linspace(span, -span, n)[rng.permutation(n)]
    return (r[:, None] * mt.gaussian((m, n), mt.is_complex(dtype), rng) * c[None, :]).astype(dtype)


# Spectra at 1e+-30 / 1e+-300. At 1e-300 most singular values of "geometric" (1 .. ulp) are
# subnormal: this needs the kernels to keep denormals (TF flushes them on its kernel threads).
SCALED_KINDS = ("random", "evenly_spaced", "geometric", "repeated_few", "rank1")


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", NATIVE, ids=NATIVE_IDS)
def test_extreme_scale_accuracy(dtype, full_matrices):
    """LAPACK ratios (scaled inside matrix_types, so they cannot overflow) below 35 at each
    scale, for several spectra, and on graded matrices whose entries span ~60 (single) or ~580
    (double) decades; the gradient of such a matrix is finite."""
    failures = []
    for m, n in ((2, 2), (3, 3), (6, 4), (4, 6), (12, 12)):
        for scale in SCALES[dtype.name]:
            for kind in SCALED_KINDS:
                wide = mt.make_matrix_wide(kind, m, n, dtype, mt.rng_for("xscale", kind, m, n))
                a = (wide * scale).astype(dtype)
                s, u, v = (x.numpy() for x in tfsvd.svd(tf.constant(a), full_matrices))
                ratios = mt.svd_ratios(a, s, u, v)
                problems = mt.check_singular_values(s) + mt.check_canonical_signs(u, v, mt.eps(dtype))
                if problems or mt.worst(ratios) > mt.THRESHOLD:
                    failures.append(f"{kind} {m}x{n} x{scale:g}: {mt.format_ratios(ratios)} "
                                    f"{problems[:2]}")
        a = graded(m, n, dtype, mt.rng_for("graded", m, n, dtype.name))
        x = tf.constant(a)
        with tf.GradientTape() as tape:
            tape.watch(x)
            s, u, v = tfsvd.svd(x, full_matrices)
            top = tf.matmul(u[:, :1], v[:, :1], adjoint_b=True)  # gauge invariant
            loss = tf.reduce_sum(s) + tf.reduce_sum(tf.math.real(top))
        g = tape.gradient(loss, x).numpy()
        ratios = mt.svd_ratios(a, s.numpy(), u.numpy(), v.numpy())
        if mt.worst(ratios) > mt.THRESHOLD or not np.all(np.isfinite(g)):
            failures.append(f"graded {m}x{n}: {mt.format_ratios(ratios)}, gradient finite: "
                            f"{np.all(np.isfinite(g))}")
    assert not failures, "\n".join(failures)


def split_losses(shape, dtype, full_matrices, rng):
    """Two parts of the loss L = sum(w_s s) + Re<C, U1 diag(w) V1^H> (+ Re<D, U2 U2^H> +
    Re<E, V2 V2^H> with full factors), evaluated per call:
      values(x):  sum(w_s s)            homogeneous of degree 1 in x
      vectors(x): the rest              homogeneous of degree 0 (U, V do not change with scale)
    So with A scaled by c > 0: grad values(cA) = grad values(A), grad vectors(cA) = grad
    vectors(A) / c, exactly (chain rule on L(cA) = c^p L(A))."""
    m, n = shape
    k = min(m, n)
    w_s = rng.standard_normal(k)
    w = rng.standard_normal(k)
    cc, d, e = (tf.constant(mt.random_like(sh, dtype, rng)) for sh in ((m, n), (m, m), (n, n)))

    def inner(weights, x):
        return tf.reduce_sum(tf.math.real(tf.math.conj(weights) * x))

    def values(x, **kw):
        return tf.reduce_sum(tfsvd.svd(x, compute_uv=False, **kw) * w_s)

    def vectors(x, **kw):
        s, u, v = tfsvd.svd(x, full_matrices=full_matrices, **kw)
        loss = inner(cc, tf.matmul(u[:, :k] * tf.cast(w, u.dtype), v[:, :k], adjoint_b=True))
        if full_matrices:
            loss += inner(d, tf.matmul(u[:, k:], u[:, k:], adjoint_b=True))
            loss += inner(e, tf.matmul(v[:, k:], v[:, k:], adjoint_b=True))
        return loss

    return values, vectors


def gradient(loss, a, **kw):
    x = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = loss(x, **kw)
    return tape.gradient(value, x).numpy()


@pytest.mark.parametrize("method", SCALE_SAFE_METHODS)
@pytest.mark.parametrize("dtype", NATIVE, ids=NATIVE_IDS)
def test_extreme_scale_gradient_homogeneity(dtype, method):
    """grad(cA) = grad(A) for the values part and grad(A)/c for the vectors part (derivation in
    split_losses), at c = 1e+-30 (single) / 1e+-300 (double). The matrices have singular values
    3 .. 1, evenly spaced: scaling A by a c that is not a power of 2 perturbs it by eps
    relatively, and LAPACK scales such matrices internally, so the factors differ by
    ~eps * s_max / gap <= 4 eps (gap >= 2/3); the gradient divides by the gaps once more.
    Allowed: 50 eps * max(M, N); measured: at most 5 eps * max(M, N)."""
    eps = mt.eps(dtype)
    failures = []
    for (m, n), full in (((4, 4), False), ((5, 3), True), ((3, 5), True), ((6, 2), False)):
        rng = mt.rng_for("homog", m, n, dtype.name, method)
        a = mt.from_spectrum(np.linspace(3.0, 1.0, min(m, n)), m, n, mt.is_complex(dtype), rng)
        values, vectors = split_losses((m, n), dtype, full, rng)
        for name, loss, power in (("values", values, 0), ("vectors", vectors, -1)):
            want = gradient(loss, a.astype(dtype), grad_method=method)
            for c in SCALES[dtype.name]:
                got = gradient(loss, (a * c).astype(dtype), grad_method=method)
                if not np.all(np.isfinite(got)):
                    failures.append(f"{m}x{n} {name} c={c:g}: gradient not finite")
                    continue
                # In float64: got * c**-power would overflow/underflow as a product of doubles.
                rescaled = mt.upcast(got) * (c ** -power if abs(power) else 1.0)
                err = np.abs(rescaled - mt.upcast(want)).max() / np.abs(mt.upcast(want)).max()
                if not err <= 50 * eps * max(m, n):
                    failures.append(f"{m}x{n} full={full} {name} c={c:g}: rel. error {err:.2e}")
    assert not failures, f"{method}:\n" + "\n".join(failures)


@pytest.mark.parametrize("method", tfsvd.GRAD_METHODS)
def test_extreme_scale_second_order_homogeneity(method):
    """L = Re<C, U diag(w) V^H> is homogeneous of degree 0 in A, so its Hessian has degree -2:
    HVP(cA)[T] = HVP(A)[T] / c^2. Checked at c = 1e+-100 and 1e+-140 in float64 (the HVP is then
    ~1e-+280 at most, still a normal number), where s^2 and s^4 over/underflow. Second order
    runs through the composite (TF ops), not the fused kernel."""
    rng = np.random.default_rng(0)
    a0 = mt.from_spectrum(np.linspace(3.0, 1.0, 4), 4, 4, False, rng)
    weights = tf.constant(rng.standard_normal((4, 4)))
    w = tf.constant(rng.standard_normal(4))
    direction = tf.constant(rng.standard_normal((4, 4)))

    def hvp(a):
        x = tf.constant(a)
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                s, u, v = tfsvd.svd(x, grad_method=method)
                loss = tf.reduce_sum(tf.matmul(u * w, v, adjoint_b=True) * weights)
            projected = tf.reduce_sum(inner.gradient(loss, x) * direction)
        return outer.gradient(projected, x).numpy()

    want = hvp(a0)
    for c in (1e100, 1e-100, 1e140, 1e-140):
        got = hvp(a0 * c) * c * c
        err = np.abs(got - want).max() / np.abs(want).max()
        # Rounding only (separated spectrum, as in the first-order test); measured ~1e-14.
        assert err <= 1e-12, f"c={c:g}: relative error {err:.2e}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_xla_relative_accuracy_at_any_scale(dtype):
    """Inside jit_compile=True tfsvd.svd is a composite over tf.linalg.svd (XLA's Jacobi, which
    tests convergence against an absolute threshold). Singular values must keep XLA's relative
    accuracy at every scale: 10 * 1e-6 * s_max / gap (tests/tf/test_xla.py's tolerance), and
    the gradient must scale as in test_extreme_scale_gradient_homogeneity (same tolerance)."""
    rng = np.random.default_rng(0)
    spectrum = np.linspace(3.0, 1.0, 4)
    a0 = mt.from_spectrum(spectrum, 4, 4, False, rng)
    weights = tf.constant(rng.standard_normal((4, 4)), dtype)
    w = tf.constant(rng.standard_normal(4), dtype)
    tol = 10 * 1e-6 * spectrum[0] / (2.0 / 3.0)

    @tf.function(jit_compile=True)
    def values_and_gradient(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            s, u, v = tfsvd.svd(x)
            loss = tf.reduce_sum(tf.matmul(u * w, v, adjoint_b=True) * weights)
        return s, tape.gradient(loss, x)

    _, g1 = values_and_gradient(tf.constant(a0, dtype))
    g1 = g1.numpy().astype(np.float64)
    scales = (1e-30, 1e-8, 1e-4, 1e4, 1e20, 1e30) if dtype == np.float32 else (
        1e-300, 1e-100, 1e-8, 1e-4, 1e4, 1e100, 1e200, 1e300)
    failures = []
    for c in scales:
        s, g = values_and_gradient(tf.constant((a0 * c).astype(dtype)))
        err = np.abs(s.numpy().astype(np.float64) / c - spectrum).max() / spectrum[0]
        g_err = np.abs(g.numpy().astype(np.float64) * c - g1).max() / np.abs(g1).max()
        if not (err <= tol and g_err <= tol):
            failures.append(f"scale {c:g}: s relative error {err:.2g}, gradient {g_err:.2g}")
    assert not failures, "\n".join(failures)


# ==================================================================================================
# 4. determinism


def determinism_inputs():
    """Inputs exercising every path: many tiny matrices (the small-matrix path), medium LAPACK
    ones, a complex batch, tall and wide, and large ones (parallel_gesdd: a single matrix gets a
    team of the pool's threads, so does each matrix of a batch smaller than the pool, and of the
    remainder of a batch that is not a multiple of it: 3 and 5 matrices on 2 and 4 threads);
    written once and read by every subprocess."""
    rng = np.random.default_rng(2024)
    return {
        "large_f32": rng.standard_normal((1, 300, 290)).astype(np.float32),
        "large_tall_f64": rng.standard_normal((1, 620, 260)),
        "large_batch_c64": mt.random_like((3, 260, 280), np.complex64, rng),
        "large_batch_f32": rng.standard_normal((5, 200, 196)).astype(np.float32),
        "tiny_f32": rng.standard_normal((600, 3, 3)).astype(np.float32),
        "small_f64": rng.standard_normal((257, 2, 2)),
        "medium_f64": rng.standard_normal((48, 24, 16)),
        "wide_c128": mt.random_like((20, 9, 30), np.complex128, rng),
        "square_c64": mt.random_like((12, 40, 40), np.complex64, rng),
        "repeated_f64": mt.make_batch(["repeated_few", "clustered", "rank1", "zero"] * 8, 12, 12,
                                      np.float64, seed=5),
    }


DETERMINISM_SCRIPT = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import tensorflow as tf
    threads = int(sys.argv[1])
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    import tfsvd
    from tfsvd import _ops
    from tensorflow.python.framework import op_def_registry
    assert tf.config.threading.get_intra_op_parallelism_threads() == threads
    attr = [a for a in op_def_registry.get("TfsvdSvd").attr if a.name == "algorithm"][0]
    algorithms = [x.decode() for x in attr.allowed_values.list.s]
    inputs = np.load(sys.argv[2])
    out = {}
    graph_svd = tf.function(lambda x: tfsvd.svd(x, full_matrices=True))
    for name in inputs.files:
        a = tf.constant(inputs[name])
        rng = np.random.default_rng(7)
        for algorithm in algorithms:
            for full in (False, True):
                with tf.GradientTape() as tape:
                    tape.watch(a)
                    s, u, v = _ops.tfsvd_svd(a, Treal=a.dtype.real_dtype, full_matrices=full,
                                             algorithm=algorithm)
                cot = [tf.constant(rng.standard_normal(x.shape).astype(x.dtype.as_numpy_dtype))
                       for x in (s, u, v)]
                g = tape.gradient([s, u, v], a, output_gradients=cot)
                key = f"{name}/{algorithm}/{'full' if full else 'thin'}"
                for label, x in zip(("s", "u", "v", "grad"), (s, u, v, g)):
                    out[f"{key}/{label}"] = x.numpy()
        for label, x in zip("suv", graph_svd(a)):
            out[f"{name}/graph/{label}"] = x.numpy()
    np.savez(sys.argv[3], **out)
    print("done", len(out))
""")


def test_bitwise_identical_across_intra_op_thread_counts(tmp_path):
    """Three processes with 1, 2 and 4 intra-op threads (TF's pool splits the batch
    differently in each) compute every input with every algorithm, thin and full, forward and
    backward, eagerly and in a tf.function: all outputs must be bit-identical."""
    inputs = tmp_path / "inputs.npz"
    cases = determinism_inputs()
    np.savez(inputs, **cases)
    script = tmp_path / "determinism.py"
    script.write_text(DETERMINISM_SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(TESTS_DIR) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = {}
    for threads in (1, 2, 4):
        out = tmp_path / f"out{threads}.npz"
        procs[threads] = (out, subprocess.Popen(
            [sys.executable, str(script), str(threads), str(inputs), str(out)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = {}
    for threads, (out, proc) in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{threads} threads:\n{stderr[-3000:]}"
        results[threads] = np.load(out)
    reference = results[1]
    assert len(reference.files) == len(cases) * (len(ALGORITHMS) * 2 * 4 + 3)
    for threads in (2, 4):
        assert sorted(results[threads].files) == sorted(reference.files)
        for key in reference.files:
            mt.assert_bitwise_equal(results[threads][key], reference[key], f"{threads} threads {key}")


@pytest.mark.parametrize("dtype", NATIVE, ids=NATIVE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_alone_equals_anywhere_in_a_batch(algorithm, dtype):
    """One matrix, alone and at several positions of batches of 2 .. 257 matrices (sizes that
    are not multiples of any SIMD width, the matrix at the head, middle and tail) and inside
    a [3, 4] batch: s, u, v and the gradient are bit-identical everywhere. (18 33x20 float32
    matrices on two threads with AVX-512 split 9 + 9, each a half-width group and a lone
    matrix: cpu_parallel.h, svd.cc's NextJacobiRun.)"""
    failures = []
    for m, n in ((2, 2), (3, 3), (4, 4), (7, 5), (5, 7), (16, 16), (33, 20)):
        x = mt.make_matrix("random", m, n, dtype, mt.rng_for("alone", m, n))
        cot_x = cotangents(x[None], False, True, seed=("x", m, n))
        alone = svd_and_grad(x[None], cot_x, algorithm)
        for size, pos in ((2, 1), (5, 0), (7, 6), (18, 9), (33, 17), (257, 256), (257, 128),
                          (12, 7)):
            a = mt.random_like((size, m, n), dtype, mt.rng_for("filler", m, n, size))
            a[pos] = x
            cot = cotangents(a, False, True, seed=("filler", size))
            for c, c_x in zip(cot, cot_x):
                c[pos] = c_x[0]
            if size == 12:  # batch dims [3, 4]
                a = a.reshape(3, 4, m, n)
                cot = tuple(c.reshape((3, 4) + c.shape[1:]) for c in cot)
            got = svd_and_grad(a, cot, algorithm)
            got = [g.reshape((size,) + g.shape[a.ndim - 2:]) for g in got]
            for name, g, w in zip(("s", "u", "v", "grad"), got, alone):
                if g[pos].tobytes() != w[0].tobytes():
                    failures.append(f"{m}x{n} batch {size} position {pos}: {name} differs")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", NATIVE, ids=NATIVE_IDS)
def test_repeated_runs_bitwise(dtype):
    a = mt.make_batch(["random", "repeated_few", "clustered", "geometric", "rank1", "zero"], 9, 6,
                      dtype, seed=8)
    for algorithm in ALGORITHMS:
        for full in (False, True):
            cot = cotangents(a, full, True, seed=9)
            first = svd_and_grad(a, cot, algorithm, full)
            for _ in range(4):
                again = svd_and_grad(a, cot, algorithm, full)
                for name, x, y in zip(("s", "u", "v", "grad"), again, first):
                    mt.assert_bitwise_equal(x, y, f"{algorithm} full={full} {name}")


# ==================================================================================================
# 5. concurrency


def _concurrency_jobs():
    jobs = []
    for t in range(8):
        dtype = NATIVE[t % 4]
        m, n = ((3, 3), (12, 7), (7, 12), (30, 30))[(t // 2) % 4]
        a = mt.make_batch(["random", "geometric", "repeated_few"] * 3, m, n, dtype, seed=10 + t)
        if t % 3 == 0:
            a[4, 0, 0] = np.nan  # the non-finite path runs concurrently too
        jobs.append((a, cotangents(a, t % 2 == 1, True, seed=t), t % 2 == 1,
                     ALGORITHMS[t % len(ALGORITHMS)]))
    return jobs


def _run_threads(worker, jobs, iterations):
    barrier = threading.Barrier(len(jobs))
    errors = []

    def run(job):
        try:
            barrier.wait()
            for it in range(iterations):
                problem = worker(*job)
                if problem:
                    errors.append(f"iteration {it}: {problem}")
                    return
        except Exception as error:  # reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=240)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, "\n".join(errors[:10])


def _same(got, want):
    names = ("s", "u", "v", "grad")
    bad = [n for n, x, y in zip(names, got, want) if np.asarray(x).tobytes() != np.asarray(y).tobytes()]
    return f"{bad} differ from the single-threaded result" if bad else None


def test_eager_calls_from_8_threads():
    """8 Python threads, each with its own inputs (dtype, shape, algorithm, thin/full, some with
    a NaN matrix), 30 iterations of forward + backward each, all at once: every result equals the
    single-threaded one bit for bit; a ninth kind of call, bad input, raises cleanly meanwhile."""
    jobs = _concurrency_jobs()
    expected = {id(job[0]): svd_and_grad(job[0], job[1], job[3], job[2]) for job in jobs}

    def worker(a, cot, full, algorithm):
        problem = _same(svd_and_grad(a, cot, algorithm, full), expected[id(a)])
        if problem is None and a.dtype == np.float32:
            try:
                tfsvd.svd(tf.constant(a[0, 0]))
            except ValueError:
                pass
            else:
                problem = "rank-1 input did not raise"
        return problem

    _run_threads(worker, jobs, iterations=30)


def test_shared_tf_function_from_8_threads():
    """One tf.function (one concrete function per dtype, unknown shapes) computing the SVD and
    its gradient, called from 8 threads at once on different inputs."""

    def fn(a, gs, gu, gv):
        with tf.GradientTape() as tape:
            tape.watch(a)
            s, u, v = tfsvd.svd(a)
        return s, u, v, tape.gradient([s, u, v], a, output_gradients=[gs, gu, gv])

    shared = tf.function(fn, reduce_retracing=True)
    jobs = []
    for t in range(8):
        dtype = (np.float64, np.complex128)[t % 2]
        m, n = ((6, 4), (4, 6), (9, 9), (2, 2))[(t // 2) % 4]
        a = mt.make_batch(["random", "geometric"] * (t + 1), m, n, dtype, seed=20 + t)
        cot = cotangents(a, False, True, seed=20 + t)
        args = [tf.constant(x) for x in (a,) + cot]
        jobs.append((args, [x.numpy() for x in fn(*args)]))
    for args, _ in jobs:  # trace before the race: tracing itself is not what is tested
        shared(*args)

    def worker(args, want):
        return _same([x.numpy() for x in shared(*args)], want)

    _run_threads(worker, jobs, iterations=40)


# ==================================================================================================
# 6. memory


def test_rss_flat_over_thousands_of_calls():
    """3000 iterations of forward + backward on 4 x 32 x 32 float64, a values-only call and,
    every 10th iteration, a batch with a NaN matrix and a refused call, after 300 warm-up
    iterations: the resident set grows by less than 20 MB.

    Why 20 MB: each iteration allocates outputs and workspaces of at least 8 KB each (one
    32 x 32 float64 matrix; u, v and the gradient are 32 KB, LAPACK's workspace more), so a leak
    of any one of them per call adds >= 24 MB over 3000 iterations, most of them ~100 MB or
    more. A correct implementation reaches steady state during the warm-up (TF's kernel and
    function caches, allocator arenas); measured growth here: ~0.3 MB.

    Calls that fail inside a kernel are left out on purpose: TensorFlow 2.21's eager op-failure
    path itself keeps about one input tensor alive per failed call (a failing tf.linalg.matmul
    of two fresh 32 KB tensors grows RSS by ~31 KB per call, and TfsvdSvd/TfsvdSvdGrad failing
    the same way by the same amount); that is TensorFlow's leak, not tfsvd's."""
    rng = np.random.default_rng(6)
    a = tf.constant(rng.standard_normal((4, 32, 32)))
    nan_batch = tf.constant(np.where(np.arange(4)[:, None, None] == 2, np.nan, a.numpy()))
    cot = [tf.constant(x) for x in cotangents(a.numpy(), False, True, seed=6)]

    def iteration(i):
        with tf.GradientTape() as tape:
            tape.watch(a)
            s, u, v = tfsvd.svd(a)
        tape.gradient([s, u, v], a, output_gradients=cot)
        tfsvd.svd(a, compute_uv=False)
        if i % 10 == 0:
            tfsvd.svd(nan_batch)
            try:
                tfsvd.svd(a[0, 0])  # refused in Python, before any op runs
            except ValueError:
                pass

    growth = rss_growth(iteration, warmup=300, calls=3000)
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 3000 iterations"


# ==================================================================================================
# 7. scale


def test_two_million_2x2_matrices():
    """2^21 float32 2x2 matrices (shaped [2048, 1024, 2, 2]), forward and backward in one call
    each (~0.2 GB of tensors; u, v and the gradient, 32 MB each, are written into the huge
    pages the op advises for large outputs); a sample of 200 matrices (first, last, random) is
    bit-identical to the same matrices computed alone and has LAPACK ratios below 35. The last
    matrix sits at the largest offsets into every buffer."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((2048, 1024, 2, 2), dtype=np.float32)
    cot = cotangents(a[:1, :1], False, True, seed=11)  # one cotangent for all: broadcast below
    x = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(x)
        s, u, v = tfsvd.svd(x)
    outs = [tf.broadcast_to(tf.constant(c[0, 0]), t.shape) for c, t in zip(cot, (s, u, v))]
    g = tape.gradient([s, u, v], x, output_gradients=outs).numpy()
    s, u, v = s.numpy(), u.numpy(), v.numpy()
    flat = np.concatenate([[0, a.shape[0] * a.shape[1] - 1],
                           rng.integers(0, a.shape[0] * a.shape[1], 198)])
    for f in flat:
        i, j = divmod(int(f), a.shape[1])
        one = tuple(c[0] for c in cot)
        alone = svd_and_grad(a[i, j][None], one)
        for name, got, want in zip(("s", "u", "v", "grad"), (s, u, v, g), alone):
            mt.assert_bitwise_equal(got[i, j], want[0], f"matrix [{i}, {j}] {name}")
        assert mt.worst(mt.svd_ratios(a[i, j], s[i, j], u[i, j], v[i, j])) <= mt.THRESHOLD


def test_one_million_3x3_float64():
    rng = np.random.default_rng(12)
    a = rng.standard_normal((1_000_000, 3, 3))
    s, u, v = (t.numpy() for t in tfsvd.svd(tf.constant(a), full_matrices=True))
    values = tfsvd.svd(tf.constant(a), compute_uv=False).numpy()
    sample = np.concatenate([[0, len(a) - 1], rng.integers(0, len(a), 100)])
    for i in sample:
        assert mt.worst(mt.svd_ratios(a[i], s[i], u[i], v[i])) <= mt.THRESHOLD, i
        s_ref = mt.reference_singular_values(a[i])
        assert mt.sval_ratio(values[i], s_ref, mt.eps(a.dtype)) <= mt.THRESHOLD, i
    # All of them, vectorised: s descending and non-negative, reconstruction close.
    assert np.all(s[:, :-1] >= s[:, 1:]) and np.all(s >= 0)
    recon = np.einsum("bik,bk,bjk->bij", u, s, v)
    resid = np.abs(recon - a).sum(axis=1).max(axis=1)  # 1-norms of the residuals
    assert np.all(resid <= mt.THRESHOLD * 3 * mt.eps(np.float64) * np.abs(a).sum(axis=1).max(axis=1))


@pytest.mark.skipif(os.environ.get("TFSVD_RUN_HUGE") != "1",
                    reason="opt-in: set TFSVD_RUN_HUGE=1 (needs ~10 GB of free memory)")
def test_batch_beyond_2_31_elements():
    """Opt-in (TFSVD_RUN_HUGE=1; ~10 GB, ~40 s): a float32 batch of 2050 column vectors of 2^20
    rows, 2^31 + 2^21 elements (8 GiB), values only. The last two matrices start at element
    offsets 2^31 and 2^31 + 2^20, which a 32-bit index would wrap to negative numbers (reading
    before the buffer, or another matrix). Matrix i is 2^(i mod 61 - 30) * ones: every matrix
    near a wrapped offset holds a different power of two, and scaling by a power of two is exact
    in LAPACK's arithmetic too, so s_i must be exactly 2^(i mod 61 - 30) times the singular
    value of the ones vector computed alone.

    What the default run covers instead (this needs too much memory for a shared machine):
    64-bit batch offsets up to 2^23 elements in test_two_million_2x2_matrices (the last matrix
    equals the matrix alone) and strided/offset views in tests/core/test_core_reliability.py.
    Full factors or the gradient of such a batch would need 16-24 GiB more than this."""
    count, rows = 2050, 2**20
    assert (count - 2) * rows == 2**31
    exponents = np.arange(count) % 61 - 30
    scale = tf.constant(np.ldexp(np.float32(1.0), exponents).astype(np.float32))
    a = tf.broadcast_to(tf.reshape(scale, [count, 1, 1]), [count, rows, 1])
    s = tfsvd.svd(a, compute_uv=False).numpy()[:, 0]
    del a
    one = tfsvd.svd(tf.ones([1, rows, 1]), compute_uv=False).numpy()[0, 0]
    assert abs(one / np.sqrt(float(rows)) - 1.0) < 0.05  # float32 sums of 2^20 squares
    want = np.ldexp(one, exponents).astype(np.float32)
    wrong = np.flatnonzero(s != want)
    assert wrong.size == 0, f"{wrong.size} wrong, first {wrong[:5]}: {s[wrong[:5]]} != {want[wrong[:5]]}"
