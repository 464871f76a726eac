"""Reading a TFDS / TFRecord / streamed-folder source: opening it, its decoded elements and its mean.

TensorFlow-only: this module imports TensorFlow. It is the one reader that both in-memory loading
(`keras_resnet.data.in_memory.load_arrays`, for TFDS names and TFRecord directories) and the tf.data pipeline
(`keras_resnet.data.pipeline.load`) use; image folders of small images are decoded with Pillow by
`keras_resnet.data.folder` instead. Either way the training mean has one definition,
`keras_resnet.data.cache.training_mean`, fed here with the decoded training images of the source.

* `prepare(source, split, ...)`: `(src, physical split, kept indices, raw image shape, DatasetInfo)` of a
  resolved `keras_resnet.data.sources.Source`, with the training mean computed or read from the cache.
* The readers, `FolderSource`, `TFRecordSource` and `keras_resnet.data.tfds_source.TFDSSource`, answer alike
  (`split_names()`, `mean_key()`, `identity`, `decoded(...)`, `decodes_itself`), so nothing here asks which
  kind a reader is.
* `reader.decoded(split, skip_corrupt, counter)`: `(uint8 image, label)` elements; an undecodable image raises
  naming the file or is skipped and counted (`split_counter`).
* `resize_uint8(ds, image_size)`: resizes `(image, label)` elements to `image_size`, rounded back to uint8.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
sections 3.4 and 4.2 (mean subtraction, the 45k/5k split).

Example:
    >>> from keras_resnet.data.sources import resolve
    >>> src, phys, keep, shape, info = prepare(resolve("cifar10"), "test", validation_size=0, preprocessing=None,
    ...     mean=None, image_size=None, mean_samples=None)  # needs a prepared TFDS dataset  # doctest: +SKIP
    >>> ds = src.decoded(phys, skip_corrupt=False, keep=keep)  # needs a prepared TFDS dataset  # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_resnet.data import augment, corrupt, folder, shards
from keras_resnet.data.cache import training_mean
from keras_resnet.data.info import DatasetInfo
from keras_resnet.data.preprocessing import IMAGENET_CROP, preprocessing_for, stratified_split
from keras_resnet.data.split_names import base_split, holds_out, missing_split_message, order_splits, pick_physical

AUTOTUNE = tf.data.AUTOTUNE
MEAN_BATCH = 1024
"""Images per batch when the per-pixel mean of fixed-size images is accumulated."""


class EncodedReader:
    """A reader whose elements are encoded bytes that the package decodes itself, naming each file."""

    decodes_itself = False
    """Whether the dataset decodes its own images (TFDS): undecodable ones are then dropped uncounted."""

    @property
    def identity(self):
        """Which data this is, for the process-wide skip counters: `(kind, resolved path, None)`."""
        return (self.kind, str(Path(self.name).resolve()), None)

    def decoded(self, split, skip_corrupt, counter=None, channels=3, **kwargs):
        """`(uint8 image, label)`; an undecodable image raises naming the file, or is skipped and recorded in
        `counter`."""
        ds = self.elements(split, encoded=True, named=True, **kwargs)
        return corrupt.decode_named(ds, skip_corrupt, counter, channels)


class TFRecordSource(EncodedReader):
    """A directory of `<split>-NNNNN-of-NNNNN` TFRecord shards (see `keras_resnet.data.tfrecord`)."""

    kind = "tfrecord"

    def __init__(self, directory, label_offset=None):
        from keras_resnet.data import tfrecord

        self.tfrecord = tfrecord
        self.name = str(directory)
        self.directory = Path(directory)
        meta = shards.read_metadata(directory) or {}
        self.label_offset = int(meta.get("label_offset", 0) if label_offset is None else label_offset)
        self.splits = dict(meta.get("num_examples", {}))
        self.class_names = meta.get("class_names")
        self.image_shape = tuple(meta["image_shape"]) if meta.get("image_shape") else None
        self._labels = {}

    def has_split(self, split):
        try:
            self.tfrecord.find_shards(self.directory, split)
            return True
        except ValueError:
            return False

    def check_split(self, split):
        files = self.tfrecord.find_shards(self.directory, split)
        self.tfrecord.check_features(files[0])
        if self.image_shape is None:  # the first decodable image of the first few records
            probe = tf.data.TFRecordDataset(files[0]).take(64).map(lambda r: augment.decode(self.tfrecord.parse(r)[0]))
            for image in probe.ignore_errors().take(1):
                self.image_shape = tuple(image.shape)
            if self.image_shape is None:
                raise ValueError(
                    f"None of the first 64 records of TFRecord {files[0]!r} holds a decodable image; expected "
                    f"'{self.tfrecord.IMAGE_KEY}' to hold JPEG/PNG/GIF/BMP bytes."
                )
        if self.class_names is None:
            top = max(int(x.max(initial=-1)) for x in self._file_labels(split))
            self.class_names = [str(i) for i in range(top + 1)]
        return files

    def _file_labels(self, split):
        if split not in self._labels:
            files = self.tfrecord.find_shards(self.directory, split)
            self._labels[split] = [x - self.label_offset for x in self.tfrecord.scan_labels(files)]
        return self._labels[split]

    def labels(self, split):
        return np.concatenate(self._file_labels(split))

    def split_names(self):
        """The canonical split names of the shards."""
        return order_splits(shards.shard_sets(self.directory))

    def mean_key(self):
        """The mean cache's key (`keras_resnet.data.shards.fingerprint`)."""
        return shards.fingerprint(self.directory)

    def count(self, split):
        known = pick_physical(split, self.splits)
        return self.splits[known] if known is not None else len(self.labels(split))

    def elements(self, split, *, encoded, keep=None, input_context=None, training=False, seed=None, named=False):
        """`(image, int32 label)` elements (encoded bytes if `encoded`), plus the record's name if `named`."""
        files = self.check_split(split)
        keep_keys = None
        if keep is not None:
            keep_keys = self.tfrecord.element_keys(self._file_labels(split), np.asarray(keep, np.int64))
        ds = self.tfrecord.read_shards(files, training=training, seed=seed, input_context=input_context,
                                       keep_keys=keep_keys, label_offset=self.label_offset, named=named)
        return ds if encoded else ds.map(_decode_first, num_parallel_calls=AUTOTUNE)


class FolderSource(EncodedReader):
    """An image folder or archive whose images are decoded per element (large images)."""

    kind = "folder"

    def __init__(self, source, split):
        self.name = str(source)
        self.source = source
        self._split = folder.read_split(source, split, read_bytes=False)
        self.class_names = self._split.class_names
        first = self._split.blobs[0] if self._split.blobs is not None else Path(self._split.paths[0]).read_bytes()
        from PIL import Image

        with Image.open(io.BytesIO(first)) as im:
            self.image_shape = (im.height, im.width, 3)
        self.splits = {split: len(self._split.names)}
        self._split_name = split

    def _get(self, split):
        if split != self._split_name:
            self._split = folder.read_split(self.source, split, read_bytes=False)
            self._split_name = split
        return self._split

    def has_split(self, split):
        try:
            folder.locate_split(self.source, split)
            return True
        except ValueError:
            return False

    def check_split(self, split):
        self._get(split)

    def labels(self, split):
        return self._get(split).labels

    def split_names(self):
        """The canonical split names of the folder or archive."""
        return folder.available_splits(self.source)

    def mean_key(self):
        """The mean cache's key (`keras_resnet.data.folder.fingerprint`)."""
        return folder.fingerprint(self.source)

    def count(self, split):
        return len(self._get(split).names)

    def elements(self, split, *, encoded, keep=None, input_context=None, training=False, seed=None, named=False):
        """`(image, int32 label)` elements (encoded bytes if `encoded`), plus the file name if `named` (the
        path, or `archive:<split>/<class>/<image>`)."""
        fs = self._get(split)
        idx = np.arange(len(fs.names)) if keep is None else np.asarray(keep)
        labels = tf.constant(fs.labels[idx].astype(np.int32))
        if fs.blobs is not None:
            parts = (tf.constant([fs.blobs[i] for i in idx]), labels)
            if named:
                parts += (tf.constant([fs.names[i] for i in idx]),)
        else:
            parts = (tf.constant([fs.paths[i] for i in idx]), labels)
        ds = tf.data.Dataset.from_tensor_slices(parts)
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if fs.blobs is None:  # the path is the name
            ds = ds.map(lambda p, y: (tf.io.read_file(p), y) + ((p,) if named else ()), num_parallel_calls=AUTOTUNE)
        return ds if encoded else ds.map(_decode_first, num_parallel_calls=AUTOTUNE)


def _decode_first(encoded, *rest):
    return (augment.decode(encoded),) + rest


def _selection(src, split, phys, validation_size):
    """Indices of the physical split to keep (None for all: a split that is not part of the training split)."""
    if not holds_out(split, validation_size):
        return None
    train, val = stratified_split(src.labels(phys), validation_size)
    return val if split == "validation" else train


def _resolve_split(src, split, validation_size):
    if split == "validation" and validation_size == 0 and not src.has_split("validation"):
        raise ValueError(missing_split_message(src.name, split, src.split_names()))
    return base_split(split, validation_size)


def split_counter(src, split_key, validation_size):
    """The process-wide skip counter of one split of one source (`corrupt.shared_counter`)."""
    return corrupt.shared_counter((*src.identity, split_key, validation_size))


def resize_uint8(ds, image_size):
    """`(image, label)` elements resized to `image_size` (bilinear) and rounded back to uint8."""
    return ds.map(lambda x, y: (tf.cast(tf.round(tf.image.resize(x, image_size)), tf.uint8), y))


def _training_images(src, preprocessing, validation_size, image_size, samples, skip_corrupt):
    """The decoded training images (minus held-out ones) for `cache.training_mean`: batches of fixed-size
    images for "cifar", single images (sizes may vary) for "imagenet", at most `samples` of them."""
    cifar = preprocessing == "cifar"

    def images():
        keep = _selection(src, "train", "train", validation_size)
        counter = split_counter(src, "train", validation_size) if skip_corrupt else None
        channels = src.image_shape[2] if cifar and src.image_shape else 3
        ds = src.decoded("train", skip_corrupt, counter, channels, keep=keep)
        if image_size is not None:
            ds = resize_uint8(ds, image_size)
        ds = ds.map(lambda x, y: x)
        if cifar:
            ds = ds.batch(MEAN_BATCH)
        elif samples is not None:
            ds = ds.take(samples)
        try:
            for batch in ds.prefetch(AUTOTUNE):
                yield batch.numpy()
        except tf.errors.InvalidArgumentError as e:
            message = corrupt.error_message(e)
            if message is None:
                raise
            raise ValueError(f"{message} (met while computing the mean of the training split)") from e

    return images


def prepare(source, split, *, validation_size, preprocessing, mean, image_size, mean_samples, skip_corrupt=False,
            crop_size=IMAGENET_CROP):
    """Opens a resolved TFDS / TFRecord / streamed-folder `Source` (`keras_resnet.data.sources`): `(reader,
    physical split, kept indices, raw image shape, DatasetInfo)`, computing (or reading from the cache) the training split's mean with
    `cache.training_mean` (over at most `mean_samples` images for "imagenet", None for all); `skip_corrupt`
    skips undecodable images in that computation (recorded in the training split's counter). For "imagenet"
    preprocessing `info.image_shape` is `(crop_size, crop_size, C)`."""
    src = source.open(split, validation_size)
    phys = _resolve_split(src, split, validation_size)
    src.check_split(phys)
    shape = tuple(src.image_shape) if src.image_shape else None
    if image_size is not None:
        shape = (int(image_size[0]), int(image_size[1]), shape[2] if shape else 3)
    if preprocessing is None:
        if shape is None or shape[0] is None:
            preprocessing = "imagenet"
        else:
            preprocessing = preprocessing_for(shape)
    cifar = preprocessing == "cifar"
    if cifar and (shape is None or None in shape):
        raise ValueError(
            f"'cifar' preprocessing needs images of one fixed size; {src.name!r} has variable sizes, pass "
            "`image_size`."
        )
    if mean is None:
        samples = None if cifar else mean_samples
        images = _training_images(src, preprocessing, validation_size, image_size, samples, skip_corrupt)
        mean = training_mean(src.mean_key(), images, preprocessing=preprocessing,
                             validation_size=validation_size, image_size=image_size, samples=samples,
                             skip_corrupt=skip_corrupt)
    keep = _selection(src, split, phys, validation_size)
    num = {split if validation_size else phys: len(keep) if keep is not None else src.count(phys)}
    info = DatasetInfo(
        name=source.name, class_names=src.class_names,
        image_shape=shape if cifar else (crop_size, crop_size, shape[2] if shape else 3),
        num_examples=num, mean=np.asarray(mean, np.float32), preprocessing=preprocessing,
    )
    return src, phys, keep, shape, info


__all__ = ["EncodedReader", "FolderSource", "TFRecordSource", "prepare", "resize_uint8", "split_counter"]
