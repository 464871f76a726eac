"""`load`: one entry point from any source to batched, augmented, normalised tf.data.

TensorFlow-only: this module imports TensorFlow (`keras_resnet.data.load` imports it lazily).

Small images (both sides <= 64 pixels, `"cifar"` preprocessing) are decoded once and cached in memory;
training batches are shuffled over the whole split, augmented batch-wise (zero-pad 4, random crop, random
flip) and normalised. Larger images (`"imagenet"` preprocessing) are decoded per element in parallel with
the paper's scale augmentation (shorter side in [256, 480], random 224 crop, flip, optional PCA lighting)
or the evaluation geometry (shorter side 256, centre 224 crop, or 10 crops). Everything ends in
`batch(...).prefetch(AUTOTUNE)`. Streamed elements carry their file name until decoded, so an undecodable
image fails naming the file, or is skipped and counted (`keras_resnet.data.corrupt`).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
sections 3.4 and 4.2.

Example:
    >>> ds, info = load("../shared/datasets/cifar10-jpeg", "train", 128, seed=0)  # doctest: +SKIP
    >>> images, labels = next(iter(ds))  # float32 [128, 32, 32, 3], int32 [128]  # doctest: +SKIP
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_resnet.data import augment, corrupt, folder, sources
from keras_resnet.data.cache import cached_mean
from keras_resnet.data.info import PREPROCESSING_KINDS, DatasetInfo, SkipCounts
from keras_resnet.data.preprocessing import IMAGENET_CROP, MeanAccumulator, stratified_split

AUTOTUNE = tf.data.AUTOTUNE


class TFRecordSource:
    """A directory of `<split>-NNNNN-of-NNNNN` TFRecord shards (see `keras_resnet.data.tfrecord`)."""

    kind = "tfrecord"

    def __init__(self, directory, label_offset=None):
        from keras_resnet.data import tfrecord

        self.tfrecord = tfrecord
        self.name = str(directory)
        self.directory = Path(directory)
        meta = tfrecord.read_metadata(directory) or {}
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

    def count(self, split):
        return self.splits[split] if split in self.splits else len(self.labels(split))

    def elements(self, split, *, encoded, keep=None, input_context=None, training=False, seed=None, named=False):
        """`(image, int32 label)` elements (encoded bytes if `encoded`), plus the record's name if `named`."""
        files = self.check_split(split)
        keep_keys = None
        if keep is not None:
            keep_keys = self.tfrecord.element_keys(self._file_labels(split), np.asarray(keep, np.int64))
        ds = self.tfrecord.read_shards(files, training=training, seed=seed, input_context=input_context,
                                       keep_keys=keep_keys, label_offset=self.label_offset, named=named)
        return ds if encoded else ds.map(_decode_first, num_parallel_calls=AUTOTUNE)


class FolderSource:
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

    def _get(self, split):
        if split != self._split.location.split:
            self._split = folder.read_split(self.source, split, read_bytes=False)
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
    """Indices of the physical split to keep (None for all)."""
    if validation_size == 0:
        return None
    train, val = stratified_split(src.labels(phys), validation_size)
    return val if split == "validation" else train


def _open(source, kind, split, validation_size, data_dir, download, label_offset):
    if kind == "tfds":
        from keras_resnet.data.tfds_source import TFDSSource

        return TFDSSource(source, data_dir=data_dir, download=download)
    if kind == "tfrecord":
        return TFRecordSource(source, label_offset)
    return FolderSource(source, sources.base_split(split, validation_size))


def _resolve_split(src, split, validation_size):
    if split == "validation" and validation_size == 0 and not src.has_split("validation"):
        raise ValueError(
            f"Split 'validation' of {src.name!r} needs `validation_size` > 0 (images held out of the training "
            "split, e.g. 5000 for CIFAR-10's 45k/5k) or a 'validation' split in the source."
        )
    return sources.base_split(split, validation_size)


def _source_key(src, data_dir):
    if src.kind == "tfds":
        return {"tfds": src.name, "data_dir": str(data_dir), "version": str(src.builder.info.version)}
    if src.kind == "tfrecord":
        files = src.tfrecord.find_shards(src.directory, "train")
        st = [Path(f).stat() for f in files]
        return {"tfrecord": str(Path(src.directory).resolve()), "sig": [(s.st_size, s.st_mtime_ns) for s in st]}
    return {"folder": folder.locate_split(src.source, "train").signature()}


def _counter(src, split_key, validation_size):
    """The process-wide skip counter of one split of one source (`corrupt.shared_counter`)."""
    where = src.name if src.kind == "tfds" else str(Path(src.name).resolve())
    return corrupt.shared_counter((src.kind, where, getattr(src, "data_dir", None), split_key, validation_size))


def decoded_elements(src, split, skip_corrupt, counter=None, channels=3, **kwargs):
    """`(uint8 image, label)` of a source; undecodable images raise naming the file, or are skipped and
    recorded in `counter`. TFDS data is decoded by TFDS (prepared data; with `skip_corrupt` undecodable
    images are dropped uncounted)."""
    if src.kind == "tfds":
        ds = src.elements(split, encoded=False, **kwargs)
        return ds.ignore_errors(log_warning=True) if skip_corrupt else ds
    ds = src.elements(split, encoded=True, named=True, **kwargs)
    return corrupt.decode_named(ds, skip_corrupt, counter, channels)


def _compute_mean(src, preprocessing, validation_size, mean_samples, image_size, skip_corrupt=False):
    """Mean over the training split (minus held-out images): per pixel for CIFAR, per channel otherwise."""
    keep = _selection(src, "train", "train", validation_size)
    cifar = preprocessing == "cifar"
    counter = _counter(src, "train", validation_size) if skip_corrupt else None
    channels = src.image_shape[2] if cifar and src.image_shape else 3
    ds = decoded_elements(src, "train", skip_corrupt, counter, channels, keep=keep)
    if image_size is not None:
        ds = ds.map(lambda x, y: (tf.cast(tf.image.resize(x, image_size), tf.uint8), y))
    if cifar:
        ds = ds.map(lambda x, y: x)
    else:
        ds = ds.take(mean_samples).map(lambda x, y: tf.cast(augment.imagenet_eval_geometry(x), tf.uint8))
    acc = MeanAccumulator(per_pixel=cifar)
    try:
        for batch in ds.batch(1024).prefetch(AUTOTUNE):
            acc.update(batch.numpy())
    except tf.errors.InvalidArgumentError as e:
        message = corrupt.error_message(e)
        if message is None:
            raise
        raise ValueError(f"{message} (met while computing the mean of the training split)") from e
    return acc.result()


def prepare(source, kind, split, *, validation_size, data_dir, download, preprocessing, mean, image_size,
            label_offset, mean_samples, skip_corrupt=False):
    """Opens a TFDS / TFRecord / streamed-folder source: `(src, physical split, kept indices, raw image shape,
    DatasetInfo)`, computing (or reading from the cache) the training split's mean; `skip_corrupt` skips
    undecodable images in that computation (recorded in the training split's counter)."""
    src = _open(source, kind, split, validation_size, data_dir, download, label_offset)
    phys = _resolve_split(src, split, validation_size)
    src.check_split(phys)
    shape = tuple(src.image_shape) if src.image_shape else None
    if image_size is not None:
        shape = (int(image_size[0]), int(image_size[1]), shape[2] if shape else 3)
    if preprocessing is None:
        if shape is None or shape[0] is None:
            preprocessing = "imagenet"
        else:
            preprocessing = sources.preprocessing_for(shape)
    cifar = preprocessing == "cifar"
    if cifar and (shape is None or None in shape):
        raise ValueError(
            f"'cifar' preprocessing needs images of one fixed size; {src.name!r} has variable sizes, pass "
            "`image_size`."
        )
    if mean is None:
        key = {**_source_key(src, data_dir), "validation_size": validation_size, "preprocessing": preprocessing,
               "image_size": image_size, "samples": None if cifar else mean_samples}
        mean = cached_mean(key, lambda: _compute_mean(src, preprocessing, validation_size, mean_samples,
                                                      image_size, skip_corrupt))
    keep = _selection(src, split, phys, validation_size)
    num = {split if validation_size else phys: len(keep) if keep is not None else src.count(phys)}
    info = DatasetInfo(
        name=str(source), class_names=src.class_names,
        image_shape=shape if cifar else (IMAGENET_CROP, IMAGENET_CROP, shape[2] if shape else 3),
        num_examples=num, mean=np.asarray(mean, np.float32), preprocessing=preprocessing,
    )
    return src, phys, keep, shape, info


def _check_common(split, batch_size, validation_size, preprocessing):
    sources.check_split(split, validation_size)
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int; received {batch_size!r}.")
    if preprocessing is not None and preprocessing not in PREPROCESSING_KINDS:
        raise ValueError(f"`preprocessing` must be one of {PREPROCESSING_KINDS} or None; received {preprocessing!r}.")


def _seed_stream(seed):
    """Per-element stateless seeds `[2]`: reproducible with `seed`, different every epoch."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def load(source, split, batch_size, *, training=None, seed=None, input_context=None, validation_size=0,
         data_dir=None, download=False, preprocessing=None, mean=None, image_size=None, skip_corrupt=False,
         drop_remainder=None, shuffle_buffer=None, pca_lighting=False, ten_crop=False, label_offset=None,
         mean_samples=10000, cache=True):
    """Batches of `(float32 preprocessed image, int32 label)` from a TFDS name, image folder/archive or shards.

    TensorFlow-only (tf.data). For the JAX backend without TensorFlow use `load_arrays` + `ArrayIterator`.

    Args:
        source: a TFDS name (`"cifar10"`), an image folder or `.tar`/`.tar.gz` archive
            (`<split>/<class>/<image>`, or a folder of `*-<split>.tar.gz` archives), or a directory of
            TFRecord shards (`<split>-00000-of-00008`).
        split: `"train"`, `"validation"` (the stratified, deterministic held-out `validation_size` images of
            the training split; or the source's own validation split when `validation_size` is 0) or `"test"`.
        batch_size: global batch size; with `input_context` each pipeline batches
            `input_context.get_per_replica_batch_size(batch_size)`.
        training: augment and shuffle every epoch; defaults to `split == "train"`.
        seed: int for reproducible batches (same order and augmentation for the same seed), None otherwise.
        input_context: `tf.distribute.InputContext` to shard across input pipelines.
        validation_size: images held out of the training split (CIFAR-10 paper: 5000).
        data_dir, download: passed to TFDS.
        preprocessing: `"cifar"` or `"imagenet"`; default by image size (both sides <= 64: `"cifar"`).
        mean: mean in 0..255 units to subtract; default computed from the training split and cached.
        image_size: `(height, width)` to resize decoded images to before anything else (optional).
        skip_corrupt: skip undecodable images instead of failing with an error naming the file. They are
            counted in `info.num_skipped[split]` and named by `info.num_skipped.files(split)`: at once for
            small images decoded up front; for streamed images (large images, TFRecord shards) while the
            dataset is iterated (distinct files found so far, shared by every `load` of the same source and
            split in this process, exact after one full pass), each logged once on stderr. TFDS data is
            decoded by TFDS: small TFDS images are then dropped uncounted.
        drop_remainder: drop the last incomplete batch; defaults to `training`.
        shuffle_buffer: shuffle buffer; default the whole split for in-memory data, 4096 otherwise.
        pca_lighting: add PCA colour augmentation (`"imagenet"` training only).
        ten_crop: evaluate on 10 crops (`"imagenet"` evaluation): images `[B, 10, 224, 224, 3]`.
        label_offset: subtracted from TFRecord labels (default from `dataset.json`, else 0).
        mean_samples: training images used for the per-channel mean of `"imagenet"` sources.
        cache: keep decoded small images in memory (`Dataset.cache()`).

    Returns:
        `(dataset, DatasetInfo)`.

    Raises:
        FileNotFoundError: the source path does not exist, or a TFDS dataset is not prepared.
        ValueError: bad arguments, missing split, bad layout, missing TFRecord features, an undecodable image
            (naming the file) in data decoded up front or met while computing the training split's mean.
        tf.errors.InvalidArgumentError: while iterating a streamed dataset, an undecodable image (without
            `skip_corrupt`): the message names the file (path, `archive:member`, or the TFRecord
            `image/filename` and `shard#record`) for truncated, empty and non-image files; damage that only
            the decoder sees inside a complete-looking JPEG gives TensorFlow's own decode error.

    Example:
        >>> ds, info = load("cifar10", "train", 128, validation_size=5000, seed=0)  # doctest: +SKIP
    """
    _check_common(split, batch_size, validation_size, preprocessing)
    kind = sources.source_kind(source)
    training = split == "train" if training is None else bool(training)
    drop_remainder = training if drop_remainder is None else bool(drop_remainder)
    per_replica = input_context.get_per_replica_batch_size(batch_size) if input_context else int(batch_size)
    options = tf.data.Options()
    options.deterministic = seed is not None or not training

    if kind == "folder":
        phys_split = sources.base_split(split, validation_size)
        small = preprocessing == "cifar"
        if preprocessing is None:
            size = image_size if image_size is not None else folder.peek_image_size(source, phys_split)
            small = max(size) <= 64
        if small:
            from keras_resnet.data.arrays import load_arrays

            images, labels, info = load_arrays(source, split, validation_size=validation_size,
                                               image_size=image_size, skip_corrupt=skip_corrupt, mean=mean,
                                               preprocessing="cifar")
            ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32)))
            if input_context is not None and input_context.num_input_pipelines > 1:
                ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
            ds = _small_tail(ds, len(images), per_replica, training, seed, info.mean, drop_remainder,
                             shuffle_buffer, cache=False)
            return ds.with_options(options), info

    src, phys, keep, shape, info = prepare(source, kind, split, validation_size=validation_size,
                                           data_dir=data_dir, download=download, preprocessing=preprocessing,
                                           mean=mean, image_size=image_size, label_offset=label_offset,
                                           mean_samples=mean_samples, skip_corrupt=skip_corrupt)
    cifar = info.preprocessing == "cifar"
    extra = {"training": training, "seed": seed} if src.kind != "tfds" else {}
    split_key = next(iter(info.num_examples))
    counter = None
    if skip_corrupt and not (cifar and src.kind == "tfds"):
        counter = _counter(src, split_key, validation_size)
        info.num_skipped = SkipCounts(live={split_key: counter})
    if cifar:
        ds = decoded_elements(src, phys, skip_corrupt, counter, shape[2], keep=keep, input_context=input_context,
                           **extra)
        if image_size is not None:
            ds = ds.map(lambda x, y: (tf.cast(tf.round(tf.image.resize(x, image_size)), tf.uint8), y))
        ds = ds.map(lambda x, y: (tf.ensure_shape(x, shape), y))
        ds = _small_tail(ds, info.num_examples[split_key], per_replica,
                         training, seed, info.mean, drop_remainder, shuffle_buffer, cache)
        return ds.with_options(options), info

    ds = src.elements(phys, encoded=True, keep=keep, input_context=input_context, named=True, **extra)
    mean_t = tf.constant(info.mean)
    if training:
        ds = ds.shuffle(shuffle_buffer or 4096, seed=seed, reshuffle_each_iteration=True)
    if skip_corrupt:  # after the shuffle buffer, which holds encoded bytes, not decoded images
        ds = corrupt.skip_undecodable(ds, counter)

        def to_image(element):
            return element[0]
    else:

        def to_image(element):
            return corrupt.decode_or_raise(element[0], element[2])

    if training:
        ds = tf.data.Dataset.zip((ds, _seed_stream(seed)))

        def train_map(element, s):
            x, label = to_image(element), element[1]
            if image_size is not None:
                x = tf.image.resize(x, image_size)
            s1, s2 = tf.unstack(tf.random.experimental.stateless_split(s, 2))
            x = augment.imagenet_train_geometry(x, s1)
            if pca_lighting:
                x = augment.pca_lighting(x, s2)
            return (x - mean_t) / 255.0, label

        ds = ds.map(train_map, num_parallel_calls=AUTOTUNE)
    else:

        def eval_map(*element):
            x, label = to_image(element), element[1]
            if image_size is not None:
                x = tf.image.resize(x, image_size)
            x = augment.ten_crop(x) if ten_crop else augment.imagenet_eval_geometry(x)
            return (x - mean_t) / 255.0, label

        ds = ds.map(eval_map, num_parallel_calls=AUTOTUNE)
    ds = ds.batch(per_replica, drop_remainder=drop_remainder).prefetch(AUTOTUNE)
    return ds.with_options(options), info


def _small_tail(ds, n, batch_size, training, seed, mean, drop_remainder, shuffle_buffer, cache):
    """cache -> shuffle -> batch -> (augment) + normalise -> prefetch, for in-memory uint8 images."""
    if cache:
        ds = ds.cache()
    if training:
        ds = ds.shuffle(shuffle_buffer or max(n, 1), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if training:
        ds = tf.data.Dataset.zip((ds, _seed_stream(seed)))
        ds = ds.map(lambda b, s: (augment.normalize(augment.cifar_crop_flip(b[0], s), mean), b[1]),
                    num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.map(lambda x, y: (augment.normalize(x, mean), y), num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)
