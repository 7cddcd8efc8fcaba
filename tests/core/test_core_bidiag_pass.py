"""The bidiagonalisation's fused column pass (cc/core/bidiag_pass.h), per instruction set, against
a float64 reference, through the pybind11 module (no TensorFlow).

parallel_gesdd's accuracy tests run only the kernel of the widest instruction set this CPU has;
here every one the CPU runs is checked directly, on sizes around the SIMD widths (4, 8, 16 float
lanes), the two-accumulator blocks and the 4-column groups. Bounds come from the rounding model:
a sum of n products is within gamma_n sum |terms| of the exact one (Higham, Accuracy and
Stability, 3.1), gamma_n ~ n u <= n eps / 2; the bounds below take n eps (a factor of 2 to spare).
"""

import numpy as np
import pytest

ISAS = ("sse2", "avx2", "avx512")
ROWS = (1, 2, 3, 15, 16, 17, 31, 32, 33, 64, 65, 100, 257)
COLUMNS = (1, 3, 4, 5, 8, 11)


@pytest.mark.parametrize("offset", (-1, 0, 1, 7, 15),
                         ids=lambda o: "as-given" if o < 0 else f"row{o}")
@pytest.mark.parametrize("dtype", (np.float32, np.float64), ids=("float32", "float64"))
@pytest.mark.parametrize("isa", ISAS)
def test_pass_matches_float64_reference(core, isa, dtype, offset):
    """offset -1: the arrays as given (unaligned loads); offset >= 0: the bidiagonalisation's
    layout, the columns `offset` rows past a 64-byte boundary among NaNs (aligned loads, masked
    first and last vectors; a NaN that leaks in fails every bound)."""
    try:
        core.bidiag_pass(np.zeros((1, 1), dtype), 1, np.zeros(1, dtype), 1.0,
                         np.zeros(1, dtype), np.zeros(1, dtype), np.zeros(0, dtype), isa)
    except ValueError:
        pytest.skip(f"this CPU does not run {isa}")
    eps = np.finfo(dtype).eps
    rng = np.random.default_rng(7)
    failures = []
    for mc in ROWS:
        for length in COLUMNS:
            lda = mc + 3  # a leading dimension past the rows the kernel reads
            a = rng.standard_normal((length, lda)).astype(dtype)
            v = rng.standard_normal(mc).astype(dtype)
            y0 = rng.standard_normal(length).astype(dtype)
            w0 = rng.standard_normal(length).astype(dtype)
            z0 = rng.standard_normal(mc - 1).astype(dtype)
            tq = float(rng.uniform(0.5, 2.0))
            tq = float(dtype(tq))
            y, w, z = (np.asarray(x, np.float64)
                       for x in core.bidiag_pass(a, mc, v, tq, y0, w0, z0, isa, offset))
            cols = a[:, :mc].astype(np.float64)
            v64, y064, w064, z064 = (x.astype(np.float64) for x in (v, y0, w0, z0))
            # y = tq (a_j . v - y0): mc products and two more roundings.
            y_ref = tq * (cols @ v64 - y064)
            y_bound = (mc + 2) * eps * abs(tq) * (np.abs(cols) @ np.abs(v64) + np.abs(y064))
            # w = (a_j[0] - y) - w0 from the kernel's own y: two roundings.
            w_ref = (cols[:, 0] - y) - w064
            w_bound = 2 * eps * (np.abs(cols[:, 0]) + np.abs(y) + np.abs(w064))
            # z = z0 + sum_j a_j[1:] w_j from the kernel's own w: length + 1 terms.
            z_ref = z064 + cols[:, 1:].T @ w
            z_bound = (length + 2) * eps * (np.abs(z064) + np.abs(cols[:, 1:].T) @ np.abs(w))
            for name, got, ref, bound in (("y", y, y_ref, y_bound), ("w", w, w_ref, w_bound),
                                          ("z", z, z_ref, z_bound)):
                # Not "excess > 0": a NaN must fail too.
                outside = ~(np.abs(got - ref) <= bound)
                if outside.any():
                    i = int(np.argmax(outside))
                    failures.append(f"mc={mc} len={length} {name}[{i}]: |error| "
                                    f"{abs(got[i] - ref[i]):.3g} > bound {bound[i]:.3g}")
    assert not failures, (f"{isa} {np.dtype(dtype).name} offset {offset}:\n"
                          + "\n".join(failures[:20]))


def test_pass_rejects_bad_arguments(core):
    f = np.float32
    with pytest.raises(ValueError, match="expected"):
        core.bidiag_pass(np.zeros((2, 3), f), 4, np.zeros(4, f), 1.0, np.zeros(2, f),
                         np.zeros(2, f), np.zeros(3, f))
    with pytest.raises(ValueError, match="does not run"):
        core.bidiag_pass(np.zeros((1, 1), f), 1, np.zeros(1, f), 1.0, np.zeros(1, f),
                         np.zeros(1, f), np.zeros(0, f), "neon")
