"""The loaded op library: the raw ops tfsvd_svd and tfsvd_svd_grad."""

from ._loader import load_op_library

ops = load_op_library()
tfsvd_svd = ops.tfsvd_svd
tfsvd_svd_grad = ops.tfsvd_svd_grad
