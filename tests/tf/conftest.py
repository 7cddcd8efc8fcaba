"""Collects the worst LAPACK ratios seen by tests/tf/test_forward.py and prints them per dtype at
the end of the run (and writes them as JSON to $TFSVD_RATIO_REPORT when that is set), and the
worst gradient errors against finite differences from tests/tf/test_gradient.py."""

import json
import os

import pytest

from gradcheck import WORST_GRADIENT_ERRORS

# {(implementation, dtype): {ratio name: (value, where)}}
_WORST = {}

_RATIO_NAMES = ("resid", "orthU", "orthV", "sval")


class RatioRecorder:
    """Keeps, per (implementation, dtype), the largest value of each ratio and where it occurred."""

    def __init__(self, table):
        self._table = table

    def record(self, dtype_name, ratios, where, implementation="tfsvd.svd"):
        row = self._table.setdefault((implementation, dtype_name), {})
        for key, value in ratios.items():
            if key not in row or not (value <= row[key][0]):
                row[key] = (float(value), where)


@pytest.fixture(scope="session")
def ratio_recorder():
    return RatioRecorder(_WORST)


def _dtype_order(key):
    order = ["float32", "float64", "complex64", "complex128", "float16", "bfloat16"]
    impl, dtype = key
    return (impl != "tfsvd.svd", impl, order.index(dtype) if dtype in order else len(order), dtype)


def _gradient_error_summary(tr):
    methods = sorted({method for _, method in WORST_GRADIENT_ERRORS},
                     key=lambda m: ("stable", "exact", "lorentzian", "taylor").index(m))
    rows = sorted({row for row, _ in WORST_GRADIENT_ERRORS})
    tr.section("worst gradient relative error vs central finite differences (threshold 1e-6)")
    tr.write_line(f"{'shape class':<34}" + "".join(f" {m:>11}" for m in methods))
    for row in rows:
        cells = "".join(f" {WORST_GRADIENT_ERRORS[(row, m)]:>11.1e}"
                        if (row, m) in WORST_GRADIENT_ERRORS else f" {'':>11}" for m in methods)
        tr.write_line(f"{row:<34}{cells}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if WORST_GRADIENT_ERRORS:
        _gradient_error_summary(terminalreporter)
    if not _WORST:
        return
    tr = terminalreporter
    tr.section("worst LAPACK ratios (threshold 35; ulp = eps of the dtype)")
    header = f"{'implementation':<28} {'dtype':<11}" + "".join(f" {n:>9}" for n in _RATIO_NAMES) + "  worst case"
    tr.write_line(header)
    for key in sorted(_WORST, key=_dtype_order):
        impl, dtype = key
        row = _WORST[key]
        cells = "".join(f" {row[n][0]:>9.3g}" if n in row else f" {'-':>9}" for n in _RATIO_NAMES)
        worst_name = max(row, key=lambda n: row[n][0])
        tr.write_line(f"{impl:<28} {dtype:<11}{cells}  {worst_name}: {row[worst_name][1]}")
    path = os.environ.get("TFSVD_RATIO_REPORT")
    if path:
        data = [
            {"implementation": impl, "dtype": dtype, **{n: {"value": v, "where": w} for n, (v, w) in row.items()}}
            for (impl, dtype), row in sorted(_WORST.items(), key=lambda kv: _dtype_order(kv[0]))
        ]
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
