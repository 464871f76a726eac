"""The training mean: its one definition (`training_mean`), its one cache key (`mean_key`) and the cache.

Every reader (image folders decoded with Pillow in `keras_resnet.data.in_memory`, TFDS / TFRecord / streamed
folders in `keras_resnet.data.reader`) computes the mean its images are centred with by calling
`training_mean` with the source's fingerprint and its decoded training images; nothing else computes a mean.

The mean is computed once per key and stored as `<cache dir>/means/<sha1 of key>.npy`, written atomically
(temporary name, then rename). The cache directory is `$KERAS_RESNET_CACHE_DIR`, else
`$XDG_CACHE_HOME/keras_resnet`, else `~/.cache/keras_resnet`; it is never next to the data, which may be
read-only (`../shared`). When the cache directory is not writable the mean is only kept in memory. No
TensorFlow is imported here.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 4.2 (per-pixel mean subtraction) and section 3.4 (ImageNet mean subtraction).

Example:
    >>> images = lambda: [np.zeros((4, 32, 32, 3), np.uint8)]
    >>> training_mean({"folder": "dir:/toy:4:0:0"}, images, preprocessing="cifar").shape  # writes the user's mean cache  # doctest: +SKIP
    (32, 32, 3)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from keras_resnet import faults
from keras_resnet.data.preprocessing import MeanAccumulator

_MEMORY: dict = {}
log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The cache root (see the module docstring)."""
    if os.environ.get("KERAS_RESNET_CACHE_DIR"):
        return Path(os.environ["KERAS_RESNET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keras_resnet"


def cached_mean(key: dict, compute) -> np.ndarray:
    """Returns the cached mean for `key` (a JSON-able dict), calling `compute()` and storing it on a miss."""
    text = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode()).hexdigest()
    path = cache_dir() / "means" / f"{digest}.npy"
    mem_key = (str(path), text)
    if mem_key in _MEMORY:
        return _MEMORY[mem_key].copy()
    mean = None
    if path.is_file():
        try:
            mean = np.load(path).astype(np.float32)
        except (OSError, ValueError) as e:
            log.warning("Ignoring unreadable mean cache %s: %s", path, e)
    if mean is None:
        mean = np.asarray(compute(), np.float32)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, mean)
            faults.site("data.mean_cache")  # the mean is written under its temporary name, not yet published
            os.replace(tmp, path)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, path.with_suffix(".json"))
        except OSError as e:
            log.warning("Mean image not cached on disk (%s); keeping it in memory only.", e)
    _MEMORY[mem_key] = mean
    return mean.copy()


def mean_key(source_key: dict, *, preprocessing: str, validation_size=0, image_size=None, samples=None,
             skip_corrupt=False) -> dict:
    """The cache key of a training mean: the source's fingerprint plus every argument that changes it.

    Args:
        source_key: the source's fingerprint (the reader's `mean_key()`: a folder's training-split signature,
            a TFDS name and version, or TFRecord shard sizes and times).
        preprocessing, validation_size, image_size, samples, skip_corrupt: as in `training_mean`.

    Returns:
        A JSON-able dict (`samples` is None for "cifar", whose mean always covers every image).
    """
    return {**source_key, "validation_size": int(validation_size), "preprocessing": preprocessing,
            "image_size": None if image_size is None else [int(image_size[0]), int(image_size[1])],
            "samples": None if preprocessing == "cifar" else samples, "skip_corrupt": bool(skip_corrupt)}


def training_mean(source_key: dict, images, *, preprocessing: str, validation_size=0, image_size=None,
                  samples=None, skip_corrupt=False) -> np.ndarray:
    """The mean the network's inputs are centred with (paper, sections 3.4 and 4.2), computed once and cached.

    Definition: the float32 mean, in 0..255 units and accumulated in float64, of the uint8 training images
    as the reader decodes them (resized to `image_size` when given, held-out validation images excluded):
    per pixel, `[H, W, C]`, for "cifar" preprocessing; per channel over every pixel, `[1, 1, C]`, of the
    first `samples` images (all when None) for "imagenet" preprocessing.

    Args:
        source_key: the source's fingerprint (see `mean_key`).
        images: a function returning an iterable of uint8 images `[H, W, C]` or batches `[N, H, W, C]`, in the
            source's order; called only when the mean is not cached.
        preprocessing: "cifar" or "imagenet".
        validation_size: images held out of the training split (part of the key).
        image_size: `(height, width)` the images were resized to, or None (part of the key).
        samples: images the "imagenet" mean covers at most (None: all); ignored for "cifar".
        skip_corrupt: whether undecodable training images were skipped (part of the key).

    Returns:
        float32 mean, `[H, W, C]` ("cifar") or `[1, 1, C]` ("imagenet").

    Raises:
        ValueError: `images` yields no image, or images of different shapes for "cifar".
    """
    per_pixel = preprocessing == "cifar"
    limit = None if per_pixel or samples is None else int(samples)

    def compute():
        acc, seen = MeanAccumulator(per_pixel=per_pixel), 0
        for batch in images():
            batch = np.asarray(batch)
            batch = batch[None] if batch.ndim == 3 else batch
            if limit is not None:
                batch = batch[: limit - seen]
            if len(batch):
                acc.update(batch)
                seen += len(batch)
            if limit is not None and seen >= limit:
                break
        return acc.result()

    key = mean_key(source_key, preprocessing=preprocessing, validation_size=validation_size,
                   image_size=image_size, samples=samples, skip_corrupt=skip_corrupt)
    return cached_mean(key, compute)
