"""Forward accuracy and drop-in behaviour of ``tfsvd.svd`` against ``tf.linalg.svd``.

Ratios are LAPACK's (tests/matrix_types.py, DESIGN.md section 6), all below 35. The worst ratio per
dtype is printed at the end of the run (tests/tf/conftest.py).
"""


import numpy as np
import pytest
import tensorflow as tf

import matrix_types as mt

import tfsvd

THRESHOLD = mt.THRESHOLD
SHAPES = ((1, 1), (2, 2), (3, 3), (5, 3), (3, 5), (16, 16), (40, 25), (25, 40), (70, 70))
NATIVE = mt.NATIVE_DTYPES
HALF = mt.HALF_DTYPES
ALL_DTYPES = NATIVE + HALF
INVALID = (ValueError, TypeError, tf.errors.InvalidArgumentError)


def ids(dtypes):
    return [np.dtype(d).name for d in dtypes]


def tf_dtype(dtype):
    return tf.as_dtype(np.dtype(dtype))


def to_numpy(x):
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def run_svd(a, full_matrices=False, compute_uv=True):
    out = tfsvd.svd(tf.constant(a), full_matrices=full_matrices, compute_uv=compute_uv)
    if not compute_uv:
        return to_numpy(out)
    s, u, v = out
    return to_numpy(s), to_numpy(u), to_numpy(v)


# --------------------------------------------------------------------------------------------------
# accuracy on LAPACK's matrix types


@pytest.mark.parametrize("kind", mt.MATRIX_TYPES)
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ids(ALL_DTYPES))
def test_ratios(dtype, full_matrices, kind, ratio_recorder):
    """All four ratios below 35 with ulp = eps(dtype). For float16/bfloat16 (computed in float32,
    returned in the input dtype) ulp is the half type's eps: rounding the float32 result to the
    output dtype is the dominant error, and it keeps every ratio O(1)."""
    ulp = mt.eps(dtype)
    failures = []
    for m, n in SHAPES:
        a, s_ref = mt.case(kind, m, n, dtype)
        s, u, v = run_svd(a, full_matrices)
        problems = mt.output_problems(a, s, u, v, full_matrices)
        if problems:
            failures.append(f"{m}x{n}: {problems}")
            continue
        problems = mt.check_singular_values(s)
        ratios = mt.svd_ratios(a, s, u, v, ulp=ulp, s_ref=s_ref)
        ratio_recorder.record(np.dtype(dtype).name, ratios, f"{kind} {m}x{n} {'full' if full_matrices else 'thin'}")
        if problems or mt.worst(ratios) > THRESHOLD:
            failures.append(f"{m}x{n}: {mt.format_ratios(ratios)} {problems}")
    assert not failures, f"{kind} {np.dtype(dtype).name} full={full_matrices}:\n" + "\n".join(failures)


@pytest.mark.parametrize("dtype", HALF, ids=ids(HALF))
def test_half_is_float32_rounded(dtype):
    """float16/bfloat16 are computed in float32: the result is the float32 result on the same
    (exactly upcast) input, rounded to the half type, so each entry is within half an ulp of the
    half type (we allow one ulp times the array's largest entry, which also covers subnormals)."""
    ulp = mt.eps(dtype)
    failures = []
    # Types with well separated singular values, so that the singular vectors are well defined.
    for kind in ("random", "evenly_spaced", "geometric", "overflow", "underflow"):
        for m, n in ((3, 3), (6, 4), (4, 6), (25, 40)):
            a, _ = mt.case(kind, m, n, dtype)
            half = run_svd(a, True)
            single = run_svd(a.astype(np.float32), True)
            for name, x, y in zip("suv", half, single):
                x = mt.upcast(x)
                y = mt.upcast(y)
                tol = ulp * float(np.max(np.abs(y)))
                err = float(np.max(np.abs(x - y))) if x.size else 0.0
                if not err <= tol:
                    failures.append(f"{kind} {m}x{n} {name}: |half - float32| = {err:.3g} > {tol:.3g}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", NATIVE, ids=ids(NATIVE))
def test_repeated_singular_values_70x70(dtype, ratio_recorder):
    """DESIGN section 6: tf.linalg.svd exceeds 200 on 70x70 matrices with repeated singular values;
    tfsvd must stay below 10 ("typically below 10"). tf.linalg.svd is measured for the table only."""
    failures = []
    for kind in ("repeated_all", "repeated_few"):
        for seed in range(6):
            rng = mt.rng_for("repeated70", kind, seed, dtype.name)
            a = mt.make_matrix(kind, 70, 70, dtype, rng)
            s_ref = mt.reference_singular_values(a)
            s, u, v = run_svd(a)
            ratios = mt.svd_ratios(a, s, u, v, s_ref=s_ref)
            ratio_recorder.record(dtype.name, ratios, f"{kind} 70x70 seed {seed}", "tfsvd.svd, 70x70 repeated")
            if mt.worst(ratios) > 10:
                failures.append(f"{kind} seed {seed}: {mt.format_ratios(ratios)}")
            ts, tu, tv = (x.numpy() for x in tf.linalg.svd(a))
            ratio_recorder.record(
                dtype.name,
                mt.svd_ratios(a, ts, tu, tv, s_ref=s_ref),
                f"{kind} 70x70 seed {seed}",
                "tf.linalg.svd, 70x70 repeated",
            )
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ids(ALL_DTYPES))
def test_canonical_signs(dtype, full_matrices):
    ulp = mt.eps(dtype)
    failures = []
    for kind in mt.MATRIX_TYPES:
        for m, n in ((1, 1), (3, 3), (5, 3), (3, 5), (16, 16), (25, 40)):
            a, _ = mt.case(kind, m, n, dtype)
            s, u, v = run_svd(a, full_matrices)
            problems = mt.check_canonical_signs(u, v, ulp)
            if problems:
                failures.append(f"{kind} {m}x{n}: {problems[:3]}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ids(ALL_DTYPES))
def test_compute_uv_false_returns_s_only(dtype):
    ulp = mt.eps(dtype)
    for kind in ("random", "geometric", "overflow", "underflow", "zero"):
        for m, n in ((1, 1), (4, 4), (6, 3), (3, 6), (40, 25)):
            a, s_ref = mt.case(kind, m, n, dtype)
            out = tfsvd.svd(tf.constant(a), compute_uv=False)
            assert isinstance(out, tf.Tensor), type(out)
            s = out.numpy()
            assert not mt.output_problems(a, s, None, None, False, compute_uv=False), mt.output_problems(
                a, s, None, None, False, compute_uv=False
            )
            assert not mt.check_singular_values(s)
            r = mt.sval_ratio(s, s_ref, ulp)
            assert r <= THRESHOLD, (kind, m, n, r)


@pytest.mark.parametrize("dtype", NATIVE, ids=ids(NATIVE))
def test_deterministic(dtype):
    """Bit-identical run to run (DESIGN section 1)."""
    a = tf.constant(mt.make_batch(["random", "repeated_few", "clustered", "geometric"], 20, 12, dtype, seed=3))
    first = [x.numpy() for x in tfsvd.svd(a, full_matrices=True)]
    for _ in range(2):
        again = [x.numpy() for x in tfsvd.svd(a, full_matrices=True)]
        for x, y in zip(first, again):
            assert np.array_equal(x, y)


# --------------------------------------------------------------------------------------------------
# drop-in for tf.linalg.svd


GRID_SHAPES = [(1, 1), (3, 3), (4, 2), (2, 4), (2, 5, 3), (3, 2, 3, 4), (1, 6, 1), (1, 1, 7)]


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "s_only"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", NATIVE, ids=ids(NATIVE))
@pytest.mark.parametrize("shape", GRID_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_drop_in_matches_tf_linalg_svd(shape, dtype, full_matrices, compute_uv):
    """Same structure, shapes and dtypes as tf.linalg.svd; s agrees (both within 35 of LAPACK, so
    within 2 * 35 of each other); u diag(s) v^H reconstructs."""
    m, n = shape[-2:]
    k = min(m, n)
    ulp = mt.eps(dtype)
    count = int(np.prod(shape[:-2], dtype=np.int64))
    a = mt.make_batch(["random"] * count, m, n, dtype, seed=5).reshape(shape)
    ours = tfsvd.svd(tf.constant(a), full_matrices=full_matrices, compute_uv=compute_uv)
    ref = tf.linalg.svd(tf.constant(a), full_matrices=full_matrices, compute_uv=compute_uv)
    if not compute_uv:
        assert isinstance(ours, tf.Tensor)
        ours, ref = (ours,), (ref,)
    else:
        assert isinstance(ours, (tuple, list)) and len(ours) == 3
    for x, y in zip(ours, ref):
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, x.dtype, y.shape, y.dtype)
    s, s_tf = ours[0].numpy(), ref[0].numpy()
    for idx in np.ndindex(*shape[:-2]):
        smax = float(np.max(s_tf[idx]))
        diff = float(np.max(np.abs(mt.upcast(s[idx]) - mt.upcast(s_tf[idx]))))
        assert diff <= 2 * THRESHOLD * k * ulp * smax, (idx, diff)
        if compute_uv:
            r = mt.svd_ratios(a[idx], s[idx], ours[1].numpy()[idx], ours[2].numpy()[idx])
            assert mt.worst(r) <= THRESHOLD, (idx, r)


def test_accepts_numpy_and_python_input():
    a = mt.make_matrix("random", 5, 3, np.float64)
    s, u, v = tfsvd.svd(a)
    assert s.dtype == tf.float64 and u.shape == (5, 3)
    assert mt.worst(mt.svd_ratios(a, s.numpy(), u.numpy(), v.numpy())) <= THRESHOLD
    s = tfsvd.svd([[3.0, 0.0], [0.0, 4.0]], compute_uv=False)
    assert s.dtype == tf.float32
    assert mt.sval_ratio(s.numpy(), [4.0, 3.0], mt.eps(np.float32)) <= THRESHOLD


def test_name_argument():
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def f(x):
        return tfsvd.svd(x, name="my_svd")

    graph = f.get_concrete_function().graph
    names = [op.name for op in graph.get_operations()]
    assert any(name.startswith("my_svd") for name in names), names
    s, u, v = tfsvd.svd(tf.eye(3), name="eager_name")
    np.testing.assert_array_equal(s.numpy(), [1.0, 1.0, 1.0])


# --------------------------------------------------------------------------------------------------
# tf.function with partly or fully unknown shapes


def _static_shapes(fn, spec):
    out = fn.get_concrete_function(spec).structured_outputs
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.shape for o in out]


SPECS = {
    "matrix_unknown_dims": tf.TensorSpec([None, None], tf.float32),
    "unknown_rank": tf.TensorSpec(None, tf.float32),
    "batch_unknown_4x3": tf.TensorSpec([None, None, 4, 3], tf.float32),
}
SPEC_INPUTS = {
    "matrix_unknown_dims": [(5, 3), (3, 5), (4, 4), (1, 6)],
    "unknown_rank": [(5, 3), (2, 3, 4), (2, 1, 3, 3), (0, 2, 2)],
    "batch_unknown_4x3": [(2, 3, 4, 3), (1, 1, 4, 3), (0, 2, 4, 3)],
}


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "s_only"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_tf_function_input_signature(spec_name, full_matrices, compute_uv):
    spec = SPECS[spec_name]

    @tf.function(input_signature=[spec])
    def ours(x):
        return tfsvd.svd(x, full_matrices=full_matrices, compute_uv=compute_uv)

    @tf.function(input_signature=[spec])
    def ref(x):
        return tf.linalg.svd(x, full_matrices=full_matrices, compute_uv=compute_uv)

    # Static shapes: as informative as tf.linalg.svd's shape function.
    for x, y in zip(_static_shapes(ours, spec), _static_shapes(ref, spec)):
        if y.rank is None:
            assert x.is_compatible_with(y), (x, y)
        else:
            assert x.rank == y.rank and x.as_list() == y.as_list(), (x, y)

    for shape in SPEC_INPUTS[spec_name]:
        m, n = shape[-2:]
        count = int(np.prod(shape[:-2], dtype=np.int64))
        a = mt.make_batch(["random"] * count, m, n, np.float32, seed=6).reshape(shape)
        out = ours(tf.constant(a))
        if not compute_uv:
            s = out.numpy()
            es, _, _ = mt.expected_shapes(shape[:-2], m, n, full_matrices, False)
            assert s.shape == es
            for idx in np.ndindex(*shape[:-2]):
                assert mt.sval_ratio(s[idx], mt.reference_singular_values(a[idx]), mt.eps(np.float32)) <= THRESHOLD
            continue
        s, u, v = (o.numpy() for o in out)
        assert not mt.output_problems(a, s, u, v, full_matrices), mt.output_problems(a, s, u, v, full_matrices)
        for idx in np.ndindex(*shape[:-2]):
            r = mt.svd_ratios(a[idx], s[idx], u[idx], v[idx])
            assert mt.worst(r) <= THRESHOLD, (shape, idx, r)


def test_tf_function_unknown_rank_rejects_vector_at_run_time():
    @tf.function(input_signature=[tf.TensorSpec(None, tf.float32)])
    def f(x):
        return tfsvd.svd(x)

    with pytest.raises(INVALID, match=r"(?i)rank|dimension|matri"):
        f(tf.constant([1.0, 2.0, 3.0]))


# --------------------------------------------------------------------------------------------------
# batches, empty batches, 0-sized matrices


BATCH_SHAPES = [(2, 3, 4, 5, 3), (3, 1, 2, 4, 6), (2, 2, 2, 9, 9)]


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ids(ALL_DTYPES))
@pytest.mark.parametrize("shape", BATCH_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_batch_several_dims(shape, dtype, full_matrices):
    """Several batch dims, every matrix type mixed in one batch (each on its own scale)."""
    m, n = shape[-2:]
    count = int(np.prod(shape[:-2], dtype=np.int64))
    kinds = [mt.MATRIX_TYPES[i % len(mt.MATRIX_TYPES)] for i in range(count)]
    flat = mt.make_batch(kinds, m, n, dtype, seed=7)
    a = flat.reshape(shape)
    s, u, v = run_svd(a, full_matrices)
    assert not mt.output_problems(a, s, u, v, full_matrices), mt.output_problems(a, s, u, v, full_matrices)
    ulp = mt.eps(dtype)
    failures = []
    for i, idx in enumerate(np.ndindex(*shape[:-2])):
        r = mt.svd_ratios(flat[i], s[idx], u[idx], v[idx], ulp=ulp)
        problems = mt.check_singular_values(s[idx]) + mt.check_canonical_signs(u[idx], v[idx], ulp)
        if problems or mt.worst(r) > THRESHOLD:
            failures.append(f"{idx} {kinds[i]}: {mt.format_ratios(r)} {problems[:3]}")
    assert not failures, "\n".join(failures)


EMPTY_SHAPES = [(0, 3, 3), (2, 0, 3), (2, 3, 0), (0, 0), (4, 0), (0, 5), (2, 0, 0, 0)]


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "s_only"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ids(ALL_DTYPES))
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_empty_and_zero_sized(shape, dtype, full_matrices, compute_uv):
    a = np.zeros(shape, dtype)
    out = tfsvd.svd(tf.constant(a), full_matrices=full_matrices, compute_uv=compute_uv)
    if not compute_uv:
        assert isinstance(out, tf.Tensor)
        assert not mt.output_problems(a, out.numpy(), None, None, full_matrices, False)
        return
    s, u, v = (x.numpy() for x in out)
    assert not mt.output_problems(a, s, u, v, full_matrices), mt.output_problems(a, s, u, v, full_matrices)
    if full_matrices:
        # As tf.linalg.svd: the full factors of a 0-sized matrix are identities.
        m, n = shape[-2:]
        np.testing.assert_array_equal(mt.upcast(u), np.broadcast_to(np.eye(m), u.shape))
        np.testing.assert_array_equal(mt.upcast(v), np.broadcast_to(np.eye(n), v.shape))
    if np.dtype(dtype) in NATIVE:
        ref = [x.numpy() for x in tf.linalg.svd(tf.constant(a), full_matrices=full_matrices)]
        for x, y in zip((s, u, v), ref):
            assert x.shape == y.shape
            np.testing.assert_array_equal(x, y)


# --------------------------------------------------------------------------------------------------
# non-finite input


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "s_only"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=ids(ALL_DTYPES))
@pytest.mark.parametrize("mn", [(1, 1), (4, 3), (3, 4), (30, 30)], ids=lambda mn: f"{mn[0]}x{mn[1]}")
def test_nonfinite_isolation(mn, dtype, full_matrices, compute_uv):
    """Matrices holding NaN/Inf give all-NaN s, u, v; the others in the batch are untouched.
    Batch [2, 3]: positions (0, 1) NaN, (1, 0) +Inf, (1, 2) -Inf (complex: NaN imaginary part)."""
    m, n = mn
    kinds = ["random", "geometric", "overflow", "random", "identity", "underflow"]
    clean = mt.make_batch(kinds, m, n, dtype, seed=8)
    a = np.array(clean)
    a[1, m // 2, n - 1] = np.nan
    a[3, 0, 0] = np.inf
    if mt.is_complex(dtype):
        a[5, m - 1, n // 2] = complex(0.5, np.nan)
    else:
        a[5, m - 1, n // 2] = -np.inf
    bad, good = [1, 3, 5], [0, 2, 4]
    out = tfsvd.svd(tf.constant(a.reshape(2, 3, m, n)), full_matrices=full_matrices, compute_uv=compute_uv)
    outs = [out] if not compute_uv else list(out)
    outs = [x.numpy().reshape((6,) + tuple(x.shape[2:])) for x in outs]
    for i in bad:
        for x in outs:
            assert np.all(np.isnan(mt.upcast(x[i]))), (i, x[i])
    ulp = mt.eps(dtype)
    for i in good:
        if compute_uv:
            r = mt.svd_ratios(clean[i], outs[0][i], outs[1][i], outs[2][i], ulp=ulp)
        else:
            r = mt.svd_ratios(clean[i], outs[0][i], ulp=ulp)
        assert mt.worst(r) <= THRESHOLD, (i, kinds[i], r)


# --------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("value", [[1.0, 2.0, 3.0], 4.0], ids=["rank1", "rank0"])
def test_rank_below_two_is_rejected(value):
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError), match=r"(?i)rank|dimension|matri"):
        tfsvd.svd(tf.constant(value))


@pytest.mark.parametrize(
    "value, pattern",
    [
        (tf.constant([[1, 2], [3, 4]], tf.int32), r"(?i)int32|int|dtype|type"),
        (tf.constant([[1, 2], [3, 4]], tf.int64), r"(?i)int64|int|dtype|type"),
        (tf.constant([[True, False], [False, True]]), r"(?i)bool|dtype|type"),
        (tf.constant([["a", "b"], ["c", "d"]]), r"(?i)string|dtype|type"),
    ],
    ids=["int32", "int64", "bool", "string"],
)
def test_unsupported_dtype_is_rejected(value, pattern):
    with pytest.raises(INVALID, match=pattern):
        tfsvd.svd(value)
