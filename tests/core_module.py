"""Loads tfsvd's pybind11 module (_core) without executing tfsvd/__init__.py, so no TensorFlow."""

import glob
import importlib.machinery
import importlib.util
import os


def load_core():
    # TFSVD_CORE_PATH: an explicit _core*.so to load instead (tests/sanitize/run_asan.sh points it
    # at the AddressSanitizer build).
    override = os.environ.get("TFSVD_CORE_PATH")
    if override:
        return _load_extension(override)
    spec = importlib.util.find_spec("tfsvd")  # locates the package without importing it
    if spec is None:
        raise ImportError("tfsvd is not installed: run 'pip install .' first")
    for directory in spec.submodule_search_locations:
        for path in sorted(glob.glob(os.path.join(directory, "_core*.so"))):
            return _load_extension(path)
    raise ImportError(f"tfsvd's _core extension not found in {spec.submodule_search_locations}")


def _load_extension(path):
    loader = importlib.machinery.ExtensionFileLoader("_core", path)
    module_spec = importlib.util.spec_from_file_location("_core", path, loader=loader)
    module = importlib.util.module_from_spec(module_spec)
    loader.exec_module(module)
    return module
