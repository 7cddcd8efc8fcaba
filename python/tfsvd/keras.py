"""Keras 3 layers built on tfsvd.svd.

    from tfsvd.keras import SpectralNormDense, OrthogonalDense

Both serialise (get_config, .keras files) and train with model.fit under its defaults,
jit_compile="auto" included (inside XLA, tfsvd.svd uses its XLA composite).
"""

import keras
import tensorflow as tf

from ._svd import GRAD_METHODS, check_grad_options, svd

_PACKAGE = "tfsvd"


class _SvdDense(keras.layers.Layer):
    """Dense layer whose kernel is a function of a free matrix through its SVD."""

    def __init__(self, units, use_bias=True, activation=None, kernel_initializer="glorot_uniform",
                 grad_method="stable", **kwargs):
        super().__init__(**kwargs)
        if int(units) <= 0:
            raise ValueError(f"{type(self).__name__}: units must be positive, got {units}")
        check_grad_options(grad_method, None, 9)
        self.units = int(units)
        self.use_bias = bool(use_bias)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.grad_method = grad_method

    def build(self, input_shape):
        self.raw_kernel = self.add_weight(name="raw_kernel", shape=(input_shape[-1], self.units),
                                          initializer=self.kernel_initializer)
        self.bias = (self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
                     if self.use_bias else None)

    def kernel(self):
        raise NotImplementedError

    def call(self, inputs):
        outputs = tf.matmul(inputs, tf.cast(self.kernel(), inputs.dtype))
        if self.bias is not None:
            outputs = outputs + tf.cast(self.bias, inputs.dtype)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, use_bias=self.use_bias,
                      activation=keras.activations.serialize(self.activation),
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      grad_method=self.grad_method)
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpectralNormDense(_SvdDense):
    """Dense layer with spectral norm exactly `max_norm`: kernel = max_norm * W / sigma_max(W).

    Unlike power-iteration spectral normalisation, sigma_max is exact at every step; its
    gradient comes from the singular vectors the forward pass already has (no second SVD).
    Used for Lipschitz-constrained critics and stable GAN discriminators.
    """

    def __init__(self, units, max_norm=1.0, **kwargs):
        super().__init__(units, **kwargs)
        if not float(max_norm) > 0:
            raise ValueError(f"SpectralNormDense: max_norm must be positive, got {max_norm}")
        self.max_norm = float(max_norm)

    def kernel(self):
        s = svd(self.raw_kernel, compute_uv=False, grad_method=self.grad_method)
        return self.raw_kernel * (self.max_norm / s[0])

    def get_config(self):
        return {**super().get_config(), "max_norm": self.max_norm}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class OrthogonalDense(_SvdDense):
    """Dense layer with an orthogonal kernel: the polar factor U V^T of a free matrix W = U S V^T,
    the orthogonal (semi-orthogonal when in != units) matrix closest to W. Keeps activations'
    norms (isometry), as in orthogonal RNN/flow layers and Procrustes heads."""

    def kernel(self):
        _, u, v = svd(self.raw_kernel, grad_method=self.grad_method)
        return tf.matmul(u, v, transpose_b=True)


__all__ = ["SpectralNormDense", "OrthogonalDense", "GRAD_METHODS"]
