"""pytest plugin for tests/sanitize/run_asan.sh (loaded with `-p sanitize.asan_plugin`).

Makes every way tests/core reach the core module resolve to the sanitized build named by
TFSVD_CORE_PATH: `core_module.load_core()` (the `core` fixture) reads that variable itself, and
`from tfsvd import _core` is served by a stub `tfsvd` package holding only `_core`, so the real
package, which imports TensorFlow (not built with ASan), is never imported in this run. Sets
TFSVD_ASAN_RUN=1 for tests that measure what ASan changes (the resident set: freed memory waits in
its quarantine, 256 MB by default).
"""

import ctypes
import os
import sys
import types

from core_module import load_core


def _asan_runtime_loaded():
    try:
        ctypes.CDLL(None).__asan_init  # noqa: B018  (defined only when libasan is loaded)
    except AttributeError:
        return False
    return True


def pytest_configure(config):
    path = os.environ.get("TFSVD_CORE_PATH")
    if not path:
        raise RuntimeError("asan_plugin: TFSVD_CORE_PATH must name the sanitized _core module")
    if not _asan_runtime_loaded():
        raise RuntimeError("asan_plugin: the ASan runtime is not loaded (LD_PRELOAD libasan.so)")
    core = load_core()
    if os.path.realpath(core.__file__) != os.path.realpath(path):
        raise RuntimeError(f"asan_plugin: loaded {core.__file__}, expected {path}")
    package = types.ModuleType("tfsvd")
    package.__path__ = []  # a package with nothing else in it
    package._core = core
    sys.modules["tfsvd"] = package
    sys.modules["tfsvd._core"] = core
    os.environ["TFSVD_ASAN_RUN"] = "1"


def pytest_report_header(config):
    return f"tfsvd ASan run: _core from {os.environ.get('TFSVD_CORE_PATH')}"
