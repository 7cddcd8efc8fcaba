"""tfsvd.build_info() names the OpenBLAS kernels that run, including those OPENBLAS_CORETYPE forces.

OpenBLAS picks its kernels for the CPU when it loads, unless OPENBLAS_CORETYPE names others; a
machine that pins older kernels runs tfsvd's LAPACK paths slower, and build_info is where a user
or a benchmark sees that. Each check runs in a fresh interpreter, since OpenBLAS reads the variable
once, when it loads.
"""

import platform
import subprocess
import sys

import pytest

_CHILD = "import tfsvd; print('KERNELS', tfsvd.build_info()['blas_kernels'])"


def _kernels(env):
    result = subprocess.run([sys.executable, "-c", _CHILD],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("KERNELS ")]
    assert len(lines) == 1, result.stdout
    return lines[0].split(" ", 1)[1]


def test_build_info_names_the_kernels(child_env):
    env = child_env()
    env.pop("OPENBLAS_CORETYPE", None)
    assert _kernels(env).strip() != ""


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="Nehalem is an x86-64 kernel set")
def test_build_info_follows_openblas_coretype(child_env):
    # Nehalem (SSE4.2) runs on every x86-64 CPU TensorFlow supports (its wheels need AVX), and
    # scipy-openblas32 builds it (not all older sets: Prescott falls back to Katmai).
    assert _kernels(child_env(OPENBLAS_CORETYPE="Nehalem")) == "Nehalem"
