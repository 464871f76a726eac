"""What the serving graph does to an image before the network sees it, resolved and checked up front.

`resolve_inputs` turns a model plus the training data's description (`dataset.json` / `DatasetInfo`) into
a `ServingInputs`: the class names, the preprocessing kind, the network's input size, the mean and, for
pretrained weights, their input normalisation. It is cheap (no TensorFlow work) and raises before
anything is written. The serving graph (`keras_resnet.export.serving`), the ONNX writer and the model card
(`keras_resnet.export.card`) read only this object, so a new kind of in-graph preprocessing is added here,
as a kind and its fields, without touching the writer or the versioning.

Normalisation, one rule `(reorder(float32(image)) - mean_image) * multiplier` (`mean_image` in 0..255
units, in the network's channel order):

- the package's own training formula of `docs/CONTRACTS.md` (the default): `(float32(image) - mean) / 255`,
  the mean per pixel (CIFAR) or per channel (ImageNet-style runs), `multiplier` = 1/255;
- the normalisation recorded with pretrained weights (`keras_resnet.weights.Preprocessing`: a named set,
  a converted file, or a run's `input_normalization` record): `(reorder(x) * scale - mean) / std`, written
  as `(reorder(x) - mean / scale) * (scale / std)`, per channel; e.g. the akamaster CIFAR-10 models and
  torchvision: `(x / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)`; keras.applications (Caffe):
  BGR, minus (103.939, 116.779, 123.68).

A run records the normalisation of the weights it started from as the key `input_normalization` of its
`dataset.json` (or `config.json`): the `Preprocessing.to_dict()` record
(`{"name", "channel_order", "scale", "mean", "std"}`).

Geometry kinds:

- `"cifar"`: fixed input size (the training size), no geometry;
- `"imagenet"`: any input size; shorter side resized to `round(crop * 256 / 224)` (bilinear), centre
  `crop x crop` (the network's input size, a run's `image_size`) crop, as in evaluation
  (`keras_resnet.data.augment.imagenet_eval_geometry`).

Example:
    >>> import numpy as np, keras_resnet
    >>> inputs = resolve_inputs(keras_resnet.build("resnet8"), {}, np.zeros((32, 32, 3)))
    >>> inputs.kind, inputs.height, inputs.class_names[:2]
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
NORMALIZATION_KEY = "input_normalization"
"""The key of `dataset.json` / `config.json` holding the normalisation of the weights a run started from."""
TRAINING_FORMULA = "(float32(image) - mean_image) / 255, mean_image in 0..255 units (the training formula)"


@dataclasses.dataclass(frozen=True)
class ServingInputs:
    """The resolved inputs of an export.

    Attributes:
        class_names: tuple of str, one per class in label order.
        kind: one of `PREPROCESSING_KINDS`.
        height, width: the network's input size (the size `logits` takes).
        mean: float32 numpy `[height, width, 3]` or `[1, 1, 3]`, 0..255 units, in the network's channel
            order: the training mean, or a pretrained normalisation's `mean / scale`.
        normalization: the `keras_resnet.weights.Preprocessing` of pretrained weights, or None for the
            package's training formula.
        eval_transform: a tagged weights set's published evaluation transform
            (`keras_resnet.eval_transform.EvalTransform`) served instead of the 256 / 224 geometry, or None.
    """

    class_names: tuple
    kind: str
    height: int
    width: int
    mean: np.ndarray = dataclasses.field(repr=False)
    normalization: object = None
    eval_transform: object = None

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

    @property
    def channel_order(self) -> str:
        """"RGB", or "BGR" when the network takes reversed channels (Caffe weights)."""
        return self.normalization.channel_order if self.normalization is not None else "RGB"

    @property
    def multiplier(self):
        """What `(image - mean)` is multiplied by: 1/255 (training formula), else float32 `[1, 1, 3]` scale/std."""
        if self.normalization is None:
            return 1.0 / 255.0
        scale, std = np.float32(self.normalization.scale), np.asarray(self.normalization.std, np.float32)
        return (scale / std).astype(np.float32).reshape(1, 1, -1)

    def formula_text(self) -> str:
        """One line for the model card: how pixels become the network's input."""
        if self.normalization is None:
            return TRAINING_FORMULA
        n = self.normalization
        x = "reverse(x, channels)" if n.channel_order == "BGR" else "x"
        scaled = f"{x} / 255" if abs(n.scale * 255.0 - 1.0) < 1e-9 else f"{x} * {n.scale!r}"
        return (f"({scaled} - mean {list(n.mean)}) / std {list(n.std)}, x = float32 RGB image in 0..255 (the "
                f"weights' normalisation {n.name!r}, {n.channel_order}; in the graph as (x - mean_image) * multiplier)")

    def geometry_text(self) -> str:
        """One line for the model card describing the in-graph geometry."""
        if self.any_size and self.eval_transform is not None:
            return (f"{self.eval_transform.describe()} (keras_resnet.data.augment.published_eval_geometry), "
                    "any input size")
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


def check_image_size(image_size):
    """`image_size` (a run's crop side) as an int >= 1, or None; a `ValueError` naming it otherwise."""
    if image_size is None:
        return None
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
        raise ValueError(f"`image_size` (config.json image_size) must be a positive int; received {image_size!r}.")
    return int(image_size)


def resolve_size(model, dataset, kind, image_size=None):
    """The network's input `(height, width)`: the model's, else `image_size`, else the dataset's image shape,
    else the default (224 for "imagenet", 32 for "cifar")."""
    model_hw = tuple(model.input_shape[1:3])
    image_size = check_image_size(image_size)
    data_hw = tuple(dataset.get("image_shape") or (None, None, None))[:2]
    if image_size is not None:
        if any(m is not None and m != image_size for m in model_hw):
            raise ValueError(f"`image_size` {image_size} (config.json) differs from the model's input size {model_hw}.")
        data_hw = (image_size, image_size)
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


def resolve_normalization(normalization, model=None, dataset=None, config=None):
    """The pretrained normalisation to serve: given, else the run's `input_normalization` record, else None.

    Args:
        normalization: None, a `keras_resnet.weights.Preprocessing`, its `to_dict()` record, or what
            `keras_resnet.weights.preprocessing_of` takes ("cifar10", "imagenet" with the model's name, a
            weights file).
        model: the Keras model (its name resolves `"imagenet"`).
        dataset, config: the run's `dataset.json` / `config.json` dicts (first the dataset's record).

    Returns:
        A `Preprocessing` with 3 channels and finite, non-zero scale and std, or None.

    Raises:
        ValueError: naming `normalization` (or the file's key) and what is accepted.
    """
    from keras_resnet.weights import Preprocessing, preprocessing_of

    where = "`normalization`"
    if normalization is None:
        for name, record in (("dataset.json", dataset or {}), ("config.json", config or {})):
            if record.get(NORMALIZATION_KEY) is not None:
                normalization, where = record[NORMALIZATION_KEY], f"{name} {NORMALIZATION_KEY}"
                break
        else:
            return None
    if isinstance(normalization, dict):
        normalization = Preprocessing.from_dict(normalization)
    elif not isinstance(normalization, Preprocessing):
        try:
            normalization = preprocessing_of(normalization, model=getattr(model, "name", None))
        except ValueError as error:
            raise ValueError(f"{where} takes a Preprocessing, its record, or what "
                             f"keras_resnet.weights.preprocessing_of takes: {error}") from None
    values = np.asarray([normalization.scale, *normalization.mean, *normalization.std], np.float64)
    if len(normalization.mean) != 3 or not np.all(np.isfinite(values)) or normalization.scale == 0 or 0 in normalization.std:
        raise ValueError(f"{where} must have 3 channels and finite, non-zero scale and std; received "
                         f"{normalization.to_dict()!r}.")
    return normalization


def normalization_mean(normalization):
    """The mean in 0..255 units of a pretrained normalisation: float32 `[1, 1, 3]` `mean / scale`."""
    mean = np.asarray(normalization.mean, np.float64) / float(normalization.scale)
    return mean.astype(np.float32).reshape(1, 1, -1)


def resolve_inputs(model, dataset, mean=None, class_names=None, preprocessing=None, normalization=None,
                   image_size=None, eval_transform=None) -> ServingInputs:
    """Validates and completes class names, preprocessing kind, input size and normalisation (cheap, no TF work).

    Args:
        model: the Keras classifier to export.
        dataset: dict from `dataset_dict` (may be empty).
        mean: float32 mean in 0..255 units, or None for the dataset's (training formula only).
        class_names: names in label order, or None for the dataset's (else "0", "1", ...).
        preprocessing: one of `PREPROCESSING_KINDS`, or None for the dataset's (else "cifar").
        normalization: pretrained weights' normalisation (see `resolve_normalization`), already resolved or
            not; None for the package's training formula with `mean`.
        image_size: the crop side of an ImageNet-style run (`config.json` `image_size`) when the model's
            input size is not fixed; None for the model's, else the dataset's, else 224.
        eval_transform: a tagged set's evaluation transform (ImageNet-style inputs of its crop size), or None.

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
    height, width = resolve_size(model, dataset, kind, image_size)
    normalization = resolve_normalization(normalization, model, dataset)
    if normalization is None:
        mean = resolve_mean(dataset, mean, height, width)
    elif mean is not None:
        raise ValueError("Pass either `mean` (the training formula) or `normalization` (pretrained weights), not both.")
    else:
        mean = normalization_mean(normalization)
    if eval_transform is not None and (kind != "imagenet" or height != eval_transform.crop_size):
        raise ValueError(f"`eval_transform` {eval_transform.name!r} crops {eval_transform.crop_size}x"
                         f"{eval_transform.crop_size} ImageNet-style images; this export is {kind!r} at {height}x{width}.")
    return ServingInputs(class_names=class_names, kind=kind, height=height, width=width, mean=mean,
                         normalization=normalization, eval_transform=eval_transform)
