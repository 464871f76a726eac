"""`load_arrays`: a whole split decoded into memory as uint8 numpy arrays (no TensorFlow for folders).

For image folders and archives this uses only Pillow and numpy, so the JAX backend on a machine without
TensorFlow can train from the CIFAR-10 JPEG archives with `keras_resnet.data.ArrayIterator`. TFDS names and
TFRecord directories are read through tf.data (TensorFlow imported lazily, only for those sources).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 4.2 (CIFAR-10, per-pixel mean, 45k/5k split).

Example:
    >>> x, y, info = load_arrays("../shared/datasets/cifar10-jpeg", "train", validation_size=5000)  # doctest: +SKIP
    >>> x.shape, info.mean.shape  # doctest: +SKIP
    ((45000, 32, 32, 3), (32, 32, 3))
"""

from __future__ import annotations

import logging

import numpy as np

from keras_resnet.data import folder
from keras_resnet.data.cache import training_mean
from keras_resnet.data.info import PREPROCESSING_KINDS, DatasetInfo, SkipCounts
from keras_resnet.data.preprocessing import IMAGENET_CROP, check_crop_size, preprocessing_for, stratified_split
from keras_resnet.data.sources import resolve
from keras_resnet.data.split_names import base_split, check_split

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
    if validation_size:
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
        >>> images, labels, info = load_arrays("my_images.tar.gz", "train")  # doctest: +SKIP
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
