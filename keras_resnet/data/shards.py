"""TFRecord shard sets on disk, by name only: `<split>-NNNNN-of-NNNNN` files and the converter's `dataset.json`.

No TensorFlow: listing, completeness and the metadata file are plain file-system questions, so a source
can be classified, its splits listed and its memory footprint judged without importing TensorFlow
(`keras_resnet.data.sources.ShardDirectory`). Reading the records is `keras_resnet.data.tfrecord`.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 3.4 (ImageNet's 1.28M training images, stored as the TF Model Garden's TFRecord shards).

Example:
    >>> bool(SHARD_PATTERN.match("train-00000-of-01024")), bool(SHARD_PATTERN.match("train.tar.gz"))
    (True, False)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from keras_resnet.data.split_names import order_splits, pick_physical

SHARD_PATTERN = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-(?P<index>\d{5})-of-(?P<total>\d{5})$")
METADATA = "dataset.json"
"""The converter's description of a shard directory (class names, image shape, split sizes)."""


def has_shards(directory) -> bool:
    """Whether `directory` holds at least one file named like a shard."""
    return any(SHARD_PATTERN.match(p.name) for p in Path(directory).iterdir())


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
    """Sorted shard paths of `split` in `directory` (`"validation"` also as `val-*` and back).

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


def read_metadata(directory):
    """The converter's `dataset.json` as a dict, or None when absent."""
    path = Path(directory) / METADATA
    return json.loads(path.read_text()) if path.is_file() else None


def fingerprint(directory) -> dict:
    """The mean cache's key for a shard directory: its path and the sizes and times of its training shards."""
    stats = [Path(f).stat() for f in find_shard_files(directory, "train")]
    return {"tfrecord": str(Path(directory).resolve()), "sig": [(s.st_size, s.st_mtime_ns) for s in stats]}


__all__ = ["METADATA", "SHARD_PATTERN", "fingerprint", "find_shard_files", "has_shards", "read_metadata",
           "shard_sets"]
