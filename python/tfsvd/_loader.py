"""Loads the tfsvd op library into the running TensorFlow.

An op library works only with the TensorFlow minor it was compiled against, so the version
recorded at build time is checked first and a mismatch fails with a message naming both.
OpenBLAS (scipy-openblas32) is loaded from its own package, so no LD_LIBRARY_PATH is needed.
"""

import ctypes
import functools
import importlib.util
import os

import tensorflow as tf

from . import _build_config

_OP_LIBRARY_NAME = "_tfsvd_ops.so"


class TensorFlowVersionMismatch(ImportError):
    """The installed TensorFlow is not the minor version tfsvd was built against."""


def check_tensorflow_version(running=None, built=None):
    """Raises TensorFlowVersionMismatch unless `running` has the build's major.minor."""
    running = running or tf.__version__
    built = built or _build_config.TENSORFLOW_VERSION
    if running.split(".")[:2] != built.split(".")[:2]:
        major, minor = (int(x) for x in built.split(".")[:2])
        raise TensorFlowVersionMismatch(
            f"tfsvd {_build_config.VERSION} was built against TensorFlow {built}, but "
            f"TensorFlow {running} is installed. A TensorFlow op library only loads into the "
            f"TensorFlow minor it was compiled for: install 'tensorflow>={major}.{minor},"
            f"<{major}.{minor + 1}', or rebuild tfsvd from source against TensorFlow {running}."
        )


@functools.lru_cache(maxsize=None)  # once per process: the op library load and build_info share it
def _preload_openblas():
    # The op library and _core link libscipy_openblas.so by name; loading it from the installed
    # scipy_openblas32 package first lets the dynamic linker resolve it wherever tfsvd lives
    # (wheel, editable build, source tree): it matches the loaded library by its soname.
    # Loaded RTLD_LOCAL, and the package is found without importing it (its __init__ loads the
    # library RTLD_GLOBAL): scipy's own OpenBLAS exports the same scipy_-prefixed symbols, so a
    # global copy would capture every extension loaded later (scipy.linalg, and JAX through it),
    # which would then run on this copy and inherit the single thread tfsvd sets on it.
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("tfsvd needs scipy-openblas32: pip install scipy-openblas32")
    lib_dir = os.path.join(list(spec.submodule_search_locations)[0], "lib")
    names = sorted(x for x in os.listdir(lib_dir) if x.startswith("libscipy_openblas"))
    if not names:
        raise ImportError(f"tfsvd: no libscipy_openblas library in {lib_dir}")
    return ctypes.CDLL(os.path.join(lib_dir, names[0]), mode=ctypes.RTLD_LOCAL)


def blas_kernels():
    """The CPU kernels tfsvd's OpenBLAS runs ('Haswell', 'SkylakeX', ...): its own pick for this
    CPU, or the one the OPENBLAS_CORETYPE environment variable forces."""
    corename = _preload_openblas().scipy_openblas_get_corename
    corename.restype = ctypes.c_char_p
    return corename().decode()


def load_op_library():
    """Checks the TF version, loads OpenBLAS and the op library; returns the ops module."""
    check_tensorflow_version()
    _preload_openblas()
    # Installed by CMake next to the generated _build_config.py: the package directory in a
    # wheel, the build's install directory in an editable install.
    path = os.path.join(os.path.dirname(os.path.abspath(_build_config.__file__)), _OP_LIBRARY_NAME)
    if not os.path.exists(path):
        raise ImportError(
            f"tfsvd: the op library {path} is missing; reinstall tfsvd (pip install .)"
        )
    try:
        return tf.load_op_library(path)
    except tf.errors.NotFoundError as error:
        raise ImportError(
            f"tfsvd: could not load {path} into TensorFlow {tf.__version__}: {error}. "
            "This usually means tfsvd was built against a different TensorFlow build; "
            "rebuild it with 'pip install --force-reinstall --no-cache-dir .'"
        ) from error
