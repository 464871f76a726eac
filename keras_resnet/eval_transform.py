"""Evaluation transforms of published ImageNet weights: the resize, crop and resampling their accuracy is for.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 3.4 (evaluation
on the 224x224 centre crop of an image whose shorter side is resized); the publishers of later weights keep
the centre crop but change the resize: torchvision's IMAGENET1K_V2 resizes the shorter side to 232 (bilinear),
timm's a1_in1k to `floor(224 / 0.95)` = 235 (bicubic). A set's reported top-1 holds only under its own
transform, so each tagged set (`keras_resnet.weights.sets`) carries one.

An `EvalTransform` is what torchvision's `Resize(resize_size)` + `CenterCrop(crop_size)` do to a Pillow image:

- the shorter side becomes `resize_size`, the longer `int(resize_size * longer / shorter)` (truncated);
- Pillow resamples (antialiased: the filter widens when shrinking) horizontally, rounds to uint8, then
  vertically, rounds to uint8;
- the crop's top-left corner is `round((side - crop_size) / 2)`, halves rounded to even (Python's `round`).

`pillow(image)` is that reference, with Pillow; `keras_resnet.data.augment.published_eval_geometry` is the
same in TensorFlow (the evaluation pipeline and the export graph), within one level of Pillow's pixels (a
test checks it on every transform here). The mean and std are the weights' `Preprocessing`.

Example:
    >>> import numpy as np
    >>> transform = EvalTransform("torchvision IMAGENET1K_V2", resize_size=232, crop_size=224)
    >>> transform.resized_shape(375, 500), transform.crop_offsets(232, 309), round(transform.crop_fraction, 4)
    ((232, 309), (4, 42), 0.9655)
    >>> transform.pillow(np.zeros((375, 500, 3), np.uint8)).shape
    (224, 224, 3)
"""

from __future__ import annotations

import dataclasses

import numpy as np

INTERPOLATIONS = ("bilinear", "bicubic")
RUN_KEY = "eval_transform"
"""The key of a run's config.json that records its evaluation transform (`EvalTransform.to_dict()`, or null)."""


@dataclasses.dataclass(frozen=True)
class EvalTransform:
    """Shorter side to `resize_size` (Pillow, `interpolation`), then the centre `crop_size` square.

    Attributes:
        name: the publisher's name for it, for logs and model cards.
        resize_size: the shorter side after the resize.
        crop_size: the side of the centre crop the network sees.
        interpolation: "bilinear" or "bicubic" (Pillow's filters, antialiased).
    """

    name: str
    resize_size: int
    crop_size: int
    interpolation: str = "bilinear"

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"`interpolation` must be one of {INTERPOLATIONS}; received {self.interpolation!r}.")
        if not 0 < self.crop_size <= self.resize_size:
            raise ValueError(f"`crop_size` must be in 1..resize_size ({self.resize_size}); received {self.crop_size!r}.")

    @property
    def crop_fraction(self):
        """`crop_size / resize_size` (timm's `crop_pct`)."""
        return self.crop_size / self.resize_size

    def scaled_to(self, crop_size):
        """The same transform for a network that sees `crop_size` pixels (a run fine-tuned at another
        `--image_size`): the resize keeps its ratio to the crop, `resize_size * crop_size // self.crop_size`
        (truncated, as timm's `floor(crop_size / crop_pct)`), and the interpolation; itself at its own size.

        Example:
            >>> EvalTransform("timm a1_in1k", 235, 224, "bicubic").scaled_to(160).resize_size
            167
        """
        crop_size = int(crop_size)
        if crop_size == self.crop_size:
            return self
        if crop_size < 1:
            raise ValueError(f"`crop_size` must be a positive int; received {crop_size!r}.")
        return EvalTransform(f"{self.name}, scaled to {crop_size}", self.resize_size * crop_size // self.crop_size,
                             crop_size, self.interpolation)

    def describe(self):
        """One line for logs and model cards."""
        return (f"{self.name}: shorter side resized to {self.resize_size} (Pillow {self.interpolation}, antialiased, "
                f"longer side truncated), centre {self.crop_size}x{self.crop_size} crop")

    def resized_shape(self, height, width):
        """`(height, width)` after the resize: the shorter side `resize_size`, the longer truncated."""
        if height <= width:
            return self.resize_size, int(self.resize_size * width / height)
        return int(self.resize_size * height / width), self.resize_size

    def crop_offsets(self, height, width):
        """`(top, left)` of the centre crop in a `height` x `width` image (halves rounded to even)."""
        return int(round((height - self.crop_size) / 2.0)), int(round((width - self.crop_size) / 2.0))

    def pillow(self, image):
        """The reference: uint8 `[crop_size, crop_size, 3]` from a uint8 `[H, W, 3]` array, with Pillow."""
        from PIL import Image

        height, width = image.shape[:2]
        new_height, new_width = self.resized_shape(height, width)
        resample = Image.BILINEAR if self.interpolation == "bilinear" else Image.BICUBIC
        resized = np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize((new_width, new_height), resample))
        top, left = self.crop_offsets(new_height, new_width)
        return resized[top: top + self.crop_size, left: left + self.crop_size]

    def to_dict(self):
        """A JSON-ready dict of the fields and the crop fraction (for model cards and config.json)."""
        return dict(dataclasses.asdict(self), crop_fraction=round(self.crop_fraction, 6))

    @classmethod
    def of_run(cls, config):
        """The transform a run's config.json dict records under `RUN_KEY`, or None.

        Raises:
            ValueError: a malformed record, as "config.json eval_transform: ..." (callers add the file's owner).
        """
        try:
            return cls.from_dict(config.get(RUN_KEY))
        except ValueError as error:
            raise ValueError(f"config.json {RUN_KEY}: {error}") from None

    @classmethod
    def from_dict(cls, record):
        """The inverse of `to_dict`; None for None.

        Raises:
            ValueError: a field is missing or malformed.
        """
        if record is None:
            return None
        try:
            return cls(str(record["name"]), int(record["resize_size"]), int(record["crop_size"]),
                       str(record["interpolation"]))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"malformed evaluation transform record {record!r}: {error}") from None
