"""Undecodable images in streamed tf.data pipelines: an error naming the file, or skipped and counted.

TensorFlow-only: this module imports TensorFlow. The in-memory (Pillow) path does the same in
`keras_resnet.data.folder.decode_images`.

Streamed elements carry a name (`(encoded bytes, label, name)`): the file path for image folders,
`archive:member` for archives, `image/filename (shard#record)` or `shard#record` for TFRecord shards.

* Without `skip_corrupt` (`decode_or_raise`), a cheap in-graph integrity check (JPEG starts with SOI and
  ends with the EOI marker, PNG ends with the IEND chunk, GIF with its trailer, BMP and known signatures
  otherwise) keeps the fast path a plain `tf.io.decode_image`; images that fail it are decoded once more in
  a guarded way, so a valid image with trailing bytes still loads, and an image that really does not
  decode raises `tf.errors.InvalidArgumentError` whose message names the file and says to pass
  `skip_corrupt=True`. Corruption the check cannot see (a complete-looking JPEG with damaged scan data)
  fails with TensorFlow's own decode error, which does not name the file.
* With `skip_corrupt` (`skip_undecodable`), every image is decoded in the guarded way (TensorFlow's decoder
  decides, nothing is missed): undecodable ones are dropped, recorded in a `SkipCounter` (distinct names,
  so repeated epochs do not count a file twice) and logged once each on stderr.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385); the
JPEG (ITU T.81), PNG (RFC 2083) and GIF89a end markers.

Example:
    >>> counter = SkipCounter()  # needs a streamed dataset of named images  # doctest: +SKIP
    >>> ds = skip_undecodable(named_ds, counter)  # needs a streamed dataset of named images  # doctest: +SKIP
    >>> counter.count(), counter.names()  # needs a streamed dataset of named images  # doctest: +SKIP
"""

from __future__ import annotations

import re
import sys
import threading

import tensorflow as tf

_SIGNATURES = {  # signature -> end marker ("" when the format has none cheap to check)
    b"\xff\xd8": b"\xff\xd9",  # JPEG: SOI ... EOI
    b"\x89PNG\r\n\x1a\n": b"IEND\xaeB`\x82",  # PNG: the IEND chunk (type + CRC)
    b"GIF87a": b";",
    b"GIF89a": b";",
    b"BM": b"",
}
HINT = "Pass skip_corrupt=True to skip and count undecodable images."


def looks_complete(encoded):
    """Cheap in-graph check: a known image signature and, where the format has one, its end marker.

    False for truncated JPEG/PNG/GIF files, empty files and non-images; it may also be False for valid
    files with trailing bytes, so a False result only means "decode carefully" (see `try_decode`).

    Args:
        encoded: scalar string tensor of encoded image bytes.
    """
    n = tf.strings.length(encoded)
    ok = tf.constant(False)
    for head, tail in _SIGNATURES.items():
        match = tf.equal(tf.strings.substr(encoded, 0, len(head)), head)
        if tail:
            match = match & tf.equal(tf.strings.substr(encoded, tf.maximum(n - len(tail), 0), len(tail)), tail)
        ok = ok | match
    return ok


def try_decode(encoded, channels: int = 3):
    """`(uint8 [H, W, channels] image, True)`, or `(a [0, 0, channels] image, False)` if the bytes do not decode.

    Never raises for bad bytes: the decode runs in a one-element dataset with `ignore_errors`, so
    TensorFlow's own decoder decides. Costs about 0.1 ms more per image than `augment.decode`.
    """
    from keras_resnet.data.decoding import decode

    good = tf.data.Dataset.from_tensors(encoded).map(lambda b: (decode(b, channels), True)).ignore_errors()
    bad = tf.data.Dataset.from_tensors((tf.zeros([0, 0, channels], tf.uint8), False))
    image, ok = good.concatenate(bad).take(1).get_single_element()
    image.set_shape([None, None, channels])
    return image, ok


def decode_or_raise(encoded, name, channels: int = 3):
    """Decodes `encoded`; an image failing `looks_complete` that does not decode raises naming `name`.

    Raises (when the dataset is iterated):
        tf.errors.InvalidArgumentError: "Cannot decode image file <name> ... Pass skip_corrupt=True ...".
    """
    from keras_resnet.data.decoding import decode

    def careful():
        image, ok = try_decode(encoded, channels)
        message = tf.strings.join([
            "Cannot decode image file ", name, " (", tf.strings.as_string(tf.strings.length(encoded)),
            " bytes; truncated, empty or not a JPEG/PNG/GIF/BMP image). ", HINT,
        ])
        with tf.control_dependencies([tf.debugging.Assert(ok, [message], summarize=1)]):
            return tf.identity(image)

    image = tf.cond(looks_complete(encoded), lambda: decode(encoded, channels), careful)
    image.set_shape([None, None, channels])
    return image


def error_message(error):
    """The "Cannot decode image file <name> ..." text of a `decode_or_raise` failure, or None for other errors.

    Lets code that iterates a dataset itself (`load_arrays`) re-raise it as a `ValueError`.
    """
    match = re.search(r"Cannot decode image file .*?" + re.escape(HINT), str(getattr(error, "message", error)),
                      re.DOTALL)
    return match.group(0) if match else None


class SkipCounter:
    """The distinct names of undecodable images skipped so far (a TensorFlow hash table on the CPU).

    Updated from inside tf.data map functions while a dataset is iterated; read from Python at any time.
    The pipeline runs ahead of the consumer by its prefetch buffers, so mid-epoch the count may include
    images not yet consumed; after one full pass it is exact.

    Example:
        >>> counter = SkipCounter()
        >>> counter.count()
        0
    """

    def __init__(self):
        with tf.device("/cpu:0"):
            self._table = tf.lookup.experimental.MutableHashTable(tf.string, tf.int64, default_value=0)

    def record(self, name):
        """In-graph: adds `name`; logs it to stderr the first time. Returns a dummy int64 tensor."""
        key = tf.reshape(name, [1])
        new = tf.equal(self._table.lookup(key)[0], 0)
        with tf.control_dependencies([self._table.insert(key, tf.ones([1], tf.int64))]):
            return tf.cond(new, lambda: _warn(name), lambda: tf.constant(0, tf.int64))

    def count(self) -> int:
        """Number of distinct images skipped so far."""
        return int(self._table.size().numpy())

    def names(self) -> list:
        """Sorted names of the images skipped so far."""
        keys, _ = self._table.export()
        return sorted(k.decode("utf-8", "replace") for k in keys.numpy())


def _warn(name):
    with tf.control_dependencies([tf.print("WARNING keras_resnet.data: skipped undecodable image file", name,
                                           "(skip_corrupt=True)", output_stream=sys.stderr)]):
        return tf.constant(1, tf.int64)


_COUNTERS: dict = {}
_LOCK = threading.Lock()


def shared_counter(key) -> SkipCounter:
    """The process-wide `SkipCounter` of `key` (e.g. `(source path, split)`), created on first use.

    Every dataset `load` returns for the same source and split records into the same counter, so a
    `DatasetInfo` from one `load` call sees images skipped by datasets of another (training code often
    takes the info from a separate call). Counters live as long as the process.
    """
    with _LOCK:
        if key not in _COUNTERS:
            _COUNTERS[key] = SkipCounter()
        return _COUNTERS[key]


def skip_undecodable(ds, counter=None, channels: int = 3):
    """`(encoded, label, name)` elements -> `(uint8 image, label)`, dropping (and recording) undecodable ones.

    Args:
        ds: a dataset of `(encoded bytes, label, name)`.
        counter: a `SkipCounter` to record skipped names in (and log them), or None to drop silently.
        channels: channels to decode to.
    """

    def decode(encoded, label, name):
        image, ok = try_decode(encoded, channels)
        if counter is not None:
            mark = tf.cond(ok, lambda: tf.constant(0, tf.int64), lambda: counter.record(name))
            with tf.control_dependencies([mark]):
                ok = tf.identity(ok)
        return image, label, ok

    def decoded(image, label, ok):
        return ok

    def drop_flag(image, label, ok):
        return image, label

    return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).filter(decoded).map(drop_flag)


def decode_named(ds, skip_corrupt: bool, counter=None, channels: int = 3):
    """`(encoded, label, name)` elements -> `(uint8 image, label)`: raise naming the file, or skip (and count).

    Args:
        ds: a dataset of `(encoded bytes, label, name)`.
        skip_corrupt: drop undecodable images (`skip_undecodable`) instead of raising (`decode_or_raise`).
        counter: the `SkipCounter` that records skipped images (with `skip_corrupt`), or None.
        channels: channels to decode to.
    """
    if skip_corrupt:
        return skip_undecodable(ds, counter, channels)
    return ds.map(lambda x, y, name: (decode_or_raise(x, name, channels), y), num_parallel_calls=tf.data.AUTOTUNE)
