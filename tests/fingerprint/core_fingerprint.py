"""Fingerprints of every output of a fixed set of _core.svd and _core.svd_grad calls.

A change that must not move a bit (a kernel rescheduled, a loop vectorised, a tail masked) is
checked by fingerprinting the _core module built before it and after it, then comparing:

    python tests/fingerprint/core_fingerprint.py BEFORE/_core.cpython-311-x86_64-linux-gnu.so b.json
    python tests/fingerprint/core_fingerprint.py AFTER/_core.cpython-311-x86_64-linux-gnu.so a.json
    python tests/fingerprint/core_fingerprint.py --compare b.json a.json

Run each build in its own process, as above: Python gives back the module it already holds when
a second extension named _core is loaded into the same process, whatever its path, so an
in-process comparison compares a build with itself. A fingerprint is the dtype, the shape and a
SHA-256 of the bytes, so signs of zero and NaN payloads count. The calls cover the Jacobi kernels
(groups, lone matrices and half-width tails: batches of 1, 3 and 19; every dtype; the auto and
SSE2 kernels; thin, full and values only; gaussian, tied integer and graded columns), the LAPACK
paths (gesdd, gesvd, parallel_gesdd on two threads, auto) and the backward. About a minute.
"""

import argparse
import hashlib
import json
import os
import sys

import numpy as np

JACOBI_SHAPES = ((2, 2), (3, 3), (5, 4), (4, 5), (8, 8), (12, 12), (16, 16), (17, 9), (31, 31),
                 (33, 20), (40, 7), (48, 48), (64, 64), (65, 63), (300, 12), (64, 100), (1000, 16),
                 (200, 48), (603, 37), (1000, 4))
LAPACK_SHAPES = ((8, 8), (30, 20), (20, 30), (64, 64), (200, 96), (96, 200), (300, 300))
DTYPES = (np.float32, np.float64, np.complex64, np.complex128)


def fingerprint(x):
    x = np.ascontiguousarray(x)
    return f"{x.dtype.str}{x.shape}" + hashlib.sha256(x.view(np.uint8)).hexdigest()


def matrices(rng, shape, dtype, kind):
    if kind == "gaussian":
        a = rng.standard_normal(shape)
    elif kind == "ties":
        a = rng.integers(-1, 2, shape).astype(float)
    else:  # graded columns
        a = rng.standard_normal(shape) * np.logspace(0, -6, shape[-1])
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def run(core):
    rng = np.random.default_rng(11)
    out = {}

    def record(key, results):
        for i, x in enumerate(results):
            out[f"{key}|{i}"] = fingerprint(x)

    for m, n in JACOBI_SHAPES:
        for dtype in DTYPES:
            if np.dtype(dtype).kind == "c" and m * n > 5000:
                continue
            for kind in ("gaussian", "ties", "graded"):
                for batch in (1, 3, 19):
                    a = matrices(rng, (batch, m, n), dtype, kind)
                    for isa in ("auto", "sse2"):
                        for full, uv in ((False, True), (True, True), (False, False)):
                            key = (f"jacobi|{m}x{n}|{np.dtype(dtype).name}|{kind}|{batch}|"
                                   f"{isa}|{full}|{uv}")
                            record(key, core.svd(a, full_matrices=full, compute_uv=uv,
                                                 algorithm="jacobi", jacobi_isa=isa))
    for m, n in LAPACK_SHAPES:
        for dtype in DTYPES:
            a = matrices(rng, (2, m, n), dtype, "gaussian")
            for algorithm, threads in (("gesdd", 1), ("gesvd", 1), ("parallel_gesdd", 2),
                                       ("auto", 2)):
                for full in (False, True):
                    key = f"lapack|{m}x{n}|{np.dtype(dtype).name}|{algorithm}|{full}"
                    record(key, core.svd(a, full_matrices=full, algorithm=algorithm,
                                         threads=threads))
    for m, n in ((3, 3), (8, 8), (64, 64), (300, 12), (12, 300), (200, 96)):
        for dtype in DTYPES:
            a = matrices(rng, (3, m, n), dtype, "gaussian")
            for full in (False, True):
                s, u, v = core.svd(a, full_matrices=full)
                grads = [matrices(rng, x.shape, x.dtype, "gaussian") for x in (s, u, v)]
                grads[0] = grads[0].real.astype(s.dtype)
                key = f"grad|{m}x{n}|{np.dtype(dtype).name}|{full}"
                record(key, [core.svd_grad(s, u, v, *grads, full_matrices=full)])
    return out


def compare(before_path, after_path):
    with open(before_path) as f:
        before = json.load(f)
    with open(after_path) as f:
        after = json.load(f)
    if sorted(before) != sorted(after):
        print("the two files fingerprint different calls")
        return 2
    moved = [key for key in before if before[key] != after[key]]
    print(f"{len(before)} outputs, {len(moved)} with other bits")
    for key in moved[:20]:
        print("  ", key)
    return 1 if moved else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", action="store_true",
                        help="compare two fingerprint files instead of writing one")
    parser.add_argument("first", help="the _core*.so to fingerprint (or, with --compare, a file)")
    parser.add_argument("second", help="where to write the fingerprints (or the other file)")
    args = parser.parse_args(argv)
    if args.compare:
        return compare(args.first, args.second)
    os.environ["TFSVD_CORE_PATH"] = os.path.abspath(args.first)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from core_module import load_core

    core = load_core()
    out = run(core)
    with open(args.second, "w") as f:
        json.dump(out, f, indent=0, sort_keys=True)
    print(f"{len(out)} outputs of {args.first}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
