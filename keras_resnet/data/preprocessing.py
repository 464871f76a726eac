"""Backend-agnostic preprocessing: normalisation, mean images, the train/validation split (no TensorFlow).

The network sees `(float32(image) - mean) / 255.0` with `mean` in 0..255 units: the per-pixel mean image
`[H, W, 3]` of the training split for CIFAR, the per-channel mean `[1, 1, 3]` for ImageNet-style data
(`docs/CONTRACTS.md`). This module imports only numpy (and `keras.ops` lazily in `normalize_ops`), so it
works on the JAX backend where TensorFlow is absent; the tf.data pipelines apply the same formula.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385):
section 4.2 ("the per-pixel mean subtracted", a 45k/5k train/validation split) and section 3.4 (ImageNet,
per-pixel mean subtraction and the "standard color augmentation" of Krizhevsky et al. 2012).

Example:
    >>> images = np.zeros((4, 32, 32, 3), np.uint8)
    >>> mean = mean_image(images)
    >>> normalize(images, mean).dtype
    dtype('float32')
"""

from __future__ import annotations

import numpy as np

CIFAR_PAD = 4
"""Zero padding on each side before the random 32x32 crop (paper, section 4.2)."""
IMAGENET_SCALE_RANGE = (256, 480)
"""Shorter side resized to a random size in this range for ImageNet training (paper, section 3.4)."""
IMAGENET_EVAL_SIZE = 256
"""Shorter side for ImageNet evaluation."""
IMAGENET_CROP = 224
"""Crop size for ImageNet training and evaluation."""

# PCA of ImageNet RGB pixels in 0..1 units (Krizhevsky et al. 2012, as used by fb.resnet.torch).
PCA_EIGENVALUES = np.array([0.2175, 0.0188, 0.0045], np.float32)
PCA_EIGENVECTORS = np.array(
    [[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]], np.float32
)
PCA_ALPHA_STD = 0.1


def preprocessing_for(image_shape) -> str:
    """`"cifar"` for small images (both sides <= 64 pixels), `"imagenet"` otherwise."""
    return "cifar" if max(image_shape[0], image_shape[1]) <= 64 else "imagenet"


def check_crop_size(crop_size) -> int:
    """`crop_size` as an int; `ValueError` naming it unless it is a positive int (bools refused)."""
    if isinstance(crop_size, bool) or not isinstance(crop_size, (int, np.integer)) or crop_size < 1:
        raise ValueError(f"`crop_size` must be a positive int (the side of the square crop, e.g. 224, 160 or "
                         f"128); received {crop_size!r}.")
    return int(crop_size)


def imagenet_eval_size(crop_size: int = IMAGENET_CROP) -> int:
    """The shorter side evaluation resizes to for a `crop_size` crop: `round(256 * crop_size / 224)`.

    The paper's 256 for its 224 crop, kept in proportion (e.g. 146 for 128, 183 for 160).

    Example:
        >>> imagenet_eval_size(224), imagenet_eval_size(128)
        (256, 146)
    """
    return int(round(IMAGENET_EVAL_SIZE * check_crop_size(crop_size) / IMAGENET_CROP))


def imagenet_scale_range(crop_size: int = IMAGENET_CROP) -> tuple:
    """The range of the random shorter side in training for a `crop_size` crop: the paper's [256, 480]
    scaled by `crop_size / 224` (rounded), e.g. `(146, 274)` for 128.

    Example:
        >>> imagenet_scale_range(224)
        (256, 480)
    """
    c = check_crop_size(crop_size)
    return tuple(int(round(s * c / IMAGENET_CROP)) for s in IMAGENET_SCALE_RANGE)


def normalize(images, mean) -> np.ndarray:
    """Returns `(float32(images) - mean) / 255` as a float32 numpy array.

    Args:
        images: uint8 (or float) array `[..., H, W, C]` in 0..255.
        mean: array broadcastable to the images (`[H, W, C]` or `[1, 1, C]`), 0..255 units, or None for 0.

    Example:
        >>> float(normalize(np.full((1, 2, 2, 3), 255, np.uint8), None).max())
        1.0
    """
    x = np.asarray(images, dtype=np.float32)
    if mean is not None:
        x = x - np.asarray(mean, dtype=np.float32)
    return x * np.float32(1.0 / 255.0)


def normalize_ops(images, mean):
    """`normalize` with `keras.ops`, for use inside models or on the accelerator (any Keras backend).

    Example:
        >>> tuple(normalize_ops(np.zeros((1, 2, 2, 3), np.uint8), np.ones((2, 2, 3))).shape)
        (1, 2, 2, 3)
    """
    from keras import ops

    x = ops.cast(images, "float32")
    if mean is not None:
        x = x - ops.convert_to_tensor(np.asarray(mean, np.float32))
    return x * (1.0 / 255.0)


class MeanAccumulator:
    """Streaming mean of uint8 images in float64, per pixel (`per_pixel=True`) or per channel.

    Example:
        >>> acc = MeanAccumulator(per_pixel=False)
        >>> acc.update(np.full((2, 4, 4, 3), 10, np.uint8))
        >>> acc.result().shape
        (1, 1, 3)
    """

    def __init__(self, per_pixel: bool = True):
        self.per_pixel = per_pixel
        self._sum = None
        self._count = 0

    def update(self, images) -> None:
        """Adds a batch `[N, H, W, C]` (or one image `[H, W, C]`)."""
        x = np.asarray(images)
        if x.ndim == 3:
            x = x[None]
        if self.per_pixel:
            s, n = x.sum(axis=0, dtype=np.float64), x.shape[0]
            if self._sum is not None and self._sum.shape != s.shape:
                raise ValueError(
                    f"Per-pixel mean needs images of one shape; received {s.shape} after {self._sum.shape}."
                )
        else:
            s, n = x.sum(axis=(0, 1, 2), dtype=np.float64)[None, None], x.shape[0] * x.shape[1] * x.shape[2]
        self._sum = s if self._sum is None else self._sum + s
        self._count += n

    def result(self) -> np.ndarray:
        """The float32 mean in 0..255 units; `ValueError` if no image was added."""
        if not self._count:
            raise ValueError("Cannot compute a mean image of zero images.")
        return (self._sum / self._count).astype(np.float32)


def mean_image(images, chunk: int = 4096) -> np.ndarray:
    """Per-pixel mean `[H, W, C]` (float32, 0..255 units) of uint8 images `[N, H, W, C]`."""
    acc = MeanAccumulator(per_pixel=True)
    for i in range(0, len(images), chunk):
        acc.update(images[i : i + chunk])
    return acc.result()


def channel_mean(images, chunk: int = 4096) -> np.ndarray:
    """Per-channel mean `[1, 1, C]` (float32, 0..255 units) of uint8 images `[N, H, W, C]`."""
    acc = MeanAccumulator(per_pixel=False)
    for i in range(0, len(images), chunk):
        acc.update(images[i : i + chunk])
    return acc.result()


def stratified_split(labels, validation_size: int, seed: int = 0):
    """Deterministic, stratified train/validation split of a training set (the paper's 45k/5k).

    Each class contributes to the validation set in proportion to its size (largest remainder rounding),
    the images held out within a class are chosen by a fixed-seed permutation, so the split depends only on
    `labels`, `validation_size` and `seed`, never on the run.

    Args:
        labels: int labels of the training set, in the source's deterministic order.
        validation_size: number of images to hold out, `0 <= validation_size < len(labels)`.
        seed: seed of the per-class permutation.

    Returns:
        `(train_indices, validation_indices)`, sorted int64 arrays partitioning `range(len(labels))`.

    Example:
        >>> train, val = stratified_split(np.repeat(np.arange(10), 5000), 5000)
        >>> len(train), len(val), np.bincount(np.repeat(np.arange(10), 5000)[val]).tolist()[:3]
        (45000, 5000, [500, 500, 500])
    """
    labels = np.asarray(labels).reshape(-1)
    n = len(labels)
    if not isinstance(validation_size, (int, np.integer)) or not 0 <= validation_size < max(n, 1):
        raise ValueError(
            f"`validation_size` must be an int in [0, {n}) (the training split has {n} images); "
            f"received {validation_size!r}."
        )
    if validation_size == 0:
        return np.arange(n, dtype=np.int64), np.zeros((0,), np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (validation_size / n)
    take = np.floor(exact).astype(np.int64)
    remainder = validation_size - int(take.sum())
    if remainder:
        order = np.lexsort((classes, -(exact - take)))  # largest fractional part first, ties by class
        take[order[:remainder]] += 1
    rng = np.random.RandomState(seed)
    held = []
    for c, k in zip(classes, take):
        idx = np.flatnonzero(labels == c)
        held.append(idx[rng.permutation(len(idx))[:k]])
    val = np.sort(np.concatenate(held)).astype(np.int64)
    mask = np.ones(n, bool)
    mask[val] = False
    return np.flatnonzero(mask).astype(np.int64), val
