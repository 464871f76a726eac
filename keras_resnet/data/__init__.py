"""Input pipelines for the paper's recipes: TFDS, image folders / tar archives, TFRecord shards.

* `load(source, split, batch_size, ...) -> (tf.data.Dataset, DatasetInfo)`: batches of
  `(float32 (image - mean) / 255, int32 label)` with the paper's augmentation (TensorFlow; imported lazily).
* `load_arrays(source, split, ...) -> (uint8 images, int64 labels, DatasetInfo)` and `ArrayIterator`: the
  in-memory path with vectorised numpy augmentation, usable without TensorFlow (e.g. the JAX backend).
* `python -m keras_resnet.data.convert --input=... --output=... --shards=N`: image folder -> TFRecord shards.

`from keras_resnet.data import load_arrays` never imports TensorFlow; `load` imports it when called.

Modules: `sources` (what a source argument names), `folder` (image folders and archives, Pillow),
`reader` (opening and reading TFDS / TFRecord / streamed sources, TensorFlow), `arrays` (`load_arrays`),
`pipeline` (`load`), `cache` (the training mean: its one definition `training_mean` and its cache),
`preprocessing`, `augment`, `memory`, `corrupt`, `tfrecord`, `convert`, `info`. Imports go one way:
`pipeline` -> `arrays` -> `reader` -> `cache`, never back.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
sections 3.4 (ImageNet: scale augmentation [256, 480], 224 crop, flip, mean subtraction, colour
augmentation; 10-crop testing) and 4.2 (CIFAR-10: per-pixel mean, pad 4 + random 32x32 crop + flip,
45k/5k train/validation split).

Example:
    >>> from keras_resnet.data import ArrayIterator, load_arrays
    >>> x, y, info = load_arrays("../shared/datasets/cifar10-jpeg", "train", validation_size=5000)  # doctest: +SKIP
    >>> batches = ArrayIterator(x, y, 128, training=True, mean=info.mean, seed=0)  # doctest: +SKIP
"""

from keras_resnet.data.arrays import load_arrays
from keras_resnet.data.info import DatasetInfo
from keras_resnet.data.memory import ArrayIterator, random_crop_flip
from keras_resnet.data.preprocessing import (
    channel_mean,
    mean_image,
    normalize,
    normalize_ops,
    stratified_split,
)


def load(source, split, batch_size, **kwargs):
    """Batched tf.data input with the paper's preprocessing; see `keras_resnet.data.pipeline.load`.

    TensorFlow-only: imports TensorFlow on first call.

    Example:
        >>> ds, info = load("../shared/datasets/cifar10-jpeg", "train", 128, seed=0)  # doctest: +SKIP
    """
    from keras_resnet.data.pipeline import load as _load

    return _load(source, split, batch_size, **kwargs)


def imagenet_eval_geometry(image, size=256, crop=224):
    """Shorter side `size` (bilinear), centre `crop` crop: the ImageNet evaluation geometry shared by the
    evaluation pipeline and the export graph. TensorFlow-only; see `keras_resnet.data.augment`."""
    from keras_resnet.data.augment import imagenet_eval_geometry as _geometry

    return _geometry(image, size, crop)


__all__ = [
    "ArrayIterator",
    "DatasetInfo",
    "channel_mean",
    "imagenet_eval_geometry",
    "load",
    "load_arrays",
    "mean_image",
    "normalize",
    "normalize_ops",
    "random_crop_flip",
    "stratified_split",
]
