"""`.tar` / `.tar.gz` image archives: names, the split archives of a folder, and a member index (no TensorFlow).

An archive holds `[prefix/]<split>/<class>/<image>` members; a folder may instead hold one archive per
split, `<split>.tar.gz` or `<anything>-<split>.tar.gz` (`_` and `.` also separate), like
`../shared/datasets/cifar10-jpeg/cifar10-train.tar.gz`. `archive_index` lists an archive's splits,
classes and image counts from the member names alone (one sequential pass, no image bytes kept),
memoised per archive (path, size, modification time), so split discovery and the checks before a run
cost one pass per process.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385).

Example:
    >>> is_archive("photos.tar.gz"), is_image_name("train/cat/1.JPEG")
    (True, True)
"""

from __future__ import annotations

import dataclasses
import os
import tarfile
from pathlib import Path

from keras_resnet.data.split_names import split_candidates

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
"""File name endings (any case) that count as images."""
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
LAYOUT = "<split>/<class>/<image> with images ending in " + "/".join(IMAGE_EXTENSIONS)
"""The folder layout, as error messages state it."""


def is_archive(path) -> bool:
    """Whether `path` names a `.tar`, `.tar.gz` or `.tgz` file."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def is_image_name(name: str) -> bool:
    """Whether a file name ends in an image extension (any case) and is not hidden (`.` first)."""
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def archive_stem(path: Path) -> str:
    """The file name without its archive suffix: `cifar10-train.tar.gz` -> `cifar10-train`."""
    name = Path(path).name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def stem_split(path: Path) -> str:
    """The split a split archive names: the part of its stem after the last `-`, `_` or `.` (else the stem)."""
    stem = archive_stem(path)
    return next((stem.rsplit(sep, 1)[1] for sep in "-_." if sep in stem), stem)


def split_archives(root: Path) -> list:
    """The archives directly inside the folder `root`, sorted."""
    return sorted(p for p in Path(root).iterdir() if p.is_file() and is_archive(p))


def archive_for_split(root: Path, split: str):
    """The archive of `split` in the folder `root` (`val` stands for `validation` and back), or None.

    Raises:
        ValueError: several archives match the same physical split name.
    """
    for name in split_candidates(split):
        matches = [p for p in split_archives(root)
                   if archive_stem(p) == name or any(archive_stem(p).endswith(sep + name) for sep in "-_.")]
        if len(matches) > 1:
            raise ValueError(f"Several archives in {root} match split {name!r}: {[m.name for m in matches]}.")
        if matches:
            return matches[0]
    return None


def member_parts(name: str) -> list:
    """The path components of an archive member name (empty and `.` components dropped)."""
    return [p for p in name.split("/") if p not in ("", ".")]


@dataclasses.dataclass
class ArchiveIndex:
    """What an archive holds, from its member names: `{physical split: {class: image count}}`.

    Attributes:
        splits: image counts per class per split (a class directory without images counts 0).
        tops: the top-level member names (for the "not an image folder" message).
    """

    splits: dict
    tops: list


_INDEX: dict = {}


def archive_index(path) -> ArchiveIndex:
    """Lists `path`'s members once per process (memoised on path, size and modification time).

    Images are members `[prefix/]<split>/<class>/<image>`; a directory member `<split>/<class>/` of a split
    that has images is a class (possibly empty).

    Raises:
        ValueError: the archive cannot be read.
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _INDEX:
        return _INDEX[key]
    images, dirs, tops = {}, set(), set()
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                parts = member_parts(m.name)
                if parts:
                    tops.add(parts[0])
                if m.isfile() and len(parts) >= 3 and is_image_name(parts[-1]):
                    classes = images.setdefault(parts[-3], {})
                    classes[parts[-2]] = classes.get(parts[-2], 0) + 1
                elif m.isdir() and len(parts) >= 2:
                    dirs.add((parts[-2], parts[-1]))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(f"Cannot read archive {str(path)!r}: {e}") from e
    for split, cls in dirs:
        if split in images:
            images[split].setdefault(cls, 0)
    index = ArchiveIndex({s: dict(sorted(c.items())) for s, c in images.items()}, sorted(tops))
    _INDEX[key] = index
    return index


__all__ = ["ARCHIVE_SUFFIXES", "ArchiveIndex", "IMAGE_EXTENSIONS", "LAYOUT", "archive_for_split", "archive_index",
           "archive_stem", "is_archive", "is_image_name", "member_parts", "split_archives", "stem_split"]
