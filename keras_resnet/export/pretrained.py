"""Exporting published pretrained weights directly: a named network and a weights set, no training run.

`python -m keras_resnet.export --model=resnet56 --weights=cifar10 --export_dir=saved_models/resnet56`
builds `keras_resnet.build("resnet56", weights="cifar10")` and exports it with the normalisation the
weights were trained with in the serving graph (`keras_resnet.weights.preprocessing_of`: for the akamaster
CIFAR-10 models `(x / 255 - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)`), so that `serve_bytes` on a
raw CIFAR-10 JPEG classifies as the PyTorch original does. CIFAR models are served at 32x32 (kind "cifar");
ImageNet models at any input size, resized to 256 and centre-cropped to 224 in the graph (kind
"imagenet"). Class names: CIFAR-10's for the "cifar10" set, the 1,000 ImageNet names that ship with the
package for the "imagenet" sets (`keras_resnet.imagenet_classes`, keras.applications' "tench", "goldfish",
...), else the label indices "0", "1", ... unless `class_names` is given.

Example:
    >>> export_pretrained("resnet20", "cifar10", "saved_models/resnet20")  # writes or reads an export on disk  # doctest: +SKIP
    PosixPath('.../saved_models/resnet20/1')
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_resnet.eval_transform import EvalTransform

CIFAR10_CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
"""CIFAR-10's classes in label order (the akamaster models' output order)."""


def read_class_names(path):
    """The class names of a text file, one per line (blank lines ignored).

    Raises:
        ExportInputError: naming `class_names` and the file, when it cannot be read or holds no names.
    """
    from keras_resnet.export.saved_model import ExportInputError

    accepted = "accepted: a UTF-8 text file, one class name per line"
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        why = getattr(error, "strerror", None) or str(error)
        raise ExportInputError("class_names", path, f"cannot be read ({why}); {accepted}") from None
    names = [line.strip() for line in lines if line.strip()]
    if not names:
        raise ExportInputError("class_names", path, f"holds no names; {accepted}")
    return names


def file_details(weights):
    """`(classes or None, source format)` of a weights file (its classifier width, from the file itself)."""
    from keras_resnet.weights import detect_format, read_metadata, read_source

    file_format = detect_format(weights)
    if file_format != "keras":
        table, file_format = read_source(os.fspath(weights), file_format)
        head = table.get("predictions", {})
        return (int(head["bias"][0].shape[0]) if "bias" in head else None), file_format
    record = read_metadata(os.fspath(weights)) if os.fspath(weights).endswith(".weights.h5") else None
    record = record or {}
    return record.get("classes"), record.get("source_format", "keras")


def build_pretrained(model_name, weights, class_names=None, stride_in_3x3=None):
    """The named network with `weights` loaded, and what the export needs to know about them.

    Args:
        model_name: e.g. "resnet56" (`keras_resnet.build`).
        weights: "cifar10", "imagenet" or a weights file (any format `keras_resnet.weights` reads).
        class_names: names in label order, or None (see the module docstring).
        stride_in_3x3: the bottleneck stride placement, or None for the weights' own (torchvision files:
            True; keras.applications files and the "imagenet" set: False).

    Returns:
        `(model, normalization, kind, class_names, details)`: `details` is a dict for the model card.

    Raises:
        ValueError: a bad name, set or file (naming it). FileNotFoundError: a named set's file is missing.
    """
    from keras_resnet.registry import build, model_spec
    from keras_resnet.weights import SET_NAMES, WeightsFileError, named_set_entry, preprocessing_of

    spec = model_spec(model_name)
    family = spec.family
    kwargs, details = {}, {"model": model_name, "weights": os.fspath(weights)}
    is_file = not isinstance(weights, str) or weights not in SET_NAMES
    if is_file:
        if not os.path.isfile(weights):
            what = "a directory" if os.path.isdir(weights) else "no such file"
            reason = (f"{what}; accepted: {', '.join(SET_NAMES)} or a weights file (.weights.h5, .keras, .th, .pth, "
                      ".h5, .safetensors)")
            raise WeightsFileError(weights, reason, f"`weights` (--weights) must be 'cifar10', 'imagenet' or a "
                                                    f"weights file; received {os.fspath(weights)!r} ({what}).")
        classes, file_format = file_details(weights)
        kwargs["classes"] = len(class_names) if class_names is not None else classes
        stride = file_format == "torchvision" if stride_in_3x3 is None else stride_in_3x3
        details["source_format"] = file_format
    else:
        entry = named_set_entry(weights, spec, stride_in_3x3)  # a set for another network: ValueError
        stride = entry.stride_in_3x3 if stride_in_3x3 is None else bool(stride_in_3x3)
    if family == "imagenet":
        kwargs["stride_in_3x3"] = stride
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    model = build(model_name, weights=weights, **kwargs)  # checks the set fits the network (ValueError)
    if not is_file:
        details.update(set=entry.name, file=entry.file_name, url=entry.url, licence=entry.licence,
                       verified=entry.verified, published_top1=entry.top1,
                       evaluation=None if entry.evaluation is None else entry.evaluation.to_dict())
    normalization = preprocessing_of(weights, model=model_name, stride_in_3x3=stride)
    if class_names is None and weights == "cifar10":
        class_names = CIFAR10_CLASS_NAMES
    elif class_names is None and not is_file and weights.startswith("imagenet"):
        from keras_resnet.imagenet_classes import imagenet_classes

        class_names = tuple(name for _, name in imagenet_classes())
    return model, normalization, "cifar" if family == "cifar" else "imagenet", class_names, details


def export_pretrained(model_name, weights, export_root, *, class_names=None, stride_in_3x3=None, version=None,
                      overwrite=False, export_format="saved_model", model_card_extra=None, quantization=None):
    """Exports a named network with pretrained weights, their normalisation in the graph (see the module).

    Args:
        model_name: e.g. "resnet56".
        weights: "cifar10", "imagenet", a tagged set ("imagenet-tv2", "imagenet-a1": served with its publisher's
            evaluation transform, `keras_resnet.eval_transform`) or a weights file.
        export_root: directory of the versions, e.g. "saved_models/resnet56" (other formats:
            `<root>/<format>/<version>`, `keras_resnet.export.targets`).
        class_names: names in label order (a list), or None: CIFAR-10's for "cifar10", else "0", "1", ...
        stride_in_3x3: bottleneck stride placement (None: the weights' own).
        version, overwrite, model_card_extra: as `keras_resnet.export.export_saved_model`.
        export_format: "saved_model", "onnx", "openvino" or "litert".
        quantization: an `keras_resnet.export.int8.Int8Plan` (its `data` required: the weights' data, e.g. a
            CIFAR-10 folder for "cifar10") for an int8 "onnx" or "openvino" network, or None.

    Returns:
        `pathlib.Path` of the version directory written.

    Raises:
        ValueError / FileNotFoundError / FileExistsError / PermissionError: nothing is written.
    """
    from keras_resnet.export import targets, versions
    from keras_resnet.export.serving_inputs import NORMALIZATION_KEY, resolve_inputs

    target = targets.export_target(export_format)
    target.check_installed()
    if quantization is not None:
        target.check_quantization(quantization.needing_data(f"the data of --weights={os.fspath(weights)}"))
    root, version = versions.plan_destination(target.root(export_root), version, overwrite)
    staging = versions.Staging(root, version)  # the destination is writable: fail here, before loading anything
    try:
        model, normalization, kind, names, details = build_pretrained(model_name, weights, class_names, stride_in_3x3)
        dataset = {"name": details.get("set") or Path(details["weights"]).name, "preprocessing": kind,
                   NORMALIZATION_KEY: normalization.to_dict()}
        transform = details.get("evaluation")
        inputs = resolve_inputs(model, dataset, None, names, kind, normalization,
                                eval_transform=EvalTransform.from_dict(transform))
        extra = dict({"source": {"pretrained": details}, "test_accuracy": None}, **(model_card_extra or {}))
        return target.write(staging, model, dataset, inputs, extra, overwrite, quantization)
    except BaseException:
        staging.abort()
        raise
