"""Forward accuracy of the framework-free core, through the pybind11 module ``tfsvd._core``.

No TensorFlow here. Ratios are LAPACK's (tests/matrix_types.py, DESIGN.md section 6): every one
must stay below 35 for every matrix type, dtype, shape class, thin and full, and every algorithm.
"""


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import matrix_types as mt
from core_module import load_core

_core = load_core()  # the pybind11 module, without importing TensorFlow

ALGORITHMS = ("auto", "gesdd", "gesvd", "parallel_gesdd", "gram")
DTYPES = mt.NATIVE_DTYPES
DTYPE_IDS = [d.name for d in DTYPES]
# Square, tall and wide, from the closed-form sizes to past the small-matrix (Jacobi) range.
SHAPES = ((1, 1), (2, 2), (3, 3), (5, 3), (3, 5), (16, 16), (40, 25), (25, 40), (70, 70))
THRESHOLD = mt.THRESHOLD


def core_svd(a, full_matrices=False, compute_uv=True, algorithm="auto"):
    s, u, v = _core.svd(a, full_matrices=full_matrices, compute_uv=compute_uv, algorithm=algorithm)
    return np.asarray(s), np.asarray(u), np.asarray(v)


# --------------------------------------------------------------------------------------------------
# accuracy on LAPACK's matrix types


@pytest.mark.parametrize("kind", mt.MATRIX_TYPES)
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_ratios(algorithm, dtype, full_matrices, kind):
    failures = []
    for m, n in SHAPES:
        a, s_ref = mt.case(kind, m, n, dtype)
        s, u, v = core_svd(a, full_matrices, True, algorithm)
        problems = mt.output_problems(a, s, u, v, full_matrices, empty_vectors=True)
        if problems:
            failures.append(f"{m}x{n}: {problems}")
            continue
        problems = mt.check_singular_values(s)
        ratios = mt.svd_ratios(a, s, u, v, s_ref=s_ref)
        if problems or mt.worst(ratios) > THRESHOLD:
            failures.append(f"{m}x{n}: {mt.format_ratios(ratios)} {problems}")
    assert not failures, f"{kind} {np.dtype(dtype).name} full={full_matrices} {algorithm}:\n" + "\n".join(failures)


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_canonical_signs(algorithm, dtype, full_matrices):
    ulp = mt.eps(dtype)
    failures = []
    for kind in mt.MATRIX_TYPES:
        for m, n in SHAPES:
            a, _ = mt.case(kind, m, n, dtype)
            s, u, v = core_svd(a, full_matrices, True, algorithm)
            problems = mt.check_canonical_signs(u, v, ulp)
            if problems:
                failures.append(f"{kind} {m}x{n}: {problems[:3]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_compute_uv_false(algorithm, dtype):
    failures = []
    for kind in ("random", "geometric", "overflow", "underflow", "zero"):
        for m, n in ((1, 1), (3, 3), (5, 3), (3, 5), (40, 25)):
            a, s_ref = mt.case(kind, m, n, dtype)
            s, u, v = core_svd(a, False, False, algorithm)
            problems = mt.output_problems(a, s, u, v, False, compute_uv=False, empty_vectors=True)
            problems += mt.check_singular_values(s)
            r = mt.sval_ratio(s, s_ref, mt.eps(dtype))
            if problems or r > THRESHOLD:
                failures.append(f"{kind} {m}x{n}: sval={r:.3g} {problems}")
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------------------------------
# batches


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("mn", [(4, 4), (6, 4), (4, 6), (33, 20)], ids=lambda mn: f"{mn[0]}x{mn[1]}")
def test_batch_of_mixed_types(mn, algorithm, dtype, full_matrices):
    """One batch holding every matrix type (zero next to near-overflow next to near-underflow):
    each matrix must be handled on its own scale, and batch dims are [2, 3, ...]."""
    m, n = mn
    kinds = mt.MATRIX_TYPES
    flat = mt.make_batch(kinds, m, n, dtype, seed=1)
    a = flat.reshape((2, len(kinds) // 2, m, n))
    s, u, v = core_svd(a, full_matrices, True, algorithm)
    problems = mt.output_problems(a, s, u, v, full_matrices, empty_vectors=True)
    assert not problems, problems
    s2, u2, v2 = (x.reshape((len(kinds),) + x.shape[2:]) for x in (s, u, v))
    failures = []
    for i, kind in enumerate(kinds):
        ratios = mt.svd_ratios(flat[i], s2[i], u2[i], v2[i])
        problems = mt.check_singular_values(s2[i]) + mt.check_canonical_signs(u2[i], v2[i], mt.eps(dtype))
        if problems or mt.worst(ratios) > THRESHOLD:
            failures.append(f"[{i}] {kind}: {mt.format_ratios(ratios)} {problems[:3]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_batch_matches_single_matrices(algorithm, dtype):
    """The batched call gives, per matrix, what the single-matrix call gives (within the ratios'
    tolerance: both are within 35 of the exact values, so they differ by at most 2 * 35)."""
    rng = mt.rng_for("batch-vs-single", dtype.name)
    a = np.stack([mt.make_matrix("geometric" if i % 2 else "random", 7, 5, dtype, rng) for i in range(6)])
    a = a.reshape(3, 2, 7, 5)
    s, u, v = core_svd(a, False, True, algorithm)
    ulp = mt.eps(dtype)
    for idx in np.ndindex(3, 2):
        s1, u1, v1 = core_svd(a[idx], False, True, algorithm)
        smax = float(np.max(np.abs(mt.upcast(s1))))
        diff = float(np.max(np.abs(mt.upcast(s[idx]) - mt.upcast(s1))))
        assert diff <= 2 * THRESHOLD * 5 * ulp * smax, (idx, diff)
        r = mt.svd_ratios(a[idx], s[idx], u[idx], v[idx])
        assert mt.worst(r) <= THRESHOLD, (idx, r)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS + ("jacobi",))
def test_full_matrices_extend_thin(algorithm, dtype):
    """full_matrices only appends columns: s and the first min(M, N) columns of u and v are the
    thin ones bit for bit (the larger factor is the thin one completed to a basis), with one
    thread or a team of two, tall and wide, on the Jacobi and LAPACK paths; the completed factor
    is orthonormal to LAPACK's ratio."""
    rng = mt.rng_for("full-extends-thin", dtype.name, algorithm)
    for m, n in ((40, 7), (7, 40), (300, 12), (33, 20), (160, 48)):
        a = np.stack([mt.make_matrix("random", m, n, dtype, rng) for _ in range(3)])
        k = min(m, n)
        s, u, v = _core.svd(a, full_matrices=False, algorithm=algorithm)
        for threads in (1, 2):
            sf, uf, vf = _core.svd(a, full_matrices=True, algorithm=algorithm, threads=threads)
            assert uf.shape == (3, m, m) and vf.shape == (3, n, n)
            assert np.array_equal(sf, s), (m, n, threads)
            assert np.array_equal(uf[..., :k], u), (m, n, threads)
            assert np.array_equal(vf[..., :k], v), (m, n, threads)
            for i in range(3):  # the completed factor is an orthonormal basis
                ratios = (mt.orth_ratio(uf[i], mt.eps(dtype)), mt.orth_ratio(vf[i], mt.eps(dtype)))
                assert max(ratios) <= THRESHOLD, (m, n, threads, i, ratios)


@pytest.mark.parametrize("layout", ["fortran", "strided", "transposed_view"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_non_contiguous_input(dtype, layout):
    """Any numpy array is a valid input: the result must be the SVD of the array's values, not of
    its memory read in C order."""
    base = mt.make_batch(["random", "geometric", "rank1"], 9, 6, dtype, seed=2)
    if layout == "fortran":
        a = np.asfortranarray(base)
    elif layout == "strided":
        big = np.zeros((3, 18, 12), dtype)
        big[:, ::2, ::2] = base
        a = big[:, ::2, ::2]
    else:
        a = np.ascontiguousarray(np.swapaxes(base, -1, -2)).swapaxes(-1, -2)
    assert np.array_equal(a, base)
    s, u, v = core_svd(a, False, True, "auto")
    for i in range(3):
        r = mt.svd_ratios(base[i], s[i], u[i], v[i])
        assert mt.worst(r) <= THRESHOLD, (i, r)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_deterministic(algorithm, dtype):
    """Bit-identical run to run (DESIGN section 1)."""
    a = mt.make_batch(["random", "repeated_few", "clustered", "geometric"], 20, 12, dtype, seed=3)
    first = core_svd(a, True, True, algorithm)
    for _ in range(2):
        again = core_svd(a, True, True, algorithm)
        for x, y in zip(first, again):
            assert np.array_equal(x, y)


# --------------------------------------------------------------------------------------------------
# empty batches and 0-sized matrices


EMPTY_SHAPES = [(0, 3, 3), (0, 2, 5), (2, 0, 3), (2, 3, 0), (0, 0), (4, 0), (0, 4), (3, 2, 0, 0)]


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "s_only"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_empty(shape, algorithm, dtype, full_matrices, compute_uv):
    a = np.zeros(shape, dtype)
    s, u, v = core_svd(a, full_matrices, compute_uv, algorithm)
    problems = mt.output_problems(a, s, u, v, full_matrices, compute_uv, empty_vectors=True)
    assert not problems, problems
    if compute_uv and full_matrices:
        # Like tf.linalg.svd: the full factor of a 0-sized matrix is the identity.
        m, n = shape[-2:]
        np.testing.assert_array_equal(u, np.broadcast_to(np.eye(m, dtype=dtype), u.shape))
        np.testing.assert_array_equal(v, np.broadcast_to(np.eye(n, dtype=dtype), v.shape))


# --------------------------------------------------------------------------------------------------
# non-finite input


def _poison(a, dtype):
    """Batch [6, m, n]: matrices 1 (NaN), 3 (+Inf), 4 (-Inf; for complex: NaN in the imaginary
    part) are bad, 0, 2, 5 are good."""
    a = np.array(a)
    m, n = a.shape[-2:]
    a[1, m // 2, n - 1] = np.nan
    a[3, 0, 0] = np.inf
    if mt.is_complex(dtype):
        a[4, m - 1, n // 2] = complex(1.0, np.nan)
    else:
        a[4, m - 1, n // 2] = -np.inf
    return a, [1, 3, 4], [0, 2, 5]


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "s_only"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("mn", [(1, 1), (4, 3), (3, 4), (40, 30)], ids=lambda mn: f"{mn[0]}x{mn[1]}")
def test_nonfinite_isolation(mn, algorithm, dtype, full_matrices, compute_uv):
    m, n = mn
    clean = mt.make_batch(["random", "geometric", "overflow", "random", "identity", "underflow"], m, n, dtype, seed=4)
    a, bad, good = _poison(clean, dtype)
    s, u, v = core_svd(a, full_matrices, compute_uv, algorithm)
    assert not mt.output_problems(a, s, u, v, full_matrices, compute_uv, empty_vectors=True)
    for i in bad:
        assert np.all(np.isnan(s[i])), (i, s[i])
        if compute_uv:
            assert np.all(np.isnan(u[i])) and np.all(np.isnan(v[i])), i
    for i in good:
        if compute_uv:
            r = mt.svd_ratios(clean[i], s[i], u[i], v[i])
        else:
            r = mt.svd_ratios(clean[i], s[i])
        assert mt.worst(r) <= THRESHOLD, (i, r)


# --------------------------------------------------------------------------------------------------
# property test over shapes and batch dims (deterministic: derandomized)


@settings(max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(
    batch=st.lists(st.integers(0, 3), min_size=0, max_size=2),
    m=st.integers(0, 12),
    n=st.integers(0, 12),
    dtype=st.sampled_from(DTYPES),
    full_matrices=st.booleans(),
    algorithm=st.sampled_from(ALGORITHMS),
    kind=st.sampled_from(mt.MATRIX_TYPES),
)
def test_property_shapes(batch, m, n, dtype, full_matrices, algorithm, kind):
    batch = tuple(batch)
    count = int(np.prod(batch, dtype=np.int64))
    rng = mt.rng_for("property", batch, m, n, dtype.name, kind)
    mats = [mt.make_matrix(kind, m, n, dtype, rng) for _ in range(count)]
    a = np.array(mats, dtype=dtype).reshape(batch + (m, n))
    s, u, v = core_svd(a, full_matrices, True, algorithm)
    problems = mt.output_problems(a, s, u, v, full_matrices, empty_vectors=True)
    assert not problems, problems
    for idx in np.ndindex(*batch):
        r = mt.svd_ratios(a[idx], s[idx], u[idx], v[idx])
        assert mt.worst(r) <= THRESHOLD, (idx, r)
        assert not mt.check_canonical_signs(u[idx], v[idx], mt.eps(dtype))
