"""Input pipelines for the paper's recipes: TFDS, image folders / tar archives, TFRecord shards.

* `load(source, split, batch_size, ..., crop_size=224) -> (tf.data.Dataset, DatasetInfo)`: batches of
  `(float32 (image - mean) / 255, int32 label)` with the paper's augmentation (TensorFlow; imported lazily).
  Images of any size and count are streamed (decoded per element); small images (both sides <= 64) of a
  folder are decoded once into memory.
* `load_arrays(source, split, ...) -> (uint8 images, int64 labels, DatasetInfo)` and `ArrayIterator`: the
  in-memory path with vectorised numpy augmentation, usable without TensorFlow (e.g. the JAX backend).
* `python -m keras_resnet.data.convert --input=... --output=... --shards=N`: image folder -> TFRecord shards.

`from keras_resnet.data import load_arrays` never imports TensorFlow; `load` imports it when called.

Sources (`source` argument): an image folder `root/<split>/<class>/<image>`, a `.tar`/`.tar.gz` archive of
one, a folder of split archives (`*-train.tar.gz`), a directory of TFRecord shards `<split>-NNNNN-of-NNNNN`
(the converter's, or the TF Model Garden / TFDS ImageNet convention: `image/encoded`, `image/class/label`;
`label_offset=1` for labels that start at 1), or a TFDS name (`imagenet2012`, `imagenette`, `cifar10`, ...).

Splits, data preparation and the input path (issue 14), no TensorFlow except for TFDS names:

* `available_splits(source, data_dir=None) -> list[str]`: the canonical split names the source has,
  `"train"`, `"validation"`, `"test"` in that order (then any other name it has). A folder, archive member
  folder, split archive or shard prefix named `val` is `"validation"`.
* `default_eval_split(source, data_dir=None) -> str`: `"validation"` when the source has it, else `"test"`;
  `ValueError` when it has neither.
* `check_splits(source, splits, data_dir=None) -> dict[str, str]`: run before a run writes anything. Every
  split exists, has class folders and no empty one, and every split has the training split's class folders;
  returns `{canonical split: where it lives}`. Raises `ValueError` with one line naming the source and what
  was found: a missing split (`"Split 'test' not found in '/data/pets' (...); available splits: ['train',
  'validation']."`), an empty class folder (`"Class folder(s) with no images in ...: [...]"`), class folders
  that differ (`"Class folders differ between split 'train' (...) and split 'validation' (...): only in
  'train': [...]; only in 'validation': [...]."`); a missing path raises `FileNotFoundError`. `load` and
  `load_arrays` raise the same missing-split message.
* `memory_input_reason(source, split="train", max_bytes=MEMORY_LIMIT_BYTES, data_dir=None) -> (bool, str)`:
  True only when the split(s) (a name or a list, e.g. `["train", "validation"]`) take at most `max_bytes`
  decoded (uint8 RGB, `height * width * 3` per image; default `MEMORY_LIMIT_BYTES` = 2 GiB) AND all images
  share one shape, from image headers (Pillow, nothing decoded; TFRecord: the converter's `dataset.json`;
  TFDS: the declared feature shape). The reason is one line for the log: `"in memory: 60 images of 32x32
  in train (180.0 KiB decoded uint8, limit 2.0 GiB)"`, `"streaming: 12 image sizes in train (e.g. 383x295
  and 455x391)"` (sizes as height x width).
* `imagenet_eval_size(crop_size)` (`round(256 * crop_size / 224)`), `imagenet_scale_range(crop_size)`
  (`[256, 480] * crop_size / 224`): the geometry `load(..., crop_size=N)` uses, for the export to match.
* `decode_tf(encoded, channels=3, pillow_fallback=True)` (TensorFlow): the streamed decode, pixel-for-pixel
  the in-memory Pillow decode (grayscale, CMYK, PNG named `.JPEG`, 16-bit PNG, GIF, BMP); rarer formats
  go through Pillow in a `tf.numpy_function`, so a graph without Python (an export) passes
  `pillow_fallback=False`. CMYK JPEGs are converted to RGB as TensorFlow converts them (integer division;
  Pillow's `convert("RGB")` rounds, one level away at most) in training, evaluation and serving alike
  (`keras_resnet.data.pillow_rgb`). EXIF orientation is ignored in training and serving alike, as
  Pillow's `convert` ignores it. See `keras_resnet.data.decoding`.

Modules: `split_names` (canonical names, aliases, the missing-split message), `archives` (archive names
and member index), `shards` (TFRecord shard names and `dataset.json`), `folder` (image folders and archives,
Pillow), `sizing` (whether images fit in memory), `sources` (`resolve(source)`: the one place that tells a
folder, shards and a TFDS name apart; every question about a source is a method of its object), `checks`
(`available_splits`, `default_eval_split`, `check_splits`, `memory_input_reason`), `reader` (opening and
reading TFDS / TFRecord / streamed sources, TensorFlow), `in_memory` (in-memory data: `load_arrays`,
`ArrayIterator`), `pipeline` (`load`),
`decoding` (TensorFlow decode equal to Pillow), `cache` (the training mean: its one definition
`training_mean` and its cache), `preprocessing`, `augment`, `corrupt`, `tfrecord`, `convert`, `info`.
Imports go one way: `pipeline` -> `in_memory` -> `reader` -> `cache`, never back.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
sections 3.4 (ImageNet: scale augmentation [256, 480], 224 crop, flip, mean subtraction, colour
augmentation; 10-crop testing, Table 3) and 4.2 (CIFAR-10: per-pixel mean, pad 4 + random 32x32 crop + flip,
45k/5k train/validation split).

Example:
    >>> from keras_resnet.data import ArrayIterator, load_arrays
    >>> x, y, info = load_arrays("../shared/datasets/cifar10-jpeg", "train", validation_size=5000)  # needs ../shared  # doctest: +SKIP
    >>> batches = ArrayIterator(x, y, 128, training=True, mean=info.mean, seed=0)  # needs ../shared  # doctest: +SKIP
    >>> check_splits("/data/pets", [default_eval_split("/data/pets"), "train"])  # needs a dataset on disk  # doctest: +SKIP
    >>> memory_input_reason("/data/pets", ["train", "validation"])  # needs a dataset on disk  # doctest: +SKIP
    (False, 'streaming: 12 image sizes in train and validation (e.g. 383x295 and 455x391)')
    >>> ds, info = load("/data/pets", "train", 32, crop_size=160, seed=0)  # needs a dataset on disk  # doctest: +SKIP
"""

from keras_resnet.data.in_memory import ArrayIterator, load_arrays, random_crop_flip
from keras_resnet.data.info import DatasetInfo
from keras_resnet.data.preprocessing import (
    IMAGENET_CROP,
    channel_mean,
    imagenet_eval_size,
    imagenet_scale_range,
    mean_image,
    normalize,
    normalize_ops,
    stratified_split,
)
from keras_resnet.data.sizing import MEMORY_LIMIT_BYTES
from keras_resnet.data.split_names import SPLITS, canonical_split
from keras_resnet.data.checks import available_splits, check_splits, default_eval_split, memory_input_reason


def load(source, split, batch_size, **kwargs):
    """Batched tf.data input with the paper's preprocessing; see `keras_resnet.data.pipeline.load`.

    TensorFlow-only: imports TensorFlow on first call.

    Example:
        >>> ds, info = load("../shared/datasets/cifar10-jpeg", "train", 128, seed=0)  # needs ../shared  # doctest: +SKIP
    """
    from keras_resnet.data.pipeline import load as _load

    return _load(source, split, batch_size, **kwargs)


def imagenet_eval_geometry(image, size=256, crop=224):
    """Shorter side `size` (bilinear), centre `crop` crop: the ImageNet evaluation geometry shared by the
    evaluation pipeline and the export graph (for a `crop_size` run: `size=imagenet_eval_size(crop_size)`,
    `crop=crop_size`). TensorFlow-only; see `keras_resnet.data.augment`."""
    from keras_resnet.data.augment import imagenet_eval_geometry as _geometry

    return _geometry(image, size, crop)


def decode_tf(encoded, channels=3, pillow_fallback=True):
    """Encoded image bytes -> uint8 `[H, W, channels]`, exactly as Pillow decodes them (TensorFlow-only).

    See `keras_resnet.data.decoding.decode`: `pillow_fallback=False` for graphs that must run without Python.

    Example:
        >>> image = decode_tf(tf.io.read_file("photo.JPEG"))  # needs a dataset on disk  # doctest: +SKIP
    """
    from keras_resnet.data.decoding import decode

    return decode(encoded, channels, pillow_fallback)


__all__ = [
    "ArrayIterator",
    "DatasetInfo",
    "IMAGENET_CROP",
    "MEMORY_LIMIT_BYTES",
    "SPLITS",
    "available_splits",
    "canonical_split",
    "channel_mean",
    "check_splits",
    "decode_tf",
    "default_eval_split",
    "imagenet_eval_geometry",
    "imagenet_eval_size",
    "imagenet_scale_range",
    "load",
    "load_arrays",
    "mean_image",
    "memory_input_reason",
    "normalize",
    "normalize_ops",
    "random_crop_flip",
    "stratified_split",
]
