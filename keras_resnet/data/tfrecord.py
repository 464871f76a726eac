"""TFRecord shards in the ImageNet convention: names, examples, metadata and parallel reading.

TensorFlow-only: this module imports TensorFlow.

Shards are `<split>-<index:05d>-of-<total:05d>` files of `tf.train.Example`s with the features
`image/encoded` (bytes) and `image/class/label` (int64, 0-based unless `label_offset` says otherwise, e.g.
`label_offset=1` for the Inception-era ImageNet shards whose label 0 is "background"), and optionally
`image/filename` (bytes, the source file; used to name an undecodable image). The converter
(`python -m keras_resnet.data.convert`) also writes `dataset.json` (class names, example counts) next to them.
The TF Model Garden / TFDS ImageNet shards (`train-00000-of-01024`, `validation-00000-of-00128`, labels 1 to
1000) read as they are with `label_offset=1`; other features in the examples are ignored, and a `val-*`
shard set is the `"validation"` split.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385); the
shard layout of TensorFlow's `inception/data/build_imagenet_data.py`.

Example:
    >>> files = find_shards("/data/imagenet-tfrecord", "train")  # needs a dataset on disk  # doctest: +SKIP
    >>> ds = read_shards(files, training=True, seed=0)  # (encoded bytes, label) elements  # doctest: +SKIP
"""

from __future__ import annotations


import numpy as np
import tensorflow as tf

from keras_resnet.data.shards import find_shard_files

IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
FILENAME_KEY = "image/filename"
_KEY_STRIDE = 1 << 32  # element key = file index * stride + record index


def shard_name(split: str, index: int, total: int) -> str:
    """`train-00000-of-01024`-style shard name."""
    return f"{split}-{index:05d}-of-{total:05d}"


def make_example(encoded: bytes, label: int, filename=None) -> bytes:
    """A serialised `tf.train.Example` with `image/encoded`, `image/class/label` and, if given, `image/filename`."""
    feature = {
        IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
    }
    if filename is not None:
        feature[FILENAME_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(filename).encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def find_shards(directory, split: str) -> list:
    """Sorted shard paths of `split` in `directory` (`"validation"` also as `val-*` and back); `ValueError`
    naming the splits found if there are none, or if the set is incomplete (`shards.find_shard_files`)."""
    return find_shard_files(directory, split)


def check_features(path: str) -> None:
    """Parses the first record of `path` and raises `ValueError` if the expected features are missing."""
    for raw in tf.data.TFRecordDataset(path).take(1):
        example = tf.train.Example.FromString(raw.numpy())
        keys = set(example.features.feature)
        missing = [k for k in (IMAGE_KEY, LABEL_KEY) if k not in keys]
        if missing:
            raise ValueError(
                f"TFRecord {path!r} lacks feature(s) {missing}: expected '{IMAGE_KEY}' (bytes) and "
                f"'{LABEL_KEY}' (int64); found {sorted(keys)}."
            )
        return
    raise ValueError(f"TFRecord {path!r} holds no records.")


def parse(serialized, with_filename: bool = False):
    """`(encoded bytes, int32 label)` of one serialised example, plus `image/filename` (`""` if absent)
    when `with_filename`."""
    spec = {IMAGE_KEY: tf.io.FixedLenFeature([], tf.string), LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    if with_filename:
        spec[FILENAME_KEY] = tf.io.FixedLenFeature([], tf.string, default_value="")
    features = tf.io.parse_single_example(serialized, spec)
    out = features[IMAGE_KEY], tf.cast(features[LABEL_KEY], tf.int32)
    return out + (features[FILENAME_KEY],) if with_filename else out


def scan_labels(files) -> list:
    """Labels of every record, one int64 array per file (reads the label feature only)."""
    spec = {LABEL_KEY: tf.io.FixedLenFeature([], tf.int64)}
    out = []
    for f in files:
        ds = tf.data.TFRecordDataset(f).batch(4096).map(lambda s: tf.io.parse_example(s, spec)[LABEL_KEY])
        out.append(np.concatenate([b.numpy() for b in ds] or [np.zeros((0,), np.int64)]))
    return out


def element_keys(per_file_labels, indices) -> np.ndarray:
    """Maps global indices (over the concatenated files) to `file * 2**32 + record` keys."""
    sizes = np.array([len(x) for x in per_file_labels])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    file_idx = np.searchsorted(starts, indices, side="right") - 1
    return file_idx.astype(np.int64) * _KEY_STRIDE + (indices - starts[file_idx])


def read_shards(files, *, training: bool, seed=None, input_context=None, keep_keys=None, drop_keys=None,
                label_offset: int = 0, cycle_length: int = 8, named: bool = False):
    """Reads shards with parallel interleave; yields `(encoded, int32 label)` elements (`named`: plus a name).

    Files are sharded across input pipelines first (`input_context`), at file level when there are at least
    as many files as pipelines, per element otherwise. Training shuffles the file order every epoch.

    Args:
        files: shard paths (from `find_shards`), in order.
        training: shuffle file order per epoch.
        seed: seed for the file order (deterministic interleave when given).
        input_context: optional `tf.distribute.InputContext`.
        keep_keys / drop_keys: optional int64 arrays of element keys (`element_keys`) to keep / drop; used
            for the held-out validation split.
        label_offset: subtracted from stored labels.
        cycle_length: files read in parallel.
        named: add a third element naming the record for error messages: `"<image/filename> (<shard>#<i>)"`
            when the example has `image/filename`, else `"<shard path>#<record index>"`.
    """
    n = len(files)
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(files), tf.range(n, dtype=tf.int64)))
    element_shard = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if n >= input_context.num_input_pipelines:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        else:
            element_shard = True
    if training:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)

    def records(path, file_index):
        recs = tf.data.TFRecordDataset(path, buffer_size=8 << 20).enumerate()
        if named:
            return recs.map(lambda i, r: (file_index * _KEY_STRIDE + i, r, path))
        return recs.map(lambda i, r: (file_index * _KEY_STRIDE + i, r))

    ds = ds.interleave(records, cycle_length=min(cycle_length, n), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=seed is not None or not training)
    for keys, keep in ((keep_keys, True), (drop_keys, False)):
        if keys is not None:
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.int64), tf.ones(len(keys), tf.int64)),
                default_value=0,
            )
            ds = ds.filter(lambda k, *_, t=table, want=keep: tf.equal(t.lookup(k) > 0, want))
    if element_shard:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)

    def to_element(key, serialized, path=None):
        if not named:
            encoded, label = parse(serialized)
            return encoded, label - label_offset
        encoded, label, filename = parse(serialized, with_filename=True)
        record = tf.strings.join([path, "#", tf.strings.as_string(key % _KEY_STRIDE)])
        name = tf.where(tf.equal(filename, ""), record, tf.strings.join([filename, " (", record, ")"]))
        return encoded, label - label_offset, name

    return ds.map(to_element, num_parallel_calls=tf.data.AUTOTUNE)
