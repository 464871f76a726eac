"""Batch normalisation that runs TensorFlow's fused kernel: `keras.layers.BatchNormalization`, only faster.

Reference: Ioffe and Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing Internal
Covariate Shift", ICML 2015 (arXiv:1502.03167); He et al., CVPR 2016 (arXiv:1512.03385), section 3.4, put
one after every convolution.

Keras 3 normalises on TensorFlow with `tf.nn.moments` and `tf.nn.batch_normalization`: half a dozen
separate ops forward and twice that backward (keras-team/keras-core#225). TensorFlow's `FusedBatchNormV3`
does the same arithmetic in one kernel each way. `BatchNormalization` here is a subclass of Keras' layer
with the same constructor, weights (names, shapes, order), config and semantics that, on the TensorFlow
backend, computes with the fused kernel in training and in inference:

- the output is normalised with the batch mean and the *biased* batch variance (training), or with the
  moving statistics (inference), exactly as Keras does;
- the moving statistics are updated as Keras updates them,
  `moving = moving * momentum + batch * (1 - momentum)`, with Keras' biased batch variance. The fused op
  returns the unbiased (Bessel-corrected, `n / (n - 1)`) variance; it is scaled back by `(n - 1) / n`;
- float16 / bfloat16 inputs (mixed precision) are normalised in float32 inside the kernel with float32
  parameters, and the output is in the layer's compute dtype, as with Keras' own upcasting.

Anything the fused kernel does not cover runs Keras' own code (`super().call`): other backends, inputs
that are not 4-D channels-last (`axis` other than -1 / 3), masks, `synchronized=True` (`sync_batch_norm`),
`renorm=True`, non-float32 variables or float64 inputs.

Escape hatch: the environment variable `KERAS_RESNET_FUSED_BN=0` (also `false`, `no`, `off`) makes every
layer run Keras' own code. It is read each time a layer is called, i.e. when a `tf.function` traces, so set
it before the model first runs (a traced function keeps the path it traced with).

Models and `.keras` files written with plain `keras.layers.BatchNormalization` still load (they keep that
class); weight files (`.weights.h5`, the training backups) load into models built with this layer since the
variables are the same.
"""

from __future__ import annotations

import os

import keras

FUSED_ENV = "KERAS_RESNET_FUSED_BN"
"""Environment variable: `0` / `false` / `no` / `off` turns the fused kernel off, `1` (default) on."""

_ON = ("", "1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")
_FUSED_DTYPES = ("float16", "bfloat16", "float32")


def fused_enabled():
    """Whether `KERAS_RESNET_FUSED_BN` allows the fused kernel (it does unless set to 0/false/no/off).

    Returns:
        bool.

    Raises:
        ValueError: the variable holds something other than the accepted values.

    Example:
        >>> os.environ[FUSED_ENV] = "0"
        >>> fused_enabled()
        False
        >>> del os.environ[FUSED_ENV]
    """
    value = os.environ.get(FUSED_ENV, "1").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(
        f"Environment variable {FUSED_ENV}={os.environ[FUSED_ENV]!r} is not understood; accepted: "
        f"{', '.join(repr(v) for v in _ON[1:] + _OFF)} (0/false/no/off use Keras' own batch normalisation)."
    )


@keras.saving.register_keras_serializable(package="keras_resnet")
class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by TensorFlow's fused kernel where it applies.

    Same arguments, weights, config and results as Keras' layer (see the module docstring for what
    "same" covers and when Keras' own code runs instead). `isinstance(layer, keras.layers.BatchNormalization)`
    holds, and the layer serialises as `keras_resnet>BatchNormalization`, loadable in safe mode.

    Args:
        **kwargs: the arguments of `keras.layers.BatchNormalization` (`axis`, `momentum`, `epsilon`,
            `gamma_initializer`, `synchronized`, ...).

    Example:
        >>> import numpy as np
        >>> layer = BatchNormalization(momentum=0.9, epsilon=1e-5)
        >>> y = layer(np.ones((2, 4, 4, 3), "float32"), training=True)
        >>> [w.name for w in layer.weights]
        ['gamma', 'beta', 'moving_mean', 'moving_variance']
    """

    def uses_fused_kernel(self, inputs, mask=None):
        """Whether a call with these inputs runs TensorFlow's fused kernel (else Keras' own code).

        Args:
            inputs: the input tensor (its rank and dtype matter).
            mask: the call's mask, if any.

        Returns:
            bool.
        """
        if keras.backend.backend() != "tensorflow" or mask is not None:
            return False
        if self.synchronized or self.renorm or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return False
        if keras.backend.standardize_dtype(inputs.dtype) not in _FUSED_DTYPES:
            return False
        params = [self.moving_mean, self.moving_variance] + [w for w in (self.gamma, self.beta) if w is not None]
        if any(keras.backend.standardize_dtype(w.dtype) != "float32" for w in params):
            return False
        return fused_enabled()

    def call(self, inputs, training=None, mask=None):
        if not self.uses_fused_kernel(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        outputs = self._fused_call(inputs, bool(training and self.trainable))
        return keras.ops.cast(outputs, self.compute_dtype)

    def _fused_call(self, inputs, training):
        """Normalise with `tf.raw_ops.FusedBatchNormV3` (NHWC); in training also update the moving stats."""
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = tf.convert_to_tensor(self.gamma) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.convert_to_tensor(self.beta) if self.center else tf.zeros([channels], tf.float32)
        moving_mean = tf.convert_to_tensor(self.moving_mean)
        moving_variance = tf.convert_to_tensor(self.moving_variance)
        if not training:
            outputs = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=scale, offset=offset, mean=moving_mean, variance=moving_variance,
                epsilon=self.epsilon, data_format="NHWC", is_training=False,
            )[0]
            return outputs
        empty = tf.constant([], tf.float32)
        outputs, mean, unbiased_variance = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=empty, variance=empty,
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=True,
        )[:3]
        # The kernel normalises with the biased variance but returns the unbiased one, var * n / (n - 1) (0
        # when n == 1); Keras' moving variance averages the biased one, so undo Bessel's correction.
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        variance = unbiased_variance * tf.maximum(count - 1.0, 0.0) / tf.maximum(count, 1.0)
        mean, variance = tf.stop_gradient(mean), tf.stop_gradient(variance)
        self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return outputs
