"""`DatasetInfo`: the metadata every source returns next to its data (no TensorFlow).

Trainers read the number of examples and classes from it, exports read the mean image and the preprocessing
kind from it, so that serving preprocesses exactly as training did (see `docs/CONTRACTS.md`).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
sections 3.4 (ImageNet, per-pixel mean subtraction) and 4.2 (CIFAR-10, per-pixel mean subtraction).

Example:
    >>> info = DatasetInfo(name="toy", class_names=["a", "b"], image_shape=(32, 32, 3),
    ...                    num_examples={"train": 10}, mean=np.zeros((32, 32, 3), "float32"))
    >>> DatasetInfo.from_json(info.to_json()).num_classes
    2
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Optional

import numpy as np

PREPROCESSING_KINDS = ("cifar", "imagenet")


class SkipCounts(Mapping):
    """`{split: number of undecodable images skipped}`, read-only; streamed splits are counted live.

    Splits decoded up front (in memory) hold a fixed count. Streamed splits (`load` decoding per element)
    hold a counter that grows while their dataset is iterated: reading `num_skipped[split]` gives the
    distinct images skipped so far (exact after one full pass). Compares equal to a plain dict with the same
    items; copying or pickling takes a snapshot.

    Args:
        counts: fixed `{split: int}` counts.
        live: `{split: counter}`, counters with `count()` and `names()` (`keras_resnet.data.corrupt.SkipCounter`).
        files: `{split: [names]}` of the skipped images of fixed counts, when known.

    Example:
        >>> SkipCounts({"train": 2}) == {"train": 2}
        True
    """

    def __init__(self, counts=None, live=None, files=None):
        self._fixed = {str(k): int(v) for k, v in dict(counts or {}).items()}
        self._live = {str(k): v for k, v in dict(live or {}).items()}
        self._files = {str(k): [str(n) for n in v] for k, v in dict(files or {}).items()}

    def __getitem__(self, split):
        if split in self._live:
            return self._live[split].count()
        return self._fixed[split]

    def __iter__(self):
        return iter({**self._fixed, **self._live})

    def __len__(self):
        return len({**self._fixed, **self._live})

    def __repr__(self):
        return repr(dict(self))

    def __reduce__(self):  # copy / deepcopy / pickle: a snapshot without the live counters
        return (SkipCounts, (dict(self), None, {k: self.files(k) for k in self}))

    def files(self, split) -> list:
        """Names of the images of `split` skipped so far (file paths, `archive:member`, `shard#record`)."""
        if split in self._live:
            return list(self._live[split].names())
        return list(self._files.get(split, []))


@dataclasses.dataclass
class DatasetInfo:
    """Metadata of a dataset as loaded by `keras_resnet.data.load` / `load_arrays`.

    Attributes:
        name: the source: a TFDS name, or the path of the folder, archive or shard directory.
        class_names: class names in label order (label `i` is `class_names[i]`).
        image_shape: `(height, width, channels)` of the images the network sees (after cropping).
        num_examples: number of examples per split name (`"train"`, `"validation"`, `"test"`); always
            contains the loaded split and, when known, the others.
        mean: float32 mean in 0..255 units computed from the training split (the part actually trained on):
            `[H, W, C]` per-pixel for `"cifar"` preprocessing, `[1, 1, C]` per-channel for `"imagenet"`.
        preprocessing: `"cifar"` (pad 4, random crop, flip) or `"imagenet"` (scale augmentation,
            224 crop, flip; evaluation at shorter side 256, centre 224 crop).
        num_skipped: undecodable images skipped per split with `skip_corrupt=True`, a read-only `SkipCounts`
            mapping: a fixed count for data decoded up front, a live count for streamed splits that grows
            while the dataset is iterated (see `keras_resnet.data.load`); `num_skipped.files(split)` names
            them. `to_json` writes the counts at that moment.

    Example:
        >>> info.to_json()  # needs a DatasetInfo being streamed  # doctest: +SKIP
    """

    name: str
    class_names: list
    image_shape: tuple
    num_examples: dict
    mean: Optional[np.ndarray] = None
    preprocessing: str = "cifar"
    num_skipped: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.preprocessing not in PREPROCESSING_KINDS:
            raise ValueError(
                f"`preprocessing` must be one of {PREPROCESSING_KINDS}; received {self.preprocessing!r}."
            )
        self.class_names = [str(c) for c in self.class_names]
        self.image_shape = tuple(int(d) for d in self.image_shape)
        self.num_examples = {str(k): int(v) for k, v in dict(self.num_examples).items()}
        if not isinstance(self.num_skipped, SkipCounts):
            self.num_skipped = SkipCounts(self.num_skipped)
        if self.mean is not None:
            self.mean = np.asarray(self.mean, dtype=np.float32)

    @property
    def num_classes(self) -> int:
        """The number of classes, `len(class_names)`."""
        return len(self.class_names)

    def to_json(self) -> str:
        """Serialises to a JSON string (the mean as nested lists); inverse of `from_json`."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["class_names"] = list(self.class_names)
        d["num_examples"] = dict(self.num_examples)
        d["num_skipped"] = dict(self.num_skipped)
        d["image_shape"] = list(self.image_shape)
        d["mean"] = None if self.mean is None else self.mean.tolist()
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "DatasetInfo":
        """Builds a `DatasetInfo` from `to_json()` output; unknown keys raise `ValueError`."""
        d = json.loads(text)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"Unknown DatasetInfo fields {sorted(unknown)}; accepted: {sorted(fields)}.")
        if d.get("mean") is not None:
            d["mean"] = np.asarray(d["mean"], dtype=np.float32)
        return cls(**d)
