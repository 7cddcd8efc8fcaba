"""SVD backward pass written with TensorFlow ops only (DESIGN.md section 3).

`svd_grad_composite` computes the gradient of a real loss with respect to the
input `a` of a forward SVD ``a = u @ diag(s) @ adjoint(v)`` from the
cotangents of `s`, `u` and `v`.  Because it is made only of differentiable TF
ops it serves three purposes:

* the gradient of the ``TfsvdSvdGrad`` op (TF autodiff of this composite gives
  second-order derivatives and Hessian-vector products);
* the backward pass inside XLA clusters (``jit_compile=True``), where the
  custom ops have no kernel;
* a readable reference for the fused C++/CUDA backward kernels.

Conventions (TensorFlow's): for a real loss L, ``dL = Re tr(G^H dA)``; the
cotangents follow the same convention (``dL = Re tr(gU^H dU)`` etc.).

Notation: K = min(M, N); ``U = [U1 U2]``, ``V = [V1 V2]`` with U1, V1 the
first K columns; ``gU1``/``gV1`` the first K columns of the cotangents;
``J = U1^H gU1``, ``Kv = V1^H gV1``, ``Jh = J - J^H``, ``Kh = Kv - Kv^H``.

    Gamma_ij (i != j) = 1/2 (Jh + Kh)_ij R(s_j - s_i) + 1/2 (Jh - Kh)_ij R(s_j + s_i)
    Gamma_ii          = gs_i  (+ i Im(J_ii) Rs(s_i) for complex dtypes)
    G = U1 Gamma V1^H
        + [M > N] (gU1 - U1 J - U2 gU2^H U1) diag(Rs(s)) V1^H
        + [N > M] U1 diag(Rs(s)) (gV1 - V1 Kv - V2 gV2^H V1)^H

(the U2/V2 parts are present only with full_matrices; they are the
``- U2 (gU2^H U1) S^-1 V1^H`` and ``- U1 S^-1 (V1^H gV2) V2^H`` terms of the
design).  R and Rs are the method's regularised reciprocals, see
`svd_grad_composite`.
"""

import numpy as np
import tensorflow as tf

__all__ = ["svd_grad_composite", "GRAD_METHODS"]

GRAD_METHODS = ("stable", "exact", "lorentzian", "taylor")

_LORENTZIAN_DEFAULT_EPS = 1e-12

# Default stable threshold: tol = _STABLE_TOL_FACTOR * eps(dtype) * s_max * max(M, N),
# the same constant as kStableTolFactor in cc/core/svd_grad.cc. An exact tie formed in floating
# point comes back from LAPACK split by up to a few eps * s_max * max(M, N) (1.35x seen on 4x4);
# 16 leaves an order of magnitude of margin. Gaps below it are beyond what the singular vectors
# resolve in this precision anyway (their error is ~eps * s_max / gap).
_STABLE_TOL_FACTOR = 16.0

# Machine epsilon of the real dtypes we may meet (float16/bfloat16 are listed
# for completeness; the op computes those in float32).
_MACHINE_EPS = {
    tf.float16: 2.0 ** -10,
    tf.bfloat16: 2.0 ** -7,
    tf.float32: 2.0 ** -23,
    tf.float64: 2.0 ** -52,
}


def _static_dim(t, axis):
    """The size of `t` along `axis` as a Python int if static, else a scalar tensor."""
    shape = t.shape
    if shape.rank is not None:
        d = shape[axis]
        if d is not None:
            return int(d)
    return tf.shape(t)[axis]


def _static_bool(x):
    """Python bool if `x` is a Python bool or a constant-foldable tensor, else None."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    v = tf.get_static_value(x)
    return None if v is None else bool(v)


def _minimum(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return min(a, b)
    return tf.minimum(a, b)


def _maximum(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return tf.maximum(a, b)


def _greater(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a > b
    return tf.greater(a, b)


def _safe_reciprocal(x, bad):
    """1/x where not `bad`, 0 where `bad`; gradients stay finite under `bad`."""
    x_safe = tf.where(bad, tf.ones_like(x), x)
    return tf.where(bad, tf.zeros_like(x), 1.0 / x_safe)


def _safe_divide(num, den, bad):
    """num/den where not `bad`, 0 where `bad`; gradients stay finite under `bad`."""
    den_safe = tf.where(bad, tf.ones_like(den), den)
    return tf.where(bad, tf.zeros_like(num), num / den_safe)


def _geometric_sum(r, n_terms):
    """sum_{k=0}^{n_terms-1} r^k for a Python int n_terms >= 1, in O(log n) ops.

    Uses S_{a+b} = S_a + r^a S_b (binary expansion of n_terms); every term is
    a sum of non-negative numbers for r in [0, 1], so there is no
    cancellation (unlike (1 - r^n) / (1 - r) near r = 1).
    """
    total = None          # S_acc, with acc the number of terms already summed
    acc_pow = None        # r^acc
    block_sum = tf.ones_like(r)   # S_{2^b}
    block_pow = r                 # r^{2^b}
    n = n_terms
    while True:
        if n & 1:
            if total is None:
                total, acc_pow = block_sum, block_pow
            else:
                total = total + acc_pow * block_sum
                acc_pow = acc_pow * block_pow
        n >>= 1
        if not n:
            break
        block_sum = block_sum + block_pow * block_sum
        block_pow = block_pow * block_pow
    return total


def _default_tol(s_max, m, n, real_dtype):
    """Stable-method threshold: eps(dtype) * s_max * max(M, N)."""
    mach = tf.constant(_MACHINE_EPS[real_dtype], dtype=real_dtype)
    mn = _maximum(m, n)
    mn = tf.cast(mn, real_dtype)
    return tf.constant(_STABLE_TOL_FACTOR, real_dtype) * mach * mn * s_max


def svd_grad_composite(s, u, v, grad_s, grad_u, grad_v, *, full_matrices,
                       compute_uv, method, eps, order):
    """Gradient of a real loss w.r.t. `a` given the cotangents of ``svd(a)``.

    Args:
      s: ``[..., K]`` real singular values (descending), K = min(M, N).
      u: ``[..., M, K]`` (``[..., M, M]`` when `full_matrices`).
      v: ``[..., N, K]`` (``[..., N, N]`` when `full_matrices`).
      grad_s, grad_u, grad_v: cotangents, same shapes as s, u, v (never None;
        pass zeros for unused outputs).  grad_u and grad_v are ignored when
        `compute_uv` is False.
      full_matrices: whether u and v are the full square factors.
      compute_uv: False for ``svd(a, compute_uv=False)``: G = U1 diag(gs) V1^H.
      method: "stable", "exact", "lorentzian" or "taylor":
        * exact: R(x) = 1/x, Rs(s) = 1/s (inf/NaN at ties and zeros).
        * stable: tol = eps * s_max if eps is given (relative, per matrix),
          else eps(dtype) * s_max * max(M, N); R(x) = 0 where |x| <= tol,
          else 1/x; Rs(s) = 0 where s <= tol, else 1/s.  Always finite.
        * lorentzian: R(x) = x / (x^2 + e s_max^2), e = eps or 1e-12, the same
          for Rs; 0 where the denominator is 0.
        * taylor: off-diagonal Gamma_ij = (Jh_ij s_j + s_i Kh_ij) T_ij with
          T_ij ~ 1/(s_j^2 - s_i^2): with l = s^2, hi/lo = max/min(l_i, l_j),
          T = sgn / hi * sum_{k=0..order} (lo/hi)^k, sgn = -1 if l_i > l_j,
          +1 if l_i < l_j, and at ties -1 if i < j else +1; T = 0 where
          hi <= tol^2 (tol of the stable method); Rs as in stable.
      eps: Python float or None (see method).
      order: Python int >= 0, the Taylor order (taylor only).

    Returns:
      ``[..., M, N]`` gradient with u's dtype.
    """
    if method not in GRAD_METHODS:
        raise ValueError(
            "tfsvd: unknown grad_method %r; expected one of %s"
            % (method, ", ".join(GRAD_METHODS)))
    if eps is not None:
        eps = float(eps)
        if not eps >= 0.0:
            raise ValueError("tfsvd: grad_eps must be a non-negative float, got %r" % (eps,))
    if method == "taylor":
        if isinstance(order, bool) or int(order) != order or order < 0:
            raise ValueError("tfsvd: grad_order must be a non-negative integer, got %r" % (order,))
        order = int(order)

    with tf.name_scope("svd_grad_composite"):
        u = tf.convert_to_tensor(u)
        v = tf.convert_to_tensor(v, dtype=u.dtype)
        dtype = u.dtype
        real_dtype = dtype.real_dtype
        is_complex = dtype.is_complex
        s = tf.convert_to_tensor(s)
        if s.dtype != real_dtype:
            s = tf.cast(s, real_dtype)
        grad_s = tf.convert_to_tensor(grad_s)
        if grad_s.dtype != real_dtype:
            grad_s = tf.cast(tf.math.real(grad_s) if grad_s.dtype.is_complex else grad_s,
                             real_dtype)

        m = _static_dim(u, -2)
        n = _static_dim(v, -2)
        k = _minimum(m, n)

        def cplx(x):
            return tf.cast(x, dtype) if is_complex else x

        # Thin factors (the first K columns; a no-op slice when already thin,
        # so u/v with more than K columns are accepted whatever the flag).
        u1 = u[..., :, :k]
        v1 = v[..., :, :k]

        if not compute_uv:
            # G = U1 diag(gs) V1^H.
            return tf.linalg.matmul(u1 * cplx(grad_s)[..., None, :], v1, adjoint_b=True)

        grad_u = tf.convert_to_tensor(grad_u, dtype=dtype)
        grad_v = tf.convert_to_tensor(grad_v, dtype=dtype)
        gu1 = grad_u[..., :, :k]
        gv1 = grad_v[..., :, :k]

        # ---- per-matrix scale and thresholds ------------------------------
        zero = tf.zeros([], real_dtype)
        # max(..., 0): s >= 0, and an empty spectrum gives s_max = 0, not -inf.
        s_max = tf.maximum(tf.reduce_max(s, axis=-1, keepdims=True), zero)  # [..., 1]

        if method in ("stable", "taylor"):
            if eps is None:
                tol = _default_tol(s_max, m, n, real_dtype)
            else:
                tol = tf.constant(eps, real_dtype) * s_max
            tol = tf.stop_gradient(tol)        # only used in comparisons
        else:
            tol = None

        # ---- reciprocal of the singular values: Rs(s) ----------------------
        # Lorentzian and Taylor work with singular values in units of s_max: squares of the raw
        # values overflow (float32 at 1e20) or underflow long before the SVD itself does.
        # The functions are the same; unit_scale is 1 where s_max = 0 (everything is 0 there).
        unit_scale = tf.where(s_max > zero, s_max, tf.ones_like(s_max))  # [..., 1]
        if method == "exact":
            rs = 1.0 / s
        elif method == "lorentzian":
            e = tf.constant(_LORENTZIAN_DEFAULT_EPS if eps is None else eps, real_dtype)
            s_n = s / unit_scale
            den = s_n * s_n + e * tf.cast(s_max > zero, real_dtype)
            rs = _safe_divide(s_n, den, tf.equal(den, zero)) / unit_scale
        else:  # stable, taylor
            rs = _safe_reciprocal(s, s <= tol)

        # ---- J, Kv and their skew parts -----------------------------------
        j = tf.linalg.matmul(u1, gu1, adjoint_a=True)     # [..., K, K]
        kv = tf.linalg.matmul(v1, gv1, adjoint_a=True)    # [..., K, K]
        jh = j - tf.linalg.adjoint(j)
        kh = kv - tf.linalg.adjoint(kv)

        idx = tf.range(k)
        eye = tf.equal(idx[:, None], idx[None, :])          # [K, K] bool
        s_i = s[..., :, None]                               # row index i
        s_j = s[..., None, :]                               # column index j

        # ---- off-diagonal part of Gamma -----------------------------------
        if method == "taylor":
            # l = (s / s_max)^2; t approximates s_max^2 / (s_j^2 - s_i^2).
            scale_ij = unit_scale[..., None]                # [..., 1, 1]
            sn_i = s_i / scale_ij
            sn_j = s_j / scale_ij
            l_i = sn_i * sn_i
            l_j = sn_j * sn_j
            hi = tf.maximum(l_i, l_j)
            lo = tf.minimum(l_i, l_j)
            upper = idx[:, None] < idx[None, :]             # i < j
            one = tf.ones([], real_dtype)
            sgn = tf.where(l_i > l_j, -one,
                           tf.where(l_i < l_j, one,
                                    tf.where(upper, -one, one)))
            tol_n = tol[..., None] / scale_ij
            bad = tf.logical_or(hi <= tol_n * tol_n, eye)
            inv_hi = _safe_reciprocal(hi, bad)
            ratio = lo * inv_hi                             # in [0, 1]; 0 where bad
            t = sgn * inv_hi * _geometric_sum(ratio, order + 1)
            t = tf.where(bad, tf.zeros_like(t), t)
            gamma_off = ((jh * cplx(sn_j) + cplx(sn_i) * kh) * cplx(t)) / cplx(scale_ij)
        else:
            dm = s_j - s_i                                  # s_j - s_i
            dp = s_j + s_i                                  # s_j + s_i
            if method == "exact":
                r_m = _safe_reciprocal(dm, tf.broadcast_to(eye, tf.shape(dm)))
                r_p = _safe_reciprocal(dp, tf.broadcast_to(eye, tf.shape(dp)))
            elif method == "stable":
                t3 = tol[..., None]
                r_m = _safe_reciprocal(dm, tf.logical_or(tf.abs(dm) <= t3, eye))
                r_p = _safe_reciprocal(dp, tf.logical_or(tf.abs(dp) <= t3, eye))
            else:  # lorentzian: x / (x^2 + e s_max^2) = x_n / (x_n^2 + e) / s_max, x_n = x / s_max
                e = tf.constant(_LORENTZIAN_DEFAULT_EPS if eps is None else eps, real_dtype)
                scale_ij = unit_scale[..., None]
                shift = (e * tf.cast(s_max > zero, real_dtype))[..., None]
                dm_n, dp_n = dm / scale_ij, dp / scale_ij
                den_m = dm_n * dm_n + shift
                den_p = dp_n * dp_n + shift
                r_m = _safe_divide(dm_n, den_m,
                                   tf.logical_or(tf.equal(den_m, zero), eye)) / scale_ij
                r_p = _safe_divide(dp_n, den_p,
                                   tf.logical_or(tf.equal(den_p, zero), eye)) / scale_ij
            half = tf.constant(0.5, real_dtype)
            gamma_off = (cplx(half * r_m) * (jh + kh) + cplx(half * r_p) * (jh - kh))

        # ---- diagonal of Gamma ---------------------------------------------
        diag = cplx(grad_s)
        if is_complex:
            im_j = tf.math.imag(tf.linalg.diag_part(j))
            diag = diag + tf.complex(tf.zeros_like(im_j), im_j * rs)
        gamma = gamma_off + tf.linalg.diag(diag)

        # ---- assemble G ------------------------------------------------------
        rs_c = cplx(rs)[..., None, :]                       # scales columns
        left = tf.linalg.matmul(u1, gamma)                  # U1 Gamma  [..., M, K]

        def u_extra():
            # (gU1 - U1 J - U2 gU2^H U1) diag(Rs); the U2 term only when full.
            p = gu1 - tf.linalg.matmul(u1, j)
            if full_matrices:
                u2 = u[..., :, k:]
                gu2 = grad_u[..., :, k:]
                p = p - tf.linalg.matmul(u2, tf.linalg.matmul(gu2, u1, adjoint_a=True))
            return p * rs_c

        def v_extra():
            # U1 diag(Rs) (gV1 - V1 Kv - V2 gV2^H V1)^H
            p = gv1 - tf.linalg.matmul(v1, kv)
            if full_matrices:
                v2 = v[..., :, k:]
                gv2 = grad_v[..., :, k:]
                p = p - tf.linalg.matmul(v2, tf.linalg.matmul(gv2, v1, adjoint_a=True))
            return tf.linalg.matmul(u1 * rs_c, p, adjoint_b=True)

        tall = _greater(m, n)
        wide = _greater(n, m)
        tall_s = _static_bool(tall)
        wide_s = _static_bool(wide)

        if tall_s is None:
            left = tf.cond(tall, lambda: left + u_extra(), lambda: left)
        elif tall_s:
            left = left + u_extra()

        g = tf.linalg.matmul(left, v1, adjoint_b=True)      # [..., M, N]

        if wide_s is None:
            g = tf.cond(wide, lambda: g + v_extra(), lambda: g)
        elif wide_s:
            g = g + v_extra()
        return g
