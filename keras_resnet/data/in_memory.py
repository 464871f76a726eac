"""In-memory data: a whole split decoded into uint8 arrays (`load_arrays`) and batches of it with the paper's
CIFAR augmentation in vectorised numpy (`ArrayIterator`). No TensorFlow for image folders and archives.

For image folders and archives `load_arrays` uses only Pillow and numpy, so the JAX backend on a machine
without TensorFlow can train from the CIFAR-10 JPEG archives; TFDS names and TFRecord directories are read
through tf.data (TensorFlow imported lazily, only for those sources). Whether a source fits in memory at all
is `keras_resnet.data.memory_input_reason`.

`ArrayIterator` keeps the decoded uint8 images in memory and augments whole batches at once; it yields
`(float32 normalised images, int32 labels)` numpy batches that any Keras backend (JAX, PyTorch, TensorFlow)
can consume, e.g. `model.fit(ArrayIterator(...))`-style loops or custom JAX steps.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 4.2 (CIFAR-10, per-pixel mean, 45k/5k split): "4 pixels are padded on each side, and a 32x32 crop is
randomly sampled from the padded image or its horizontal flip. For testing, we only evaluate the single view
of the original 32x32 image."

Example:
    >>> images, labels = np.zeros((256, 32, 32, 3), np.uint8), np.zeros((256,), np.int64)
    >>> it = ArrayIterator(images, labels, 128, training=True, mean=None, seed=0)
    >>> x, y = next(iter(it))
    >>> x.shape, x.dtype, y.dtype
    ((128, 32, 32, 3), dtype('float32'), dtype('int32'))
    >>> x, y, info = load_arrays("../shared/datasets/cifar10-jpeg", "train", validation_size=5000)  # needs ../shared  # doctest: +SKIP
    >>> x.shape, info.mean.shape  # needs ../shared  # doctest: +SKIP
    ((45000, 32, 32, 3), (32, 32, 3))
"""

from __future__ import annotations

import logging

import numpy as np

from keras_resnet.data import folder
from keras_resnet.data.cache import training_mean
from keras_resnet.data.info import PREPROCESSING_KINDS, DatasetInfo, SkipCounts
from keras_resnet.data.preprocessing import (
    CIFAR_PAD,
    IMAGENET_CROP,
    check_crop_size,
    normalize,
    preprocessing_for,
    stratified_split,
)
from keras_resnet.data.sources import resolve
from keras_resnet.data.split_names import base_split, check_split, holds_out

log = logging.getLogger(__name__)
MEAN_CHUNK = 4096
"""Images per update of the mean accumulator (as `preprocessing.mean_image`)."""


def _folder_arrays(src, split, validation_size, image_size, skip_corrupt, mean, preprocessing, crop_size):
    source = src.name
    phys = base_split(split, validation_size)  # "validation" with validation_size 0: val/ or validation/
    images, labels, class_names, skipped = folder.load_split_arrays(source, phys, image_size, skip_corrupt)
    if skipped:
        log.warning("Skipped %d undecodable image(s) in split %r of %s: %s", len(skipped), phys, source,
                    skipped[:5])
    if holds_out(split, validation_size):  # "test" is read whole, held-out training images or not
        train_idx, val_idx = stratified_split(labels, validation_size)
        sel = val_idx if split == "validation" else train_idx
        images, labels = images[sel], labels[sel]
    kind = preprocessing or preprocessing_for(images.shape[1:3])
    if mean is None:
        def training_images():  # the part trained on: `images` itself, or the training split re-read
            if split == "train":
                train = images
            else:
                full, full_labels, _, _ = folder.load_split_arrays(source, "train", image_size, skip_corrupt)
                train = full[stratified_split(full_labels, validation_size)[0]] if validation_size else full
            return (train[i:i + MEAN_CHUNK] for i in range(0, len(train), MEAN_CHUNK))

        mean = training_mean(src.fingerprint(), training_images, preprocessing=kind,
                             validation_size=validation_size, image_size=image_size, skip_corrupt=skip_corrupt)
    shape = tuple(images.shape[1:]) if kind == "cifar" else (crop_size, crop_size, images.shape[3])
    info = DatasetInfo(name=str(source), class_names=class_names, image_shape=shape,
                       num_examples={split: len(images)}, mean=np.asarray(mean, np.float32), preprocessing=kind,
                       num_skipped=SkipCounts({phys: len(skipped)}, files={phys: skipped}) if skip_corrupt else {})
    return images, labels, info


def load_arrays(source, split, *, validation_size=0, image_size=None, skip_corrupt=False, mean=None,
                preprocessing=None, data_dir=None, download=False, label_offset=None, crop_size=IMAGENET_CROP):
    """Decodes a whole split into memory: `(uint8 images [N, H, W, C], int64 labels [N], DatasetInfo)`.

    Works without TensorFlow for image folders and `.tar`/`.tar.gz` archives (Pillow); TFDS names and
    TFRecord directories need TensorFlow. Images are in the source's deterministic order (sorted by class
    and file name for folders), not augmented and not normalised: feed them to `ArrayIterator`.

    Args:
        source: image folder, archive, folder of split archives, TFRecord directory or TFDS name, or a
            resolved `keras_resnet.data.sources.Source`.
        split: `"train"`, `"validation"` (the held-out `validation_size` images of the training split; with
            `validation_size` 0 the source's own `val/` / `validation/` split) or `"test"`.
        validation_size: images held out of the training split, stratified and deterministic.
        image_size: `(height, width)` to resize every image to (needed when sizes differ).
        skip_corrupt: skip undecodable images instead of raising; `info.num_skipped[split]` counts them and
            `info.num_skipped.files(split)` names them (the physical split for folders, e.g. `"train"` when
            holding out validation images).
        mean: mean to report in `info.mean`; default the training split's (`cache.training_mean` over every
            training image), computed and cached.
        preprocessing: `"cifar"` or `"imagenet"`; default by image size.
        data_dir, download: passed to TFDS.
        label_offset: subtracted from TFRecord labels.
        crop_size: the side of the square crop the network sees for "imagenet" preprocessing, reported in
            `info.image_shape` (images are returned uncropped).

    Returns:
        `(images, labels, info)`.

    Raises:
        FileNotFoundError: missing path. ValueError: bad layout, split or arguments; a corrupt image
        (naming the file) unless `skip_corrupt`.

    Example:
        >>> images, labels, info = load_arrays("my_images.tar.gz", "train")  # needs a dataset on disk  # doctest: +SKIP
    """
    check_split(split, validation_size)
    crop_size = check_crop_size(crop_size)
    if preprocessing is not None and preprocessing not in PREPROCESSING_KINDS:
        raise ValueError(f"`preprocessing` must be one of {PREPROCESSING_KINDS} or None; received {preprocessing!r}.")
    if image_size is not None and (len(image_size) != 2 or min(image_size) < 1):
        raise ValueError(f"`image_size` must be (height, width) of positive ints; received {image_size!r}.")
    src = resolve(source, data_dir=data_dir, download=download, label_offset=label_offset)
    if src.decodes_with_pillow:
        return _folder_arrays(src, split, validation_size, image_size, skip_corrupt, mean, preprocessing,
                              crop_size)
    import tensorflow as tf

    from keras_resnet.data import reader
    from keras_resnet.data.corrupt import SkipCounter, error_message

    reading, phys, keep, shape, info = reader.prepare(
        src, split, validation_size=validation_size, preprocessing=preprocessing, mean=mean, image_size=image_size,
        mean_samples=None, skip_corrupt=skip_corrupt, crop_size=crop_size)
    counter = SkipCounter() if skip_corrupt and not reading.decodes_itself else None
    ds = reading.decoded(phys, skip_corrupt, counter, keep=keep)
    if image_size is not None:
        ds = reader.resize_uint8(ds, image_size)
    xs, ys = [], []
    try:
        for x, y in ds.batch(1024).prefetch(tf.data.AUTOTUNE):
            xs.append(x.numpy())
            ys.append(y.numpy().astype(np.int64))
    except tf.errors.InvalidArgumentError as e:
        message = error_message(e)
        if message is None:
            raise
        raise ValueError(message) from e
    if not xs:
        raise ValueError(f"Split {split!r} of {src.name!r} yielded no images.")
    if counter is not None:
        key = next(iter(info.num_examples))
        info.num_skipped = SkipCounts({key: counter.count()}, files={key: counter.names()})
    return np.concatenate(xs), np.concatenate(ys), info


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
        >>> for x, y in ArrayIterator(images, labels, 128, training=False, mean=None):  # needs a model and images  # doctest: +SKIP
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
