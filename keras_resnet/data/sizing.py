"""Whether a source's images may be decoded into memory, and why not: from image headers, nothing decoded.

No TensorFlow. `keras_resnet.data.sources` asks these functions for its sources' answers
(`Source.memory_reason`; the public entry is `keras_resnet.data.memory_input_reason`):

* `folder_reason(source, splits, max_bytes) -> (bool, str)`: image folders and archives, from each image's
  header (Pillow's `Image.open(f).size`, which does not decode the pixels; EXIF orientation is ignored, as
  the decoders ignore it). Sizes are `height x width`.
* `shard_reason(directory, splits, max_bytes)`: TFRecord shards, from the converter's `dataset.json`.
* `declared_shape_reason(name, shape, counts, splits, max_bytes)`: a source that declares its shape (TFDS).

Each says True only when the split(s) would take at most `max_bytes` decoded (uint8, 3 channels: `height *
width * 3` bytes per image; default 2 GiB) AND every image has one shape, since the in-memory path stacks
them into one array; the string is a one-line reason for the log, e.g. `"streaming: 12 image sizes in train
(e.g. 383x295 and 455x391)"`.

The scan stops as soon as the answer is streaming and certain: the first image's size times the number
of images is over the limit, the images read so far are over it, or a second size has been seen and at
least `SIZE_SAMPLE` headers were read. Images whose header does not parse are counted and left to the
decoder (`skip_corrupt`).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 3.4 (ImageNet: images of many sizes, rescaled per image) and 4.2 (CIFAR-10: 32x32 images).

Example:
    >>> declared_shape_reason("TFDS 'cifar10'", (32, 32, 3), {"train": 50000}, ["train"], MEMORY_LIMIT_BYTES)
    (True, 'in memory: 50,000 images of 32x32 in train (146.5 MiB decoded uint8, limit 2.0 GiB)')
"""

from __future__ import annotations

import collections
import io
import tarfile

from keras_resnet.data import folder, shards
from keras_resnet.data.archives import is_image_name, member_parts
from keras_resnet.data.split_names import pick_physical, split_candidates

MEMORY_LIMIT_BYTES = 2 << 30
"""Default `max_bytes`: 2 GiB of decoded uint8 RGB pixels."""
SIZE_SAMPLE = 1000
"""Headers read at least before stopping on a second image size (so the reason can count sizes)."""
CHANNELS = 3


def human_bytes(n) -> str:
    """`1536` -> `"1.5 KiB"` (binary units)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


class _Scan:
    """Sizes seen over one or more splits, with the rule for stopping early."""

    def __init__(self, max_bytes):
        self.max_bytes, self.sizes, self.bytes, self.seen, self.unreadable = max_bytes, collections.Counter(), 0, 0, 0
        self.stopped = None  # why the scan stopped early, or None
        self.predicted = None  # the bytes the first image's size predicts for all images

    def add(self, size):
        if size is None:
            self.unreadable += 1
            return
        self.seen += 1
        self.sizes[size] += 1
        self.bytes += size[0] * size[1] * CHANNELS
        if self.bytes > self.max_bytes:
            self.stopped = "bytes"
        elif len(self.sizes) > 1 and self.seen >= SIZE_SAMPLE:
            self.stopped = "sizes"

    def predicted_over(self, total):
        """Stops at once when the first image's size times `total` images is over the limit."""
        if self.seen == 1 and total * self.bytes > self.max_bytes:
            self.stopped = "predicted"
            self.predicted = total * self.bytes


def _header_size(fileobj):
    from PIL import Image

    try:
        with Image.open(fileobj) as im:
            return im.height, im.width
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError... for bad headers
        return None


def _scan_dir(paths, scan, total):
    for path in paths:
        scan.add(_header_size(path))
        scan.predicted_over(total)
        if scan.stopped:
            return


def _scan_tar(location, scan):
    """Reads the headers of the split's members; returns the number of images met."""
    wanted, count = split_candidates(location.split), 0
    with tarfile.open(location.path, "r:*") as tar:
        for m in tar:
            parts = member_parts(m.name)
            if m.isfile() and len(parts) >= 3 and parts[-3] in wanted and is_image_name(parts[-1]):
                count += 1
                scan.add(_header_size(io.BytesIO(tar.extractfile(m).read())))
                if scan.stopped:
                    break
    return count


def _reason(scan, names, total) -> tuple:
    where = " and ".join(names)
    examples = " and ".join(f"{h}x{w}" for (h, w), _ in scan.sizes.most_common(2))
    limit = human_bytes(scan.max_bytes)
    if scan.stopped == "predicted":
        (h, w), = scan.sizes
        return False, (f"streaming: {total:,} images in {where} would take about {human_bytes(scan.predicted)} "
                       f"decoded at {h}x{w} (the first image's size), over the {limit} in-memory limit")
    if scan.stopped == "bytes":
        sizes = f"; {len(scan.sizes)} image sizes among them (e.g. {examples})" if len(scan.sizes) > 1 else ""
        return False, (f"streaming: {where} take more than the {limit} in-memory limit decoded (the first "
                       f"{scan.seen:,} images already {human_bytes(scan.bytes)}){sizes}")
    if len(scan.sizes) > 1:
        among = f" among the first {scan.seen:,} images" if scan.stopped else ""
        return False, f"streaming: {len(scan.sizes)} image sizes{among} in {where} (e.g. {examples})"
    if not scan.sizes:
        return False, f"streaming: no readable image header in {where}"
    (h, w), = scan.sizes
    bad = f"; {scan.unreadable} unreadable header(s) left to the decoder" if scan.unreadable else ""
    return True, (f"in memory: {scan.seen:,} images of {h}x{w} in {where} ({human_bytes(scan.bytes)} decoded "
                  f"uint8, limit {limit}){bad}")


def folder_reason(source, splits, max_bytes) -> tuple:
    """`(in_memory, reason)` for splits of an image folder or archive, from the image headers."""
    scan, total = _Scan(max_bytes), 0
    for split in splits:
        location = folder.locate_split(source, split)
        if location.kind == "dir":
            paths = folder.read_split(source, split, read_bytes=False).paths
            total += len(paths)
            _scan_dir(paths, scan, total)
        else:
            total += _scan_tar(location, scan)
        if scan.stopped:
            break
    return _reason(scan, list(splits), total)


def declared_shape_reason(name, shape, counts, splits, max_bytes) -> tuple:
    """`(in_memory, reason)` for a source whose metadata declares one image shape and the split sizes."""
    if shape is None or None in tuple(shape)[:2]:
        return False, f"streaming: {name} has images of no fixed size (shape {tuple(shape or ())})"
    if any(s not in counts for s in splits):
        return False, f"streaming: {name} does not declare the size of split(s) {[s for s in splits if s not in counts]}"
    h, w = int(shape[0]), int(shape[1])
    n = sum(int(counts[s]) for s in splits)
    size = n * h * w * CHANNELS
    where = " and ".join(splits)
    if size > max_bytes:
        return False, (f"streaming: {n:,} images of {h}x{w} in {where} take {human_bytes(size)} decoded, over the "
                       f"{human_bytes(max_bytes)} in-memory limit")
    return True, (f"in memory: {n:,} images of {h}x{w} in {where} ({human_bytes(size)} decoded uint8, limit "
                  f"{human_bytes(max_bytes)})")


def shard_reason(directory, splits, max_bytes) -> tuple:
    """`(in_memory, reason)` for splits of a TFRecord shard directory, from the converter's `dataset.json`."""
    for split in splits:
        shards.find_shard_files(directory, split)  # raises naming the splits found
    meta = shards.read_metadata(directory)
    if meta is None:
        return False, f"streaming: TFRecord shards in {str(directory)!r} without dataset.json (image sizes unknown)"
    shape = meta.get("image_shape")
    same = meta.get("same_shape", shape is not None and max(shape[:2]) <= 64)  # older converters: small images
    if not same:
        return False, f"streaming: the TFRecord shards in {str(directory)!r} hold images of several sizes"
    declared = meta.get("num_examples", {})
    counts = {s: declared.get(pick_physical(s, declared) or s) for s in splits}
    counts = {s: n for s, n in counts.items() if n is not None}
    return declared_shape_reason(f"TFRecord {str(directory)!r}", shape, counts, splits, max_bytes)


def check_max_bytes(max_bytes) -> None:
    """`ValueError` unless `max_bytes` is a non-negative number."""
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, float)) or max_bytes < 0:
        raise ValueError(f"`max_bytes` must be a non-negative number of bytes; received {max_bytes!r}.")


__all__ = ["MEMORY_LIMIT_BYTES", "SIZE_SAMPLE", "check_max_bytes", "declared_shape_reason", "folder_reason",
           "human_bytes", "shard_reason"]
