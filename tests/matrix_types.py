"""LAPACK-style test matrices and accuracy ratios for SVD tests (no pytest, no TensorFlow).

Matrix types follow LAPACK's SVD testers (xCHKBD / xDRVBD): zero, identity, singular values evenly
spaced 1..ulp, geometric 1..ulp, clustered, repeated, scaled toward overflow and underflow, random
(gaussian) and rank-1. Every structured type is built as ``Q1 diag(s) Q2^H`` with Haar-random
orthogonal/unitary ``Q1`` (M x M) and ``Q2`` (N x N), in float64/complex128, then cast to the tested
dtype. ``ulp`` is ``eps(dtype)`` (for complex dtypes, eps of the real part).

Two harsher variants push the scale to the edge of the range (overflow_edge: s_max = overflow /
(4 max(M, N)); underflow_edge: s_min = the underflow threshold).

The accuracy ratios are LAPACK's (see DESIGN.md section 6); all are computed in float64/complex128
from the *cast* input (the matrix the SVD actually saw), after dividing by the matrix' largest entry
so that matrices scaled toward overflow or underflow cannot overflow or underflow here:

    resid = ||A - U S V^H||_1 / (||A||_1 max(M, N) ulp)
    orthU = ||I - U^H U||_1 / (M ulp)
    orthV = ||I - V^H V||_1 / (N ulp)
    sval  = max|s - s_ref| / (s_max K ulp)     s_ref: float64 LAPACK gesvd of the cast matrix

A correct SVD keeps every ratio below ``THRESHOLD`` (35, LAPACK's and DESIGN's threshold).
"""

from __future__ import annotations

import functools
import math
import zlib

import numpy as np
import scipy.linalg

try:  # ships with TensorFlow; only needed for bfloat16
    import ml_dtypes

    BFLOAT16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the environment
    ml_dtypes = None
    BFLOAT16 = None

THRESHOLD = 35.0

# The order is the order of the tables printed by the tests.
MATRIX_TYPES = (
    "zero",
    "identity",
    "evenly_spaced",  # s = 1 .. ulp, evenly spaced
    "geometric",  # s = 1 .. ulp, geometric
    "clustered",  # s = (1, ulp, ..., ulp)
    "clustered_high",  # s = (1, ..., 1, ulp)
    "repeated_all",  # s = (1, 1, ..., 1)
    "repeated_few",  # a few distinct values, each repeated
    "overflow",  # evenly spaced, times sqrt(overflow threshold)
    "underflow",  # evenly spaced, times sqrt(underflow threshold)
    "overflow_edge",  # evenly spaced, s_max = overflow / (4 max(M, N)): ||A||_F^2 overflows
    "underflow_edge",  # evenly spaced, s_min = underflow threshold: every s normal, squares not
    "random",  # gaussian entries
    "rank1",  # s = (1, 0, ..., 0)
)

REAL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
COMPLEX_DTYPES = (np.dtype(np.complex64), np.dtype(np.complex128))
NATIVE_DTYPES = REAL_DTYPES + COMPLEX_DTYPES
HALF_DTYPES = (np.dtype(np.float16),) + ((BFLOAT16,) if BFLOAT16 is not None else ())


# --------------------------------------------------------------------------------------------------
# dtype helpers


def is_complex(dtype) -> bool:
    return np.dtype(dtype).kind == "c"


def real_dtype(dtype) -> np.dtype:
    """The real dtype of the singular values for an input dtype."""
    dtype = np.dtype(dtype)
    if dtype == np.complex64:
        return np.dtype(np.float32)
    if dtype == np.complex128:
        return np.dtype(np.float64)
    return dtype


def _finfo(dtype):
    dtype = real_dtype(dtype)
    if BFLOAT16 is not None and dtype == BFLOAT16:
        return ml_dtypes.finfo(dtype)
    return np.finfo(dtype)


def eps(dtype) -> float:
    """ulp: machine epsilon of the (real part of the) dtype."""
    return float(_finfo(dtype).eps)


def overflow_threshold(dtype) -> float:
    return float(_finfo(dtype).max)


def underflow_threshold(dtype) -> float:
    """Smallest positive normal number."""
    return float(_finfo(dtype).tiny)


def wide_dtype(dtype) -> np.dtype:
    """float64 or complex128: the precision the ratios and references are computed in."""
    return np.dtype(np.complex128) if is_complex(dtype) else np.dtype(np.float64)


def upcast(x) -> np.ndarray:
    """float64/complex128 copy of an array of any floating dtype (float16 and bfloat16 included)."""
    x = np.asarray(x)
    if x.dtype.kind == "c":
        return x.astype(np.complex128)
    return x.astype(np.float64)


def dtype_name(dtype) -> str:
    return np.dtype(dtype).name


# --------------------------------------------------------------------------------------------------
# generators


def seed_for(*parts) -> int:
    """A stable seed from any printable parts (Python's hash() is salted per process)."""
    return zlib.crc32("|".join(str(p) for p in parts).encode())


def rng_for(*parts) -> np.random.Generator:
    return np.random.default_rng(seed_for(*parts))


def gaussian(shape, complex_: bool, rng: np.random.Generator) -> np.ndarray:
    """Standard gaussian entries in float64/complex128 (complex: E|z|^2 = 1)."""
    if complex_:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2.0)
    return rng.standard_normal(shape)


def haar_unitary(n: int, complex_: bool, rng: np.random.Generator) -> np.ndarray:
    """Haar-distributed n x n orthogonal (real) or unitary (complex) matrix in float64/complex128."""
    dt = np.complex128 if complex_ else np.float64
    if n == 0:
        return np.zeros((0, 0), dt)
    z = gaussian((n, n), complex_, rng)
    q, r = np.linalg.qr(z)
    d = np.diagonal(r).copy()
    d[d == 0] = 1
    return (q * (d / np.abs(d))).astype(dt)


def singular_values_for(kind: str, m: int, n: int, dtype) -> np.ndarray:
    """The float64 spectrum (descending, length K = min(m, n)) of a structured matrix type, or None
    for the types that are not built from a prescribed spectrum (zero, identity, random)."""
    ulp = eps(dtype)
    k = min(m, n)
    if kind in ("zero", "identity", "random"):
        return None
    if k == 0:
        return np.zeros(0)
    if kind == "evenly_spaced":
        return np.linspace(1.0, ulp, k) if k > 1 else np.ones(1)
    if kind == "geometric":
        return np.geomspace(1.0, ulp, k) if k > 1 else np.ones(1)
    if kind == "clustered":
        s = np.full(k, ulp)
        s[0] = 1.0
        return s
    if kind == "clustered_high":
        s = np.ones(k)
        if k > 1:
            s[-1] = ulp
        return s
    if kind == "repeated_all":
        return np.ones(k)
    if kind == "repeated_few":
        # Distinct values 1, 1/2, 1/4, (1/8), each repeated ~k/4 times (k < 4: still repeats).
        groups = max(1, min(4, k // 2))
        reps = -(-k // groups)
        return np.repeat(0.5 ** np.arange(groups), reps)[:k]
    if kind == "overflow":
        return singular_values_for("evenly_spaced", m, n, dtype) * math.sqrt(overflow_threshold(dtype))
    if kind == "underflow":
        return singular_values_for("evenly_spaced", m, n, dtype) * math.sqrt(underflow_threshold(dtype))
    if kind == "overflow_edge":
        # Largest spectrum whose matrix still fits: ||A||_1 <= sqrt(M) s_max < overflow.
        scale = overflow_threshold(dtype) / (4.0 * max(m, n, 1))
        return singular_values_for("evenly_spaced", m, n, dtype) * scale
    if kind == "underflow_edge":
        return singular_values_for("evenly_spaced", m, n, dtype) * (underflow_threshold(dtype) / ulp)
    if kind == "rank1":
        s = np.zeros(k)
        s[0] = 1.0
        return s
    raise ValueError(f"unknown matrix type {kind!r}; known: {MATRIX_TYPES}")


def from_spectrum(s, m: int, n: int, complex_: bool, rng: np.random.Generator) -> np.ndarray:
    """Q1[:, :K] diag(s) Q2[:, :K]^H with Haar-random Q1 (m x m), Q2 (n x n), in float64/complex128."""
    k = min(m, n)
    q1 = haar_unitary(m, complex_, rng)
    q2 = haar_unitary(n, complex_, rng)
    return (q1[:, :k] * np.asarray(s, dtype=np.float64)) @ q2[:, :k].conj().T


def make_matrix_wide(kind: str, m: int, n: int, dtype, rng: np.random.Generator) -> np.ndarray:
    """The matrix of the given type in float64/complex128, before the cast to ``dtype``.

    The spectrum's ulp, overflow and underflow thresholds are those of ``dtype``."""
    complex_ = is_complex(dtype)
    wide = wide_dtype(dtype)
    if kind == "zero":
        return np.zeros((m, n), wide)
    if kind == "identity":
        return np.eye(m, n, dtype=wide)
    if kind == "random":
        return gaussian((m, n), complex_, rng).astype(wide)
    s = singular_values_for(kind, m, n, dtype)
    return from_spectrum(s, m, n, complex_, rng).astype(wide)


def make_matrix(kind: str, m: int, n: int, dtype, rng: np.random.Generator | None = None) -> np.ndarray:
    """An m x n matrix of LAPACK test type ``kind`` cast to ``dtype`` (float16/bfloat16 allowed).

    Without ``rng``, a generator seeded from (kind, m, n, dtype) is used, so the result is the same
    in every process."""
    if rng is None:
        rng = rng_for(kind, m, n, dtype_name(dtype))
    return make_matrix_wide(kind, m, n, dtype, rng).astype(np.dtype(dtype))


def make_batch(kinds, m: int, n: int, dtype, seed=0) -> np.ndarray:
    """A [len(kinds), m, n] batch, one matrix per type."""
    rng = rng_for("batch", seed, m, n, dtype_name(dtype))
    out = np.zeros((len(kinds), m, n), np.dtype(dtype))
    for i, kind in enumerate(kinds):
        out[i] = make_matrix(kind, m, n, dtype, rng)
    return out


# --------------------------------------------------------------------------------------------------
# ratios


def norm1(x: np.ndarray) -> float:
    """Matrix 1-norm (largest column sum of absolute values); 0 for an empty matrix."""
    if x.size == 0:
        return 0.0
    return float(np.max(np.sum(np.abs(x), axis=-2)))


def pow2_exponent(x: float) -> int:
    """e with x * 2**-e in [0.5, 1): scaling by 2**-e is exact and never overflows or
    underflows for x in the floating range (subnormals included)."""
    return int(np.frexp(x)[1])


def ldexp(x, e: int) -> np.ndarray:
    """x * 2**e, exactly, for real or complex arrays (plain division by a tiny or huge scale can
    overflow in numpy's complex division, and 2.0**e itself can overflow)."""
    x = np.asarray(x)
    if x.dtype.kind == "c":
        return np.ldexp(x.real, e) + 1j * np.ldexp(x.imag, e)
    return np.ldexp(x, e)


def _finite_or_inf(r: float) -> float:
    return r if np.isfinite(r) else math.inf


def reference_singular_values(a) -> np.ndarray:
    """float64 LAPACK (gesvd) singular values of the matrix exactly as given (cast input), computed
    in float64/complex128. Scaled by the largest entry first (gesvd scales too; this only keeps the
    reference independent of LAPACK's range handling)."""
    a = upcast(a)
    m, n = a.shape[-2:]
    if min(m, n) == 0:
        return np.zeros(0)
    amax = float(np.max(np.abs(a)))
    if amax == 0.0:
        return np.zeros(min(m, n))
    e = pow2_exponent(amax)
    s = scipy.linalg.svd(ldexp(a, -e), compute_uv=False, lapack_driver="gesvd")
    return ldexp(s, e)


def resid_ratio(a, s, u, v, ulp: float) -> float:
    """||A - U S V^H||_1 / (||A||_1 max(M,N) ulp), for one matrix (thin or full u/v)."""
    a = upcast(a)
    s = upcast(s).real
    u = upcast(u)
    v = upcast(v)
    m, n = a.shape
    k = min(m, n)
    if k == 0:
        return 0.0
    amax = float(np.max(np.abs(a)))
    if not np.isfinite(amax):
        return math.inf
    e = pow2_exponent(amax) if amax > 0.0 else 0
    recon = (u[:, :k] * ldexp(s[:k], -e)) @ v[:, :k].conj().T
    a_scaled = ldexp(a, -e)
    rnorm = norm1(a_scaled - recon)
    anorm = norm1(a_scaled)
    if not np.isfinite(rnorm):
        return math.inf
    if anorm == 0.0:
        # Zero matrix: the factorisation must reproduce it exactly (LAPACK: 1/ulp otherwise).
        return 0.0 if rnorm == 0.0 else 1.0 / ulp
    return _finite_or_inf(rnorm / (anorm * max(m, n) * ulp))


def orth_ratio(q, ulp: float) -> float:
    """||I - Q^H Q||_1 / (rows ulp) for the columns of q (M x K thin or M x M full)."""
    q = upcast(q)
    rows, cols = q.shape
    if rows == 0 or cols == 0:
        return 0.0
    e = np.eye(cols) - q.conj().T @ q
    return _finite_or_inf(norm1(e) / (rows * ulp))


def sval_ratio(s, s_ref, ulp: float) -> float:
    """max|s - s_ref| / (s_max K ulp); s_max = largest reference singular value."""
    s = upcast(s).real
    s_ref = np.asarray(s_ref, dtype=np.float64)
    k = s_ref.shape[-1]
    if k == 0:
        return 0.0
    if s.shape != s_ref.shape:
        return math.inf
    smax = float(np.max(s_ref))
    if smax == 0.0:
        diff = float(np.max(np.abs(s)))
        return 0.0 if diff == 0.0 else 1.0 / ulp
    # Scale first: s may be near overflow or underflow.
    e = pow2_exponent(smax)
    diff = float(np.max(np.abs(ldexp(s, -e) - ldexp(s_ref, -e)))) / float(ldexp(smax, -e))
    return _finite_or_inf(diff / (k * ulp))


def svd_ratios(a, s, u=None, v=None, *, ulp: float | None = None, s_ref=None) -> dict:
    """All LAPACK ratios for one matrix ``a`` (as cast to the tested dtype) and its SVD.

    ``ulp`` defaults to eps(a.dtype). Returns {"resid", "orthU", "orthV", "sval"} (only "sval" when
    u is None)."""
    a = np.asarray(a)
    if ulp is None:
        ulp = eps(a.dtype)
    if s_ref is None:
        s_ref = reference_singular_values(a)
    out = {"sval": sval_ratio(s, s_ref, ulp)}
    if u is not None:
        out["resid"] = resid_ratio(a, s, u, v, ulp)
        out["orthU"] = orth_ratio(u, ulp)
        out["orthV"] = orth_ratio(v, ulp)
    return out


def worst(ratios: dict) -> float:
    return max(ratios.values()) if ratios else 0.0


# --------------------------------------------------------------------------------------------------
# structural checks (return a list of problems; empty means fine)


def check_singular_values(s) -> list:
    """s real, finite, non-negative and descending."""
    s = np.asarray(s)
    problems = []
    if s.dtype.kind == "c":
        problems.append(f"s has complex dtype {s.dtype}")
        return problems
    s64 = upcast(s)
    if not np.all(np.isfinite(s64)):
        problems.append("s is not finite")
        return problems
    if np.any(s64 < 0):
        problems.append(f"negative singular values: {s64[s64 < 0]}")
    if s64.shape[-1] > 1 and np.any(np.diff(s64, axis=-1) > 0):
        problems.append(f"s is not descending: {s64}")
    return problems


def _column_canonical(col, rtol: float) -> str | None:
    """None if the entry of largest magnitude of ``col`` is real (imaginary part exactly 0) and
    positive. Entries whose magnitude is within ``rtol`` of the largest count as ties (an
    implementation may compare |x|^2 instead of |x|, in its own precision): then one of the tied
    entries must be real and positive, and the first tie is preferred but not required."""
    col = np.asarray(col)
    mags = np.abs(upcast(col))
    if col.size == 0:
        return None
    mx = float(np.max(mags))
    if not np.isfinite(mx):
        return "non-finite column"
    if mx == 0.0:
        return "zero column"
    ties = np.flatnonzero(mags >= mx * (1.0 - rtol))

    def ok(i):
        x = col[i]
        if np.iscomplexobj(col):
            return float(x.imag) == 0.0 and float(x.real) > 0.0
        return float(x) > 0.0

    if any(ok(i) for i in ties):
        return None
    i = int(ties[0])
    return f"largest entry (index {i}) is {col[i]!r}, not real positive"


def check_canonical_signs(u, v, ulp: float) -> list:
    """Canonical signs for one matrix: every column of u has a real positive entry of largest
    magnitude; for full_matrices with N > M, so do the extra columns k >= K of v (columns k < K of v
    carry u's phase, which the reconstruction ratio checks)."""
    u = np.asarray(u)
    v = np.asarray(v)
    m = u.shape[0]
    n = v.shape[0]
    k = min(m, n)
    rtol = 8.0 * ulp
    problems = []
    for j in range(u.shape[1]):
        p = _column_canonical(u[:, j], rtol)
        if p:
            problems.append(f"u[:, {j}]: {p}")
    for j in range(k, v.shape[1]):
        p = _column_canonical(v[:, j], rtol)
        if p:
            problems.append(f"v[:, {j}]: {p}")
    return problems


def expected_shapes(batch, m: int, n: int, full_matrices: bool, compute_uv: bool = True):
    """(s, u, v) shapes of tf.linalg.svd's result (u, v: None when compute_uv is False)."""
    batch = tuple(batch)
    k = min(m, n)
    s = batch + (k,)
    if not compute_uv:
        return s, None, None
    if full_matrices:
        return s, batch + (m, m), batch + (n, n)
    return s, batch + (m, k), batch + (n, k)


def output_problems(a, s, u, v, full_matrices, compute_uv=True, empty_vectors=False):
    """Shape and dtype problems of one result (any batch shape): the outputs have the input's
    dtype (s its real counterpart). Without compute_uv, u and v are not checked unless
    `empty_vectors` (the core returns them as [..., M, 0] and [..., N, 0])."""
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    es, eu, ev = expected_shapes(batch, m, n, full_matrices, compute_uv)
    checks = [("s", s, es, real_dtype(a.dtype))]
    if compute_uv:
        checks += [("u", u, eu, a.dtype), ("v", v, ev, a.dtype)]
    elif empty_vectors:
        checks += [("u", u, batch + (m, 0), a.dtype), ("v", v, batch + (n, 0), a.dtype)]
    problems = []
    for name, x, shape, dt in checks:
        if tuple(x.shape) != shape:
            problems.append(f"{name}.shape {tuple(x.shape)} != {shape}")
        if np.dtype(x.dtype) != np.dtype(dt):
            problems.append(f"{name}.dtype {x.dtype} != {dt}")
    return problems


@functools.lru_cache(maxsize=None)
def _cached_case(kind, m, n, dtype_name):
    dtype = BFLOAT16 if dtype_name == "bfloat16" else np.dtype(dtype_name)
    a = make_matrix(kind, m, n, dtype)
    a.flags.writeable = False
    return a, reference_singular_values(a)


def case(kind, m, n, dtype):
    """(a, s_ref) for one matrix type: a fresh writable copy of a cached matrix, and its
    singular values from float64 LAPACK (cached across algorithms and thin/full variants)."""
    a, s_ref = _cached_case(kind, m, n, np.dtype(dtype).name)
    return np.array(a), s_ref


def assert_bitwise_equal(got, want, what):
    """Same dtype, shape and bytes; the message says how far apart the values are."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (
        f"{what}: {got.dtype}{got.shape} != {want.dtype}{want.shape}")
    if got.tobytes() != want.tobytes():
        diff = np.abs(upcast(got) - upcast(want))
        raise AssertionError(f"{what}: not bit-identical (max |diff| {np.nanmax(diff):.3g}, "
                             f"{int(np.sum(got != want))} entries differ)")


def assert_nan_isolation(got, want, bad, compute_uv):
    """got and want are (s, u, v) of the same batch with and without poisoned matrices: the
    matrices in `bad` are all NaN (u and v too with compute_uv), every other one has want's bits."""
    for i in range(len(got[0])):
        if i in bad:
            assert np.all(np.isnan(got[0][i])), (i, got[0][i])
            if compute_uv:
                assert np.all(np.isnan(got[1][i])) and np.all(np.isnan(got[2][i])), i
        else:
            for name, x, y in zip("suv", got, want):
                assert_bitwise_equal(x[i], y[i], f"matrix {i} {name}")


def random_like(shape, dtype, rng):
    """Gaussian entries (complex for complex dtypes) in `dtype`."""
    return gaussian(shape, is_complex(dtype), rng).astype(dtype)


def format_ratios(r: dict) -> str:
    return ", ".join(f"{key}={val:.3g}" for key, val in sorted(r.items()))
