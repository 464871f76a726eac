"""Which kind of source a `source` argument names, and how splits map onto it (no TensorFlow).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 4.2 (the 45k/5k train/validation split of the CIFAR-10 training set).

Example:
    >>> source_kind("cifar10")
    'tfds'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from keras_resnet.data.folder import is_archive, locate_split
from keras_resnet.data.split_names import order_splits, pick_physical

SPLITS = ("train", "validation", "test")
SHARD_PATTERN = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<total>\d{5})$")


def source_kind(source) -> str:
    """Returns `"folder"` (image folder or archive), `"tfrecord"` (directory of shards) or `"tfds"` (a name).

    Raises:
        FileNotFoundError: `source` looks like a path (has a separator or archive suffix) but does not exist.
        ValueError: `source` is empty or not a str / path.
    """
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        raise ValueError(
            f"`source` must be a TFDS name, an image folder, a .tar/.tar.gz archive or a TFRecord directory; "
            f"received {source!r}."
        )
    path = Path(source)
    if path.exists():
        if path.is_dir() and any(SHARD_PATTERN.match(p.name) for p in path.iterdir()):
            return "tfrecord"
        return "folder"
    text = str(source)
    if isinstance(source, os.PathLike) or os.sep in text or is_archive(text) or text.startswith("."):
        raise FileNotFoundError(
            f"Data source {text!r} does not exist; expected an image folder (<split>/<class>/<image>), a "
            ".tar/.tar.gz archive of one, or a directory of TFRecord shards (<split>-00000-of-0000N)."
        )
    return "tfds"


def shard_sets(directory) -> dict:
    """The TFRecord shards of a directory by the split prefix of their names: `{split: [(index, total, path)]}`
    (physical names as on disk, e.g. `"val"`; sorted by index)."""
    found = {}
    for p in Path(directory).iterdir():
        m = SHARD_PATTERN.match(p.name)
        if m:
            found.setdefault(m["split"], []).append((int(m["index"]), int(m["total"]), p))
    return {split: sorted(files) for split, files in found.items()}


def find_shard_files(directory, split: str) -> list:
    """Sorted shard paths of `split` in `directory` (`"validation"` also as `val-*` and back), without TensorFlow.

    Raises:
        ValueError: no shards for `split` (naming the directory, the split and the splits found), or an
            incomplete set (an index of `-of-NNNNN` missing).
    """
    found = shard_sets(directory)
    name = pick_physical(split, found)
    if name is None:
        raise ValueError(
            f"No TFRecord shards for split {split!r} in {str(directory)!r}: expected files named "
            f"'{split}-00000-of-00001' etc.; splits found: {order_splits(found) or 'none'}."
        )
    shards = found[name]
    totals = {t for _, t, _ in shards}
    if len(totals) != 1 or len(shards) != totals.pop():
        raise ValueError(
            f"Incomplete shard set for split {name!r} in {str(directory)!r}: found {len(shards)} files "
            f"{[p.name for _, _, p in shards[:3]]}..., expected every index of '-of-NNNNN'."
        )
    return [str(p) for _, _, p in shards]


def check_split(split, validation_size) -> None:
    """`ValueError` unless `split` is a non-empty str and `validation_size` a non-negative int."""
    if not isinstance(split, str) or not split:
        raise ValueError(f"`split` must be one of {SPLITS} (or a split the source has); received {split!r}.")
    if not isinstance(validation_size, int) or isinstance(validation_size, bool) or validation_size < 0:
        raise ValueError(f"`validation_size` must be a non-negative int; received {validation_size!r}.")


def base_split(split: str, validation_size: int) -> str:
    """The physical split to read: the training split for `"train"`/`"validation"` when holding out images."""
    return "train" if validation_size > 0 and split in ("train", "validation") else split


def preprocessing_for(image_shape) -> str:
    """`"cifar"` for small images (both sides <= 64 pixels), `"imagenet"` otherwise."""
    return "cifar" if max(image_shape[0], image_shape[1]) <= 64 else "imagenet"


def folder_key(source) -> dict:
    """The fingerprint of an image folder or archive for the mean cache: its training split's signature."""
    return {"folder": locate_split(source, "train").signature()}
