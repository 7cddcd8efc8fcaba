"""python -m tfsvd.demo: --help explains the options; a short run trains and reports timings."""

import os
import subprocess
import sys

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def run_demo(*args):
    return subprocess.run([sys.executable, "-m", "tfsvd.demo", *args], env=ENV,
                          capture_output=True, text=True, timeout=300)


def test_help_explains_the_options():
    out = run_demo("--help")
    assert out.returncode == 0
    for option in ("--steps", "--batch", "--points", "--outliers", "--no-compare"):
        assert option in out.stdout


def test_short_run_trains_and_compares():
    out = run_demo("--steps", "30", "--batch", "64", "--points", "16")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "100%  step   30/30" in out.stdout  # progress lines when not on a terminal
    assert "median time per training step: tfsvd.svd" in out.stdout
    assert "tf.linalg.svd" in out.stdout
    assert "x lower" in out.stdout


def test_bad_arguments_fail():
    assert run_demo("--steps", "3").returncode != 0
