"""The float64 Gram path of float32 matrices with at most eight columns or rows (algorithm="gram",
cc/core/gram_svd.h), through the pybind11 module (no TensorFlow).

Certified matrices: the error bounds that follow from gram_svd.h's analysis (the float64 errors
stay below 2^-28 relative; then one rounding of s, u and v to float32). Matrices it cannot
certify (LAPACK's matrix types include zero, rank-one and ulp-conditioned ones) go to the
algorithm auto picks besides it, bit for bit; so do the shapes and dtypes it does not take.
Batches: the bits of a matrix alone.
"""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import matrix_types as mt  # noqa: E402

F32 = np.dtype(np.float32)
EPS = float(np.finfo(np.float32).eps)  # 2^-23; float32's unit roundoff is EPS / 2
ISAS = ("sse2", "avx2", "avx512")
# Tall and wide, 1 to 8 columns; rows below and past a vector block, a 1024-row sum block
# (2051 = 2 blocks + 3 rows), and below auto's crossover (17 x 2, 40 x 3, 30 x 8).
SHAPES = ((400, 1), (1, 400), (17, 2), (2, 17), (40, 3), (1000, 3), (3, 1000), (2051, 3),
          (500, 4), (4, 500), (333, 2), (300, 5), (6, 401), (1031, 7), (30, 8), (8, 1000))
# LAPACK's ratios cost a float64 reference per matrix: fewer and shorter ones.
RATIO_SHAPES = ((400, 1), (1, 400), (17, 2), (2, 17), (40, 3), (600, 3), (3, 600), (500, 4),
                (4, 333), (200, 6), (8, 300))


def gram(core, a, compute_uv=True, full_matrices=False, isa="auto"):
    s, u, v = core.svd(a, full_matrices, compute_uv, algorithm="gram", jacobi_isa=isa)
    return np.asarray(s), np.asarray(u), np.asarray(v)


def well_conditioned(m, n, count, seed):
    rng = mt.rng_for("gram-well", m, n, count, seed)
    return mt.gaussian((count, m, n), False, rng).astype(F32)


def check_certified(a, s, u, v):
    """Bounds for a certified matrix. Every singular value: float64 relative error <= 2^-29, then
    one rounding (2^-24), so |s - s_ref| <= 0.55 EPS s_ref. U^T U: the float64 factor is orthogonal
    to 2^-28 (gram_svd.h); rounding each entry to float32 (relative 2^-24) moves u_i^T u_j by at
    most 2 * 2^-24 |u_i| |u_j| = EPS. V: eigenvectors orthogonal to float64 rounding, then the same
    rounding. The residual: the roundings of u, s and v, each at most 2^-24 relative per entry."""
    problems = []
    a64 = a.astype(np.float64)
    k = min(a.shape)
    s_ref = np.linalg.svd(a64, compute_uv=False)
    err_s = np.max(np.abs(s - s_ref) / s_ref) / EPS
    if err_s > 0.55:
        problems.append(f"s off by {err_s:.2f} EPS (relative)")
    for name, q in (("u", u), ("v", v)):
        q64 = q.astype(np.float64)
        orth = np.max(np.abs(q64.T @ q64 - np.eye(k))) / EPS
        if orth > 1.1:
            problems.append(f"{name}^T {name} off by {orth:.2f} EPS")
    resid = np.linalg.norm(a64 - (u.astype(np.float64) * s) @ v.astype(np.float64).T)
    resid /= np.linalg.norm(a64) * EPS
    if resid > 2 * np.sqrt(k):
        problems.append(f"residual {resid:.2f} EPS")
    return problems + mt.check_canonical_signs(u, v, EPS)


@pytest.mark.parametrize("isa", ISAS)
def test_certified_accuracy(core, isa):
    if not core.jacobi_isa_available(isa):
        pytest.skip(f"this CPU does not run {isa}")
    failures = []
    for m, n in SHAPES:
        a = well_conditioned(m, n, 6, seed=1)
        s, u, v = gram(core, a, isa=isa)
        for i in range(len(a)):
            problems = check_certified(a[i], s[i], u[i], v[i])
            if problems:
                failures.append(f"{m}x{n} #{i}: {problems}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("isa", ISAS)
def test_ratios_every_matrix_type(core, isa):
    """LAPACK's ratios on every matrix type, thin and values only: certified ones from the Gram
    path, the others (zero, rank one, ulp-conditioned) from the fallback."""
    if not core.jacobi_isa_available(isa):
        pytest.skip(f"this CPU does not run {isa}")
    failures = []
    for m, n in RATIO_SHAPES:
        kinds = mt.MATRIX_TYPES
        a = mt.make_batch(kinds, m, n, F32, seed=3)
        s, u, v = gram(core, a, isa=isa)
        s_only, _, _ = gram(core, a, compute_uv=False, isa=isa)
        mt.assert_bitwise_equal(s_only, s, f"{m}x{n}: values only vs with vectors")
        for i, kind in enumerate(kinds):
            ratios = mt.svd_ratios(a[i], s[i], u[i], v[i])
            problems = mt.check_singular_values(s[i]) + mt.check_canonical_signs(u[i], v[i], EPS)
            if problems or mt.worst(ratios) > mt.THRESHOLD:
                failures.append(f"{m}x{n} {kind}: {mt.format_ratios(ratios)} {problems[:2]}")
    assert not failures, "\n".join(failures)


def test_uncertified_matrices_take_the_fallback(core):
    """Zero, rank-deficient and ill-conditioned (sigma_min / sigma_max = 1e-4: past the bound's
    Frobenius condition of about 250) matrices get the bits of auto's other choice for the shape
    (Jacobi for 1000 x 3), wherever they sit among certified ones; the certified ones keep theirs."""
    m, n = 1000, 3
    a = well_conditioned(m, n, 40, seed=2)
    rng = mt.rng_for("gram-fallback")
    bad = [0, 5, 17, 18, 39]
    a[0] = 0
    a[5][:, 2] = a[5][:, 0]  # rank 2
    for i in (17, 18, 39):
        q, _ = np.linalg.qr(rng.standard_normal((m, n)))
        w, _ = np.linalg.qr(rng.standard_normal((n, n)))
        a[i] = ((q * np.array([1.0, 0.5, 1e-4])) @ w.T).astype(F32)
    got = gram(core, a)
    clean = well_conditioned(m, n, 40, seed=2)
    want_good = gram(core, clean)
    want_bad = [np.asarray(x) for x in core.svd(a[bad], algorithm="jacobi")]
    for j, i in enumerate(bad):
        for name, x, y in zip("suv", got, want_bad):
            mt.assert_bitwise_equal(x[i], y[j], f"matrix {i} {name}: gram's fallback vs jacobi")
    for i in sorted(set(range(len(a))) - set(bad)):
        for name, x, y in zip("suv", got, want_good):
            mt.assert_bitwise_equal(x[i], y[i], f"matrix {i} {name}")


def test_runs_of_uncertified_matrices_take_the_fallback(core):
    """Uncertified matrices solved where they lie (a run of 26 in a chunk of 64) and gathered (a
    lone one, and a run of 10 across two chunks) get the fallback's bits for the shape."""
    m, n = 300, 6
    a = well_conditioned(m, n, 70, seed=9)
    rng = mt.rng_for("gram-fallback-run")
    bad = [3] + list(range(10, 36)) + list(range(60, 70))
    for i in bad:
        q, _ = np.linalg.qr(rng.standard_normal((m, n)))
        w, _ = np.linalg.qr(rng.standard_normal((n, n)))
        a[i] = ((q * np.geomspace(1.0, 1e-4, n)) @ w.T).astype(F32)
    got = gram(core, a)
    want_bad = [np.asarray(x) for x in core.svd(a[bad], algorithm="jacobi")]
    for j, i in enumerate(bad):
        for name, x, y in zip("suv", got, want_bad):
            mt.assert_bitwise_equal(x[i], y[j], f"matrix {i} {name}: gram's fallback vs jacobi")
    want_good = gram(core, well_conditioned(m, n, 70, seed=9))
    for i in sorted(set(range(70)) - set(bad)):
        for name, x, y in zip("suv", got, want_good):
            mt.assert_bitwise_equal(x[i], y[i], f"matrix {i} {name}")


def test_auto_takes_gram_past_the_crossover(core):
    """auto is the Gram path from 32 rows per column (48 with one column), Jacobi below."""
    for (m, n), picks_gram in (((1000, 3), True), ((3, 400), True), ((128, 4), True),
                               ((96, 3), True), ((2, 64), True), ((48, 1), True),
                               ((256, 8), True), ((5, 160), True),
                               ((127, 4), False), ((3, 95), False), ((63, 2), False),
                               ((47, 1), False), ((255, 8), False), ((6, 191), False)):
        a = well_conditioned(m, n, 3, seed=4)
        want = core.svd(a, algorithm="gram" if picks_gram else "jacobi")
        for x, y in zip(core.svd(a, algorithm="auto"), want):
            mt.assert_bitwise_equal(x, y, f"{m}x{n} auto")


def test_alone_equals_in_batch(core):
    for m, n in ((1000, 3), (3, 1000), (1100, 4), (17, 2), (600, 8), (5, 300)):
        kinds = mt.MATRIX_TYPES + ("random",) * 9
        a = mt.make_batch(kinds, m, n, F32, seed=5)
        batch = gram(core, a)
        for i in range(len(a)):
            alone = gram(core, a[i:i + 1])
            for name, x, y in zip("suv", batch, alone):
                mt.assert_bitwise_equal(x[i], y[0], f"{m}x{n} matrix {i} {name}")


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "s"])
def test_nonfinite_isolation(core, compute_uv):
    clean = well_conditioned(700, 2, 9, seed=6)
    a = clean.copy()
    bad = {1: np.nan, 4: np.inf, 8: -np.inf}
    for i, value in bad.items():
        a[i, 3 * i, i % 2] = value
    got = gram(core, a, compute_uv)
    want = gram(core, clean, compute_uv)
    mt.assert_nan_isolation(got, want, bad, compute_uv)


@pytest.mark.parametrize("dtype", mt.NATIVE_DTYPES, ids=[d.name for d in mt.NATIVE_DTYPES])
def test_what_gram_does_not_take_runs_as_auto(core, dtype):
    """Other dtypes and more than eight columns: auto's choice, bit for bit."""
    cases = [(500, 3, False), (20, 9, False), (400, 9, False), (500, 9, True)]
    if dtype != F32:
        cases += [(500, 3, True)]
    for m, n, full in cases:
        a = mt.make_batch(("random", "geometric", "random"), m, n, dtype, seed=7)
        for x, y in zip(core.svd(a, full, algorithm="gram"), core.svd(a, full, algorithm="auto")):
            mt.assert_bitwise_equal(x, y, f"{dtype.name} {m}x{n} full={full}")


def test_full_factors_extend_the_thin_ones(core):
    """full_matrices: the thin factors bit for bit, completed to an orthonormal basis; the
    matrices it cannot certify take the fallback's full factors."""
    for m, n in ((300, 3), (5, 200), (40, 8)):
        a = well_conditioned(m, n, 5, seed=8)
        a[3] = 0
        k = min(m, n)
        s, u, v = gram(core, a)
        sf, uf, vf = gram(core, a, full_matrices=True)
        want = [np.asarray(x) for x in core.svd(a[3:4], True, algorithm="jacobi")]
        for i in range(len(a)):
            if i == 3:
                for name, x, y in zip("suv", (sf, uf, vf), want):
                    mt.assert_bitwise_equal(x[i], y[0], f"{m}x{n} zero matrix {name}")
                continue
            mt.assert_bitwise_equal(sf[i], s[i], f"{m}x{n} #{i} s")
            mt.assert_bitwise_equal(uf[i][:, :k], u[i], f"{m}x{n} #{i} u")
            mt.assert_bitwise_equal(vf[i][:, :k], v[i], f"{m}x{n} #{i} v")
            for name, q in (("u", uf[i]), ("v", vf[i])):
                ratio = mt.orth_ratio(q, EPS)
                assert ratio <= mt.THRESHOLD, f"{m}x{n} #{i} full {name}: ratio {ratio:.1f}"
