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
from typing import Optional

import numpy as np

PREPROCESSING_KINDS = ("cifar", "imagenet")


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
        num_skipped: undecodable images skipped per split with `skip_corrupt=True` (where counted).

    Example:
        >>> info.to_json()  # doctest: +SKIP
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
        self.num_skipped = {str(k): int(v) for k, v in dict(self.num_skipped).items()}
        if self.mean is not None:
            self.mean = np.asarray(self.mean, dtype=np.float32)

    @property
    def num_classes(self) -> int:
        """The number of classes, `len(class_names)`."""
        return len(self.class_names)

    def to_json(self) -> str:
        """Serialises to a JSON string (the mean as nested lists); inverse of `from_json`."""
        d = dataclasses.asdict(self)
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
