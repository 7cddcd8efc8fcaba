"""The large-matrix path (algorithm="parallel_gesdd") and its thread team, through the pybind11
module (no TensorFlow).

parallel_gesdd is gesdd's algorithm with its heavy steps cut into chunks that depend only on the
sizes (cc/core/parallel_gesdd.h): a blocked QR for tall matrices, the fused bidiagonalisation,
the divide and conquer with its first split and merge on the team (BidiagonalSvd), the block
reflectors. Checked here:

- LAPACK's ratios (tests/matrix_types.py) on every matrix type, dtype, thin and full, for the
  shape classes the path distinguishes: square, tall through the QR, tall and wide without it;
  canonical signs; values only;
- the bidiagonal solver alone on bidiagonals built to deflate in every way the merge handles,
  against float64 LAPACK;
- bits that do not depend on the team: 1, 2, 3 and 5 threads, helpers that arrive late, a matrix
  alone or inside a batch; forward and backward.
"""

import functools

import numpy as np
import pytest
import scipy.linalg

import matrix_types as mt
from core_module import load_core

_core = load_core()

DTYPES = mt.NATIVE_DTYPES
DTYPE_IDS = [d.name for d in DTYPES]
THRESHOLD = mt.THRESHOLD
# Square (its bidiagonal SVD is split from 128 on), tall through the QR (m >= 11 n / 6), tall
# and wide that are bidiagonalised directly, and one past the 64-column reflector blocks.
SHAPES = ((130, 130), (300, 140), (200, 140), (140, 300), (270, 270))
# Tall or wide enough for the TSQR (m >= 64 n: 2 and 8 row blocks, the last one longer), which
# serves thin vectors and values only; down to one column, which auto also sends here past the
# Jacobi limits.
TSQR_SHAPES = ((1030, 16), (8, 600), (1100, 4), (700, 3), (2, 900), (1500, 1))


def psvd(a, full_matrices=False, compute_uv=True, threads=1, helper_delay_ms=0):
    s, u, v = _core.svd(a, full_matrices, compute_uv, algorithm="parallel_gesdd",
                        threads=threads, helper_delay_ms=helper_delay_ms)
    return np.asarray(s), np.asarray(u), np.asarray(v)


@functools.lru_cache(maxsize=None)
def _type_batch(m, n, dtype_name):
    a = mt.make_batch(mt.MATRIX_TYPES, m, n, np.dtype(dtype_name), seed=21)
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------------
# accuracy


@pytest.mark.parametrize("full_matrices,mn",
                         [(f, mn) for f in (False, True) for mn in SHAPES]
                         + [(False, mn) for mn in TSQR_SHAPES],
                         ids=lambda x: ("full" if x else "thin") if isinstance(x, bool)
                         else f"{x[0]}x{x[1]}")
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_ratios_and_signs(mn, dtype, full_matrices):
    m, n = mn
    a = _type_batch(m, n, dtype.name)
    s, u, v = psvd(a, full_matrices, threads=2)
    assert not mt.output_problems(a, s, u, v, full_matrices, empty_vectors=True)
    failures = []
    for i, kind in enumerate(mt.MATRIX_TYPES):
        ratios = mt.svd_ratios(a[i], s[i], u[i], v[i])
        problems = mt.check_singular_values(s[i]) + mt.check_canonical_signs(u[i], v[i], mt.eps(dtype))
        if problems or mt.worst(ratios) > THRESHOLD:
            failures.append(f"{kind}: {mt.format_ratios(ratios)} {problems[:3]}")
    assert not failures, f"{m}x{n} {dtype.name} full={full_matrices}:\n" + "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mn", SHAPES + TSQR_SHAPES, ids=lambda mn: f"{mn[0]}x{mn[1]}")
def test_values_only(mn, dtype):
    m, n = mn
    a = _type_batch(m, n, dtype.name)
    s, u, v = psvd(a, compute_uv=False, threads=2)
    assert u.size == 0 and v.size == 0
    failures = []
    for i, kind in enumerate(mt.MATRIX_TYPES):
        r = mt.sval_ratio(s[i], mt.reference_singular_values(a[i]), mt.eps(dtype))
        problems = mt.check_singular_values(s[i])
        if problems or r > THRESHOLD:
            failures.append(f"{kind}: sval={r:.3g} {problems}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("algorithm", ["parallel_gesdd", "gesdd"])  # gesvd: gesdd's copies
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_padded_leading_dimensions(dtype, algorithm):
    """Columns of 4096 bytes get padded scratch columns (workspace.h's PaddedLeadingDimension):
    the copies in and out, LAPACK's calls and every step of parallel_gesdd on them. Square, tall
    through the QR and wide (the transposed orientation) with such columns in every factor, and
    wide with them in the input only; thin and full."""
    rows = 4096 // np.dtype(dtype).itemsize
    rng = mt.rng_for("padded", dtype.name, algorithm)
    failures = []
    for m, n in ((rows, rows), (2 * rows, rows), (rows, 2 * rows), (rows // 4, rows)):
        a = mt.random_like((1, m, n), dtype, rng)
        for full_matrices in (False, True):
            s, u, v = (np.asarray(x) for x in _core.svd(a, full_matrices, True, algorithm=algorithm,
                                                      threads=2))
            ratios = mt.svd_ratios(a[0], s[0], u[0], v[0])
            problems = mt.check_singular_values(s[0]) + mt.check_canonical_signs(u[0], v[0], mt.eps(dtype))
            if problems or mt.worst(ratios) > THRESHOLD:
                failures.append(f"{m}x{n} full={full_matrices}: {mt.format_ratios(ratios)} {problems[:3]}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------------------------------
# the bidiagonal solver on its own


def _bidiagonals(n, dtype):
    """Bidiagonals (d, e) that reach the branches of the merge (the first split is at nl = n / 2):
    no deflation (random); deflation of close singular values across the halves (constant
    diagonal, two values) and of small z entries (graded); a merged problem of one (tiny
    superdiagonal, just above bdsdc's split threshold) or two (upper_big); every value of the
    upper half deflated (its coupling to the middle column tiny: decoupled_upper); clustered."""
    rng = mt.rng_for("bidiagonal", n, np.dtype(dtype).name)
    eps = np.finfo(dtype).eps
    nl = n // 2
    upper_big_e = np.full(n - 1, 4 * eps)
    upper_big_e[nl - 1] = 0.3
    decoupled_e = rng.uniform(0.1, 0.5, n - 1)
    decoupled_e[nl - 1] = 4 * eps
    out = {
        "random": (rng.standard_normal(n), rng.standard_normal(n - 1)),
        "constant_diagonal": (np.ones(n), 0.5 * np.ones(n - 1)),
        "graded": (np.logspace(0, -6, n), np.logspace(0, -6, n - 1) * 0.3),
        "near_split": (np.ones(n), np.full(n - 1, 4 * eps)),
        "two_values": (np.where(np.arange(n) % 2 == 0, 1.0, 2.0), np.full(n - 1, 8 * eps)),
        "upper_big": (np.r_[np.full(nl, 2.0), np.ones(n - nl)], upper_big_e),
        "decoupled_upper": (rng.uniform(1, 2, n), decoupled_e),
        "clustered": (1 + eps * rng.standard_normal(n), eps * np.abs(rng.standard_normal(n - 1)) + eps),
    }
    return {k: (d.astype(dtype), e.astype(dtype)) for k, (d, e) in out.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n", [128, 129, 300, 1024])  # 1024: padded columns (both dtypes)
def test_bidiagonal_solver(n, dtype):
    ulp = np.finfo(dtype).eps
    failures = []
    for kind, (d, e) in _bidiagonals(n, dtype).items():
        b = np.diag(d.astype(np.float64)) + np.diag(e.astype(np.float64), 1)
        s, u, vt = (np.asarray(x, np.float64) for x in _core.bidiagonal_svd(d, e, threads=2))
        s_ref = scipy.linalg.svd(b, compute_uv=False, lapack_driver="gesvd")
        s_max = max(float(s_ref[0]), np.finfo(np.float64).tiny)
        ratios = {
            "resid": np.abs(b - (u * s) @ vt).sum(axis=0).max() / (np.abs(b).sum(axis=0).max() * n * ulp),
            "orthU": np.abs(np.eye(n) - u.T @ u).sum(axis=0).max() / (n * ulp),
            "orthV": np.abs(np.eye(n) - vt @ vt.T).sum(axis=0).max() / (n * ulp),
            "sval": np.abs(s - s_ref).max() / (s_max * n * ulp),
        }
        if not np.all(np.diff(s) <= 0) or max(ratios.values()) > THRESHOLD:
            failures.append(f"{kind}: " + ", ".join(f"{k}={v:.3g}" for k, v in ratios.items()))
        s_only = np.asarray(_core.bidiagonal_svd(d, e, compute_uv=False)[0], np.float64)
        if np.abs(s_only - s_ref).max() > THRESHOLD * n * ulp * s_max:
            failures.append(f"{kind}: values only off by {np.abs(s_only - s_ref).max():.3g}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------------------------------
# the bits do not depend on the team


def _inputs(dtype, full_matrices):
    rng = mt.rng_for("parallel-bits", dtype.name)
    inputs = {
        "square": mt.random_like((1, 260, 260), dtype, rng),
        "tall_qr": mt.random_like((1, 600, 200), dtype, rng),
        "wide": mt.random_like((1, 200, 330), dtype, rng),
    }
    if not full_matrices:  # the TSQR serves thin vectors (and values) only
        inputs["tall_tsqr"] = mt.random_like((1, 6000, 40), dtype, rng)
    return inputs


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_bits_do_not_depend_on_threads(dtype, full_matrices):
    failures = []
    for name, a in _inputs(dtype, full_matrices).items():
        reference = psvd(a, full_matrices, threads=1)
        variants = {f"{t} threads": dict(threads=t) for t in (2, 3, 5)}
        variants["late helpers"] = dict(threads=3, helper_delay_ms=30)
        for label, kwargs in variants.items():
            got = psvd(a, full_matrices, **kwargs)
            for what, x, y in zip("suv", got, reference):
                if not np.array_equal(x, y):
                    failures.append(f"{name} {label}: {what} differs")
        values = psvd(a, full_matrices, compute_uv=False, threads=2)[0]
        if not np.array_equal(values, psvd(a, full_matrices, compute_uv=False, threads=1)[0]):
            failures.append(f"{name}: values only differ with 2 threads")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_alone_equals_in_a_batch(dtype):
    """Batches run one matrix per thread, a matrix alone runs on a team: the same bits."""
    rng = mt.rng_for("parallel-batch", dtype.name)
    batch = mt.random_like((3, 280, 260), dtype, rng)
    s, u, v = psvd(batch, threads=1)
    for i in range(3):
        s1, u1, v1 = psvd(batch[i:i + 1], threads=2)
        mt.assert_bitwise_equal(s1[0], s[i], f"s[{i}]")
        mt.assert_bitwise_equal(u1[0], u[i], f"u[{i}]")
        mt.assert_bitwise_equal(v1[0], v[i], f"v[{i}]")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_bidiagonal_bits_do_not_depend_on_threads(dtype):
    for kind, (d, e) in _bidiagonals(300, dtype).items():
        reference = _core.bidiagonal_svd(d, e, threads=1)
        for threads in (2, 3):
            for what, x, y in zip(("s", "u", "vt"), _core.bidiagonal_svd(d, e, threads=threads), reference):
                mt.assert_bitwise_equal(np.asarray(x), np.asarray(y), f"{kind} {threads} threads {what}")


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gradient_bits_do_not_depend_on_threads(dtype, full_matrices):
    """The backward's team path (large matrices) and its chunks, tall, wide and square, thick and
    thin, with vectors and values only."""
    rng = mt.rng_for("parallel-grad", dtype.name, full_matrices)
    failures = []
    # 3000 x 16: the thin products (real), the long Gram matrix summed over row chunks.
    for m, n in ((260, 260), (400, 150), (150, 400), (3000, 16), (16, 3000)):
        a = mt.random_like((1, m, n), dtype, rng)
        s, u, v = _core.svd(a, full_matrices)
        gs = rng.standard_normal(s.shape).astype(s.dtype)
        gu, gv = mt.random_like(u.shape, dtype, rng), mt.random_like(v.shape, dtype, rng)
        for compute_uv in (True, False):
            kw = dict(full_matrices=full_matrices, compute_uv=compute_uv)
            reference = _core.svd_grad(s, u, v, gs, gu, gv, threads=1, **kw)
            for threads in (2, 3):
                if not np.array_equal(_core.svd_grad(s, u, v, gs, gu, gv, threads=threads, **kw), reference):
                    failures.append(f"{m}x{n} compute_uv={compute_uv}: {threads} threads differ")
    assert not failures, "\n".join(failures)


def test_team_arguments():
    a = np.zeros((1, 300, 300), np.float32)
    with pytest.raises(ValueError, match="threads"):
        _core.svd(a, threads=0)
    with pytest.raises(ValueError, match="threads"):
        _core.svd_grad(np.zeros((1, 3), np.float32), np.zeros((1, 3, 3), np.float32),
                       np.zeros((1, 3, 3), np.float32), np.zeros((1, 3), np.float32),
                       np.zeros((1, 3, 3), np.float32), np.zeros((1, 3, 3), np.float32), threads=0)
