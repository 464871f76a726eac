"""In-memory batches with the paper's CIFAR augmentation, in vectorised numpy (no TensorFlow).

For small datasets (CIFAR) the decoded uint8 images stay in memory and whole batches are augmented at
once; the iterator yields `(float32 normalised images, int32 labels)` numpy batches that any Keras backend
(JAX, PyTorch, TensorFlow) can consume, e.g. `model.fit(ArrayIterator(...))`-style loops or custom JAX steps.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 4.2: "4 pixels are padded on each side, and a 32x32 crop is randomly sampled from the padded image
or its horizontal flip. For testing, we only evaluate the single view of the original 32x32 image."

Example:
    >>> images, labels = np.zeros((256, 32, 32, 3), np.uint8), np.zeros((256,), np.int64)
    >>> it = ArrayIterator(images, labels, 128, training=True, mean=None, seed=0)
    >>> x, y = next(iter(it))
    >>> x.shape, x.dtype, y.dtype
    ((128, 32, 32, 3), dtype('float32'), dtype('int32'))
"""

from __future__ import annotations

import numpy as np

from keras_resnet.data.preprocessing import CIFAR_PAD, normalize


def random_crop_flip(images, rng, pad: int = CIFAR_PAD, return_params: bool = False):
    """Zero-pads `pad` pixels on each side, takes a random crop of the original size, flips half at random.

    One gather does crop and flip for the whole batch. Crop offsets are uniform in `[0, 2 * pad]`
    (offset `pad` is the original image) and each image is flipped with probability 1/2.

    Args:
        images: uint8 array `[B, H, W, C]`.
        rng: a `numpy.random.Generator`.
        pad: zero padding on each side.
        return_params: also return `(offset_y, offset_x, flipped)` arrays of shape `[B]`.

    Returns:
        The augmented images (same shape and dtype), and the parameters if `return_params`.

    Example:
        >>> out = random_crop_flip(np.zeros((8, 32, 32, 3), np.uint8), np.random.default_rng(0))
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"`images` must be [B, H, W, C]; received shape {images.shape}.")
    params = draw_crop_flip(rng, len(images), pad)
    out = crop_flip(images, *params, pad=pad)
    if return_params:
        return out, params
    return out


def draw_crop_flip(rng, batch: int, pad: int = CIFAR_PAD):
    """The random parameters of `random_crop_flip` for `batch` images: `(offset_y, offset_x, flipped)`.

    Drawn from `rng` in this order (offsets uniform in `[0, 2 * pad]`, flips with probability 1/2), so
    that drawing them and applying `crop_flip` (here, or `keras_resnet.data.device_augment.crop_flip` on an
    accelerator) gives exactly what `random_crop_flip` gives for the same generator state.
    """
    oy = rng.integers(0, 2 * pad + 1, size=batch)
    ox = rng.integers(0, 2 * pad + 1, size=batch)
    flip = rng.random(batch) < 0.5
    return oy, ox, flip


def crop_flip(images, offset_y, offset_x, flip, pad: int = CIFAR_PAD):
    """Zero-pads `pad` pixels on each side, crops `[B, H, W, C]` at the given offsets, flips where asked."""
    b, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    rows = offset_y[:, None] + np.arange(h)[None]
    cols_fwd = np.arange(w)[None]
    cols = offset_x[:, None] + np.where(flip[:, None], w - 1 - cols_fwd, cols_fwd)
    return padded[np.arange(b)[:, None, None], rows[:, :, None], cols[:, None, :]]


class ArrayIterator:
    """Epoch iterator over in-memory uint8 images: shuffle, CIFAR augmentation, normalisation, batching.

    Each `iter()` is one epoch. With a `seed` the epochs are reproducible (epoch `e` uses the generator
    seeded by `(seed, e)`: same batches in the same order for the same seed), and differ from one epoch to
    the next; without a seed every epoch is freshly random.

    Args:
        images: uint8 array `[N, H, W, C]` (e.g. from `load_arrays`).
        labels: int array `[N]`.
        batch_size: images per batch.
        training: shuffle and augment (pad 4, random crop, random flip) when True; plain order otherwise.
        mean: mean image in 0..255 units (`DatasetInfo.mean`), or None to only scale by 1/255.
        seed: int seed for shuffling and augmentation, or None.
        drop_remainder: drop the last incomplete batch; defaults to `training`.
        augment: apply the crop/flip augmentation when training (set False to only shuffle).
        pad: zero padding on each side for the random crop.

    Example:
        >>> for x, y in ArrayIterator(images, labels, 128, training=False, mean=None):  # doctest: +SKIP
        ...     logits = model(x)
    """

    def __init__(self, images, labels, batch_size: int, *, training: bool, mean=None, seed=None,
                 drop_remainder=None, augment: bool = True, pad: int = CIFAR_PAD):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(
                f"`images` must be a uint8 array [N, H, W, C]; received {images.dtype} {images.shape}."
            )
        if labels.shape != (len(images),):
            raise ValueError(f"`labels` must have shape ({len(images)},); received {labels.shape}.")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int; received {batch_size!r}.")
        self.images, self.labels = images, labels.astype(np.int32)
        self.batch_size = int(batch_size)
        self.training = bool(training)
        self.mean = None if mean is None else np.asarray(mean, np.float32)
        self.seed = seed
        self.drop_remainder = self.training if drop_remainder is None else bool(drop_remainder)
        self.augment = augment
        self.pad = pad
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def __iter__(self):
        for idx, params in self.plans():
            x = self.images[idx]
            if params is not None:
                x = crop_flip(x, *params, pad=self.pad)
            yield normalize(x, self.mean), self.labels[idx]

    def plans(self):
        """One epoch of batch plans, without touching a pixel: `(indices, (offset_y, offset_x, flip) or None)`.

        The same draws, in the same order, as iterating: batch `i` of `iter(self)` is
        `normalize(crop_flip(images[indices], *params), mean)`. This lets an accelerator holding the uint8
        images do the gather and augmentation itself (`keras_resnet.data.device_augment`) and receive only
        indices and crop parameters per step. Counts as an epoch (advances `self.epoch`).
        """
        rng = np.random.default_rng(None if self.seed is None else [int(self.seed), self.epoch])
        self.epoch += 1
        n = len(self.images)
        order = rng.permutation(n) if self.training else np.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            params = draw_crop_flip(rng, len(idx), self.pad) if self.training and self.augment else None
            yield idx, params
