"""The paper's augmentation and evaluation geometry as TensorFlow ops, for tf.data and the export graph.

TensorFlow-only: this module imports TensorFlow. The backend-agnostic CIFAR augmentation for in-memory
numpy batches is `keras_resnet.data.in_memory.random_crop_flip`; normalisation is
`(float32(image) - mean) / 255` as in `keras_resnet.data.preprocessing`.

Decoding lives in `keras_resnet.data.decoding` (`augment.decode` is the same function, kept for imports).
The ImageNet geometry takes its sizes as arguments; for a `crop_size` run they are
`preprocessing.imagenet_scale_range(crop_size)` and `preprocessing.imagenet_eval_size(crop_size)`.

All random ops are stateless and take an explicit `seed` (an int32/int64 tensor of shape `[2]`), so a
pipeline built with the same seed yields the same batches.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385):
section 4.2 (CIFAR: pad 4, random 32x32 crop, horizontal flip; test on the original image) and section 3.4
(ImageNet: shorter side resized to a random size in [256, 480], random 224x224 crop, horizontal flip,
per-pixel mean subtraction, standard colour augmentation; test: 10-crop or shorter side 256 centre crop).

Example:
    >>> import tensorflow as tf
    >>> images = tf.zeros([8, 32, 32, 3], tf.uint8)
    >>> cifar_crop_flip(images, tf.constant([1, 2], tf.int64)).shape
    TensorShape([8, 32, 32, 3])
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_resnet.data.decoding import JPEG_MAGIC, decode  # noqa: F401  (re-exported: augment.decode)
from keras_resnet.data.preprocessing import (
    CIFAR_PAD,
    IMAGENET_CROP,
    IMAGENET_EVAL_SIZE,
    IMAGENET_SCALE_RANGE,
    PCA_ALPHA_STD,
    PCA_EIGENVALUES,
    PCA_EIGENVECTORS,
)


def normalize(images, mean):
    """`(float32(images) - mean) / 255` in TensorFlow (mean in 0..255 units, or None)."""
    x = tf.cast(images, tf.float32)
    if mean is not None:
        x = x - tf.constant(np.asarray(mean, np.float32))
    return x * (1.0 / 255.0)


def cifar_crop_flip(images, seed, pad: int = CIFAR_PAD):
    """Batch-wise CIFAR augmentation: zero-pad `pad`, random crop back to `[H, W]`, random horizontal flip.

    Vectorised over the batch (two gathers, no per-image ops). Offsets are uniform in `[0, 2 * pad]`.

    Args:
        images: `[B, H, W, C]` tensor (any dtype).
        seed: stateless seed, shape `[2]`.
        pad: zero padding on each side.

    Example:
        >>> cifar_crop_flip(tf.zeros([2, 32, 32, 3]), [0, 1]).shape
        TensorShape([2, 32, 32, 3])
    """
    b = tf.shape(images)[0]
    h, w = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    oy = tf.random.stateless_uniform([b], seeds[0], 0, 2 * pad + 1, dtype=tf.int32)
    ox = tf.random.stateless_uniform([b], seeds[1], 0, 2 * pad + 1, dtype=tf.int32)
    flip = tf.random.stateless_uniform([b], seeds[2]) < 0.5
    rows = oy[:, None] + tf.range(h)[None]
    fwd = tf.range(w)[None]
    cols = ox[:, None] + tf.where(flip[:, None], w - 1 - fwd, fwd)
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def resize_shorter_side(image, size):
    """Resizes (bilinear) so the shorter side is `size`, keeping the aspect ratio; returns float32."""
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.cast(size, tf.float32) / tf.minimum(h, w)
    new = tf.cast(tf.round(tf.stack([h * scale, w * scale])), tf.int32)
    new = tf.maximum(new, tf.cast(size, tf.int32))  # rounding never makes the shorter side short of `size`
    return tf.image.resize(image, new, method="bilinear")


def center_crop(image, crop: int = IMAGENET_CROP):
    """The central `crop` x `crop` window of `[H, W, C]`."""
    shape = tf.shape(image)
    top, left = (shape[0] - crop) // 2, (shape[1] - crop) // 2
    return image[top : top + crop, left : left + crop, :]


def imagenet_eval_geometry(image, size: int = IMAGENET_EVAL_SIZE, crop: int = IMAGENET_CROP):
    """ImageNet evaluation geometry: shorter side to `size` (bilinear), centre `crop` crop; float32 0..255.

    The one function used by both the evaluation pipeline and the export graph (`docs/CONTRACTS.md`).

    Args:
        image: uint8 or float `[H, W, 3]`.

    Example:
        >>> imagenet_eval_geometry(tf.zeros([375, 500, 3], tf.uint8)).shape
        TensorShape([224, 224, 3])
    """
    out = center_crop(resize_shorter_side(image, size), crop)
    out.set_shape([crop, crop, image.shape[-1]])
    return out


def _pillow_resize(image, height, width, method):
    """One Pillow resampling pass: antialiased, rounded and clipped to 0..255 as Pillow stores uint8."""
    x = tf.image.resize(image, tf.stack([height, width]), method=method, antialias=True)
    return tf.clip_by_value(tf.round(x), 0.0, 255.0)


def published_eval_geometry(image, transform):
    """A published evaluation transform (`keras_resnet.eval_transform.EvalTransform`) in TensorFlow.

    Pillow's two passes (horizontal, then vertical, each antialiased and rounded to uint8), the longer side
    truncated and the centre crop's corner rounded half to even, as torchvision and timm evaluate: within
    one level of `transform.pillow(image)` (tested). Returns float32 `[crop, crop, C]` in 0..255.

    Example:
        >>> from keras_resnet.eval_transform import EvalTransform
        >>> published_eval_geometry(tf.zeros([375, 500, 3], tf.uint8), EvalTransform("tv2", 232, 224)).shape
        TensorShape([224, 224, 3])
    """
    x = tf.cast(image, tf.float32)
    shape = tf.shape(x)
    h, w = shape[0], shape[1]
    size = tf.constant(transform.resize_size, tf.int32)
    longer = lambda a, b: tf.cast(tf.math.floor(transform.resize_size * tf.cast(a, tf.float64)  # noqa: E731
                                                / tf.cast(b, tf.float64)), tf.int32)
    new_h = tf.where(h <= w, size, longer(h, w))
    new_w = tf.where(h <= w, longer(w, h), size)
    x = _pillow_resize(x, h, new_w, transform.interpolation)  # Pillow: horizontal pass first
    x = _pillow_resize(x, new_h, new_w, transform.interpolation)
    crop = transform.crop_size
    top = tf.cast(tf.round(tf.cast(new_h - crop, tf.float32) / 2.0), tf.int32)  # tf.round: halves to even
    left = tf.cast(tf.round(tf.cast(new_w - crop, tf.float32) / 2.0), tf.int32)
    out = x[top: top + crop, left: left + crop, :]
    out.set_shape([crop, crop, image.shape[-1]])
    return out


def ten_crop(image, size: int = IMAGENET_EVAL_SIZE, crop: int = IMAGENET_CROP):
    """10-crop evaluation: 4 corners and centre of the shorter-side-`size` image, and their flips.

    Returns a float32 `[10, crop, crop, C]` tensor (0..255).
    """
    x = resize_shorter_side(image, size)
    shape = tf.shape(x)
    h, w = shape[0], shape[1]
    tops = [0, 0, h - crop, h - crop, (h - crop) // 2]
    lefts = [0, w - crop, 0, w - crop, (w - crop) // 2]
    crops = tf.stack([x[t : t + crop, l : l + crop, :] for t, l in zip(tops, lefts)])
    out = tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0)
    out.set_shape([10, crop, crop, image.shape[-1]])
    return out


def imagenet_train_geometry(image, seed, scale_range=IMAGENET_SCALE_RANGE, crop: int = IMAGENET_CROP):
    """ImageNet training geometry: shorter side to a random size in `scale_range` (inclusive), random
    `crop` x `crop` crop, random horizontal flip. Returns float32 `[crop, crop, C]` in 0..255."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    size = tf.random.stateless_uniform([], seeds[0], scale_range[0], scale_range[1] + 1, dtype=tf.int32)
    x = resize_shorter_side(image, size)
    x = tf.image.stateless_random_crop(x, [crop, crop, image.shape[-1]], seeds[1])
    return tf.image.stateless_random_flip_left_right(x, seeds[2])


def pca_lighting(image, seed, alpha_std: float = PCA_ALPHA_STD):
    """AlexNet-style PCA colour augmentation on a float32 0..255 image: adds `V (alpha * lambda)` with
    `alpha ~ N(0, alpha_std)` per image (eigen-decomposition of ImageNet RGB, scaled to 0..255)."""
    alpha = tf.random.stateless_normal([3], tf.cast(seed, tf.int64), stddev=alpha_std)
    rgb = tf.linalg.matvec(tf.constant(PCA_EIGENVECTORS), alpha * tf.constant(PCA_EIGENVALUES)) * 255.0
    return image + rgb
