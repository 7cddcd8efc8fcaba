"""The batched one-sided Jacobi SVD (algorithm="jacobi") and the BLAS-free backward of tiny
matrices, through the pybind11 module (no TensorFlow).

Forward: LAPACK's ratios (tests/matrix_types.py, DESIGN.md section 6) on every matrix type, dtype,
shape class, thin and full, for every instruction set this CPU runs; canonical signs; NaN
isolation; bit-identical results for a matrix alone or at any lane position of any batch; the
LAPACK fallback when the sweep cap is hit.

Backward: the loop path (svd_grad.cc, UsesLoops) against the BLAS path on the same inputs, within
the forward error bound of the formula (evaluated below from the rounding model, not from
observed differences).
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
# width or the 4-way split of the sums. Real matrices with min(M, N) >= 24, or with max(M, N) >=
# 4 min(M, N) >= 16, are QR-preconditioned (jacobi.h, JacobiPreconditioned: 24x24, 40x25,
# 25x40, 16x4, 4x16, 140x12; 17x17 and 9x2 are not). The real sweeps take their pairs in one of
# three orders by the shape they run on (JacobiSweeps): round-robin up to 17x17 (and 140x12's
# 12x12 R^T), skewed cyclic while that has at most 128 rows (24x24, 40x25, 25x40), cyclic by rows
# beyond (200x3). The left factor of a preconditioned long thin matrix comes from the compact WY
# form of Q (jacobi.h, JacobiApplyQ: 200x12 and 12x200 with eight times as many rows as columns,
# 385x49 from 384 rows with at least four times as many), of the others reflector by reflector.
SHAPES = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (5, 3), (3, 5), (9, 2), (2, 9), (8, 8),
          (16, 4), (4, 16), (17, 17), (24, 24), (40, 25), (25, 40), (140, 12), (200, 3),
          (200, 12), (12, 200), (385, 49))
ISAS = ("sse2", "avx2", "avx512")


def supported_isas(core):
    return [isa for isa in ISAS if core.jacobi_isa_available(isa)]


def jacobi(core, a, full_matrices=False, compute_uv=True, isa="auto", max_sweeps=0,
           lone_limit=-1):
    s, u, v = core.svd(a, full_matrices, compute_uv, algorithm="jacobi", jacobi_isa=isa,
                       jacobi_max_sweeps=max_sweeps, jacobi_lone_limit=lone_limit)
    return np.asarray(s), np.asarray(u), np.asarray(v)


def _gaussian_batch(m, n, dtype, batch):
    rng = mt.rng_for("jacobi-gaussian", m, n, dtype.name)
    return mt.gaussian((batch, m, n), dtype.kind == "c", rng).astype(dtype)


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
    if not core.jacobi_isa_available(isa):
        pytest.skip(f"this CPU does not run {isa}")
    failures = []
    for m, n, full in ((3, 3, False), (6, 4, True), (4, 6, False), (33, 20, False)):
        kinds, a = _type_batch(m, n, dtype.name)
        s, u, v = jacobi(core, a, full, isa=isa)
        failures += check_batch(a, s, u, v, kinds, full)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_fma_kernels_agree_bitwise(core, dtype):
    """AVX2 and AVX-512 round every operation identically (explicit FMAs, no contraction), so they
    must give the same bits, whatever their different group widths."""
    isas = supported_isas(core)
    if not {"avx2", "avx512"} <= set(isas):
        pytest.skip("needs a CPU with both AVX2 and AVX-512")
    # Up to the largest Jacobi sizes: on Zen 4 a batch's last, short group runs on the AVX2
    # kernels while the rest runs on AVX-512, relying on this.
    cases = ((3, 3, False), (7, 5, True), (5, 7, True), (8, 8, False), (20, 20, False),
             (24, 24, True), (64, 48, False), (385, 49, False))
    results = {}
    for isa in ("avx2", "avx512"):
        results[isa] = [jacobi(core, _type_batch(m, n, dtype.name)[1], full, isa=isa)
                        for m, n, full in cases]
    for (m, n, full), got, want in zip(cases, results["avx512"], results["avx2"]):
        for name, x, y in zip("suv", got, want):
            mt.assert_bitwise_equal(x, y, f"{m}x{n} full={full} {name}: avx512 vs avx2")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_values_only_match(core, dtype):
    """Without compute_uv the rotations of B are the same (V is just not accumulated): the same
    singular values, bit for bit."""
    for m, n in ((3, 3), (6, 2), (2, 6), (8, 8), (16, 16), (20, 20), (40, 25)):
        _, a = _type_batch(m, n, dtype.name)
        s_uv, _, _ = jacobi(core, a, False, True)
        s, u, v = jacobi(core, a, False, False)
        assert u.shape[-1] == 0 and v.shape[-1] == 0
        mt.assert_bitwise_equal(s, s_uv, f"{m}x{n} s")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_auto_uses_jacobi_for_tiny(core, dtype):
    _, a = _type_batch(3, 3, dtype.name)
    for x, y in zip(core.svd(a, algorithm="auto"), jacobi(core, a)):
        mt.assert_bitwise_equal(x, y, "auto vs jacobi")


# --------------------------------------------------------------------------------------------------
# batches: lanes are independent


def _mixed(m, n, dtype, count, seed):
    rng = mt.rng_for("jacobi-mixed", m, n, dtype.name, count, seed)
    kinds = [mt.MATRIX_TYPES[i % len(mt.MATRIX_TYPES)] for i in range(count)]
    return np.stack([mt.make_matrix(kind, m, n, dtype, rng) for kind in kinds])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("mn", [(3, 3), (5, 4), (4, 5), (12, 12), (24, 24), (30, 6)],
                         ids=lambda mn: f"{mn[0]}x{mn[1]}")
def test_alone_equals_in_batch(core, mn, dtype):
    """Each matrix of batches of 1, W/2 + 1, W-1, W, W+1 and 37 matrices (W = lanes) gives the
    bits it gives alone, and so does one matrix moved through every lane position of a group.
    (Where there are half-width kernels, W/2 + 1 real 24x24 matrices run as a half-width group
    and a lone matrix: svd.cc's NextJacobiRun.)"""
    m, n = mn
    lanes = core.jacobi_lanes(dtype)
    for full in (False, True):
        for count in sorted({1, lanes // 2 + 1, max(1, lanes - 1), lanes, lanes + 1, 37}):
            a = _mixed(m, n, dtype, count, seed=count)
            batch = jacobi(core, a, full)
            for i in range(count):
                alone = jacobi(core, a[i:i + 1], full)
                for name, x, y in zip("suv", batch, alone):
                    mt.assert_bitwise_equal(x[i], y[0], f"batch {count}, matrix {i}, {name}")
        probe = _mixed(m, n, dtype, 1, seed=99)
        alone = jacobi(core, probe, full)
        neighbours = _mixed(m, n, dtype, lanes + 1, seed=7)
        for pos in range(lanes + 1):
            a = neighbours.copy()
            a[pos] = probe[0]
            batch = jacobi(core, a, full)
            for name, x, y in zip("suv", batch, alone):
                mt.assert_bitwise_equal(x[pos], y[0], f"probe at lane {pos}, {name}")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_lone_kernels_equal_groups(core, dtype, isa):
    """The lone kernels (one matrix, scalar lanes) round every operation as a lane of the group
    kernels of the same instruction set, so a whole batch run one matrix at a time gives the same
    bits as in groups: every matrix type (zero, rank-deficient, graded, clustered...), a NaN, a
    huge and a tiny matrix, every order of the pairs and the compile-time sizes, thin and full,
    with and without vectors, and with the sweep cap at 2 (some matrices fall back to LAPACK).
    Where there is FMA the lone kernels run a real matrix's pairs in another order than a group
    (jacobi_simd.inc, LoneSweeps; the same arithmetic per value): 47x33 and 64x64 give that
    schedule many pairs at once, and columns that are not whole vectors long (17, 25, 33, 47
    rows...) are swept in copies padded with zero rows. Tall groups of up to 4 columns move whole
    blocks of rows (jacobi_moves.inc, InterleaveShortRows and ScatterShortRows): 40x3, 70x2, 150x4
    and 37x1 take blocks and the rows after them. 200x12, 301x36 and 385x49 form Q W through the
    compact WY form, which the lone kernels run in SIMD registers (LoneWyProducts) with vector
    blocks and scalar tails of rows and columns (385x49: from 384 rows, under eight times as many
    rows as columns, which the form took only from 392). 2500x3 and 1030x9 have columns longer
    than one block of the sums (jacobi.h, kSumBlockRows: 1024 rows), 2500x3 swept in place,
    1030x9's X in a padded copy while Q W's norms take two blocks."""
    if not core.jacobi_isa_available(isa):
        pytest.skip(f"this CPU does not run {isa}")
    big = 1e30 if dtype in (np.float32, np.complex64) else 1e300
    for m, n in ((1, 1), (2, 2), (3, 3), (4, 4), (8, 8), (5, 3), (3, 5), (17, 17), (24, 24),
                 (40, 25), (25, 40), (6, 30), (140, 12), (47, 33), (64, 64), (200, 12),
                 (40, 3), (70, 2), (150, 4), (37, 1), (301, 36), (385, 49), (2500, 3),
                 (1030, 9)):
        # Every matrix type is too slow to build past a thousand rows; gaussian ones there.
        a = _type_batch(m, n, dtype.name)[1] if m < 1000 else _gaussian_batch(m, n, dtype, 4)
        a = a.copy()
        a[0, m // 2, n // 2] = np.nan
        a[1] *= big
        a[2] /= big
        for full, compute_uv, cap in ((False, True, 0), (True, True, 0), (False, False, 0),
                                      (False, True, 2)):
            grouped = jacobi(core, a, full, compute_uv, isa=isa, max_sweeps=cap, lone_limit=0)
            lone = jacobi(core, a, full, compute_uv, isa=isa, max_sweeps=cap,
                          lone_limit=a.shape[0])
            for name, x, y in zip("suv", lone, grouped):
                mt.assert_bitwise_equal(
                    x, y, f"{m}x{n} full={full} uv={compute_uv} cap={cap} {name}: lone vs groups")


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
    mt.assert_nan_isolation(got, want, bad, compute_uv)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sweep_cap_falls_back_to_lapack(core, dtype):
    """With the sweep cap at 1 almost no matrix converges: those go to LAPACK, and the results
    still meet the ratios, including the structured types. A matrix that fell back carries
    gesdd's bits exactly; those that also differ from full Jacobi sweeps surely fell back."""
    failures = []
    fell_back = 0
    for m, n, full in ((3, 3, False), (6, 4, True), (4, 6, True), (12, 12, False)):
        kinds, a = _type_batch(m, n, dtype.name)
        capped = jacobi(core, a, full, max_sweeps=1)
        failures += check_batch(a, *capped, kinds, full)
        lapack = [np.asarray(x) for x in core.svd(a, full, algorithm="gesdd")]
        full_sweeps = jacobi(core, a, full)

        def same(x, y, i):
            return all(np.array_equal(p[i], q[i]) for p, q in zip(x, y))

        fell_back += sum(same(capped, lapack, i) and not same(capped, full_sweeps, i)
                         for i in range(a.shape[0]))
    assert fell_back > 0, "no matrix reached the LAPACK fallback"
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_random_matrices_converge(core, dtype):
    """Gaussian matrices converge well within the sweep cap, so none falls back to LAPACK: the
    tolerance is above the rounding level of the computed dot products. Capping the sweeps at
    20 changes no bit, so every group converged within 20 sweeps, below the default cap (30)
    at which a matrix would fall back."""
    rng = mt.rng_for("jacobi-converge", dtype.name)
    for n, count in ((2, 4000), (3, 4000), (4, 2000), (8, 500), (24, 40)):
        a = mt.gaussian((count, n, n), mt.is_complex(dtype), rng).astype(dtype)
        for x, y, name in zip(jacobi(core, a), jacobi(core, a, max_sweeps=20), "suv"):
            mt.assert_bitwise_equal(x, y, f"{n}x{n} {name}: default cap vs 20 sweeps")


# --------------------------------------------------------------------------------------------------
# the QR-preconditioned path


def _graded(mode, count, m, n, span, rng):
    """count float64 matrices A = D_r B or B D_c: B gaussian with unit rows (row grading) or unit
    columns (column grading), D a diagonal over `span` decades in the order of `mode`. Returns A
    and B (for its condition number)."""
    b = rng.standard_normal((count, m, n))
    rows = mode.startswith("row")
    b /= np.linalg.norm(b, axis=-1 if rows else -2, keepdims=True)
    d = 10.0 ** np.linspace(0.0, -span, m if rows else n)
    if mode == "row_ascending":
        d = d[::-1]
    elif mode in ("row_shuffled", "column_shuffled"):
        d = d[rng.permutation(d.size)]
    return (d[:, None] * b if rows else b * d[None, :]), b


@pytest.mark.parametrize("mode", ["row_descending", "row_ascending", "row_shuffled",
                                  "column_shuffled"])
@pytest.mark.parametrize("mn", [(20, 20), (64, 64), (40, 25), (25, 40), (200, 24), (100, 8)],
                         ids=lambda mn: f"{mn[0]}x{mn[1]}")
def test_graded_relative_accuracy(core, mn, mode):
    """One-sided Jacobi's relative accuracy: for A = D B or B D with B well conditioned, every
    singular value, however small, to within n eps cond(B) relatively (Demmel and Veselic; right
    rotations are row-wise backward stable, so row scaling is covered too). The QR
    preconditioning keeps it only because the rows and columns are sorted first (a QR of rows
    growing downwards, unsorted, lost a factor 1e3 at 64x64; without the sorting 5 of these cases
    fail). gesdd, accurate only relative to s_max, exceeds the bound on 15 of the 24 cases, by up
    to 340 times; Jacobi stays below 0.6 of it. float32 against the float64 SVD of the same
    matrix, whose own relative error is ~1e-16 s_max / s_min <= 1e-10."""
    m, n = mn
    rng = mt.rng_for("jacobi-graded", m, n, mode)
    a64, b = _graded(mode, 16, m, n, 5.0, rng)
    a = a64.astype(np.float32)
    s = np.asarray(core.svd(a, algorithm="jacobi", compute_uv=False)[0]).astype(np.float64)
    s_ref = np.linalg.svd(a.astype(np.float64), compute_uv=False)
    eps = float(np.finfo(np.float32).eps)
    failures = []
    for i in range(a.shape[0]):
        bound = min(m, n) * float(np.linalg.cond(b[i])) * eps
        err = float(np.max(np.abs(s[i] - s_ref[i]) / s_ref[i]))
        if not err <= bound:
            failures.append(f"matrix {i}: max relative error {err:.3g} > {bound:.3g}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=["f32", "f64"])
def test_long_column_sums(core, dtype):
    """Sums over 200000 rows of equal terms: a column of 0.1's (its norm is its singular value,
    u its normalised self). One chain of rows / 4 additions drifts like rows / 4 eps (1500 eps in
    s and u before the sums were blocked); in blocks of kSumBlockRows = 1024 rows (jacobi.h) the
    worst case of the four sums is (1024 / 4 + rows / 1024 + 2) eps relatively, half of that in
    the square root, plus a few roundings for the scaling, alone and in a group of lanes."""
    rows = 200000
    eps = float(np.finfo(dtype).eps)
    bound = (0.5 * (1024 / 4 + rows / 1024 + 2) + 4) * eps
    value = float(dtype.type(0.1))
    exact_s = value * np.sqrt(rows)
    a = np.full((9, rows, 1), value, dtype=dtype)
    for lone_limit in (0, 9):
        s, u, v = jacobi(core, a, False, True, lone_limit=lone_limit)
        s_err = float(np.max(np.abs(s.astype(np.float64) - exact_s))) / exact_s
        u_err = float(np.max(np.abs(u.astype(np.float64) * np.sqrt(rows) - 1.0)))
        assert s_err <= bound, f"lone_limit {lone_limit}: s off by {s_err / eps:.1f} eps"
        assert u_err <= bound, f"lone_limit {lone_limit}: u off by {u_err / eps:.1f} eps"
        np.testing.assert_array_equal(v, np.ones_like(v))


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=["f32", "f64"])
def test_sorted_packing_equals_lone(core, dtype, isa):
    """Groups are packed and unpacked in SIMD blocks, rows and columns sorted as
    JacobiBatchSvd::PackGroup decides per lane (B's rows, or A's rows when wide, pick other rows of
    A; the other order moves values within A's rows); lone matrices element by element. Both must
    give the same bits for graded rows, graded columns, both, exact zero rows and columns and
    ungraded matrices side by side in one group, tall and wide, with fewer, as many and more
    columns than lanes, rows not a multiple of the lanes, and a short last group. Long thin
    groups with more columns than lanes (200x12 and 400x20 with AVX2, 400x20 with AVX-512) leave
    the kernels with their finished lanes' columns sorted (jacobi.h, JacobiSortColumns) and go out
    a vector of columns at a time, a last partial one included; lanes with a zero column keep
    their order and go out value by value."""
    if not core.jacobi_isa_available(isa):
        pytest.skip(f"this CPU does not run {isa}")
    lanes = core.jacobi_lanes(dtype)
    for m, n in ((200, 12), (12, 200), (100, 8), (8, 100), (40, 25), (25, 40), (90, 16),
                 (16, 90), (33, 5), (5, 33), (400, 20), (20, 400)):
        rng = mt.rng_for("sorted-packing", m, n, dtype.name, isa)
        parts = [_graded(mode, 3, m, n, 6.0, rng)[0]
                 for mode in ("row_descending", "row_ascending", "row_shuffled",
                              "column_shuffled")]
        both = _graded("row_shuffled", 3, m, n, 6.0, rng)[0]
        both *= 10.0 ** np.linspace(0.0, -6.0, n)[rng.permutation(n)]
        parts.append(both)
        zeros = rng.standard_normal((3, m, n))
        zeros[0, m // 3] = 0.0
        zeros[1, :, n // 2] = 0.0
        zeros[2, m - 1] = 0.0
        zeros[2, :, 0] = 0.0
        parts.append(zeros)
        parts.append(rng.standard_normal((lanes + 1, m, n)))
        a = np.concatenate(parts).astype(dtype)
        for full in (False, True):
            grouped = jacobi(core, a, full, isa=isa, lone_limit=0)
            lone = jacobi(core, a, full, isa=isa, lone_limit=a.shape[0])
            for name, x, y in zip("suv", lone, grouped):
                mt.assert_bitwise_equal(x, y, f"{m}x{n} full={full} {name}: lone vs groups")


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "s_only"])
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=["f32", "f64"])
@pytest.mark.parametrize("mn", [(30, 26), (26, 30), (48, 6), (6, 48), (200, 20)],
                         ids=lambda mn: f"{mn[0]}x{mn[1]}")
def test_zero_padding(core, mn, dtype, compute_uv):
    """Exact zero rows and columns, first, last and in between (padded batches): the QR leaves
    numerically zero columns alone, sorting moves zero rows and columns last, and columns of R^T
    that end up exactly zero are completed to an orthonormal basis (the kernel's deficient
    lanes). The ratios hold and the nonzero singular values are those of the unpadded block."""
    m, n = mn
    rng = mt.rng_for("jacobi-padding", m, n, dtype.name)
    rows = np.array([i for i in range(m) if i % 5 != 1 and i != m - 1])
    cols = np.array([j for j in range(n) if j % 4 != 0 and j != n - 2])
    block = mt.gaussian((6, rows.size, cols.size), False, rng).astype(dtype)
    block[3] = 0.0
    block[4, :, 1:] = block[4, :, :1] * rng.standard_normal(cols.size - 1)  # rank 1
    a = np.zeros((6, m, n), dtype)
    a[:, rows[:, None], cols[None, :]] = block
    for full in (False, True):
        s, u, v = jacobi(core, a, full, compute_uv)
        kinds = [f"padded {i}" for i in range(a.shape[0])]
        if compute_uv:
            assert not check_batch(a, s, u, v, kinds, full), check_batch(a, s, u, v, kinds, full)
        ulp = mt.eps(dtype)
        k = min(rows.size, cols.size)
        for i in range(a.shape[0]):
            s_block = np.linalg.svd(block[i].astype(np.float64), compute_uv=False)
            scale = max(float(s_block[0]), 1.0)
            assert np.all(np.abs(s[i][:k] - s_block) <= 4 * min(m, n) * ulp * scale), i
            assert np.all(s[i][k:] == 0.0), (i, s[i][k:])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(0, 3, 3), (2, 0, 3), (2, 3, 0), (0, 0)], ids=str)
def test_empty(core, shape, dtype):
    a = np.zeros(shape, dtype)
    for full in (False, True):
        s, u, v = jacobi(core, a, full)
        m, n = shape[-2:]
        es, eu, ev = mt.expected_shapes(shape[:-2], m, n, full)
        assert s.shape == es and u.shape == eu and v.shape == ev


# --------------------------------------------------------------------------------------------------
# backward: loops against BLAS

METHODS = ("stable", "exact", "lorentzian", "taylor")
# Loop path by default (svd_grad.cc): square up to 12 (real) / 5 (complex); min(m, n) <= 3 and
# max(m, n) <= 9 otherwise; with the loop limit raised, the runtime-size loops on everything else.
GRAD_SHAPES = ((1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (6, 3), (3, 6), (9, 2), (2, 9),
               (1, 5), (5, 1), (7, 7), (8, 8), (11, 11), (12, 12), (13, 13), (10, 4))


def _stand_in(x, method, s_max, tol, lorentz):
    """The method's stand-in for 1/x (Reciprocals::Gap in svd_grad.cc), in float64."""
    x = np.asarray(x, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "exact":
            return 1.0 / x
        if method == "lorentzian":
            if s_max == 0:
                return np.zeros_like(x)
            xs = x / s_max
            den = s_max * (xs * xs + lorentz)
            return np.where(den == 0, 0.0, xs / den)
        return np.where(np.abs(x) <= tol, 0.0, 1.0 / x)


def _taylor(si, sj, i, j, s_max, tol, order):
    li, lj = (si / s_max) ** 2, (sj / s_max) ** 2
    hi, lo = max(li, lj), min(li, lj)
    if hi <= (tol / s_max) ** 2:
        return 0.0
    total = sum((lo / hi) ** t for t in range(order + 1))
    value = total / hi / s_max / s_max
    return -value if (li > lj or (li == lj and i < j)) else value


def grad_formula(s, u, v, gs, gu, gv, full, vectors, method, dtype, absolute=False):
    """DESIGN.md section 3 in float64/complex128, as svd_grad.cc evaluates it. absolute=True
    evaluates |.| of every operand with additions for subtractions: the quantity that bounds the
    rounding error of any evaluation order (|fl(f) - f| <= gamma_N f_abs)."""
    m, n = u.shape[0], v.shape[0]
    k = min(m, n)
    ulp = mt.eps(dtype)
    a_ = np.abs if absolute else (lambda x: x)
    sub = (lambda x, y: x + y) if absolute else (lambda x, y: x - y)
    cj = (lambda x: x) if absolute else np.conj
    s = np.asarray(s, np.float64)
    u, v, gu, gv = (a_(mt.upcast(x)) for x in (u, v, gu, gv))
    u1, v1 = u[:, :k], v[:, :k]
    s_max = float(s[0])
    tol = 16.0 * ulp * max(m, n) * s_max
    inv = _stand_in(s, method, s_max, tol, 1e-12)
    if vectors:
        jm = cj(u1.T) @ gu[:, :k]
        km = cj(v1.T) @ gv[:, :k]
    gamma = np.zeros((k, k), np.complex128)
    for i in range(k):
        for j in range(k):
            if i == j:
                d = float(gs[i])
                if vectors and mt.is_complex(dtype):
                    d = d + 1j * abs(jm[i, i].imag) * abs(inv[i]) if absolute else (
                        d + 1j * jm[i, i].imag * inv[i])
                gamma[i, i] = abs(d) if absolute else d
            elif vectors:
                jh = sub(jm[i, j], cj(jm[j, i]))
                kh = sub(km[i, j], cj(km[j, i]))
                if method == "taylor":
                    t = _taylor(s[i], s[j], i, j, s_max, tol, 9)
                    val = (jh * s[j] + s[i] * kh) * (abs(t) if absolute else t)
                else:
                    g1 = _stand_in(s[j] - s[i], method, s_max, tol, 1e-12)
                    g2 = _stand_in(s[j] + s[i], method, s_max, tol, 1e-12)
                    if absolute:
                        val = 0.5 * (jh + kh) * abs(g1) + 0.5 * (jh + kh) * abs(g2)
                    else:
                        val = 0.5 * (jh + kh) * g1 + 0.5 * (jh - kh) * g2
                gamma[i, j] = val
    gamma = a_(gamma)
    inv = a_(inv)
    if m >= n:
        x = u1 @ gamma
        if vectors and m > k:
            w = sub(gu[:, :k], u1 @ jm)
            if u.shape[1] > k:
                w = sub(w, u[:, k:] @ (cj(gu[:, k:].T) @ u1))
            x = x + w * inv[None, :]
        return x @ cj(v1.T)
    y = gamma @ cj(v1.T)
    if vectors:
        w = sub(gv[:, :k], v1 @ km)
        if v.shape[1] > k:
            w = sub(w, v[:, k:] @ (cj(gv[:, k:].T) @ v1))
        y = y + inv[:, None] * cj(w.T)
    return u1 @ y


def _grad_case(core, m, n, dtype, full, rng):
    k = min(m, n)
    spectrum = np.linspace(3.0, 1.0, k) if k > 1 else np.ones(1)
    a = mt.from_spectrum(spectrum, m, n, mt.is_complex(dtype), rng).astype(dtype)
    s, u, v = core.svd(a, full_matrices=full)
    gs = rng.standard_normal(s.shape).astype(s.dtype)
    gu = mt.gaussian(u.shape, mt.is_complex(dtype), rng).astype(dtype)
    gv = mt.gaussian(v.shape, mt.is_complex(dtype), rng).astype(dtype)
    return s, u, v, gs, gu, gv


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_grad_loops_match_blas(core, dtype, method):
    rng = mt.rng_for("grad-loops", dtype.name, method)
    failures = []
    for limit in (-1, 1000):  # the default rules, then loops for every size up to 32
        for m, n in GRAD_SHAPES:
            for full in (False, True):
                for vectors in (True, False):
                    s, u, v, gs, gu, gv = _grad_case(core, m, n, dtype, full, rng)

                    def grad(loop_limit):
                        return mt.upcast(core.svd_grad(s, u, v, gs, gu, gv, full_matrices=full,
                                                       compute_uv=vectors, grad_method=method,
                                                       loop_limit=loop_limit))

                    loops = grad(limit)
                    blas = grad(0)
                    # Each is within gamma_N * f_abs of the exact value of the same formula on
                    # the same inputs, N = the longest chain of roundings (sums over max(m, n)
                    # and k terms, a few elementwise steps; complex products count 2).
                    bound = grad_formula(s, u, v, gs, gu, gv, full, vectors, method, dtype,
                                         absolute=True)
                    steps = max(m, n) + 2 * min(m, n) + 12
                    if mt.is_complex(dtype):
                        steps *= 2
                    tol = 2 * steps * mt.eps(dtype) * np.abs(bound)
                    err = np.abs(loops - blas)
                    if not np.all(err <= tol):
                        worst = float(np.max(err / np.maximum(tol, 1e-300)))
                        failures.append(f"{m}x{n} full={full} vectors={vectors} limit={limit}: "
                                        f"|loops - blas| up to {worst:.2f} x the bound")
    assert not failures, "\n".join(failures)


THIN_ISAS = ("sse2", "avx2", "avx512")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("isa", THIN_ISAS)
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=["float32", "float64"])
def test_grad_thin_products(core, dtype, isa, method):
    """The thin products of each instruction set (thin_grad.h: real, non-square, min(m, n) up
    to the set's limit, the long factor thin), tall and wide, every k they take, with vectors
    and values only, against the float64 formula."""
    max_k = core.thin_grad_max_k(dtype, isa)
    if max_k == 0:
        pytest.skip(f"this CPU does not run {isa}")
    rng = mt.rng_for("grad-thin", dtype.name, isa, method)
    failures = []
    # 1 .. 4: the short-row path (whole blocks and the rows after them) where a row is shorter
    # than a vector, from 128 rows on for 4 (thin_grad.h, ThinShortRows).
    for k in sorted({1, 2, 3, 4, max_k // 2 + 1, max_k - 1, max_k} - {0}):
        for long_side in (k + 1, 3 * k + 5, 70, 150):
            # Thin factors only: full_matrices makes the long factor square (the BLAS path).
            for m, n in ((long_side, k), (k, long_side)):
                for vectors in (True, False):
                    s, u, v, gs, gu, gv = _grad_case(core, m, n, dtype, False, rng)
                    got = mt.upcast(core.svd_grad(s, u, v, gs, gu, gv, compute_uv=vectors,
                                                  grad_method=method, thin_isa=isa))
                    want = grad_formula(s, u, v, gs, gu, gv, False, vectors, method, dtype)
                    bound = grad_formula(s, u, v, gs, gu, gv, False, vectors, method, dtype,
                                         absolute=True)
                    # As in test_grad_loops_match_blas: the longest chain of roundings.
                    steps = max(m, n) + 2 * min(m, n) + 12
                    tol = steps * mt.eps(dtype) * np.abs(bound)
                    err = np.abs(got - want)
                    if not np.all(err <= tol):
                        worst = float(np.max(err / np.maximum(tol, 1e-300)))
                        failures.append(f"{m}x{n} vectors={vectors}: error up to "
                                        f"{worst:.2f} x the bound")
    assert not failures, "\n".join(failures)


def test_grad_thin_isa_is_checked(core):
    s, u, v = core.svd(np.eye(20, 4, dtype=np.float32))
    with pytest.raises(ValueError, match="thin_isa"):
        core.svd_grad(s, u, v, s, u, v, thin_isa="avx9000")


@pytest.mark.parametrize("dtype", [np.dtype(np.float64), np.dtype(np.complex128)], ids=["float64", "complex128"])
def test_grad_formula_reference(core, dtype):
    """The float64 reference above is the kernel's formula (so its absolute form is the right
    bound): it matches the loop path to rounding."""
    rng = mt.rng_for("grad-formula", dtype.name)
    for m, n in ((3, 3), (6, 3), (3, 6), (5, 5)):
        for full in (False, True):
            s, u, v, gs, gu, gv = _grad_case(core, m, n, dtype, full, rng)
            got = mt.upcast(core.svd_grad(s, u, v, gs, gu, gv, full_matrices=full))
            want = grad_formula(s, u, v, gs, gu, gv, full, True, "stable", dtype)
            bound = grad_formula(s, u, v, gs, gu, gv, full, True, "stable", dtype, absolute=True)
            steps = 2 * (max(m, n) + 2 * min(m, n) + 12)
            assert np.all(np.abs(got - want) <= 2 * steps * mt.eps(dtype) * np.abs(bound)), (m, n, full)
