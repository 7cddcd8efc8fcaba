"""Reliability of the framework-free core (issue 7), through the pybind11 module, without
TensorFlow: an op that runs millions of times on data nobody looked at must never crash, hang,
leak or silently return a wrong number.

Covered here (tests/tf/test_reliability.py covers the same ground through the TF ops):
- bad arguments raise ValueError/TypeError naming the offending argument;
- non-finite input: NaN/+Inf/-Inf matrices get NaN outputs and NaN gradients, every other matrix
  of the batch is bit-identical to the same matrix computed alone, forward and backward;
- extreme scales: LAPACK ratios at 1e+-30 (single) and 1e+-300 (double); the backward kernel is
  homogeneous in s exactly as the math says (see test_gradient_homogeneity);
- determinism: bit-identical results run to run, alone or anywhere inside batches of any size,
  and for strided (non-contiguous) views;
- concurrency: 8 Python threads in the core at once (the module releases the GIL);
- memory: resident set size flat over thousands of calls;
- tests/sanitize/run_asan.sh (ASan + UBSan build of the core) runs when TFSVD_RUN_ASAN=1.

Every comparison that the contract says is exact is bitwise (bytes of the arrays), so a -0.0
against 0.0 or a one-ulp difference fails.
"""

import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import matrix_types as mt  # noqa: E402
from rss import rss_growth  # noqa: E402

DTYPES = mt.NATIVE_DTYPES
DTYPE_IDS = [d.name for d in DTYPES]
TESTS_DIR = pathlib.Path(__file__).resolve().parents[1]


ALGORITHMS = ("auto", "gesdd", "gesvd", "jacobi", "parallel_gesdd", "gram")


def cotangents(a, full_matrices, compute_uv, seed):
    """Random cotangents (gs, gu, gv) shaped like svd(a)'s outputs, the same for a matrix
    whatever batch it sits in (drawn per matrix from `seed` and its index)."""
    batch = a.shape[:-2]
    m, n = a.shape[-2:]
    k = min(m, n)
    uc, vc = (m, n) if full_matrices else (k, k)
    real = mt.real_dtype(a.dtype)
    count = int(np.prod(batch, dtype=np.int64))
    gs = np.empty((count, k), real)
    gu = np.empty((count, m, uc if compute_uv else 0), a.dtype)
    gv = np.empty((count, n, vc if compute_uv else 0), a.dtype)
    for i in range(count):
        rng = mt.rng_for("cotangent", seed, i)
        gs[i] = rng.standard_normal(k)
        if compute_uv:
            gu[i] = mt.random_like((m, uc), a.dtype, rng)
            gv[i] = mt.random_like((n, vc), a.dtype, rng)
    return gs.reshape(batch + (k,)), gu.reshape(batch + gu.shape[1:]), gv.reshape(batch + gv.shape[1:])


def svd_and_grad(core, a, full_matrices, compute_uv, algorithm, cot):
    """Forward outputs and the backward kernel's gradient for cotangents `cot`. Values-only
    gradients take the thin vectors (what the TF op keeps for them)."""
    s, u, v = core.svd(a, full_matrices=full_matrices, compute_uv=compute_uv, algorithm=algorithm)
    gs, gu, gv = cot
    if compute_uv:
        ga = core.svd_grad(s, u, v, gs, gu, gv, full_matrices=full_matrices, compute_uv=True)
    else:
        _, ut, vt = core.svd(a, full_matrices=False, compute_uv=True, algorithm=algorithm)
        ga = core.svd_grad(s, ut, vt, gs, gu, gv, full_matrices=False, compute_uv=False)
    return s, u, v, ga


# --------------------------------------------------------------------------------------------------
# 1. bad arguments


@pytest.mark.parametrize("shape", [(), (3,)], ids=["scalar", "vector"])
def test_rank_below_two(core, shape):
    with pytest.raises(ValueError, match="rank"):
        core.svd(np.ones(shape))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.float16, np.object_])
def test_unsupported_dtype(core, dtype):
    with pytest.raises(TypeError, match="dtype"):
        core.svd(np.ones((2, 2), dtype))


def test_unknown_algorithm(core):
    with pytest.raises(ValueError, match="algorithm 'magic'"):
        core.svd(np.eye(2), algorithm="magic")


def _grad_args(core, shape=(2, 4, 3), full_matrices=False):
    a = mt.random_like(shape, np.float64, np.random.default_rng(0))
    s, u, v = core.svd(a, full_matrices=full_matrices)
    return dict(s=s, u=u, v=v, grad_s=np.ones_like(s), grad_u=np.ones_like(u),
                grad_v=np.ones_like(v), full_matrices=full_matrices, compute_uv=True)


GRAD_SHAPE_ERRORS = {
    # name: (how to break the arguments, the name the message must give)
    "wrong_k_in_s": (lambda d: d.update(s=d["s"][..., :2]), "s"),
    "wrong_k_in_grad_s": (lambda d: d.update(grad_s=d["grad_s"][..., :2]), "grad_s"),
    "wrong_batch_in_s": (lambda d: d.update(s=d["s"][:1]), "s"),
    "wrong_batch_in_v": (lambda d: d.update(v=d["v"][:1]), "v"),
    "wrong_batch_in_grad_u": (lambda d: d.update(grad_u=d["grad_u"][:1]), "grad_u"),
    "grad_u_columns": (lambda d: d.update(grad_u=d["grad_u"][..., :2]), "grad_u"),
    "grad_v_rows": (lambda d: d.update(grad_v=d["grad_v"][:, :2]), "grad_v"),
    "thin_factors_with_full_matrices": (lambda d: d.update(full_matrices=True), "u"),
}


@pytest.mark.parametrize("case", list(GRAD_SHAPE_ERRORS))
def test_svd_grad_inconsistent_shapes_name_the_input(core, case):
    args = _grad_args(core)
    breaker, name = GRAD_SHAPE_ERRORS[case]
    breaker(args)
    with pytest.raises(ValueError) as info:
        core.svd_grad(**args)
    assert str(info.value).endswith(f"shape of {name}"), str(info.value)


def test_svd_grad_rank_mismatch(core):
    args = _grad_args(core)
    args["s"] = args["s"][0]
    with pytest.raises(ValueError, match=r"s \[\.\.\., K\]"):
        core.svd_grad(**args)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"grad_method": "fast"}, "grad_method 'fast'"),
    ({"grad_order": -1}, "grad_order"),
    ({"grad_eps": float("nan")}, "grad_eps"),
], ids=["method", "order", "eps_nan"])
def test_svd_grad_bad_options(core, kwargs, pattern):
    args = _grad_args(core)
    with pytest.raises(ValueError, match=pattern):
        core.svd_grad(**args, **kwargs)


# --------------------------------------------------------------------------------------------------
# 2. non-finite input: isolated per matrix, forward and backward, bit for bit

# Positions 1, 3, 4, 6 are poisoned; 0, 2, 5, 7 are clean and of different types.
CLEAN_KINDS = ["random", "geometric", "random", "repeated_few", "random", "overflow", "identity",
               "underflow"]
BAD = (1, 3, 4, 6)
GOOD = (0, 2, 5, 7)


def poisoned_batch(m, n, dtype, seed=0):
    a = mt.make_batch(CLEAN_KINDS, m, n, dtype, seed=seed)
    a[1, 0, 0] = np.nan
    a[3, m - 1, n - 1] = np.inf
    a[4, m // 2, n // 2] = -np.inf
    if mt.is_complex(dtype):
        a[6, m - 1, 0] = complex(0.5, np.nan)  # NaN hiding in an imaginary part
        a[4, 0, n - 1] = complex(np.inf, -np.inf)
    else:
        a[6] = np.nan  # all NaN
    return a


@pytest.mark.parametrize("compute_uv", [True, False], ids=["uv", "values"])
@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nonfinite_isolated_bitwise(core, algorithm, dtype, full_matrices, compute_uv):
    failures = []
    for m, n in ((1, 1), (2, 2), (3, 3), (4, 3), (3, 5), (20, 12)):
        a = poisoned_batch(m, n, dtype)
        cot = cotangents(a, full_matrices, compute_uv, seed=(m, n))
        s, u, v, ga = svd_and_grad(core, a, full_matrices, compute_uv, algorithm, cot)
        for i in BAD:
            outs = (s[i], u[i], v[i], ga[i]) if compute_uv else (s[i], ga[i])
            if not all(np.all(np.isnan(x)) for x in outs):
                failures.append(f"{m}x{n} [{i}] poisoned: outputs not all NaN")
        for i in GOOD:
            alone_cot = tuple(x[i:i + 1] for x in cot)
            alone = svd_and_grad(core, a[i:i + 1], full_matrices, compute_uv, algorithm, alone_cot)
            for name, x, y in zip(("s", "u", "v", "grad"), (s, u, v, ga), alone):
                if not np.all(np.isfinite(x[i])):
                    failures.append(f"{m}x{n} [{i}] clean: {name} not finite")
                elif x[i].tobytes() != y[0].tobytes():
                    failures.append(f"{m}x{n} [{i}] clean: {name} differs from the matrix alone")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_nonfinite_cotangent_isolated(core, dtype):
    """A NaN/Inf cotangent for one matrix (a loss that blew up there) spoils only that matrix'
    gradient."""
    a = mt.make_batch(["random"] * 4, 5, 3, dtype, seed=5)
    cot = cotangents(a, False, True, seed=5)
    s, u, v, clean = svd_and_grad(core, a, False, True, "auto", cot)
    gs, gu, gv = (x.copy() for x in cot)
    gs[1, 0] = np.nan
    gu[2, 4, 2] = np.inf
    ga = core.svd_grad(s, u, v, gs, gu, gv, full_matrices=False, compute_uv=True)
    for i in (0, 3):
        mt.assert_bitwise_equal(ga[i], clean[i], f"gradient of clean matrix {i}")
    for i in (1, 2):
        assert not np.all(np.isfinite(ga[i])), f"matrix {i}: non-finite cotangent vanished"


# --------------------------------------------------------------------------------------------------
# 3. extreme scales

SCALES = {
    np.dtype(np.float32): (1e30, 1e-30),
    np.dtype(np.complex64): (1e30, 1e-30),
    np.dtype(np.float64): (1e300, 1e-300),
    np.dtype(np.complex128): (1e300, 1e-300),
}


@pytest.mark.parametrize("full_matrices", [False, True], ids=["thin", "full"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_extreme_scale_ratios(core, algorithm, dtype, full_matrices):
    failures = []
    for scale in SCALES[dtype]:
        for kind in ("random", "evenly_spaced", "geometric", "repeated_few", "rank1"):
            for m, n in ((2, 2), (3, 3), (6, 4), (4, 6), (17, 17)):
                wide = mt.make_matrix_wide(kind, m, n, dtype, mt.rng_for("scale", kind, m, n))
                a = (wide * scale).astype(dtype)
                s, u, v = core.svd(a, full_matrices=full_matrices, algorithm=algorithm)
                problems = mt.check_singular_values(s)
                problems += mt.check_canonical_signs(u, v, mt.eps(dtype))
                ratios = mt.svd_ratios(a, s, u, v)
                if problems or mt.worst(ratios) > mt.THRESHOLD:
                    failures.append(f"{kind} {m}x{n} x{scale:g}: {mt.format_ratios(ratios)} "
                                    f"{problems[:2]}")
    assert not failures, "\n".join(failures)


# Every method computes in units of s_max, so scaling A by c scales the gradient exactly.
HOMOGENEOUS_METHODS = ("stable", "exact", "lorentzian", "taylor")


@pytest.mark.parametrize("method", HOMOGENEOUS_METHODS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_gradient_homogeneity(core, dtype, method):
    """The backward kernel at (c s, U, V) against (s, U, V). With Gamma as in DESIGN.md section 3,
    the part driven by grad_s is U diag(gs) V^H, independent of c, and every term driven by
    grad_u/grad_v divides by singular values once (1/(s_j -+ s_i), 1/s_i, and for every method
    the stand-in scales like 1/x: stable's tolerance and lorentzian's/taylor's regularisers are
    relative to s_max). So ga(c) = ga_s + ga_uv / c exactly in real arithmetic. Checked at
    c = 1e+-30 (single) and 1e+-300 (double), where s^2 over/underflows, with c = 2^k too, for
    which both sides are computed from exactly scaled s and must agree to rounding only."""
    eps = mt.eps(dtype)
    rng = mt.rng_for("homogeneity", dtype.name, method)
    for m, n, full in ((4, 4, False), (6, 3, True), (3, 6, True), (5, 2, False)):
        a = mt.from_spectrum(np.linspace(3.0, 1.0, min(m, n)), m, n, mt.is_complex(dtype), rng)
        a = a.astype(dtype)
        s, u, v = core.svd(a, full_matrices=full)
        zs, zu, zv = np.zeros_like(s), np.zeros_like(u), np.zeros_like(v)
        gs = rng.standard_normal(s.shape).astype(s.dtype)
        gu, gv = mt.random_like(u.shape, dtype, rng), mt.random_like(v.shape, dtype, rng)

        def grad(s_, gs_, gu_, gv_):
            return core.svd_grad(s_, u, v, gs_, gu_, gv_, full_matrices=full, grad_method=method)

        g_s, g_uv = grad(s, gs, zu, zv), grad(s, zs, gu, gv)
        for c in SCALES[dtype] + (2.0 ** 90, 2.0 ** -90):
            sc = (s.astype(np.float64) * c).astype(s.dtype)
            got_s, got_uv = grad(sc, gs, zu, zv), grad(sc, zs, gu, gv)
            assert np.all(np.isfinite(got_s)) and np.all(np.isfinite(got_uv)), (m, n, c)
            # Only rounding: s*c rounds once per value (relative eps/2), so each gap moves by
            # <= 3 eps relative to itself (values <= 3, gaps >= 2/3 here), and the products add
            # a few eps more; 64 eps leaves a wide margin (measured: <= 4 eps).
            err_s = np.abs(mt.upcast(got_s) - mt.upcast(g_s)).max() / np.abs(mt.upcast(g_s)).max()
            err_uv = (np.abs(mt.upcast(got_uv) * c - mt.upcast(g_uv)).max()
                      / np.abs(mt.upcast(g_uv)).max())
            tol = 64 * eps
            assert err_s <= tol, f"{m}x{n} c={c:g}: grad_s part changed by {err_s:.2e}"
            assert err_uv <= tol, f"{m}x{n} c={c:g}: grad_u/v part * c off by {err_uv:.2e}"


# --------------------------------------------------------------------------------------------------
# 4. determinism: run to run, alone vs anywhere in a batch, strided views


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_alone_equals_in_batch_bitwise(core, algorithm, dtype):
    failures = []
    for m, n in ((2, 2), (3, 3), (4, 4), (7, 5), (5, 7), (16, 16), (33, 20)):
        x = mt.make_matrix("random", m, n, dtype, mt.rng_for("alone", m, n))
        cot_x = cotangents(x[None], False, True, seed=("x", m, n))
        alone = svd_and_grad(core, x[None], False, True, algorithm, cot_x)
        for size, pos in ((2, 1), (5, 0), (7, 6), (33, 17), (130, 129), (130, 64)):
            rng = mt.rng_for("filler", m, n, size)
            a = mt.random_like((size, m, n), dtype, rng)
            a[pos] = x
            cot = cotangents(a, False, True, seed=("filler", size))
            for full_cot, part in zip(cot, cot_x):
                full_cot[pos] = part[0]
            got = svd_and_grad(core, a, False, True, algorithm, cot)
            for name, g, w in zip(("s", "u", "v", "grad"), got, alone):
                if g[pos].tobytes() != w[0].tobytes():
                    failures.append(f"{m}x{n} batch {size} position {pos}: {name} differs")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_repeated_runs_bitwise(core, dtype):
    a = mt.make_batch(["random", "repeated_few", "clustered", "geometric", "rank1"], 9, 6, dtype, 8)
    for algorithm in ALGORITHMS:
        for full in (False, True):
            cot = cotangents(a, full, True, seed=9)
            first = svd_and_grad(core, a, full, True, algorithm, cot)
            for _ in range(3):
                for name, x, y in zip(("s", "u", "v", "grad"),
                                      svd_and_grad(core, a, full, True, algorithm, cot), first):
                    mt.assert_bitwise_equal(x, y, f"{algorithm} full={full} {name}")


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_strided_views_and_last_matrix_offsets(core, dtype):
    """Views with gaps between matrices, rows and columns (the module copies them to C order)
    give bit for bit the SVD of their values; and in a large batch the last matrix (the largest
    offsets into every buffer) is the same matrix computed alone."""
    rng = mt.rng_for("strided", dtype.name)
    big = mt.random_like((60, 10, 8), dtype, rng)
    for view in (big[::3], big[:, ::2, :], big[:, :, 1::2], big[::-2, ::-1, :].swapaxes(-1, -2)):
        got = core.svd(view, full_matrices=True)
        want = core.svd(np.ascontiguousarray(view), full_matrices=True)
        for name, x, y in zip("suv", got, want):
            mt.assert_bitwise_equal(x, y, f"view {view.strides}: {name}")
    a = mt.random_like((200_000, 3, 2), dtype, rng)
    s, u, v = core.svd(a)
    for i in (0, 99_999, 199_999):
        alone = core.svd(a[i:i + 1])
        for name, x, y in zip("suv", (s[i:i + 1], u[i:i + 1], v[i:i + 1]), alone):
            mt.assert_bitwise_equal(x, y, f"matrix {i} of 200000: {name}")


# --------------------------------------------------------------------------------------------------
# 5. concurrency


def test_threads_in_the_core_at_once(core):
    """8 Python threads, each on its own inputs (dtype, shape, algorithm), 25 iterations of
    forward and backward; the module releases the GIL, so these run in the core concurrently.
    Every result must equal the single-threaded one bit for bit."""
    jobs = []
    for t in range(8):
        dtype = DTYPES[t % 4]
        m, n = ((3, 3), (12, 7), (7, 12), (30, 30))[t // 2 % 4]
        algorithm = ALGORITHMS[t % len(ALGORITHMS)]
        a = mt.make_batch(["random", "geometric", "repeated_few"] * 2, m, n, dtype, seed=t)
        if t == 5:
            a[2, 0, 0] = np.nan  # the NaN path runs concurrently too
        cot = cotangents(a, t % 2 == 1, True, seed=t)
        want = svd_and_grad(core, a, t % 2 == 1, True, algorithm, cot)
        jobs.append((a, t % 2 == 1, algorithm, cot, want))
    barrier = threading.Barrier(len(jobs))
    errors = []

    def worker(a, full, algorithm, cot, want):
        try:
            barrier.wait()
            for it in range(25):
                got = svd_and_grad(core, a, full, True, algorithm, cot)
                for name, x, y in zip(("s", "u", "v", "grad"), got, want):
                    if x.tobytes() != y.tobytes():
                        errors.append(f"{a.dtype} {a.shape} {algorithm} iteration {it}: {name}")
                        return
        except Exception as error:  # reported below, with the thread's job
            errors.append(f"{a.dtype} {a.shape}: {error!r}")

    threads = [threading.Thread(target=worker, args=job) for job in jobs]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, "\n".join(errors[:10])


# --------------------------------------------------------------------------------------------------
# 6. memory


@pytest.mark.skipif(os.environ.get("TFSVD_ASAN_RUN") == "1",
                    reason="under ASan freed memory waits in its quarantine (256 MB by default), "
                    "so the resident set grows without a leak (43 MB over this test's calls)")
def test_rss_flat_over_thousands_of_calls(core):
    """3000 forward + backward calls on 4 x 32 x 32 float64 (plus a NaN matrix and an error
    every 10th call) after 300 warm-up calls: the resident set grows by less than 20 MB.

    Why 20 MB: every buffer a call allocates is at least 8 KB (one 32 x 32 float64 matrix; the
    outputs u, v, grad are 32 KB each, LAPACK's workspace is larger), so leaking any one of them
    per call would add >= 24 MB over 3000 calls, and the 32 KB ones ~100 MB; a correct
    implementation reaches steady state during the warm-up (what malloc keeps is reused).
    Measured growth here: well under 1 MB."""
    rng = np.random.default_rng(6)
    a = rng.standard_normal((4, 32, 32))
    a[3, 5, 5] = np.nan
    cot = cotangents(a, False, True, seed=6)

    def one_call(i):
        s, u, v = core.svd(a, algorithm=ALGORITHMS[i % len(ALGORITHMS)])
        core.svd_grad(s, u, v, *cot)
        core.svd(a, compute_uv=False)
        if i % 10 == 0:
            try:
                core.svd_grad(s, u, v, cot[0][:1], cot[1], cot[2])
            except ValueError:
                pass

    growth = rss_growth(one_call, warmup=300, calls=3000)
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 3000 calls"


@pytest.mark.parametrize("algorithm", ["parallel_gesdd", "gesdd"])
def test_kept_scratch_blocks_reused_invisible_and_bounded(core, algorithm):
    """Freed scratch blocks of MIN_KEPT_SCRATCH_BYTES and more are kept for later calls
    (scratch_pool.h), with whatever the last user left in them.

    - A matrix factored again after a NaN matrix and a matrix of another size have run through
      the kept blocks gives the same bits, forward and backward: no result depends on what the
      blocks held.
    - A repeated call finds every block it needs kept: the kept total stays the same."""
    rng = np.random.default_rng(11)
    a = rng.standard_normal((400, 400))  # 1.25 MB a matrix in float64: every scratch matrix kept
    dirty = np.full((460, 460), np.nan)
    cot = cotangents(a[None], False, True, seed=11)

    def forward_backward(x):
        s, u, v = core.svd(x[None], algorithm=algorithm)
        grad = core.svd_grad(s, u, v, *cot)
        return [np.asarray(t).tobytes() for t in (s, u, v, grad)]

    first = forward_backward(a)
    kept = core.kept_scratch_bytes()
    assert core.MIN_KEPT_SCRATCH_BYTES <= kept <= core.MAX_KEPT_SCRATCH_BYTES
    assert forward_backward(a) == first
    assert core.kept_scratch_bytes() == kept
    core.svd(dirty[None], algorithm=algorithm)
    core.svd(rng.standard_normal((2, 300, 500)), algorithm=algorithm)
    assert forward_backward(a) == first


def test_kept_scratch_bounded(core):
    """Growing sizes cannot reuse each other's blocks (a kept block serves requests of half its
    size and up): parallel_gesdd's float64 scratch, about 8.5 n^2 entries, adds 68, 82, 98 and
    115 MB for these, past the 256 MB cap at the last; what stays kept never exceeds the cap."""
    rng = np.random.default_rng(12)
    for n in (1000, 1100, 1200, 1300):
        core.svd(rng.standard_normal((n, n)), algorithm="parallel_gesdd", threads=2)
        assert core.kept_scratch_bytes() <= core.MAX_KEPT_SCRATCH_BYTES


# --------------------------------------------------------------------------------------------------
# ASan / UBSan (opt-in)


@pytest.mark.skipif(os.environ.get("TFSVD_RUN_ASAN") != "1",
                    reason="opt-in: set TFSVD_RUN_ASAN=1 (builds the core with ASan, minutes)")
def test_asan_ubsan_run():
    """Opt-in (TFSVD_RUN_ASAN=1), off by default because it configures and builds the core and
    the pybind11 module with -fsanitize=address,undefined (a few minutes the first time) and then
    runs all of tests/core under the sanitizers: tests/sanitize/run_asan.sh. Passes only if the
    script prints ASAN RUN: PASS and exits 0 (any sanitizer report aborts the inner run)."""
    script = TESTS_DIR / "sanitize" / "run_asan.sh"
    env = {k: v for k, v in os.environ.items() if k not in ("TFSVD_RUN_ASAN", "TFSVD_CORE_PATH")}
    out = subprocess.run(["bash", str(script), "-x"], env=env, capture_output=True, text=True,
                         timeout=3600)
    tail = (out.stdout + out.stderr)[-6000:]
    assert out.returncode == 0, tail
    assert "ASAN RUN: PASS" in out.stdout, tail
