"""tfsvd's OpenBLAS stays private to tfsvd.

scipy-openblas32 (tfsvd's LAPACK) and scipy's own bundled OpenBLAS export the same scipy_-prefixed
symbols. If tfsvd's copy sat in the process's global symbol scope, every extension loaded after it
(scipy.linalg, JAX's LAPACK kernels through scipy) would bind to it instead of its own copy, and
would inherit the single OpenBLAS thread tfsvd sets on it: importing tfsvd would silently change
how other libraries run. The check runs in a fresh interpreter, since the scope is process-wide.
"""

import subprocess
import sys
import textwrap

# A gesdd-path shape (min(M, N) between the Jacobi and parallel_gesdd crossovers), so that the
# LAPACK path runs and sets its OpenBLAS to one thread, forward and backward.
_CHILD = textwrap.dedent("""
    import ctypes
    import tensorflow as tf
    import tfsvd

    a = tf.random.stateless_normal((2, 120, 100), seed=(1, 2))
    with tf.GradientTape() as tape:
        tape.watch(a)
        s, u, v = tfsvd.svd(a)
        loss = tf.reduce_sum(s) + tf.reduce_sum(u[..., 0]) + tf.reduce_sum(v[..., 0])
    tape.gradient(loss, a).numpy()

    names = ("scipy_sgesdd_", "scipy_sgemm_", "scipy_openblas_set_num_threads")
    in_global_scope = [name for name in names if hasattr(ctypes.CDLL(None), name)]
    mapped = open("/proc/self/maps").read()
    print("GLOBAL", in_global_scope)
    print("MAPPED", "scipy_openblas32/lib/libscipy_openblas" in mapped)
""")


def _run(child_env):
    result = subprocess.run([sys.executable, "-c", _CHILD],
                            capture_output=True, text=True, env=child_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines()
                 if line.startswith(("GLOBAL ", "MAPPED ")))
    return lines


def test_openblas_is_loaded_but_not_global(child_env):
    lines = _run(child_env)
    assert lines["MAPPED"] == "True", "tfsvd ran without its scipy-openblas32 library mapped"
    assert lines["GLOBAL"] == "[]", f"OpenBLAS symbols in the global scope: {lines['GLOBAL']}"
