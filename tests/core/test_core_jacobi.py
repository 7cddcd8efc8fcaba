"""The batched one-sided Jacobi SVD (algorithm="jacobi"), through the pybind11 module (no
TensorFlow).

Forward: LAPACK's ratios (tests/matrix_types.py, DESIGN.md section 6) on every matrix type, dtype,
shape class, thin and full, for every instruction set this CPU runs; canonical signs; NaN
isolation; bit-identical results for a matrix alone or at any lane position of any batch; the
LAPACK fallback when the sweep cap is hit.
"""

import functools
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import matrix_types as mt  # noqa: E402

DTYPES = mt.NATIVE_DTYPES
DTYPE_IDS = [d.name for d in DTYPES]
THRESHOLD = mt.THRESHOLD
# Tiny (compile-time sizes in the kernels), small, tall, wide, and a few sizes that cross the SIMD
# width or the 4-way split of the sums.
SHAPES = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (5, 3), (3, 5), (9, 2), (2, 9), (8, 8),
          (17, 17), (40, 25), (25, 40))
ISAS = ("sse2", "avx2", "avx512")


@pytest.fixture(autouse=True)
def _restore_hooks(core):
    yield
    core.set_jacobi_isa("auto")
    core.set_jacobi_max_sweeps(0)


def supported_isas(core):
    found = []
    for isa in ISAS:
        if core.set_jacobi_isa(isa):
            found.append(isa)
    core.set_jacobi_isa("auto")
    return found


def jacobi(core, a, full_matrices=False, compute_uv=True):
    s, u, v = core.svd(a, full_matrices, compute_uv, algorithm="jacobi")
    return np.asarray(s), np.asarray(u), np.asarray(v)


def assert_bitwise_equal(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    if got.tobytes() != want.tobytes():
        diff = np.abs(mt.upcast(got) - mt.upcast(want))
        raise AssertionError(f"{what}: not bit-identical (max |diff| {np.nanmax(diff):.3g})")


@functools.lru_cache(maxsize=None)
def _type_batch(m, n, dtype_name):
    """Every matrix type twice (different random factors), as one batch."""
    kinds = mt.MATRIX_TYPES + mt.MATRIX_TYPES
    a = mt.make_batch(kinds, m, n, np.dtype(dtype_name), seed=11)
    a.flags.writeable = False
    return kinds, a


def check_batch(a, s, u, v, kinds, full_matrices):
    failures = []
    ulp = mt.eps(a.dtype)
    m, n = a.shape[-2:]
    _, eu, ev = mt.expected_shapes(a.shape[:-2], m, n, full_matrices)
    assert u.shape == eu and v.shape == ev, (u.shape, v.shape)
    for i, kind in enumerate(kinds):
        ratios = mt.svd_ratios(a[i], s[i], u[i], v[i])
        problems = mt.check_singular_values(s[i]) + mt.check_canonical_signs(u[i], v[i], ulp)
        if problems or mt.worst(ratios) > THRESHOLD:
            failures.append(f"{m}x{n} {kind}: {mt.format_ratios(ratios)} {problems[:2]}")
    return failures


# --------------------------------------------------------------------------------------------------
# accuracy


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_ratios_every_type_and_shape(core, dtype, full_matrices):
    failures = []
    for m, n in SHAPES:
        kinds, a = _type_batch(m, n, dtype.name)
        s, u, v = jacobi(core, a, full_matrices)
        failures += check_batch(a, s, u, v, kinds, full_matrices)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_ratios_every_instruction_set(core, dtype, isa):
    if not core.set_jacobi_isa(isa):
        pytest.skip(f"this CPU does not run {isa}")
    assert core.jacobi_isa() == isa
    failures = []
    for m, n, full in ((3, 3, False), (6, 4, True), (4, 6, False), (33, 20, False)):
        kinds, a = _type_batch(m, n, dtype.name)
        s, u, v = jacobi(core, a, full)
        failures += check_batch(a, s, u, v, kinds, full)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_fma_kernels_agree_bitwise(core, dtype):
    """AVX2 and AVX-512 round every operation identically (explicit FMAs, no contraction), so they
    must give the same bits, whatever their different group widths."""
    isas = supported_isas(core)
    if not {"avx2", "avx512"} <= set(isas):
        pytest.skip("needs a CPU with both AVX2 and AVX-512")
    cases = ((3, 3, False), (7, 5, True), (5, 7, True), (20, 20, False))
    results = {}
    for isa in ("avx2", "avx512"):
        core.set_jacobi_isa(isa)
        results[isa] = [jacobi(core, _type_batch(m, n, dtype.name)[1], full) for m, n, full in cases]
    for (m, n, full), got, want in zip(cases, results["avx512"], results["avx2"]):
        for name, x, y in zip("suv", got, want):
            assert_bitwise_equal(x, y, f"{m}x{n} full={full} {name}: avx512 vs avx2")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_values_only_match(core, dtype):
    """Without compute_uv the rotations of B are the same (V is just not accumulated): the same
    singular values, bit for bit."""
    for m, n in ((3, 3), (6, 2), (2, 6), (16, 16)):
        _, a = _type_batch(m, n, dtype.name)
        s_uv, _, _ = jacobi(core, a, False, True)
        s, u, v = jacobi(core, a, False, False)
        assert u.shape[-1] == 0 and v.shape[-1] == 0
        assert_bitwise_equal(s, s_uv, f"{m}x{n} s")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_auto_uses_jacobi_for_tiny(core, dtype):
    _, a = _type_batch(3, 3, dtype.name)
    for x, y in zip(core.svd(a, algorithm="auto"), jacobi(core, a)):
        assert_bitwise_equal(x, y, "auto vs jacobi")


# --------------------------------------------------------------------------------------------------
# batches: lanes are independent


def _mixed(m, n, dtype, count, seed):
    rng = mt.rng_for("jacobi-mixed", m, n, dtype.name, count, seed)
    kinds = [mt.MATRIX_TYPES[i % len(mt.MATRIX_TYPES)] for i in range(count)]
    return np.stack([mt.make_matrix(kind, m, n, dtype, rng) for kind in kinds])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mn", [(3, 3), (5, 4), (4, 5), (12, 12)], ids=lambda mn: f"{mn[0]}x{mn[1]}")
def test_alone_equals_in_batch(core, mn, dtype):
    """Each matrix of batches of 1, W-1, W, W+1 and 37 matrices (W = lanes) gives the bits it
    gives alone, and so does one matrix moved through every lane position of a group."""
    m, n = mn
    lanes = core.jacobi_lanes(dtype)
    for full in (False, True):
        for count in sorted({1, max(1, lanes - 1), lanes, lanes + 1, 37}):
            a = _mixed(m, n, dtype, count, seed=count)
            batch = jacobi(core, a, full)
            for i in range(count):
                alone = jacobi(core, a[i:i + 1], full)
                for name, x, y in zip("suv", batch, alone):
                    assert_bitwise_equal(x[i], y[0], f"batch {count}, matrix {i}, {name}")
        probe = _mixed(m, n, dtype, 1, seed=99)
        alone = jacobi(core, probe, full)
        neighbours = _mixed(m, n, dtype, lanes + 1, seed=7)
        for pos in range(lanes + 1):
            a = neighbours.copy()
            a[pos] = probe[0]
            batch = jacobi(core, a, full)
            for name, x, y in zip("suv", batch, alone):
                assert_bitwise_equal(x[pos], y[0], f"probe at lane {pos}, {name}")


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "s_only"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mn", [(1, 1), (3, 3), (4, 3), (3, 4), (20, 20)], ids=lambda mn: f"{mn[0]}x{mn[1]}")
def test_nonfinite_isolation(core, mn, dtype, compute_uv):
    """NaN/+Inf/-Inf matrices at several lane positions (and across group boundaries) get NaN
    outputs; every other matrix gets the bits it gets without bad neighbours."""
    m, n = mn
    lanes = core.jacobi_lanes(dtype)
    count = 2 * lanes + 3
    clean = _mixed(m, n, dtype, count, seed=5)
    bad = sorted({0, 1, lanes - 1, lanes, count - 1})
    a = clean.copy()
    poison = [np.nan, np.inf, -np.inf]
    for j, i in enumerate(bad):
        value = poison[j % 3]
        if mt.is_complex(dtype) and j % 2:
            value = complex(0.0, value)
        a[i, (j * 7) % m, (j * 3) % n] = value
    got = jacobi(core, a, False, compute_uv)
    want = jacobi(core, clean, False, compute_uv)
    for i in range(count):
        if i in bad:
            assert np.all(np.isnan(got[0][i])), (i, got[0][i])
            if compute_uv:
                assert np.all(np.isnan(got[1][i])) and np.all(np.isnan(got[2][i])), i
        else:
            for name, x, y in zip("suv", got, want):
                assert_bitwise_equal(x[i], y[i], f"matrix {i} {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sweep_cap_falls_back_to_lapack(core, dtype):
    """With the sweep cap at 1 almost no matrix converges: those go to LAPACK (counted), and the
    results still meet the ratios, including the structured types."""
    core.set_jacobi_max_sweeps(1)
    core.jacobi_stats(True)
    failures = []
    for m, n, full in ((3, 3, False), (6, 4, True), (4, 6, True), (12, 12, False)):
        kinds, a = _type_batch(m, n, dtype.name)
        s, u, v = jacobi(core, a, full)
        failures += check_batch(a, s, u, v, kinds, full)
    stats = core.jacobi_stats(True)
    assert stats["fallbacks"] > 0, stats
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_random_matrices_converge(core, dtype):
    """Gaussian matrices converge well within the sweep cap (no LAPACK fallback): the
    tolerance is above the rounding level of the computed dot products."""
    rng = mt.rng_for("jacobi-converge", dtype.name)
    core.jacobi_stats(True)
    for n, count in ((2, 4000), (3, 4000), (4, 2000), (8, 500), (24, 40)):
        a = mt.gaussian((count, n, n), mt.is_complex(dtype), rng).astype(dtype)
        jacobi(core, a)
    stats = core.jacobi_stats(True)
    assert stats["fallbacks"] == 0, stats
    assert stats["sweeps"] <= 15 * stats["groups"], stats


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(0, 3, 3), (2, 0, 3), (2, 3, 0), (0, 0)], ids=str)
def test_empty(core, shape, dtype):
    a = np.zeros(shape, dtype)
    for full in (False, True):
        s, u, v = jacobi(core, a, full)
        m, n = shape[-2:]
        es, eu, ev = mt.expected_shapes(shape[:-2], m, n, full)
        assert s.shape == es and u.shape == eu and v.shape == ev
