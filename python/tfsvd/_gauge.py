"""Opt-in check that a loss on complex singular vectors is gauge invariant.

Complex singular vectors are unique only up to a phase per column (u_k -> u_k e^{i t},
v_k -> v_k e^{i t}). A loss that depends on that phase has no well-defined gradient; its
cotangents show it as Im(J_kk) + Im(Kv_kk) != 0 with J = U^H gU and Kv = V^H gV. The monitor
records the worst relative violation in a variable on the device, with no host round trip, so it
can stay on during training and be read (or logged) whenever convenient.
"""

import tensorflow as tf


class GaugeMonitor(tf.Module):
    """Records how far the losses of monitored tfsvd.svd calls are from gauge invariance.

        monitor = tfsvd.GaugeMonitor()
        s, u, v = tfsvd.svd(a, gauge_monitor=monitor)   # complex a
        ... train ...
        if monitor.violation > 1e-3: warn("loss depends on the phase of singular vectors")

    `violation` is max over columns of |Im(J_kk + Kv_kk)| / (|gU_k| + |gV_k|): about the
    rounding error for a gauge-invariant loss, O(1) for one that depends on the phases.
    """

    def __init__(self, name="tfsvd_gauge_monitor"):
        super().__init__(name=name)
        with tf.init_scope():
            self._violation = tf.Variable(0.0, trainable=False, dtype=tf.float64,
                                          name="violation")

    @property
    def violation(self):
        """The worst relative gauge violation seen since the last reset (a tf.Variable)."""
        return self._violation

    def reset(self):
        self._violation.assign(0.0)

    def watch(self, u, v):
        """Identity on (u, v) whose gradient records the violation of the incoming cotangents."""
        k = tf.minimum(tf.shape(u)[-1], tf.shape(v)[-1])

        @tf.custom_gradient
        def identity(u, v):
            def grad(gu, gv):
                u1, v1, gu1, gv1 = u[..., :k], v[..., :k], gu[..., :k], gv[..., :k]
                j_diag = tf.reduce_sum(tf.math.conj(u1) * gu1, axis=-2)
                kv_diag = tf.reduce_sum(tf.math.conj(v1) * gv1, axis=-2)
                scale = tf.norm(tf.abs(gu1), axis=-2) + tf.norm(tf.abs(gv1), axis=-2)
                ratio = tf.math.divide_no_nan(tf.abs(tf.math.imag(j_diag + kv_diag)), scale)
                worst = tf.cast(tf.reduce_max(tf.concat([tf.reshape(ratio, [-1]), [0]], 0)),
                                tf.float64)
                update = self._violation.assign(tf.maximum(self._violation, worst))
                with tf.control_dependencies([update]):
                    return tf.identity(gu), tf.identity(gv)

            return (tf.identity(u), tf.identity(v)), grad

        return identity(u, v)
