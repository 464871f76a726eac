"""`load`: one entry point from any source to batched, augmented, normalised tf.data.

TensorFlow-only: this module imports TensorFlow (`keras_resnet.data.load` imports it lazily).

Small images (both sides <= 64 pixels, `"cifar"` preprocessing) are decoded once and cached in memory;
training batches are shuffled over the whole split, augmented batch-wise (zero-pad 4, random crop, random
flip) and normalised. Larger images (`"imagenet"` preprocessing), of any size and count, are decoded per
element in parallel, exactly as Pillow decodes them (`keras_resnet.data.decoding`), with the paper's scale
augmentation (shorter side random in [256, 480] times `crop_size / 224`, random `crop_size` crop, flip,
optional PCA lighting) or the evaluation geometry (shorter side `round(256 * crop_size / 224)`, centre
crop, or 10 crops); `crop_size` defaults to the paper's 224. A folder whose first image is small but whose
sizes differ is streamed this way too. Everything ends in `batch(...).prefetch(AUTOTUNE)`. Streamed
elements carry their file name until decoded, so an undecodable image fails naming the file, or is skipped
and counted (`keras_resnet.data.corrupt`).

Small folder images come from `keras_resnet.data.in_memory.load_arrays`; every other source is opened and
read by `keras_resnet.data.reader`, the reader `load_arrays` uses too, so both see the same images and the
same training mean (`keras_resnet.data.cache.training_mean`, its one definition).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
sections 3.4 and 4.2.

Example:
    >>> ds, info = load("../shared/datasets/cifar10-jpeg", "train", 128, seed=0)  # needs ../shared  # doctest: +SKIP
    >>> images, labels = next(iter(ds))  # float32 [128, 32, 32, 3], int32 [128]  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_resnet.data import augment, corrupt, folder, in_memory, reader
from keras_resnet.data.info import PREPROCESSING_KINDS, SkipCounts
from keras_resnet.data.preprocessing import IMAGENET_CROP, check_crop_size, imagenet_eval_size, imagenet_scale_range
from keras_resnet.data.sources import resolve
from keras_resnet.data.split_names import check_split

AUTOTUNE = tf.data.AUTOTUNE


def _check_common(split, batch_size, validation_size, preprocessing):
    check_split(split, validation_size)
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
         mean_samples=10000, cache=True, crop_size=IMAGENET_CROP, eval_transform=None, sample=None):
    """Batches of `(float32 preprocessed image, int32 label)` from a TFDS name, image folder/archive or shards.

    TensorFlow-only (tf.data). For the JAX backend without TensorFlow use `load_arrays` + `ArrayIterator`.

    Args:
        source: a TFDS name (`"cifar10"`), an image folder or `.tar`/`.tar.gz` archive
            (`<split>/<class>/<image>`, or a folder of `*-<split>.tar.gz` archives), or a directory of
            TFRecord shards (`<split>-00000-of-00008`).
        split: `"train"`, `"validation"` (the stratified, deterministic held-out `validation_size` images of
            the training split; or, when `validation_size` is 0, the source's own validation split: a `val/`
            or `validation/` folder, archive member folder or split archive, `validation-*` / `val-*` shards,
            TFDS's `validation`) or `"test"`. A split the source lacks raises `ValueError` naming the source,
            the split and the splits available (`keras_resnet.data.available_splits`).
        batch_size: global batch size; with `input_context` each pipeline batches
            `input_context.get_per_replica_batch_size(batch_size)`.
        training: augment and shuffle every epoch; defaults to `split == "train"`.
        seed: int for reproducible batches (same order and augmentation for the same seed), None otherwise.
        input_context: `tf.distribute.InputContext` to shard across input pipelines.
        validation_size: images held out of the training split (CIFAR-10 paper: 5000).
        data_dir, download: passed to TFDS.
        preprocessing: `"cifar"` or `"imagenet"`; default by image size (both sides <= 64: `"cifar"`).
        mean: mean in 0..255 units to subtract; default computed from the training split and cached.
        image_size: `(height, width)` to resize decoded images to before anything else (optional; distinct
            from `crop_size`).
        skip_corrupt: skip undecodable images instead of failing with an error naming the file. They are
            counted in `info.num_skipped[split]` and named by `info.num_skipped.files(split)`: at once for
            small images decoded up front; for streamed images (large images, TFRecord shards) while the
            dataset is iterated (distinct files found so far, shared by every `load` of the same source and
            split in this process, exact after one full pass), each logged once on stderr. TFDS data is
            decoded by TFDS: small TFDS images are then dropped uncounted.
        drop_remainder: drop the last incomplete batch; defaults to `training`.
        shuffle_buffer: shuffle buffer; default the whole split for in-memory data, 4096 otherwise.
        pca_lighting: add PCA colour augmentation (`"imagenet"` training only).
        ten_crop: evaluate on 10 crops (`"imagenet"` evaluation; the paper's Table 3): images
            `[B, 10, crop_size, crop_size, 3]`.
        label_offset: subtracted from TFRecord labels (default from `dataset.json`, else 0).
        mean_samples: training images used for the per-channel mean of `"imagenet"` sources.
        cache: keep decoded small images in memory (`Dataset.cache()`).
        crop_size: side of the square crop of `"imagenet"` preprocessing (the trainer's `--image_size`):
            training resizes the shorter side to a random size in `imagenet_scale_range(crop_size)` (the paper's
            [256, 480] times `crop_size / 224`) and crops `crop_size` x `crop_size`; evaluation resizes the
            shorter side to `imagenet_eval_size(crop_size)` (`round(256 * crop_size / 224)`) and takes the
            centre crop (or 10 crops). Default 224, the paper's. Ignored by `"cifar"` preprocessing.
        eval_transform: a published evaluation transform (`keras_resnet.eval_transform.EvalTransform`, e.g. a
            tagged weights set's) used instead of that geometry by `"imagenet"` evaluation (not with
            `ten_crop`); its `crop_size` must be `crop_size`.
        sample: read only this many images of the split, drawn without replacement by `seed` (default 0) and
            read in the split's order (e.g. the calibration images of an int8 export); the split's images
            are then streamed, never decoded up front. None (default): every image.

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
        >>> ds, info = load("cifar10", "train", 128, validation_size=5000, seed=0)  # needs a prepared TFDS dataset  # doctest: +SKIP
    """
    _check_common(split, batch_size, validation_size, preprocessing)
    crop_size = check_crop_size(crop_size)
    if eval_transform is not None and (ten_crop or eval_transform.crop_size != crop_size or preprocessing == "cifar"):
        raise ValueError(f"`eval_transform` {eval_transform.name!r} is a centre {eval_transform.crop_size} crop of "
                         f"ImageNet-style images: not with ten_crop, preprocessing='cifar' or crop_size={crop_size}.")
    src = resolve(source, data_dir=data_dir, download=download, label_offset=label_offset)
    training = split == "train" if training is None else bool(training)
    batching = {"batch_size": input_context.get_per_replica_batch_size(batch_size) if input_context
                else int(batch_size), "training": training, "seed": seed, "shuffle_buffer": shuffle_buffer,
                "drop_remainder": training if drop_remainder is None else bool(drop_remainder)}
    options = tf.data.Options()
    options.deterministic = seed is not None or not training
    if sample is not None and (not isinstance(sample, (int, np.integer)) or isinstance(sample, bool) or sample < 1):
        raise ValueError(f"`sample` must be a positive int or None; received {sample!r}.")
    if sample is None and src.decodes_up_front(split, validation_size, preprocessing, image_size):
        try:
            images, labels, info = in_memory.load_arrays(src, split, validation_size=validation_size,
                                                      image_size=image_size, skip_corrupt=skip_corrupt, mean=mean,
                                                      preprocessing="cifar")
        except folder.ImageShapeError:  # a small first image, but sizes differ: stream them, ImageNet-style
            if preprocessing == "cifar":
                raise
            preprocessing = "imagenet"
        else:
            ds = _shard(tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32))), input_context)
            ds = _small_tail(ds, len(images), mean=info.mean, cache=False, **batching)
            return ds.with_options(options), info

    reading, phys, keep, shape, info = reader.prepare(
        src, split, validation_size=validation_size, preprocessing=preprocessing, mean=mean, image_size=image_size,
        mean_samples=mean_samples, skip_corrupt=skip_corrupt, crop_size=crop_size)
    if sample is not None:
        keep = _sampled(keep, reading.count(phys), sample, seed)
        info.num_examples = {next(iter(info.num_examples)): len(keep)}
    cifar = info.preprocessing == "cifar"
    extra = {"training": training, "seed": seed}
    split_key = next(iter(info.num_examples))
    counter = None
    if skip_corrupt and not (cifar and reading.decodes_itself):
        counter = reader.split_counter(reading, split_key, validation_size)
        info.num_skipped = SkipCounts(live={split_key: counter})
    if cifar:
        ds = reading.decoded(phys, skip_corrupt, counter, shape[2], keep=keep, input_context=input_context, **extra)
        if image_size is not None:
            ds = reader.resize_uint8(ds, image_size)
        ds = ds.map(lambda x, y: (tf.ensure_shape(x, shape), y))
        ds = _small_tail(ds, info.num_examples[split_key], mean=info.mean, cache=cache, **batching)
        return ds.with_options(options), info

    ds = reading.elements(phys, encoded=True, keep=keep, input_context=input_context, named=True, **extra)
    ds = _large_tail(ds, info.mean, counter, skip_corrupt=skip_corrupt, image_size=image_size,
                     pca_lighting=pca_lighting, ten_crop=ten_crop, crop_size=crop_size, eval_transform=eval_transform,
                     **batching)
    return ds.with_options(options), info


def _sampled(keep, count, sample, seed):
    """`sample` indices of `keep` (all `count` images when None), drawn by `seed` (None: 0), sorted."""
    pool = np.arange(count) if keep is None else np.asarray(keep)
    rng = np.random.default_rng(0 if seed is None else seed)
    return np.sort(rng.choice(pool, size=min(int(sample), len(pool)), replace=False))


def _shard(ds, input_context):
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds


def _large_tail(ds, mean, counter, *, skip_corrupt, image_size, pca_lighting, ten_crop, crop_size, eval_transform,
                batch_size, training, seed, shuffle_buffer, drop_remainder):
    """shuffle (encoded bytes) -> decode -> scale augmentation or evaluation crops + normalise -> batch ->
    prefetch, for `(encoded, label, name)` elements of large images decoded per element."""
    mean_t = tf.constant(mean)
    scale_range, eval_size = imagenet_scale_range(crop_size), imagenet_eval_size(crop_size)
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
            x = augment.imagenet_train_geometry(x, s1, scale_range, crop_size)
            if pca_lighting:
                x = augment.pca_lighting(x, s2)
            return (x - mean_t) / 255.0, label

        ds = ds.map(train_map, num_parallel_calls=AUTOTUNE)
    else:

        def eval_map(*element):
            x, label = to_image(element), element[1]
            if image_size is not None:
                x = tf.image.resize(x, image_size)
            if ten_crop:
                x = augment.ten_crop(x, eval_size, crop_size)
            elif eval_transform is not None:
                x = augment.published_eval_geometry(x, eval_transform)
            else:
                x = augment.imagenet_eval_geometry(x, eval_size, crop_size)
            return (x - mean_t) / 255.0, label

        ds = ds.map(eval_map, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(AUTOTUNE)


def _small_tail(ds, n, *, batch_size, training, seed, mean, drop_remainder, shuffle_buffer, cache):
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
