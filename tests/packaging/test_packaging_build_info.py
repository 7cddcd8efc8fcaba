"""tfsvd.build_info() names the OpenBLAS kernels that run, including those OPENBLAS_CORETYPE forces.

OpenBLAS picks its kernels for the CPU when it loads, unless OPENBLAS_CORETYPE names others; a
machine that pins older kernels runs tfsvd's LAPACK paths slower, and build_info is where a user
or a benchmark sees that. The check runs in a fresh interpreter with this environment unchanged:
some machines pin OPENBLAS_CORETYPE because other OpenBLAS builds fail on them.
"""

import os
import subprocess
import sys

_CHILD = "import tfsvd; print('KERNELS', tfsvd.build_info()['blas_kernels'])"
# OPENBLAS_CORETYPE values that scipy-openblas32 reports back under the same name (others are
# aliases or not built: "Zen" runs, and reports, the Haswell kernels; "Cooperlake" SkylakeX).
_SELF_NAMED = ("nehalem", "sandybridge", "haswell", "skylakex")


def test_build_info_names_the_kernels(child_env):
    result = subprocess.run([sys.executable, "-c", _CHILD],
                            capture_output=True, text=True, env=child_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("KERNELS ")]
    assert len(lines) == 1, result.stdout
    kernels = lines[0].split(" ", 1)[1].strip()
    assert kernels and kernels.lower() != "unknown", kernels
    pinned = os.environ.get("OPENBLAS_CORETYPE", "").lower()
    if pinned in _SELF_NAMED:
        assert kernels.lower() == pinned, f"OPENBLAS_CORETYPE={pinned}, OpenBLAS runs {kernels}"
