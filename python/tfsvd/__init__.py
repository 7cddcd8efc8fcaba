"""tfsvd: a fast, accurate, differentiable SVD for TensorFlow.

    import tfsvd
    s, u, v = tfsvd.svd(a)                      # drop-in for tf.linalg.svd
    s = tfsvd.svd(a, compute_uv=False)
    tfsvd.build_info()

Importing tfsvd loads the op library (TfsvdSvd, TfsvdSvdGrad) and registers their gradients,
which is also what a SavedModel that uses them needs before tf.saved_model.load.
"""

from . import _build_config
from . import _gradients  # noqa: F401  (registers the gradients)
from ._gauge import GaugeMonitor
from ._svd import GRAD_METHODS, svd

__version__ = _build_config.VERSION
__all__ = ["svd", "build_info", "GaugeMonitor", "GRAD_METHODS", "__version__"]


def build_info():
    """Facts about this build: versions, CUDA support, LAPACK, compiler."""
    import tensorflow as tf

    from ._loader import blas_kernels

    return {
        "version": _build_config.VERSION,
        "tensorflow": _build_config.TENSORFLOW_VERSION,
        "tensorflow_running": tf.__version__,
        "cuda": _build_config.CUDA,
        "cuda_architectures": _build_config.CUDA_ARCHITECTURES,
        "lapack": _build_config.LAPACK,
        "blas_kernels": blas_kernels(),
        "compiler": _build_config.COMPILER,
        "build_type": _build_config.BUILD_TYPE,
    }
