"""TensorFlow Datasets sources: any TFDS image-classification dataset by name.

TensorFlow-only: this module imports TensorFlow and `tensorflow_datasets`.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385);
TFDS's `cifar10`, `cifar100`, `imagenet2012`, `imagenette`, ... (`data_dir` and `download` pass through).

Example:
    >>> src = TFDSSource("cifar10", data_dir=None, download=False)  # needs a prepared TFDS dataset  # doctest: +SKIP
    >>> ds = src.elements("test", encoded=False)  # (uint8 image, int32 label)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_resnet.data.split_names import missing_split_message, order_splits, pick_physical


class TFDSSource:
    """A TFDS dataset opened by name.

    Args:
        name: TFDS name, optionally with a version (`"cifar10:3.0.2"`).
        data_dir: TFDS data directory, or None for the default.
        download: download and prepare the dataset if it is not there (needs the internet).

    Raises:
        ValueError: unknown name, or a dataset without `(image, label)` supervised keys.
    """

    kind = "tfds"
    decodes_itself = True
    """TFDS decodes its own images (`decoded`): undecodable ones are dropped uncounted with `skip_corrupt`."""

    def __init__(self, name: str, data_dir=None, download: bool = False):
        import tensorflow_datasets as tfds

        self.name, self.data_dir = name, data_dir
        try:
            self.builder = tfds.builder(name, data_dir=data_dir)
        except Exception as e:  # DatasetNotFoundError and friends
            raise ValueError(
                f"`source`={name!r} is neither an existing path nor a known TFDS dataset name: {e}"
            ) from e
        if download:
            self.builder.download_and_prepare()
        info = self.builder.info
        keys = info.supervised_keys
        if not keys or len(keys) != 2:
            raise ValueError(f"TFDS dataset {name!r} has no (image, label) supervised keys; found {keys!r}.")
        self.image_key, self.label_key = keys
        label = info.features[self.label_key]
        self.class_names = list(getattr(label, "names", None) or [str(i) for i in range(label.num_classes)])
        self.image_shape = tuple(info.features[self.image_key].shape)
        self.splits = {k: v.num_examples for k, v in info.splits.items()}
        self._labels = {}

    @property
    def identity(self):
        """Which data this is, for the process-wide skip counters: `("tfds", name, data_dir)`."""
        return (self.kind, self.name, self.data_dir)

    def mean_key(self) -> dict:
        """The mean cache's key: the name, the data directory and the prepared version."""
        return {"tfds": self.name, "data_dir": str(self.data_dir), "version": str(self.builder.info.version)}

    def split_names(self) -> list:
        """The canonical split names (`available`)."""
        return self.available()

    def decoded(self, split, skip_corrupt, counter=None, channels=3, **kwargs):
        """`(uint8 image, label)` decoded by TFDS; with `skip_corrupt` undecodable images are dropped (not
        counted: `counter` and `channels` are accepted for the readers' common signature)."""
        ds = self.elements(split, encoded=False, **kwargs)
        return ds.ignore_errors(log_warning=True) if skip_corrupt else ds

    def physical(self, split: str) -> str:
        """The TFDS split name of `split` (`"validation"` is also found as `"val"` and back)."""
        return pick_physical(split, self.splits) or split

    def has_split(self, split: str) -> bool:
        """Whether the dataset declares `split` (unknown when the dataset info lists no splits)."""
        return not self.splits or pick_physical(split, self.splits) is not None

    def available(self) -> list:
        """The canonical split names of the dataset (`split_names.order_splits`).

        When TFDS does not know them (`tfds.testing.mock_data` without metadata files, which accepts any
        split), each of `train`, `validation`, `val` and `test` that `as_dataset` accepts counts.

        Raises:
            FileNotFoundError: the dataset is not prepared (splits unknown and none readable).
        """
        if self.splits:
            return order_splits(self.splits)
        found = []
        for name in ("train", "validation", "val", "test"):
            try:
                self._as_dataset(name, encoded=True)
                found.append(name)
            except FileNotFoundError:
                raise
            except Exception:  # TFDS raises ValueError / KeyError / AssertionError for unknown splits
                pass
        return order_splits(found)

    def check_split(self, split: str) -> None:
        """`ValueError` naming the dataset, `split` and the splits available unless the dataset has `split`."""
        if not self.has_split(split):
            raise ValueError(missing_split_message(self.name, split, order_splits(self.splits), "a TFDS dataset"))

    def _as_dataset(self, split: str, encoded: bool):
        import tensorflow_datasets as tfds

        self.check_split(split)
        split = self.physical(split)
        decoders = {self.image_key: tfds.decode.SkipDecoding()} if encoded else None
        try:
            ds = self.builder.as_dataset(split=split, shuffle_files=False, decoders=decoders,
                                         read_config=tfds.ReadConfig(try_autocache=False))
        except (AssertionError, tfds.core.registered.DatasetNotFoundError, FileNotFoundError) as e:
            raise FileNotFoundError(
                f"TFDS dataset {self.name!r} is not prepared in data_dir={self.data_dir!r}; pass download=True "
                f"(needs the internet) or the `data_dir` holding it: {e}"
            ) from e
        return ds.map(lambda ex: (ex[self.image_key], tf.cast(ex[self.label_key], tf.int32)))

    def labels(self, split: str) -> np.ndarray:
        """All labels of `split` in the deterministic (unshuffled) order."""
        split = self.physical(split)
        if split not in self._labels:
            ds = self._as_dataset(split, encoded=True).map(lambda x, y: y).batch(8192)
            self._labels[split] = np.concatenate([b.numpy() for b in ds] or [np.zeros((0,), np.int32)])
        return self._labels[split]

    def count(self, split: str) -> int:
        """Number of examples of `split`."""
        split = self.physical(split)
        return self.splits[split] if split in self.splits else len(self.labels(split))

    def elements(self, split: str, *, encoded: bool, keep=None, input_context=None, named: bool = False,
                 training=False, seed=None):
        """`(image, int32 label)` elements of `split`: uint8 `[H, W, C]` images, or encoded bytes if `encoded`.

        The files are read in their order whatever `training` and `seed` say (they are accepted for the
        readers' common signature): a training pipeline shuffles the elements after this.

        Args:
            keep: optional sorted int array of the element indices to keep (held-out validation split).
            input_context: optional `tf.distribute.InputContext` (sharded per element).
            named: add a third element naming the example for error messages, `"<name>:<split>#<index>"`.
        """
        ds = self._as_dataset(split, encoded)
        if named or keep is not None:
            prefix = f"{self.name}:{split}#"
            ds = ds.enumerate()
            if keep is not None:
                mask = np.zeros(self.count(split), bool)
                mask[keep] = True
                mask = tf.constant(mask)
                ds = ds.filter(lambda i, e: tf.gather(mask, i))
            if named:
                ds = ds.map(lambda i, e: (e[0], e[1], tf.strings.join([prefix, tf.strings.as_string(i)])))
            else:
                ds = ds.map(lambda i, e: e)
        if input_context is not None and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        return ds
