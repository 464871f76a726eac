"""What the serving graph does to an image before the network sees it, resolved and checked up front.

`resolve_inputs` turns a model plus the training data's description (`dataset.json` / `DatasetInfo`) into
a `ServingInputs`: the class names, the preprocessing kind, the network's input size and the mean. It is
cheap (no TensorFlow work) and raises before anything is written. The serving graph
(`keras_resnet.export.serving`) and the model card (`keras_resnet.export.card`) read only this object, so
a new kind of in-graph preprocessing (for example a run's own ImageNet-style image size, resize and crop)
is added here, as a kind and its fields, without touching the writer or the versioning.

Preprocessing is the training formula of `docs/CONTRACTS.md`: `(float32(image) - mean) / 255` with the
mean in 0..255 units. Kinds:

- `"cifar"`: fixed input size (the training size), no geometry;
- `"imagenet"`: any input size; shorter side resized to `round(crop * 256 / 224)` (bilinear), centre
  `crop x crop` (the network's input size) crop, as in evaluation
  (`keras_resnet.data.augment.imagenet_eval_geometry`).

Example:
    >>> import numpy as np, keras_resnet
    >>> inputs = resolve_inputs(keras_resnet.build("resnet8"), {}, np.zeros((32, 32, 3)))  # doctest: +SKIP
    >>> inputs.kind, inputs.height, inputs.class_names[:2]  # doctest: +SKIP
    ('cifar', 32, ('0', '1'))
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

PREPROCESSING_KINDS = ("cifar", "imagenet")
"""The in-graph preprocessing kinds an export supports (`DatasetInfo.preprocessing`)."""
IMAGENET_EVAL_SIZE, IMAGENET_CROP = 256, 224
"""The paper's ImageNet evaluation: shorter side 256, centre 224 crop (scaled for other crop sizes)."""
CIFAR_SIZE = 32


@dataclasses.dataclass(frozen=True)
class ServingInputs:
    """The resolved inputs of an export.

    Attributes:
        class_names: tuple of str, one per class in label order.
        kind: one of `PREPROCESSING_KINDS`.
        height, width: the network's input size (the size `logits` takes).
        mean: float32 numpy `[height, width, 3]` or `[1, 1, 3]`, 0..255 units.
    """

    class_names: tuple
    kind: str
    height: int
    width: int
    mean: np.ndarray = dataclasses.field(repr=False)

    @property
    def any_size(self) -> bool:
        """True when the uint8 and bytes signatures take images of any size (geometry in the graph)."""
        return self.kind == "imagenet"

    @property
    def resize(self) -> int:
        """The shorter side an ImageNet-style image is resized to before the centre crop."""
        return int(round(self.height * IMAGENET_EVAL_SIZE / IMAGENET_CROP))

    @property
    def pixel_size(self):
        """`(height, width)` the uint8 signatures take: `(None, None)` when any size is accepted."""
        return (None, None) if self.any_size else (self.height, self.width)

    def geometry_text(self) -> str:
        """One line for the model card describing the in-graph geometry."""
        if self.any_size:
            return (f"shorter side resized to {self.resize} (bilinear), centre {self.height}x{self.width} crop "
                    "(keras_resnet.data.augment.imagenet_eval_geometry), any input size")
        return f"none: images must be {self.height}x{self.width}"


def dataset_dict(dataset_info) -> dict:
    """The training data's description as a dict, from a `DatasetInfo`, its `to_json()` string, a dict or None.

    Raises:
        ValueError: any other type.
    """
    if dataset_info is None:
        return {}
    if isinstance(dataset_info, dict):
        return dict(dataset_info)
    if isinstance(dataset_info, (str, bytes)):
        return json.loads(dataset_info)
    if hasattr(dataset_info, "to_json"):
        return json.loads(dataset_info.to_json())
    raise ValueError(
        f"`dataset_info` must be a DatasetInfo, its to_json() string or a dict; received {type(dataset_info).__name__}."
    )


def resolve_class_names(model, dataset, class_names):
    """Class names in label order: given, else the dataset's, else "0", "1", ...; checked against the model."""
    classes = int(model.output_shape[-1])
    if class_names is None:
        class_names = dataset.get("class_names") or [str(i) for i in range(classes)]
    class_names = tuple(str(name) for name in class_names)
    if len(class_names) != classes:
        raise ValueError(f"`class_names` has {len(class_names)} names but model {model.name!r} has {classes} classes.")
    if any("\n" in name for name in class_names):
        raise ValueError("`class_names` must not contain newlines (assets/labels.txt holds one name per line).")
    return class_names


def resolve_size(model, dataset, kind):
    """The network's input `(height, width)`: the model's, else the dataset's image shape, else the default."""
    model_hw = tuple(model.input_shape[1:3])
    data_hw = tuple(dataset.get("image_shape") or (None, None, None))[:2]
    height, width = (m if m is not None else d for m, d in zip(model_hw, data_hw))
    if None in (height, width):
        default = IMAGENET_CROP if kind == "imagenet" else CIFAR_SIZE
        height, width = height or default, width or default
    if any(m is not None and d is not None and m != d for m, d in zip(model_hw, data_hw)):
        raise ValueError(f"Model input size {model_hw} differs from the dataset's image_shape {data_hw}.")
    if model.input_shape[-1] != 3:
        raise ValueError(f"Only RGB models can be exported; model {model.name!r} takes {model.input_shape[-1]} channels.")
    if kind == "imagenet" and height != width:
        raise ValueError(f"ImageNet-style export needs a square crop; received {height}x{width}.")
    return int(height), int(width)


def resolve_mean(dataset, mean, height, width):
    """The mean as float32 `[height, width, 3]` or `[1, 1, 3]` (a 1-D mean is per channel); checked."""
    if mean is None:
        mean = dataset.get("mean")
    if mean is None:
        raise ValueError("`mean` (0..255 units, [H, W, 3] or [1, 1, 3]) is required: the training preprocessing.")
    mean = np.asarray(mean, dtype=np.float32)
    if mean.ndim == 1:
        mean = mean.reshape(1, 1, -1)
    if mean.shape not in ((height, width, 3), (1, 1, 3)):
        raise ValueError(
            f"`mean` must have shape ({height}, {width}, 3) (per pixel) or (1, 1, 3) (per channel); received {mean.shape}."
        )
    if not np.all(np.isfinite(mean)):
        raise ValueError("`mean` contains non-finite values.")
    return mean


def resolve_inputs(model, dataset, mean=None, class_names=None, preprocessing=None) -> ServingInputs:
    """Validates and completes class names, preprocessing kind, input size and mean (cheap, no TF work).

    Args:
        model: the Keras classifier to export.
        dataset: dict from `dataset_dict` (may be empty).
        mean: float32 mean in 0..255 units, or None for the dataset's.
        class_names: names in label order, or None for the dataset's (else "0", "1", ...).
        preprocessing: one of `PREPROCESSING_KINDS`, or None for the dataset's (else "cifar").

    Returns:
        `ServingInputs`.

    Raises:
        ValueError: naming the argument, what was received and what is accepted.
    """
    if model is None or not hasattr(model, "get_layer"):
        raise ValueError(f"`model` must be a keras.Model; received {type(model).__name__}.")
    class_names = resolve_class_names(model, dataset, class_names)
    kind = preprocessing or dataset.get("preprocessing") or "cifar"
    if kind not in PREPROCESSING_KINDS:
        raise ValueError(f"`preprocessing` must be one of {PREPROCESSING_KINDS}; received {kind!r}.")
    height, width = resolve_size(model, dataset, kind)
    mean = resolve_mean(dataset, mean, height, width)
    return ServingInputs(class_names=class_names, kind=kind, height=height, width=width, mean=mean)
