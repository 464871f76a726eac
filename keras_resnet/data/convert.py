"""Converts an image folder or archive to TFRecord shards: `python -m keras_resnet.data.convert`.

TensorFlow-only: this module imports TensorFlow (to write `tf.train.Example`s).

    python -m keras_resnet.data.convert --input=<folder or archive> --output=<dir> --shards=N [--splits=train,test]

Every split found in the input (`<split>/<class>/<image>`) becomes `<split>-<i:05d>-of-<N:05d>` shards with
`image/encoded`, `image/class/label` (0-based, sorted class folders) and `image/filename` (the ImageNet
shards' feature; here the path relative to the input, `<split>/<class>/<image>`, so that an undecodable image
can be found), in a fixed shuffled order (seed 0)
so every shard mixes the classes; `dataset.json` records class names, counts, the first image's shape and
`same_shape` (whether every readable image has one height and width). Splits are named canonically: a
`val/` folder becomes `validation-*` shards. Each shard is written
under a temporary name and renamed when complete, so a half-written shard never carries a final name.
A progress bar shows images written.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385); the
ImageNet shard convention of TensorFlow's `inception/data/build_imagenet_data.py`.

Example:
    >>> convert("../shared/datasets/cifar10-jpeg", "/tmp/cifar-tfrecord", shards=8)  # needs ../shared  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

import numpy as np

from keras_resnet import faults


def _image_shape(data: bytes):
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return [im.height, im.width, 3]


def _header_shape(data: bytes):
    """`(height, width)` from the image header, or None when it does not parse (left to the decoder)."""
    try:
        return tuple(_image_shape(data)[:2])
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError... for bad headers
        return None


def convert(input, output, shards: int, splits=None, seed: int = 0, progress: bool = True) -> dict:
    """Writes the TFRecord shards of every split of `input` into `output`; returns the metadata dict.

    Args:
        input: image folder, `.tar`/`.tar.gz` archive, or folder of per-split archives.
        output: output directory (created).
        shards: number of shards per split, >= 1.
        splits: split names to convert; default every split found.
        seed: seed of the example order inside the shards.
        progress: show a progress bar (tqdm).

    Raises:
        FileNotFoundError / ValueError: bad input (see `keras_resnet.data.folder.read_split`).
    """
    import tensorflow as tf
    from tqdm import tqdm

    from keras_resnet.data.folder import available_splits, read_split
    from keras_resnet.data.shards import METADATA
    from keras_resnet.data.tfrecord import make_example, shard_name

    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"`shards` (--shards) must be a positive integer; received {shards!r}.")
    src = Path(input)
    if not src.exists():
        raise FileNotFoundError(f"--input {str(input)!r} does not exist; expected an image folder or archive.")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--output {str(output)!r} is a file; expected a directory for the shards.")
    if splits is None:
        splits = available_splits(src)  # canonical names: a val/ folder becomes validation-* shards
    if not splits:
        raise ValueError(f"No splits found in --input {str(input)!r}; expected <split>/<class>/<image>.")
    listed = {split: read_split(src, split, read_bytes=False) for split in splits}  # every mistake before a write
    for split, fs in listed.items():
        if fs.class_names != listed[splits[0]].class_names:
            raise ValueError(
                f"Split {split!r} of {str(src)!r} has classes {fs.class_names[:5]}..., other splits have "
                f"{listed[splits[0]].class_names[:5]}...; every split needs the same class folders."
            )
    out.mkdir(parents=True, exist_ok=True)
    meta = {"class_names": None, "num_examples": {}, "image_shape": None, "source": str(src), "label_offset": 0}
    shapes = set()
    for split in splits:
        fs = listed[split]
        meta["class_names"] = fs.class_names
        n = len(fs.names)
        order = np.random.RandomState(seed).permutation(n)

        def blob(i):
            if fs.blobs is not None:
                return fs.blobs[i]
            with open(fs.paths[i], "rb") as fh:
                return fh.read()

        if meta["image_shape"] is None:
            meta["image_shape"] = _image_shape(blob(0))
        bar = tqdm(total=n, desc=f"{split}", unit="img", disable=not progress, file=sys.stderr)
        for s, chunk in enumerate(np.array_split(order, shards)):
            final = out / shard_name(split, s, shards)
            tmp = out / f".tmp-{final.name}"
            with tf.io.TFRecordWriter(str(tmp)) as writer:
                for i in chunk:
                    data = blob(i)
                    shapes.add(_header_shape(data))
                    writer.write(make_example(data, int(fs.labels[i]), fs.relative[i]))
                    bar.update(1)
            faults.site("convert.shard")  # the shard is complete under its temporary name, not yet published
            os.replace(tmp, final)
        bar.close()
        meta["num_examples"][split] = n
    meta["same_shape"] = len(shapes - {None}) == 1  # every image one (height, width): `memory_input_reason` reads it
    tmp = out / f".tmp-{METADATA}"
    tmp.write_text(json.dumps(meta, indent=1))
    faults.site("convert.metadata")  # every shard published, dataset.json written under its temporary name
    os.replace(tmp, out / METADATA)
    return meta


class _Usage(Exception):
    """A malformed command line (argparse's complaint), printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(message)


def main(argv=None) -> int:
    """Command-line entry point: runs `argv` (default `sys.argv[1:]`) in this process; returns 0, or 2 with one
    line on stderr for a bad command line or input (nothing is written then)."""
    parser = _Parser(
        prog="python -m keras_resnet.data.convert",
        description="Convert an image folder (<split>/<class>/<image>) or .tar/.tar.gz archive to TFRecord shards.",
    )
    parser.add_argument("--input", required=True, help="image folder, archive, or folder of split archives")
    parser.add_argument("--output", required=True, help="output directory for the shards")
    parser.add_argument("--shards", type=int, required=True, help="number of shards per split")
    parser.add_argument("--splits", default=None, help="comma-separated splits (default: all found)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the example order")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    try:
        args = parser.parse_args(argv)
    except _Usage as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    splits = args.splits.split(",") if args.splits else None
    try:
        meta = convert(args.input, args.output, args.shards, splits, args.seed, not args.no_progress)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {str(e).strip().splitlines()[0]}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps(meta["num_examples"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
