"""The paper's CIFAR augmentation on the accelerator: pad 4, random 32x32 crop, random flip, normalise.

`keras_resnet.data.in_memory.random_crop_flip` does the augmentation in numpy on the host. For a GPU the whole
CIFAR-10 training split (50,000 uint8 images, 150 MB) fits in device memory, and the same augmentation is a
gather inside the compiled training step, so nothing but batch indices crosses from host to device per
step. This module holds that device-side version, written with `keras.ops` (TensorFlow, JAX, PyTorch
backends), with one TensorFlow fast path (`tf_crop_flip`, imported only on that backend):

* `crop_flip(images, offset_y, offset_x, flip, pad=4)`: given the crop offsets and flips, the exact
  counterpart of the numpy `random_crop_flip` with the same parameters (tested to be bit-identical);
* `random_crop_flip(images, seed, pad=4)`: draws the parameters with `keras.random`;
* `augment_normalize(images, mean, offset_y, offset_x, flip)`: crop/flip then `(float32(x) - mean) / 255`
  (docs/CONTRACTS.md), as the in-memory iterator yields;
* `jax_crop_flip_params(key, batch, pad=4)`: the parameters from a JAX PRNG key, for jitted JAX steps
  (imports JAX lazily).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 4.2: "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded image
or its horizontal flip."

Example:
    >>> import numpy as np
    >>> x = np.arange(2 * 4 * 4 * 1, dtype=np.uint8).reshape(2, 4, 4, 1)
    >>> out = crop_flip(x, np.array([1, 1]), np.array([1, 1]), np.array([False, False]), pad=1)
    >>> bool((np.asarray(out) == x).all())  # offset == pad, no flip: the original image
    True
"""

from __future__ import annotations

import numpy as np

from keras_resnet.data.preprocessing import CIFAR_PAD


def crop_flip(images, offset_y, offset_x, flip, pad: int = CIFAR_PAD):
    """Zero-pads `pad` pixels on each side, crops at the given offsets and flips where asked.

    The same computation as `keras_resnet.data.in_memory.random_crop_flip(..., return_params=True)` with its
    returned `(offset_y, offset_x, flipped)`: the output pixel `(i, j)` of image `b` is the padded pixel
    `(offset_y[b] + i, offset_x[b] + j')` with `j' = W - 1 - j` if `flip[b]` else `j`.

    Args:
        images: `[B, H, W, C]` tensor (any dtype; uint8 keeps the gather 4x smaller than float32).
        offset_y, offset_x: int `[B]` tensors in `[0, 2 * pad]` (`pad` is the original position).
        flip: bool `[B]` tensor, flip horizontally where True.
        pad: zero padding on each side.

    Returns:
        A tensor of the shape and dtype of `images`.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        return tf_crop_flip(images, offset_y, offset_x, flip, pad)
    return ops_crop_flip(images, offset_y, offset_x, flip, pad)


def ops_crop_flip(images, offset_y, offset_x, flip, pad: int = CIFAR_PAD):
    """`crop_flip` in `keras.ops` (any backend): two `take_along_axis` gathers, one index per output value."""
    from keras import ops

    b, h, w, c = images.shape
    padded = ops.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offset_y = ops.cast(offset_y, "int32")
    offset_x = ops.cast(offset_x, "int32")
    flip = ops.cast(flip, "bool")
    rows = ops.expand_dims(offset_y, 1) + ops.expand_dims(ops.arange(h, dtype="int32"), 0)  # [B, H]
    forward = ops.expand_dims(ops.arange(w, dtype="int32"), 0)  # [1, W]
    cols = ops.expand_dims(offset_x, 1) + ops.where(ops.expand_dims(flip, 1), (w - 1) - forward, forward)  # [B, W]
    row_index = ops.broadcast_to(ops.reshape(rows, (b, h, 1, 1)), (b, h, w + 2 * pad, c))
    out = ops.take_along_axis(padded, row_index, axis=1)  # [B, H, W + 2 pad, C]
    col_index = ops.broadcast_to(ops.reshape(cols, (b, 1, w, 1)), (b, h, w, c))
    return ops.take_along_axis(out, col_index, axis=2)


def tf_crop_flip(images, offset_y, offset_x, flip, pad: int = CIFAR_PAD):
    """`crop_flip` on TensorFlow: two `tf.gather(..., batch_dims=1)` of whole rows, then of pixels.

    `ops_crop_flip` gathers every element through `take_along_axis` (a `gather_nd` with one index
    per output value), 5.2 ms for a batch of 128 CIFAR images on a 2-core CPU against 0.86 ms here; the
    output is the same (tested equal in `tests/test_gpu_benchmark_smoke.py`). Imports TensorFlow; only called
    when the Keras backend is TensorFlow.
    """
    import tensorflow as tf

    h, w = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = tf.cast(offset_y, tf.int32)[:, None] + tf.range(h)[None]  # [B, H]
    forward = tf.range(w)[None]
    cols = tf.cast(offset_x, tf.int32)[:, None] + tf.where(tf.cast(flip, tf.bool)[:, None], (w - 1) - forward,
                                                           forward)  # [B, W]
    out = tf.gather(padded, rows, axis=1, batch_dims=1)  # [B, H, W + 2 pad, C]
    return tf.gather(out, cols, axis=2, batch_dims=1)


def random_crop_flip(images, seed=None, pad: int = CIFAR_PAD):
    """`crop_flip` with offsets uniform in `[0, 2 * pad]` and flips with probability 1/2 (`keras.random`).

    Args:
        images: `[B, H, W, C]` tensor.
        seed: int, `keras.random.SeedGenerator` or None (see `keras.random.randint`).
        pad: zero padding on each side.
    """
    import keras

    b = images.shape[0]
    if isinstance(seed, int):
        seed = keras.random.SeedGenerator(seed)
    offset_y = keras.random.randint((b,), 0, 2 * pad + 1, dtype="int32", seed=seed)
    offset_x = keras.random.randint((b,), 0, 2 * pad + 1, dtype="int32", seed=seed)
    flip = keras.random.uniform((b,), seed=seed) < 0.5
    return crop_flip(images, offset_y, offset_x, flip, pad)


def augment_normalize(images, mean, offset_y, offset_x, flip, pad: int = CIFAR_PAD):
    """`crop_flip` on uint8 images, then `(float32(x) - mean) / 255` (mean in 0..255 units, or None)."""
    from keras import ops

    x = ops.cast(crop_flip(images, offset_y, offset_x, flip, pad), "float32")
    if mean is not None:
        x = x - ops.cast(mean, "float32")
    return x * (1.0 / 255.0)


def jax_crop_flip_params(key, batch: int, pad: int = CIFAR_PAD):
    """`(offset_y, offset_x, flip)` for a batch, drawn from a JAX PRNG key (usable inside `jax.jit`)."""
    import jax

    ky, kx, kf = jax.random.split(key, 3)
    offset_y = jax.random.randint(ky, (batch,), 0, 2 * pad + 1, dtype=np.int32)
    offset_x = jax.random.randint(kx, (batch,), 0, 2 * pad + 1, dtype=np.int32)
    flip = jax.random.bernoulli(kf, 0.5, (batch,))
    return offset_y, offset_x, flip


__all__ = ["augment_normalize", "crop_flip", "jax_crop_flip_params", "ops_crop_flip", "random_crop_flip",
           "tf_crop_flip"]
