"""Image folders and their `.tar` / `.tar.gz` archives: layout, listing, reading and decoding (no TensorFlow).

Layout: `root/<split>/<class>/<image>` with `.jpg`/`.jpeg`/`.png`/`.bmp` images; class ids are the sorted
class-folder names. A source is one of

* a directory `root` holding `root/<split>/<class>/...`;
* an archive (`.tar`, `.tar.gz`, `.tgz`) whose members are `[prefix/]<split>/<class>/<image>`;
* a directory holding one archive per split, named `<split>.tar.gz` or `<anything>-<split>.tar.gz`
  (`_` and `.` also separate), like `../shared/datasets/cifar10-jpeg/cifar10-train.tar.gz`.

Splits are `train`, `validation` (stored as `val` or `validation`) and `test`
(`keras_resnet.data.split_names`); archive names and member indexes are `keras_resnet.data.archives`.

Archives are read sequentially with `tarfile` straight into memory, never extracted to disk. Decoding
uses Pillow, so `load_arrays` works on the JAX backend without TensorFlow.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385);
Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009 (CIFAR-10).

Example:
    >>> split = read_split("../shared/datasets/cifar10-jpeg", "test")  # needs ../shared  # doctest: +SKIP
    >>> images, kept, skipped = decode_images(split.blobs, split.names)  # needs ../shared  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
from pathlib import Path
from typing import Optional

import numpy as np

from keras_resnet.data.archives import (
    IMAGE_EXTENSIONS,
    LAYOUT,
    archive_for_split,
    archive_index,
    is_archive,
    is_image_name,
    member_parts,
    split_archives,
    stem_split,
)
from keras_resnet.data.split_names import missing_split_message, order_splits, pick_physical, split_candidates


class ImageShapeError(ValueError):
    """Images of one split decoded into one array have different shapes (`decode_images`)."""


@dataclasses.dataclass
class SplitLocation:
    """Where one split lives: `kind` is `"dir"` (`path` is the split folder) or `"tar"` (`path` the archive)."""

    kind: str
    path: Path
    split: str

    def signature(self) -> str:
        """A cheap fingerprint (sizes and modification times) for cache keys."""
        if self.kind == "tar":
            st = self.path.stat()
            return f"tar:{self.path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
        count = size = mtime = 0
        for dirpath, _, files in os.walk(self.path):
            for f in files:
                st = os.stat(os.path.join(dirpath, f))
                count, size, mtime = count + 1, size + st.st_size, max(mtime, st.st_mtime_ns)
        return f"dir:{self.path.resolve()}:{count}:{size}:{mtime}"


    def where(self) -> str:
        """Where the split lives, for messages: the split folder, or `"<archive>:<split>/"`."""
        return str(self.path) if self.kind == "dir" else f"{self.path}:{self.split}/"


def fingerprint(source) -> dict:
    """The mean cache's key for an image folder or archive: its training split's signature."""
    return {"folder": locate_split(source, "train").signature()}


@dataclasses.dataclass
class FolderSplit:
    """One split read from an image folder: names, labels and (encoded) bytes, sorted by (class, file)."""

    location: SplitLocation
    class_names: list
    names: list  # display names: file paths, or "archive.tar.gz:member"
    labels: np.ndarray
    blobs: Optional[list]  # encoded bytes, or None when only listed (directories)
    paths: Optional[list] = None  # file paths (directories)
    relative: Optional[list] = None  # "<split>/<class>/<image>" of each image (TFRecord `image/filename`)


def available_splits(source) -> list:
    """The canonical split names an image folder or archive offers (`val/` counts as `"validation"`).

    Split folders (`train/`, `val/`, `validation/`, `test/` and any other folder holding a folder), split
    archives in the folder (`*-<split>.tar.gz`), or the `<split>/` member folders of an archive; listed as
    `keras_resnet.data.split_names.order_splits` orders them (`train`, `validation`, `test`, then others).
    """
    root = Path(source)
    if root.is_file() and is_archive(root):
        return order_splits(archive_index(root).splits)
    if not root.is_dir():
        return []
    names = {stem_split(p) for p in split_archives(root)}
    for p in root.iterdir():
        if p.is_dir() and not p.name.startswith(".") and (
                p.name in ("train", "val", "validation", "test") or any(q.is_dir() for q in p.iterdir())):
            names.add(p.name)
    return order_splits(names)


def locate_split(source, split: str) -> SplitLocation:
    """Finds where `split` of a folder/archive source lives; `FileNotFoundError`/`ValueError` if nowhere.

    `"validation"` is found as a `validation` or a `val` folder, member folder or split archive (and `"val"`
    as either, too); the `SplitLocation`'s `split` is the name found.

    Args:
        source: a directory or an archive path.
        split: the split name, e.g. `"train"`, `"validation"` or `"test"`.

    Raises:
        FileNotFoundError: `source` does not exist.
        ValueError: `split` is not there (naming the source, the split and the splits available), or
            `source` is a file but not an archive of images.
    """
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"Data source {str(source)!r} does not exist; expected an image folder ({LAYOUT}), a .tar/.tar.gz "
            "archive of one, a directory of TFRecord shards or a TFDS dataset name."
        )
    if path.is_file():
        if not is_archive(path):
            raise ValueError(f"Data source {str(path)!r} is a file but not a .tar, .tar.gz or .tgz archive.")
        index = archive_index(path)
        if not index.splits:
            raise ValueError(
                f"Archive {str(path)!r} is not an image folder with split {split!r}: expected members "
                f"[prefix/]{LAYOUT}; top-level entries found: {index.tops[:10] or 'none'}."
            )
        found = pick_physical(split, index.splits)
        if found is None:
            raise ValueError(missing_split_message(path, split, order_splits(index.splits),
                                                   f"expected archive members [prefix/]{split}/<class>/<image>"))
        return SplitLocation("tar", path, found)
    found = pick_physical(split, {p.name for p in path.iterdir() if p.is_dir()})
    if found is not None:
        return SplitLocation("dir", path / found, found)
    archive = archive_for_split(path, split)
    if archive is not None:
        return SplitLocation("tar", archive, stem_split(archive) if stem_split(archive) in
                             split_candidates(split) else split)
    raise ValueError(missing_split_message(
        path, split, available_splits(path),
        f"expected a folder {str(path / split)!r} or an archive named '{split}.tar.gz' / '*-{split}.tar.gz'"))


def _check_images(location, empty_classes, count):
    if empty_classes:
        raise ValueError(
            f"Class folder(s) with no images in {str(location.path)!r}: {sorted(empty_classes)}; each class folder "
            f"needs at least one image ({'/'.join(IMAGE_EXTENSIONS)})."
        )
    if not count:
        raise ValueError(
            f"No images for split {location.split!r} in {str(location.path)!r}; expected {LAYOUT}."
        )


def _finish(location, class_names, names, labels, blobs, paths, empty_classes, relative):
    _check_images(location, empty_classes, len(names))
    return FolderSplit(location, class_names, names, np.asarray(labels, np.int64), blobs, paths, relative)


def _dir_classes(location: SplitLocation) -> dict:
    """`{class: sorted image file names}` of a split folder; `ValueError` if it has no class folders."""
    classes = sorted(p.name for p in location.path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(
            f"Split folder {str(location.path)!r} has no class folders; expected {LAYOUT}."
        )
    return {cls: sorted(f for f in os.listdir(location.path / cls) if is_image_name(f)) for cls in classes}


def _read_dir(location: SplitLocation, read_bytes: bool) -> FolderSplit:
    per_class = _dir_classes(location)
    names, labels, paths, blobs, relative = [], [], [], [], []
    for label, (cls, files) in enumerate(per_class.items()):
        for f in files:
            p = str(location.path / cls / f)
            names.append(p)
            paths.append(p)
            relative.append(f"{location.split}/{cls}/{f}")
            labels.append(label)
            if read_bytes:
                with open(p, "rb") as fh:
                    blobs.append(fh.read())
    empty = [str(location.path / cls) for cls, files in per_class.items() if not files]
    return _finish(location, list(per_class), names, labels, blobs if read_bytes else None, paths, empty, relative)


def _read_tar(location: SplitLocation) -> FolderSplit:
    split, wanted = location.split, split_candidates(location.split)
    found = {}  # (class, file) -> bytes
    class_dirs = set()
    tops = set()
    try:
        with tarfile.open(location.path, "r:*") as tar:
            for m in tar:
                parts = member_parts(m.name)
                if parts:
                    tops.add(parts[0])
                if m.isdir() and len(parts) >= 2 and parts[-2] in wanted:
                    class_dirs.add(parts[-1])
                elif m.isfile() and len(parts) >= 3 and parts[-3] in wanted and is_image_name(parts[-1]):
                    class_dirs.add(parts[-2])
                    found[(parts[-2], parts[-1])] = tar.extractfile(m).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"Cannot read archive {str(location.path)!r}: {e}") from e
    if not found:
        raise ValueError(
            f"Archive {str(location.path)!r} is not an image folder with split {split!r}: expected members "
            f"[prefix/]{LAYOUT}; top-level entries found: {sorted(tops)[:10] or 'none'}."
        )
    classes = sorted(class_dirs)
    index = {c: i for i, c in enumerate(classes)}
    keys = sorted(found, key=lambda k: (index[k[0]], k[1]))
    with_images = {k[0] for k in keys}
    empty = [f"{location.path}:{split}/{c}" for c in classes if c not in with_images]
    relative = [f"{split}/{c}/{f}" for c, f in keys]
    names = [f"{location.path}:{r}" for r in relative]
    return _finish(location, classes, names, [index[c] for c, _ in keys], [found[k] for k in keys], None, empty,
                   relative)


def class_counts(source, split: str):
    """`(SplitLocation, {class: image count})` of a folder/archive split, from names only (no image bytes).

    Raises:
        FileNotFoundError / ValueError: as `locate_split`; a split without class folders; class folders without
            images (naming each, as `read_split` does).
    """
    location = locate_split(source, split)
    if location.kind == "dir":
        counts = {cls: len(files) for cls, files in _dir_classes(location).items()}
        empty = [str(location.path / cls) for cls, n in counts.items() if not n]
    else:
        per_split = archive_index(location.path).splits
        counts = {}
        for name in split_candidates(location.split):
            for cls, n in per_split.get(name, {}).items():
                counts[cls] = counts.get(cls, 0) + n
        counts = dict(sorted(counts.items()))
        empty = [f"{location.path}:{location.split}/{cls}" for cls, n in counts.items() if not n]
    _check_images(location, empty, sum(counts.values()))
    return location, counts


def read_split(source, split: str, read_bytes: bool = True) -> FolderSplit:
    """Lists (and by default reads the encoded bytes of) every image of `split`, sorted by (class, file).

    Args:
        source: directory or archive (see the module docstring).
        split: split name.
        read_bytes: read the file bytes of directory sources too (archives are always read).

    Returns:
        A `FolderSplit`.

    Raises:
        FileNotFoundError: the source does not exist.
        ValueError: no such split, empty folder, class folder without images, archive not an image folder.
    """
    location = locate_split(source, split)
    return _read_tar(location) if location.kind == "tar" else _read_dir(location, read_bytes)


def decode_image(data: bytes, name: str, image_size=None) -> np.ndarray:
    """Decodes one encoded image to uint8 RGB `[H, W, 3]` with Pillow; `ValueError` naming `name` if corrupt.

    CMYK JPEGs are converted to RGB as TensorFlow converts them (`keras_resnet.data.pillow_rgb`).

    Args:
        data: the encoded bytes.
        name: the file name used in error messages.
        image_size: optional `(height, width)` to resize to (bilinear).
    """
    from PIL import Image

    from keras_resnet.data.pillow_rgb import rgb_image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = rgb_image(im)
            if image_size is not None and im.size != (image_size[1], image_size[0]):
                im = im.resize((image_size[1], image_size[0]), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError... for bad bytes
        raise ValueError(
            f"Cannot decode image file {name!r} ({len(data)} bytes): {e}. Pass skip_corrupt=True to skip "
            "and count undecodable images."
        ) from e


def decode_images(blobs, names, image_size=None, skip_corrupt: bool = False):
    """Decodes encoded images into one uint8 array `[N, H, W, 3]`.

    Args:
        blobs: list of encoded bytes.
        names: matching file names (for error messages and the skipped list).
        image_size: `(height, width)` to resize every image to; if None all images must share a size.
        skip_corrupt: skip undecodable images instead of raising.

    Returns:
        `(images, kept_indices, skipped_names)`.

    Raises:
        ValueError: an image does not decode (naming the file) and `skip_corrupt` is False, or sizes differ.
    """
    out, kept, skipped, shape = None, [], [], None
    for i, (data, name) in enumerate(zip(blobs, names)):
        try:
            img = decode_image(data, name, image_size)
        except ValueError:
            if not skip_corrupt:
                raise
            skipped.append(name)
            continue
        if out is None:
            shape = img.shape
            out = np.empty((len(blobs),) + shape, np.uint8)
        elif img.shape != shape:
            raise ImageShapeError(
                f"Image {name!r} has shape {img.shape}, the first image has {shape}; pass `image_size` "
                "(height, width) to resize images of different sizes."
            )
        out[len(kept)] = img
        kept.append(i)
    if out is None:
        raise ValueError(f"None of the {len(blobs)} images decoded; skipped: {skipped[:5]}.")
    return out[: len(kept)], np.asarray(kept, np.int64), skipped


_CACHE: dict = {}
_CACHE_SIZE = 3


def load_split_arrays(source, split: str, image_size=None, skip_corrupt: bool = False):
    """Reads and decodes a whole folder split: `(images uint8 [N,H,W,3], labels int64 [N], class_names,
    skipped_names)`. Results are memoised in-process (keyed by the source's fingerprint), so loading the
    training split for its mean and then for training decodes it once."""
    location = locate_split(source, split)
    key = (location.signature(), split, None if image_size is None else tuple(image_size), skip_corrupt)
    if key in _CACHE:
        return _CACHE[key]
    fs = read_split(source, split)
    images, kept, skipped = decode_images(fs.blobs, fs.names, image_size, skip_corrupt)
    result = (images, fs.labels[kept], fs.class_names, skipped)
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = result
    return result


def peek_image_size(source, split: str):
    """`(height, width)` of the first image of `split`, reading only that image (to choose preprocessing)."""
    from PIL import Image

    location = locate_split(source, split)
    wanted = split_candidates(location.split)
    if location.kind == "dir":
        fs = _read_dir(location, read_bytes=False)
        with Image.open(fs.paths[0]) as im:
            return im.height, im.width
    with tarfile.open(location.path, "r:*") as tar:
        for m in tar:
            parts = member_parts(m.name)
            if m.isfile() and is_image_name(m.name) and len(parts) >= 3 and parts[-3] in wanted:
                with Image.open(io.BytesIO(tar.extractfile(m).read())) as im:
                    return im.height, im.width
    return _read_tar(location)  # raises the layout error
