"""A data source resolved once: `resolve(source)` turns a `source` argument into an object that answers for it.

`source` is an image folder (`root/<split>/<class>/<image>`), a `.tar`/`.tar.gz` archive of one or a folder
of split archives (`ImageFolder`), a directory of `<split>-NNNNN-of-NNNNN` TFRecord shards
(`ShardDirectory`), or a TFDS name (`TFDSDataset`). This is the one module that tells these kinds apart:
everything else asks the object, whose methods are

* `splits()`: the canonical split names it has (`keras_resnet.data.split_names.order_splits`);
* `check_splits(splits)`: `{split: where it lives}`, or one `ValueError` line (a missing split, empty or
  differing class folders, an incomplete shard set);
* `memory_reason(splits, max_bytes)`: `(in_memory, reason)` from image headers or declared shapes;
* `first_image_size()`: `(height, width)` of the first training image, or None when unknown;
* `decodes_up_front(split, validation_size, preprocessing, image_size)`: whether `load` decodes the split
  into memory at once (small images of a folder) rather than streaming it;
* `open(split, validation_size)`: the TensorFlow reader of `keras_resnet.data.reader` (TensorFlow imported
  then); the reader answers the questions that need the data itself (labels, elements, the mean's key).

`kind` (`"folder"`, `"tfrecord"`, `"tfds"`) names the kind in messages; `local` says whether it is a path;
`decodes_with_pillow` whether `load_arrays` can read it without TensorFlow. Resolving a `Source` returns it.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
sections 3.4 (ImageNet: trained on its training images, evaluated on its validation images) and 4.2
(CIFAR-10: train / test, the 45k/5k split).

Example:
    >>> resolve("cifar10").kind
    'tfds'
    >>> resolve("../shared/datasets/cifar10-jpeg").splits()  # needs ../shared  # doctest: +SKIP
    ['train', 'test']
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_resnet.data import folder, shards, sizing
from keras_resnet.data.archives import is_archive
from keras_resnet.data.split_names import base_split, canonical_split

MAX_LISTED = 10
"""Class names listed at most per side in the "class folders differ" message."""


class Source:
    """What every source answers; see the module docstring. Built by `resolve`, not directly."""

    kind = ""
    local = True
    decodes_with_pillow = False

    def __init__(self, name, *, data_dir=None, download=False, label_offset=None):
        self.name, self.data_dir, self.download, self.label_offset = str(name), data_dir, download, label_offset

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r})"

    def splits(self) -> list:
        raise NotImplementedError

    def check_splits(self, splits) -> dict:
        raise NotImplementedError

    def memory_reason(self, splits, max_bytes=sizing.MEMORY_LIMIT_BYTES) -> tuple:
        raise NotImplementedError

    def first_image_size(self):
        raise NotImplementedError

    def decodes_up_front(self, split, validation_size, preprocessing, image_size) -> bool:
        """Whether `load` decodes `split` into memory at once; only small folder images are."""
        return False

    def image_count(self, split):
        """The number of images of `split` when it is known without reading them, else None."""
        return None

    def open(self, split="train", validation_size=0):
        raise NotImplementedError


def _listed(names) -> str:
    names = sorted(names)
    more = f" ... ({len(names)} in all)" if len(names) > MAX_LISTED else ""
    return f"{names[:MAX_LISTED]}{more}"


class ImageFolder(Source):
    """An image folder, an archive of one, or a folder of split archives (`keras_resnet.data.folder`)."""

    kind = "folder"
    decodes_with_pillow = True

    def splits(self):
        return folder.available_splits(self.name)

    def check_splits(self, splits):
        """Every split has class folders, none empty, and exactly the class folders of the reference split
        (`"train"` when listed, else the first)."""
        found = {split: folder.class_counts(self.name, split) for split in splits}
        reference = "train" if "train" in splits else splits[0]
        ref_location, ref_classes = found[reference]
        for split in splits:
            location, classes = found[split]
            only_ref, only_here = set(ref_classes) - set(classes), set(classes) - set(ref_classes)
            if only_ref or only_here:
                raise ValueError(
                    f"Class folders differ between split {reference!r} ({ref_location.where()}, {len(ref_classes)} "
                    f"classes) and split {split!r} ({location.where()}, {len(classes)} classes): only in "
                    f"{reference!r}: {_listed(only_ref)}; only in {split!r}: {_listed(only_here)}. Every split "
                    "needs the same class folders (labels are the sorted class-folder names)."
                )
        return {canonical_split(split): location.where() for split, (location, _) in found.items()}

    def memory_reason(self, splits, max_bytes=sizing.MEMORY_LIMIT_BYTES):
        return sizing.folder_reason(self.name, splits, max_bytes)

    def image_count(self, split):
        """From the file names (no image is read)."""
        return sum(folder.class_counts(self.name, split)[1].values())

    def first_image_size(self):
        return tuple(folder.peek_image_size(self.name, "train"))

    def decodes_up_front(self, split, validation_size, preprocessing, image_size):
        """Small images (both sides <= 64 pixels, "cifar"): by `preprocessing`, else `image_size`, else the
        first image of the split read."""
        if preprocessing is not None:
            return preprocessing == "cifar"
        size = image_size if image_size is not None else folder.peek_image_size(
            self.name, base_split(split, validation_size))
        return max(size) <= 64

    def fingerprint(self) -> dict:
        """The mean cache's key for this folder (`keras_resnet.data.folder.fingerprint`)."""
        return folder.fingerprint(self.name)

    def open(self, split="train", validation_size=0):
        from keras_resnet.data.reader import FolderSource

        return FolderSource(self.name, base_split(split, validation_size))


class ShardDirectory(Source):
    """A directory of TFRecord shards (`keras_resnet.data.shards`, read by `keras_resnet.data.tfrecord`)."""

    kind = "tfrecord"

    def splits(self):
        from keras_resnet.data.split_names import order_splits

        return order_splits(shards.shard_sets(self.name))

    def check_splits(self, splits):
        """Every split has a complete shard set."""
        out = {}
        for split in splits:
            first = Path(shards.find_shard_files(self.name, split)[0])
            out[canonical_split(split)] = f"{first.parent / first.name.rsplit('-', 3)[0]}-*"
        return out

    def memory_reason(self, splits, max_bytes=sizing.MEMORY_LIMIT_BYTES):
        return sizing.shard_reason(self.name, splits, max_bytes)

    def first_image_size(self):
        shape = (shards.read_metadata(self.name) or {}).get("image_shape")
        return tuple(shape[:2]) if shape else None

    def open(self, split="train", validation_size=0):
        from keras_resnet.data.reader import TFRecordSource

        return TFRecordSource(self.name, self.label_offset)


class TFDSDataset(Source):
    """A TensorFlow Datasets name (`keras_resnet.data.tfds_source`; TensorFlow imported on first question)."""

    kind = "tfds"
    local = False

    def open(self, split="train", validation_size=0, *, download=None):
        """The opened dataset; `download` (default the resolved one) prepares it first when missing."""
        from keras_resnet.data.tfds_source import TFDSSource

        return TFDSSource(self.name, data_dir=self.data_dir, download=self.download if download is None else download)

    def splits(self):
        return self.open(download=False).available()

    def check_splits(self, splits):
        """The dataset declares every split."""
        src, out = self.open(download=False), {}
        for split in splits:
            src.check_split(split)
            out[canonical_split(split)] = f"{self.name}:{src.physical(split)}"
        return out

    def memory_reason(self, splits, max_bytes=sizing.MEMORY_LIMIT_BYTES):
        src = self.open(download=False)
        for split in splits:
            src.check_split(split)
        counts = {s: src.splits[src.physical(s)] for s in splits if src.physical(s) in src.splits}
        return sizing.declared_shape_reason(f"TFDS {self.name!r}", src.image_shape, counts, splits, max_bytes)

    def first_image_size(self):
        shape = self.open(download=False).image_shape
        return None if shape is None or None in shape[:2] else tuple(shape[:2])


def resolve(source, *, data_dir=None, download=False, label_offset=None) -> Source:
    """The `Source` a `source` argument names (a `Source` is returned as it is).

    Args:
        source: an image folder, a `.tar`/`.tar.gz` archive, a folder of split archives, a directory of
            TFRecord shards or a TFDS name (`"cifar10"`, `"imagenet2012:5.1.0"`); or a `Source`.
        data_dir, download: for TFDS names (where the prepared data is; prepare it when missing).
        label_offset: subtracted from TFRecord labels (default from the shards' `dataset.json`, else 0).

    Raises:
        FileNotFoundError: `source` looks like a path (has a separator or archive suffix, or starts with
            `.`) but does not exist.
        ValueError: `source` is empty or not a str / path.

    Example:
        >>> resolve("cifar10", data_dir="/tmp/tfds")
        TFDSDataset('cifar10')
    """
    if isinstance(source, Source):
        return source
    if not isinstance(source, (str, os.PathLike)) or not str(source):
        raise ValueError(
            f"`source` must be a TFDS name, an image folder, a .tar/.tar.gz archive or a TFRecord directory; "
            f"received {source!r}."
        )
    options = {"data_dir": data_dir, "download": download, "label_offset": label_offset}
    path = Path(source)
    if path.exists():
        kind = ShardDirectory if path.is_dir() and shards.has_shards(path) else ImageFolder
        return kind(os.fspath(source), **options)
    text = str(source)
    if isinstance(source, os.PathLike) or os.sep in text or is_archive(text) or text.startswith("."):
        raise FileNotFoundError(
            f"Data source {text!r} does not exist; expected an image folder (<split>/<class>/<image>), a "
            ".tar/.tar.gz archive of one, or a directory of TFRecord shards (<split>-00000-of-0000N)."
        )
    return TFDSDataset(text, **options)


__all__ = ["ImageFolder", "ShardDirectory", "Source", "TFDSDataset", "resolve"]
