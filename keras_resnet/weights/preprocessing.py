"""How the inputs of a set of pretrained weights were normalised, and applying it.

Pretrained weights only reproduce their published accuracy on inputs normalised as in their training, and
the published ResNets use two conventions:

- "torch" (torchvision's ImageNet models and the akamaster CIFAR-10 models): RGB scaled to [0, 1], then
  per-channel mean (0.485, 0.456, 0.406) subtracted and divided by std (0.229, 0.224, 0.225);
- "caffe" (the paper's own Caffe models, as converted for `keras.applications`): channels reordered to
  BGR, then the ImageNet mean pixel (103.939, 116.779, 123.68) subtracted, no scaling.

Both are `y = (reorder(x) * scale - mean) / std` for an input `x` of RGB values in [0, 255], with `mean` and
`std` in the network's channel order. A `Preprocessing` is recorded (as JSON) in every weights file this
package writes, so that the file says how to feed the model it belongs to.

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
