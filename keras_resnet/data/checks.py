"""Questions about a source named by a string: its splits, the one to evaluate on, the checks to run before a
run writes anything, and whether it fits in memory. Each resolves the source once
(`keras_resnet.data.sources.resolve`) and asks the object.

No TensorFlow for image folders, archives and TFRecord directories (names only: no image is decoded); TFDS
names open the dataset's builder (TensorFlow imported lazily).

* `available_splits(source, data_dir=None) -> list[str]`: canonical names (`"train"`, `"validation"`,
  `"test"` in that order, then any other split the source names); a `val/` folder, `val` member folder,
  `*-val.tar.gz` split archive or `val-*` shard set is `"validation"`.
* `default_eval_split(source, data_dir=None) -> str`: `"validation"` when the source has one, else `"test"`.
* `check_splits(source, splits, data_dir=None) -> dict`: every split is there, no class folder is empty,
  and every split has the class folders of the training split; `ValueError` with one actionable line
  otherwise (a trainer turns it into exit code 2).
* `memory_input_reason(source, split="train", max_bytes=MEMORY_LIMIT_BYTES, data_dir=None) -> (bool, str)`:
  whether the split(s) may be decoded into memory, and the one-line reason (`keras_resnet.data.sizing`).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 3.4 (ImageNet: trained on the 1.28M training images, evaluated on the 50k validation images) and
section 4.2 (CIFAR-10: trained on the training set, evaluated on the test set).

Example:
    >>> available_splits("/data/imagenet")  # train/ and val/  # doctest: +SKIP
    ['train', 'validation']
    >>> default_eval_split("/data/imagenet")  # needs a dataset on disk  # doctest: +SKIP
    'validation'
    >>> check_splits("/data/imagenet", ["train", "validation"])  # needs a dataset on disk  # doctest: +SKIP
    {'train': '/data/imagenet/train', 'validation': '/data/imagenet/val'}
"""

from __future__ import annotations

from keras_resnet.data.sizing import MEMORY_LIMIT_BYTES, check_max_bytes
from keras_resnet.data.sources import resolve
from keras_resnet.data.split_names import check_split


def available_splits(source, data_dir=None) -> list:
    """The splits `source` has, by their canonical names (`val` is `"validation"`).

    Args:
        source: an image folder, a `.tar`/`.tar.gz` archive, a folder of split archives, a directory of
            TFRecord shards or a TFDS name (as `keras_resnet.data.load` takes), or a resolved `Source`.
        data_dir: the TFDS data directory (TFDS names only).

    Returns:
        `["train", "validation", "test"]`, or the part of it the source has, in that order, followed by any
        other split names it has (sorted). An unprepared TFDS dataset may list none.

    Raises:
        FileNotFoundError: a path that does not exist. ValueError: an unknown TFDS name, an unreadable archive.

    Example:
        >>> available_splits("../shared/datasets/cifar10-jpeg")  # needs ../shared  # doctest: +SKIP
        ['train', 'test']
    """
    return resolve(source, data_dir=data_dir).splits()


def default_eval_split(source, data_dir=None) -> str:
    """The split to evaluate on: `"validation"` when `source` has one (`val/` or `validation/`), else `"test"`.

    ImageNet-style data (train/ and val/) evaluates on its validation images, as the paper does; CIFAR-style
    data (train/ and test/) on its test images.

    Raises:
        ValueError: the source has neither (naming it and the splits it has).

    Example:
        >>> default_eval_split("cifar10")  # needs a prepared TFDS dataset  # doctest: +SKIP
        'test'
    """
    splits = available_splits(source, data_dir)
    for split in ("validation", "test"):
        if split in splits:
            return split
    raise ValueError(
        f"Data source {str(getattr(source, 'name', source))!r} has neither a validation split ('val' or "
        f"'validation') nor a 'test' split to evaluate on; available splits: {splits or 'none'}."
    )


def check_splits(source, splits, data_dir=None) -> dict:
    """Checks, from names only, that `source` can be trained and evaluated on `splits`, before anything is written.

    For image folders and archives: each split exists (`val/` counts as `"validation"`), has class folders,
    none of them empty, and every split has exactly the class folders of the reference split (`"train"` when
    listed, else the first). For TFRecord directories: each split has a complete shard set. For TFDS names:
    the dataset declares each split.

    Args:
        source: as `keras_resnet.data.load` takes, or a resolved `Source`.
        splits: a split name or a sequence of them, e.g. `["train", "validation"]` (a held-out validation
            split, `validation_size` > 0, is part of `"train"`: do not list it).
        data_dir: the TFDS data directory (TFDS names only).

    Returns:
        `{canonical split: where it lives}`, e.g. `{"train": "/data/pets/train", "validation": "/data/pets/val"}`
        (an archive's split as `"<archive>:<split>/"`, shards as `"<dir>/<split>-*"`, TFDS as `"<name>:<split>"`).

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: one line naming the source: a missing split (with the splits available), a split folder
            without class folders, empty class folders (each named), class folders that differ between splits
            (both sides' differences listed), an incomplete shard set, a bad split name.

    Example:
        >>> check_splits("/data/pets", ["train", "validation"])  # needs a dataset on disk  # doctest: +SKIP
        {'train': '/data/pets/train', 'validation': '/data/pets/val'}
    """
    splits = [splits] if isinstance(splits, str) else list(splits)
    if not splits:
        raise ValueError("`splits` must name at least one split, e.g. ['train', 'validation'].")
    for split in splits:
        check_split(split, 0)
    return resolve(source, data_dir=data_dir).check_splits(splits)


def memory_input_reason(source, split="train", max_bytes=MEMORY_LIMIT_BYTES, data_dir=None) -> tuple:
    """Whether `split` of `source` may be decoded into memory, and the one-line reason for the log.

    Args:
        source: as `keras_resnet.data.load` takes (image folder, archive, TFRecord directory, TFDS name), or
            a resolved `Source`.
        split: a split name, or a sequence of them (all loaded into memory together: one shape for all).
        max_bytes: the most decoded uint8 bytes (`height * width * 3` per image) to hold in memory; default
            `MEMORY_LIMIT_BYTES`, 2 GiB.
        data_dir: the TFDS data directory (TFDS names only).

    Returns:
        `(in_memory, reason)`: True and `"in memory: ..."` when every image has one shape and all of them
        fit in `max_bytes`; False and `"streaming: ..."` (sizes differ, too big, sizes unknown) otherwise.

    Raises:
        FileNotFoundError / ValueError: as `check_splits` (missing path or split, bad layout).

    Example:
        >>> memory_input_reason("/data/photos", "train")  # needs a dataset on disk  # doctest: +SKIP
        (False, 'streaming: 12 image sizes in train (e.g. 383x295 and 455x391)')
    """
    splits = [split] if isinstance(split, str) else list(split)
    check_max_bytes(max_bytes)
    return resolve(source, data_dir=data_dir).memory_reason(splits, max_bytes)


__all__ = ["available_splits", "check_splits", "default_eval_split", "memory_input_reason"]
