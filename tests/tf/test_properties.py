"""Property-based tests of TfsvdSvd and its gradient (issue 7) over random shapes (0-2 batch
dimensions, M, N in 0..12), dtypes, algorithms, scales 10^[-20, 20] and spectra (random,
separated, repeated, rank-deficient, clustered, geometric, nearly tied).

- forward: output shapes and dtypes are tf.linalg.svd's; s real, non-negative, descending;
  canonical signs; every LAPACK ratio (tests/matrix_types.py) below 35, thin and full, with and
  without vectors;
- gradient (default "stable"): finite for every spectrum, degenerate ones included;
- gradient against central finite differences (float64 and complex128, well-separated spectra,
  any scale): relative error below 1e-6.

Hypothesis runs derandomized (the same examples every run, no example database) with modest
example counts so that the file stays well under a minute.
"""

import pathlib
import sys

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.python.framework import op_def_registry

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import matrix_types as mt  # noqa: E402
from gradcheck import analytic_gradient, finite_difference, relative_error  # noqa: E402

import tfsvd  # noqa: E402
from tfsvd import _ops  # noqa: E402

NATIVE = mt.NATIVE_DTYPES
SPECTRA = ("random", "separated", "repeated", "rank_deficient", "clustered", "geometric",
           "nearly_tied", "zero")

PROPERTY = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def op_algorithms():
    for attr in op_def_registry.get("TfsvdSvd").attr:
        if attr.name == "algorithm":
            return [x.decode() for x in attr.allowed_values.list.s]
    return ["auto"]


ALGORITHMS = op_algorithms()


def spectrum(kind, k, dtype, rng):
    """A descending spectrum of length k with maximum 1 (0 for "zero")."""
    ulp = mt.eps(dtype)
    if k == 0:
        return np.zeros(0)
    if kind == "separated":
        return np.linspace(3.0, 1.0, k) / 3.0
    if kind == "repeated":
        # A few distinct values, each repeated; at least one value repeated when k >= 2.
        distinct = np.sort(rng.uniform(0.1, 1.0, max(1, k // 2)))[::-1]
        distinct[0] = 1.0
        return np.sort(rng.choice(distinct, k))[::-1] if k > 1 else np.ones(1)
    if kind == "rank_deficient":
        rank = int(rng.integers(0, k)) if k > 1 else 0
        s = np.zeros(k)
        s[:rank] = np.linspace(1.0, 0.2, rank) if rank else []
        return s
    if kind == "clustered":
        s = np.full(k, ulp)
        s[0] = 1.0
        return s
    if kind == "geometric":
        return np.geomspace(1.0, ulp, k) if k > 1 else np.ones(1)
    if kind == "nearly_tied":
        # Gaps of a few ulp: below the stable method's tolerance (16 eps max(M, N)).
        return 1.0 - ulp * np.arange(k) * rng.integers(1, 4)
    if kind == "zero":
        return np.zeros(k)
    raise ValueError(kind)


def make_input(batch, m, n, dtype, kind, log_scale, seed):
    """A [*batch, m, n] array of the spectrum kind times 10^log_scale (entries built in
    float64/complex128, then cast once)."""
    rng = np.random.default_rng(seed)
    count = int(np.prod(batch, dtype=np.int64))
    complex_ = mt.is_complex(dtype)
    mats = []
    for _ in range(count):
        if kind == "random":
            x = mt.gaussian((m, n), complex_, rng)
        else:
            x = mt.from_spectrum(spectrum(kind, min(m, n), dtype, rng), m, n, complex_, rng)
        mats.append(x)
    wide = np.array(mats, dtype=mt.wide_dtype(dtype)).reshape(tuple(batch) + (m, n))
    return (wide * 10.0 ** log_scale).astype(dtype)


# 0-2 batch dimensions of size 1-3 (empty batches are tests/tf/test_forward.py's), M, N in 0..12.
shapes = st.tuples(st.lists(st.integers(1, 3), max_size=2), st.integers(0, 12), st.integers(0, 12))


@pytest.mark.parametrize("dtype", NATIVE, ids=[d.name for d in NATIVE])
@settings(max_examples=75, **PROPERTY)
@given(shape=shapes, kind=st.sampled_from(SPECTRA),
       log_scale=st.integers(-20, 20), full_matrices=st.booleans(),
       algorithm=st.sampled_from(ALGORITHMS), seed=st.integers(0, 2**32 - 1))
def test_forward_contract(dtype, shape, kind, log_scale, full_matrices, algorithm, seed):
    batch, m, n = tuple(shape[0]), shape[1], shape[2]
    a = make_input(batch, m, n, dtype, kind, log_scale, seed)
    x = tf.constant(a)
    s, u, v = (t.numpy() for t in _ops.tfsvd_svd(x, Treal=x.dtype.real_dtype,
                                                 full_matrices=full_matrices,
                                                 algorithm=algorithm))
    values = _ops.tfsvd_svd(x, Treal=x.dtype.real_dtype, compute_uv=False,
                            algorithm=algorithm)[0].numpy()
    es, eu, ev = mt.expected_shapes(batch, m, n, full_matrices)
    assert (s.shape, u.shape, v.shape, values.shape) == (es, eu, ev, es)
    assert s.dtype == values.dtype == mt.real_dtype(dtype) and u.dtype == v.dtype == dtype
    ulp = mt.eps(dtype)
    for idx in np.ndindex(*batch):
        s_ref = mt.reference_singular_values(a[idx])
        problems = mt.check_singular_values(s[idx]) + mt.check_singular_values(values[idx])
        problems += mt.check_canonical_signs(u[idx], v[idx], ulp)
        ratios = mt.svd_ratios(a[idx], s[idx], u[idx], v[idx], s_ref=s_ref)
        ratios["sval_values_only"] = mt.sval_ratio(values[idx], s_ref, ulp)
        assert not problems and mt.worst(ratios) <= mt.THRESHOLD, (
            f"{kind} {dtype.name} {m}x{n} 1e{log_scale} {algorithm} full={full_matrices} [{idx}]: "
            f"{mt.format_ratios(ratios)} {problems[:3]}")


def gauge_invariant_loss(shape, dtype, full_matrices, scale, rng):
    """L = sum(w_s s) / scale + Re<C, U1 diag(w) V1^H> (+ Re<D, U2 U2^H> + Re<E, V2 V2^H> with
    full factors), one value per leading stack entry. Both parts of its gradient are
    O(1/scale), so finite differences see each of them."""
    m, n = shape[-2:]
    k = min(m, n)
    batch = shape[:-2]
    w_s = rng.standard_normal(k) / scale
    w = rng.standard_normal(k)

    def rand(*dims):
        return tf.constant(mt.gaussian(dims, mt.is_complex(dtype), rng).astype(dtype))

    c, d, e = rand(*batch, m, n), rand(*batch, m, m), rand(*batch, n, n)

    def inner(weights, x):
        return tf.reduce_sum(tf.math.real(tf.math.conj(weights) * x),
                             axis=list(range(1, len(x.shape))))

    def loss(x):
        s, u, v = tfsvd.svd(x, full_matrices=full_matrices)
        total = tf.reduce_sum(s * w_s, axis=list(range(1, len(s.shape))))
        u1, v1 = u[..., :k], v[..., :k]
        total += inner(c, tf.matmul(u1 * tf.cast(w, u.dtype), v1, adjoint_b=True))
        if full_matrices:
            total += inner(d, tf.matmul(u[..., k:], u[..., k:], adjoint_b=True))
            total += inner(e, tf.matmul(v[..., k:], v[..., k:], adjoint_b=True))
        return total

    return loss


@pytest.mark.parametrize("dtype", NATIVE, ids=[d.name for d in NATIVE])
@settings(max_examples=50, **PROPERTY)
@given(shape=shapes, kind=st.sampled_from(SPECTRA),
       log_scale=st.integers(-20, 20), full_matrices=st.booleans(), compute_uv=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_stable_gradient_is_finite(dtype, shape, kind, log_scale, full_matrices, compute_uv, seed):
    batch, m, n = tuple(shape[0]), shape[1], shape[2]
    a = make_input(batch, m, n, dtype, kind, log_scale, seed)
    rng = np.random.default_rng(seed)
    x = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(x)
        if compute_uv:
            s, u, v = tfsvd.svd(x, full_matrices=full_matrices)
            k = min(m, n)
            w = tf.constant(rng.standard_normal(k), s.dtype)
            proj = tf.matmul(u[..., :k] * tf.cast(w, u.dtype), v[..., :k], adjoint_b=True)
            loss = tf.reduce_sum(s) + tf.reduce_sum(tf.math.real(proj))
            if full_matrices:
                loss += tf.reduce_sum(tf.math.real(tf.matmul(u[..., k:], u[..., k:], adjoint_b=True)))
        else:
            loss = tf.reduce_sum(tfsvd.svd(x, compute_uv=False))
    g = tape.gradient(loss, x).numpy()
    assert g.shape == a.shape and g.dtype == a.dtype
    assert np.all(np.isfinite(g)), f"{kind} {dtype.name} {batch} {m}x{n} 1e{log_scale}"


@pytest.mark.parametrize("dtype", [np.dtype(np.float64), np.dtype(np.complex128)],
                         ids=["float64", "complex128"])
@settings(max_examples=50, **PROPERTY)
@given(batch=st.lists(st.integers(1, 2), max_size=1), m=st.integers(1, 6), n=st.integers(1, 6),
       log_scale=st.integers(-20, 20), full_matrices=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_gradient_matches_finite_differences(dtype, batch, m, n, log_scale, full_matrices, seed):
    """Well-separated spectra (3 .. 1, evenly spaced, times the scale): truncation error of the
    central differences ~ (h/scale)^2 / gap^3 and rounding ~ eps scale / h, both far below 1e-6
    with the step h = 1e-6 * scale (the tolerance of tests/tf/test_gradient.py)."""
    shape = tuple(batch) + (m, n)
    rng = np.random.default_rng(seed)
    scale = 10.0 ** log_scale
    count = int(np.prod(batch, dtype=np.int64))
    mats = [mt.from_spectrum(np.linspace(3.0, 1.0, min(m, n)), m, n, mt.is_complex(dtype), rng)
            for _ in range(count)]
    a = (np.array(mats).reshape(shape) * scale).astype(dtype)
    loss = gauge_invariant_loss(shape, dtype, full_matrices, scale, rng)
    got = analytic_gradient(loss, a)
    want = finite_difference(loss, a, 1e-6 * scale)
    assert np.all(np.isfinite(got))
    err = relative_error(got, want)
    assert err <= 1e-6, f"{shape} {dtype.name} 1e{log_scale} full={full_matrices}: {err:.2e}"
