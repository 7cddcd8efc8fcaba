"""The core module works in a process that never imports TensorFlow."""

import os
import subprocess
import sys
import textwrap

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_core_runs_without_tensorflow():
    script = textwrap.dedent("""
        import sys
        import numpy as np
        from core_module import load_core
        core = load_core()
        a = np.array([[3.0, 0.0], [4.0, 5.0]])
        s, u, v = core.svd(a)
        assert np.allclose(u * s @ v.T, a), (s, u, v)
        assert np.allclose(s, [np.sqrt(45.0), np.sqrt(5.0)])  # eigenvalues of a^T a: 45, 5
        assert "tensorflow" not in sys.modules, "loading _core imported tensorflow"
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=TESTS_DIR)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
