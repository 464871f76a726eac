"""Which splits a source has, which one to evaluate on, and the checks to run before a run writes anything.

No TensorFlow for image folders, archives and TFRecord directories (names only: no image is read or
decoded); TFDS names open the dataset's builder (TensorFlow imported lazily).

* `available_splits(source, data_dir=None) -> list[str]`: canonical names (`"train"`, `"validation"`,
  `"test"` in that order, then any other split the source names); a `val/` folder, `val` member folder,
  `*-val.tar.gz` split archive or `val-*` shard set is `"validation"`.
* `default_eval_split(source, data_dir=None) -> str`: `"validation"` when the source has one, else `"test"`.
* `check_splits(source, splits, data_dir=None) -> dict`: every split is there, no class folder is empty,
  and every split has the class folders of the training split; `ValueError` with one actionable line
  otherwise (a trainer turns it into exit code 2).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 3.4 (ImageNet: trained on the 1.28M training images, evaluated on the 50k validation images) and
section 4.2 (CIFAR-10: trained on the training set, evaluated on the test set).

Example:
    >>> available_splits("/data/imagenet")  # train/ and val/  # doctest: +SKIP
    ['train', 'validation']
    >>> default_eval_split("/data/imagenet")  # doctest: +SKIP
    'validation'
    >>> check_splits("/data/imagenet", ["train", "validation"])  # doctest: +SKIP
    {'train': '/data/imagenet/train', 'validation': '/data/imagenet/val'}
"""

from __future__ import annotations

from pathlib import Path

from keras_resnet.data import folder, sources
from keras_resnet.data.split_names import canonical_split, order_splits

MAX_LISTED = 10
"""Class names listed at most per side in the "class folders differ" message."""


def _tfds(source, data_dir):
    from keras_resnet.data.tfds_source import TFDSSource

    return TFDSSource(str(source), data_dir=data_dir, download=False)


def available_splits(source, data_dir=None) -> list:
    """The splits `source` has, by their canonical names (`val` is `"validation"`).

    Args:
        source: an image folder, a `.tar`/`.tar.gz` archive, a folder of split archives, a directory of
            TFRecord shards or a TFDS name (as `keras_resnet.data.load` takes).
        data_dir: the TFDS data directory (TFDS names only).

    Returns:
        `["train", "validation", "test"]`, or the part of it the source has, in that order, followed by any
        other split names it has (sorted). An unprepared TFDS dataset may list none.

    Raises:
        FileNotFoundError: a path that does not exist. ValueError: an unknown TFDS name, an unreadable archive.

    Example:
        >>> available_splits("../shared/datasets/cifar10-jpeg")  # doctest: +SKIP
        ['train', 'test']
    """
    kind = sources.source_kind(source)
    if kind == "folder":
        return folder.available_splits(source)
    if kind == "tfrecord":
        return order_splits(sources.shard_sets(source))
    return _tfds(source, data_dir).available()


def default_eval_split(source, data_dir=None) -> str:
    """The split to evaluate on: `"validation"` when `source` has one (`val/` or `validation/`), else `"test"`.

    ImageNet-style data (train/ and val/) evaluates on its validation images, as the paper does; CIFAR-style
    data (train/ and test/) on its test images.

    Raises:
        ValueError: the source has neither (naming it and the splits it has).

    Example:
        >>> default_eval_split("cifar10")  # doctest: +SKIP
        'test'
    """
    splits = available_splits(source, data_dir)
    for split in ("validation", "test"):
        if split in splits:
            return split
    raise ValueError(
        f"Data source {str(source)!r} has neither a validation split ('val' or 'validation') nor a 'test' split "
        f"to evaluate on; available splits: {splits or 'none'}."
    )


def _listed(names) -> str:
    names = sorted(names)
    more = f" ... ({len(names)} in all)" if len(names) > MAX_LISTED else ""
    return f"{names[:MAX_LISTED]}{more}"


def _where(location) -> str:
    return str(location.path) if location.kind == "dir" else f"{location.path}:{location.split}/"


def _check_folder(source, splits) -> dict:
    found = {split: folder.class_counts(source, split) for split in splits}
    reference = "train" if "train" in splits else splits[0]
    ref_location, ref_classes = found[reference]
    for split in splits:
        location, classes = found[split]
        only_ref, only_here = set(ref_classes) - set(classes), set(classes) - set(ref_classes)
        if only_ref or only_here:
            raise ValueError(
                f"Class folders differ between split {reference!r} ({_where(ref_location)}, {len(ref_classes)} "
                f"classes) and split {split!r} ({_where(location)}, {len(classes)} classes): only in "
                f"{reference!r}: {_listed(only_ref)}; only in {split!r}: {_listed(only_here)}. Every split needs "
                "the same class folders (labels are the sorted class-folder names)."
            )
    return {canonical_split(split): _where(location) for split, (location, _) in found.items()}


def _check_shards(source, splits) -> dict:
    out = {}
    for split in splits:
        files = sources.find_shard_files(source, split)
        out[canonical_split(split)] = f"{Path(files[0]).parent / Path(files[0]).name.rsplit('-', 3)[0]}-*"
    return out


def _check_tfds(source, splits, data_dir) -> dict:
    src = _tfds(source, data_dir)
    out = {}
    for split in splits:
        src.check_split(split)
        out[canonical_split(split)] = f"{source}:{src.physical(split)}"
    return out


def check_splits(source, splits, data_dir=None) -> dict:
    """Checks, from names only, that `source` can be trained and evaluated on `splits`, before anything is written.

    For image folders and archives: each split exists (`val/` counts as `"validation"`), has class folders,
    none of them empty, and every split has exactly the class folders of the reference split (`"train"` when
    listed, else the first). For TFRecord directories: each split has a complete shard set. For TFDS names:
    the dataset declares each split.

    Args:
        source: as `keras_resnet.data.load` takes.
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
        >>> check_splits("/data/pets", ["train", "validation"])  # doctest: +SKIP
        {'train': '/data/pets/train', 'validation': '/data/pets/val'}
    """
    splits = [splits] if isinstance(splits, str) else list(splits)
    if not splits:
        raise ValueError("`splits` must name at least one split, e.g. ['train', 'validation'].")
    for split in splits:
        sources.check_split(split, 0)
    kind = sources.source_kind(source)
    if kind == "folder":
        return _check_folder(source, splits)
    if kind == "tfrecord":
        return _check_shards(source, splits)
    return _check_tfds(source, splits, data_dir)


__all__ = ["available_splits", "check_splits", "default_eval_split"]
