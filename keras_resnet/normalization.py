"""Input normalisation, one owner: how a network's inputs are normalised (`Preprocessing`) and how the package's
pipelines apply it (`InputNormalization`). The weights, training, evaluation and export all use these types.

Pretrained weights only reproduce their published accuracy on inputs normalised as in their training, and
the published ResNets use two conventions:

- "torch" (torchvision's ImageNet models and the akamaster CIFAR-10 models): RGB scaled to [0, 1], then
  per-channel mean (0.485, 0.456, 0.406) subtracted and divided by std (0.229, 0.224, 0.225);
- "caffe" (the paper's own Caffe models, as converted for `keras.applications`): channels reordered to
  BGR, then the ImageNet mean pixel (103.939, 116.779, 123.68) subtracted, no scaling.

Both are `y = (reorder(x) * scale - mean) / std` for an input `x` of RGB values in [0, 255], with `mean` and
`std` in the network's channel order. A `Preprocessing` is recorded (as JSON) in every weights file this
package writes, so that the file says how to feed the model it belongs to.

The package's own pipelines compute `z = (x - M) / 255` (docs/CONTRACTS.md; He et al. 2016, section 3.4:
the mean is subtracted from the input). Any `Preprocessing` is that followed by a per-channel factor:

    M = reorder^-1(mean / scale)      (0..255 RGB units, per channel: a run's mean_image.npy, [1, 1, 3])
    y = reorder(z) * (255 * scale / std)

so the data pipelines are used unchanged with `mean=M`, and `InputNormalization.numpy` / `.tf` apply the
reorder and the factor to their batches. A run records its `Preprocessing` in config.json
(`input_normalization`, `Preprocessing.to_dict()`), for evaluation and export to apply it.

Example:
    >>> import numpy as np
    >>> [round(float(v), 3) for v in TORCH.apply(np.full((1, 1, 1, 3), 255.0)).ravel()]
    [2.249, 2.429, 2.64]
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

CHANNEL_ORDERS = ("RGB", "BGR")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
    """Input normalisation of a set of weights: `(reorder(x) * scale - mean) / std` on RGB `x` in [0, 255].

    Attributes:
        name: short label ("torch", "caffe", or a custom one).
        channel_order: "RGB" or "BGR", the channel order the network expects.
        scale: multiplier applied to the raw [0, 255] values first (1/255 for "torch").
        mean: per-channel mean, in the network's channel order, subtracted after scaling.
        std: per-channel divisor applied last.
    """

    name: str
    channel_order: str
    scale: float
    mean: tuple
    std: tuple

    def __post_init__(self):
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"`channel_order` must be one of {CHANNEL_ORDERS}; received {self.channel_order!r}.")
        if len(self.mean) != len(self.std):
            raise ValueError(f"`mean` {self.mean!r} and `std` {self.std!r} must have one entry per channel.")

    def apply(self, x):
        """Normalises `x` (RGB values in [0, 255], channels last).

        Args:
            x: a NumPy array (or anything `np.asarray` takes) or a backend tensor, shape `[..., channels]`.

        Returns:
            float32 array (NumPy in, NumPy out) or tensor, in the network's channel order.
        """
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        if isinstance(x, (np.ndarray, list, tuple, int, float)):
            x = np.asarray(x, np.float32)
            if self.channel_order == "BGR":
                x = x[..., ::-1]
            return ((x * np.float32(self.scale) - mean) / std).astype(np.float32)
        from keras import ops

        x = ops.cast(x, "float32")
        if self.channel_order == "BGR":
            x = ops.flip(x, axis=-1)
        return (x * self.scale - mean) / std

    def to_dict(self):
        """A JSON-ready dict (lists, floats) of the fields."""
        return {
            "name": self.name,
            "channel_order": self.channel_order,
            "scale": float(self.scale),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
        }

    def to_json(self):
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data):
        """The inverse of `to_dict`.

        Raises:
            ValueError: a field is missing or malformed.
        """
        try:
            return cls(
                name=str(data["name"]),
                channel_order=str(data["channel_order"]),
                scale=float(data["scale"]),
                mean=tuple(float(v) for v in data["mean"]),
                std=tuple(float(v) for v in data["std"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"malformed preprocessing record {data!r}: {error}") from None


TORCH = Preprocessing(
    name="torch", channel_order="RGB", scale=1.0 / 255.0, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)
)
"""torchvision's ImageNet normalisation, also used by the akamaster CIFAR-10 models."""

CAFFE = Preprocessing(
    name="caffe", channel_order="BGR", scale=1.0, mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0)
)
"""The paper's Caffe models (keras.applications' `preprocess_input` for ResNet50/101/152)."""

TF_MODE = Preprocessing(name="tf", channel_order="RGB", scale=1.0 / 255.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
"""keras.applications' "tf" mode, `x / 127.5 - 1` (its pre-activation ResNet50V2/101V2/152V2)."""


class InputNormalization:
    """A `Preprocessing` applied on top of the pipelines' `(x - M) / 255`: the pipelines subtract
    `pipeline_mean` (the mean in their channel order and units), and `numpy` / `tf` reorder the channels and
    multiply by `factor` (`255 * scale / std`), so the network sees `(reorder(x) * scale - mean) / std`.

    Args:
        preprocessing: a `Preprocessing`.

    Example:
        >>> norm = InputNormalization(TORCH)
        >>> [round(float(v), 2) for v in norm.pipeline_mean.ravel()]
        [123.68, 116.28, 103.53]
    """

    def __init__(self, preprocessing):
        self.preprocessing = preprocessing
        self.reverse = preprocessing.channel_order == "BGR"
        mean = np.asarray(preprocessing.mean, np.float64) / float(preprocessing.scale)
        self.pipeline_mean = (mean[::-1] if self.reverse else mean).reshape(1, 1, -1).astype(np.float32)
        self.factor = (255.0 * float(preprocessing.scale) / np.asarray(preprocessing.std, np.float64)).astype(
            np.float32)

    @property
    def name(self):
        return self.preprocessing.name

    def numpy(self, x):
        """The network's input from a numpy batch of the pipeline, `(x - M) / 255` (channels last)."""
        x = np.asarray(x, np.float32)
        return (x[..., ::-1] if self.reverse else x) * self.factor

    def tf(self, x):
        """The same as `numpy` on a TensorFlow tensor (inside tf.data)."""
        import tensorflow as tf

        if self.reverse:
            x = tf.reverse(x, axis=[-1])
        return x * tf.constant(self.factor)

    def to_dict(self):
        """The `Preprocessing` as recorded in config.json (`input_normalization`)."""
        return self.preprocessing.to_dict()

    @classmethod
    def from_dict(cls, record):
        """The inverse of `to_dict`; None for None."""
        if record is None:
            return None
        return cls(Preprocessing.from_dict(record))
