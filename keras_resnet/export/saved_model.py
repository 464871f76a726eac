"""Writing a TF Serving SavedModel version: from an in-memory model or from a training run's `model_dir`.

The steps, each in its own module: resolve and check the inputs (`preprocessing`), check the destination
and create the staging directory (`versions`), prepare the float32 logits network (`serving_model`), build the
signatures (`serving`), save, write the labels and the model card (`card`), and publish (`versions`).
Everything cheap is checked before anything expensive, and a failure removes the staging directory, so
nothing is written half-way. A second export format would reuse every step but `serving` and the save.

TensorFlow backend only. Named fault site: `export.saved_model_written` (the SavedModel is in the
staging directory, its assets not yet), besides those of `keras_resnet.export.versions`.

Example:
    >>> export_from_model_dir("runs/resnet20", "saved_models/resnet20")  # writes or reads an export on disk  # doctest: +SKIP
    PosixPath('.../saved_models/resnet20/1')
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_resnet import faults
from keras_resnet.export import card as card_lib
from keras_resnet.export import serving_model, targets, versions
from keras_resnet.export.serving_inputs import (
    NORMALIZATION_KEY,
    check_image_size,
    dataset_dict,
    resolve_inputs,
    resolve_normalization,
)

CHECKPOINTS = ("best", "latest")
"""Checkpoints of a training run's `model_dir` (`checkpoints/<name>.keras`)."""


def require_tensorflow():
    """A `RuntimeError` unless Keras runs on TensorFlow (SavedModels are TensorFlow graphs)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            f"SavedModel export needs the TensorFlow backend of Keras; KERAS_BACKEND is {keras.backend.backend()!r}."
        )


def export_saved_model(model, export_root, *, dataset_info=None, mean=None, class_names=None, preprocessing=None,
                       version=None, overwrite=False, model_card_extra=None, normalization=None):
    """Exports a Keras classifier as a versioned TF Serving SavedModel, atomically.

    The model is copied into float32 (whatever policy it was trained under) with its classifier rebuilt
    without activation, wrapped with the training preprocessing and saved with the signatures
    `serving_default` (uint8 pixels), `serve_bytes` (encoded JPEG/PNG) and `logits` (preprocessed float32).
    TensorFlow backend only.

    Args:
        model: a functional `keras.Model` ending in the Dense layer "predictions" (softmax, sigmoid or no
            activation), e.g. `keras_resnet.ResNet20()`.
        export_root: directory of the versions, e.g. "saved_models/resnet20"; created if missing.
        dataset_info: the training data's `keras_resnet.data.DatasetInfo`, its `to_json()` string or dict
            (`dataset.json` of a model_dir): class names, image shape, preprocessing kind, mean.
        mean: float32 mean in 0..255 units, `[H, W, 3]` (CIFAR per-pixel) or `[1, 1, 3]`; defaults to
            `dataset_info`'s mean; required one way or the other.
        class_names: class names in label order; defaults to `dataset_info`'s, else "0", "1", ...
        preprocessing: "cifar" (fixed input size) or "imagenet" (any size, shorter side 256, centre 224
            crop in the graph, scaled to the model's input size, e.g. 37 and 32 for a 32x32 model);
            defaults to `dataset_info`'s, else "cifar".
        version: positive int; defaults to the next free version.
        overwrite: bool, replace an existing `version`.
        model_card_extra: optional dict merged into `assets/model_card.json` (e.g. `test_accuracy`).
        normalization: the input normalisation of pretrained weights, served instead of the mean
            formula: a `keras_resnet.weights.Preprocessing`, its `to_dict()` record, or what
            `keras_resnet.weights.preprocessing_of` takes ("cifar10", "imagenet" for the model's name, a
            weights file); defaults to `dataset_info`'s `input_normalization`, else None (then `mean`).
            The `logits` signature then takes `keras_resnet.preprocess_input(images, weights=...)`.

    Returns:
        `pathlib.Path` of the version directory written.

    Raises:
        ValueError: bad model or arguments. FileExistsError: `version` exists and not `overwrite`.
        PermissionError / NotADirectoryError: `export_root` cannot be written (nothing is written).

    Example:
        >>> import numpy as np, keras_resnet
        >>> model = keras_resnet.build("resnet8")
        >>> export_saved_model(model, "/tmp/resnet8", mean=np.zeros((32, 32, 3)))  # writes or reads an export on disk  # doctest: +SKIP
        PosixPath('/tmp/resnet8/1')
    """
    require_tensorflow()
    dataset = dataset_dict(dataset_info)
    inputs = resolve_inputs(model, dataset, mean, class_names, preprocessing, normalization)
    root, version = versions.plan_destination(export_root, version, overwrite)
    staging = versions.Staging(root, version)
    try:
        return write_version(staging, model, dataset, inputs, model_card_extra, overwrite)
    except BaseException:
        staging.abort()
        raise


def write_version(staging, model, dataset, inputs, extra, overwrite) -> Path:
    """Prepares, saves and publishes one version into `staging` (a `versions.Staging`).

    Args:
        staging: the staging directory, already created.
        model: the source Keras classifier.
        dataset: the training data's description (dict).
        inputs: `keras_resnet.export.serving_inputs.ServingInputs`.
        extra: dict merged into the model card, or None.
        overwrite: bool, replace an existing version.

    Returns:
        The published version directory.
    """
    import tensorflow as tf

    from keras_resnet.export import serving

    prepared = serving_model.prepare_serving_model(model)
    module, signatures, specs = serving.build_serving_module(prepared, inputs)
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    tf.saved_model.save(module, str(staging.path), signatures=signatures, options=options)
    faults.site("export.saved_model_written")
    assets = staging.path / "assets"
    assets.mkdir(exist_ok=True)
    card_lib.write_labels(assets, inputs.class_names)
    card = card_lib.model_card(model, prepared, inputs, dataset, specs, staging.version, extra)
    return staging.publish(overwrite, before_rename=lambda version: card_lib.write_card(assets, card, version))


class ExportInputError(ValueError):
    """A file or directory the user named that cannot be exported from: a `model_dir` that is missing, a file,
    without its checkpoint, `dataset.json` or mean, with a file that is not JSON or a checkpoint that does not
    load; a `class_names` file that cannot be read or does not fit. `argument` is the parameter (and flag)
    name, `value` what was given, `reason` why; the command line prints `--argument=value: reason` and exits 2.
    """

    def __init__(self, argument, value, reason):
        super().__init__(f"`{argument}` {str(value)!r}: {reason}")
        self.argument, self.value, self.reason = argument, str(value), reason

    def flag_line(self):
        """The command line's one line: `--model_dir=runs/x: has no dataset.json (...)`."""
        return f"--{self.argument}={self.value}: {self.reason}"


def read_json(path, model_dir=None):
    """The JSON content of `path`; a `ValueError` naming the file when it is not valid JSON (an
    `ExportInputError` naming `model_dir` when the file is one of a run's)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        if model_dir is not None:
            raise ExportInputError("model_dir", model_dir, f"{Path(path).name} is not valid JSON ({error}); "
                                   "accepted: a training run's directory (docs/CONTRACTS.md)") from None
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}.") from None


def checkpoint_path(model_dir, checkpoint) -> Path:
    """`<model_dir>/checkpoints/<checkpoint>.keras`, checked to exist (naming what was found otherwise)."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"`checkpoint` must be one of {CHECKPOINTS}; received {checkpoint!r}.")
    given, model_dir = model_dir, Path(model_dir)
    if not model_dir.is_dir():
        what = "is a file" if model_dir.exists() else "no such directory"
        raise ExportInputError("model_dir", given, f"{what}; accepted: a training run's directory (docs/CONTRACTS.md)")
    weights = model_dir / "checkpoints" / f"{checkpoint}.keras"
    if not weights.is_file():
        folder = model_dir / "checkpoints"
        found = sorted(p.name for p in folder.glob("*.keras")) if folder.is_dir() else []
        raise ExportInputError("model_dir", given, f"no checkpoint checkpoints/{checkpoint}.keras (found: "
                               f"{found or 'none'}); train first or pass "
                               f"--checkpoint={'latest' if checkpoint == 'best' else 'best'}")
    return weights


def read_model_dir(model_dir):
    """`(dataset dict, mean, config dict, summary dict)` of a training run (docs/CONTRACTS.md layout).

    `mean_image.npy` may be missing (mean None) when `dataset.json` or `config.json` records the
    `input_normalization` of the pretrained weights the run started from.

    Raises:
        ExportInputError: `dataset.json` or `mean_image.npy` is missing or unreadable, a file is not JSON.
    """
    given, model_dir = model_dir, Path(model_dir)
    if not (model_dir / "dataset.json").is_file():
        raise ExportInputError("model_dir", given, "has no dataset.json; accepted: a training run's directory "
                               "(docs/CONTRACTS.md)")
    dataset = read_json(model_dir / "dataset.json", given)
    config = read_json(model_dir / "config.json", given) if (model_dir / "config.json").is_file() else {}
    summary = read_json(model_dir / "summary.json", given) if (model_dir / "summary.json").is_file() else {}
    mean = None
    if (model_dir / "mean_image.npy").is_file():
        try:
            mean = np.load(model_dir / "mean_image.npy", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ExportInputError("model_dir", given, f"mean_image.npy cannot be read ({error})") from None
    elif dataset.get(NORMALIZATION_KEY) is None and config.get(NORMALIZATION_KEY) is None:
        raise ExportInputError("model_dir", given, "has no mean_image.npy; accepted: a training run's directory "
                               "(docs/CONTRACTS.md)")
    return dataset, mean, config, summary


FORMATS = targets.FORMATS
"""Export formats (`keras_resnet.export.targets`): a TF Serving SavedModel (`<root>/<version>`), ONNX, OpenVINO IR or
LiteRT (`<root>/<format>/<version>`)."""


def export_from_model_dir(model_dir, export_root, checkpoint="best", version=None, overwrite=False,
                          model_card_extra=None, export_format="saved_model", quantization=None):
    """Exports a training run's checkpoint (the `model_dir` layout of `docs/CONTRACTS.md`) for TF Serving.

    Reads `checkpoints/<checkpoint>.keras` (safe mode), `dataset.json`, `mean_image.npy`, and, when present,
    `config.json` and `summary.json` (test accuracy for the model card). Every file and the destination are
    checked before the checkpoint is loaded, and nothing is written when a check fails.

    An ImageNet-style run (`dataset.json` `preprocessing` "imagenet") is served at its `config.json`
    `image_size` (default: the model's input size, else 224): shorter side `round(256 * N / 224)`, centre
    `N x N` crop and its mean, in the graph; the labels and the card carry its class names. A run that
    started from pretrained weights and records their `input_normalization` (`dataset.json` or
    `config.json`) serves that normalisation instead of the mean (`mean_image.npy` is then optional), and a
    run that started from a tagged set (`config.json` `eval_transform`) its publisher's resize and crop.

    Args:
        model_dir: the training run's directory.
        export_root: directory of the versions, e.g. "saved_models/resnet20".
        checkpoint: "best" or "latest".
        version: positive int; defaults to the next free version.
        overwrite: bool, replace an existing `version`.
        model_card_extra: optional dict merged into the model card.
        export_format: "saved_model" (default), "onnx", "openvino" or "litert" (`keras_resnet.export.targets`).
        quantization: an `keras_resnet.export.int8.Int8Plan` for an int8 "onnx" or "openvino" network, or
            None; without its `data`, the run's own (`config.json` `data`, `data_dir`, `validation_split`).

    Returns:
        `pathlib.Path` of the version directory written.

    Raises:
        ExportInputError: `model_dir` is missing or a file; its checkpoint, `dataset.json` or `mean_image.npy`
            is missing or cannot be read.
        ValueError / FileExistsError / PermissionError: as `export_saved_model`.

    Example:
        >>> export_from_model_dir("runs/resnet20", "saved_models/resnet20", checkpoint="latest")  # writes or reads an export on disk  # doctest: +SKIP
        PosixPath('.../saved_models/resnet20/1')
    """
    target = targets.export_target(export_format)
    weights = checkpoint_path(model_dir, checkpoint)
    dataset, mean, config, summary = read_model_dir(model_dir)
    check_image_size(config.get("image_size"))
    normalization = resolve_normalization(None, None, dataset, config)
    if normalization is not None:
        dataset = dict(dataset, **{NORMALIZATION_KEY: normalization.to_dict()})
        mean = None
    target.check_installed()
    if quantization is not None:
        target.check_quantization(quantization)
        quantization = quantization.for_run(config)
    root, version = versions.plan_destination(target.root(export_root), version, overwrite)
    staging = versions.Staging(root, version)  # the destination is writable: fail here, before loading anything
    try:
        return export_checkpoint(staging, weights, dataset, mean, config, summary, model_card_extra, overwrite,
                                 export_format, quantization)
    except BaseException:
        staging.abort()
        raise


def recorded_transform(config, model_dir):
    """The evaluation transform a run recorded (config.json `eval_transform`: that of the tagged weights it
    started from, at the run's crop), or None.

    Raises:
        ExportInputError: a malformed record.
    """
    from keras_resnet.eval_transform import EvalTransform

    try:
        return EvalTransform.of_run(config)
    except ValueError as error:
        raise ExportInputError("model_dir", model_dir, str(error)) from None


def export_checkpoint(staging, weights, dataset, mean, config, summary, model_card_extra, overwrite,
                      export_format="saved_model", quantization=None) -> Path:
    """Loads the `.keras` checkpoint `weights` (safe mode) and writes it into `staging` as one version."""
    import keras

    import keras_resnet  # noqa: F401  (registers the serializable layers)

    model_dir = weights.parent.parent
    try:
        model = keras.saving.load_model(weights, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - any reader's error: a truncated, foreign or garbage file
        if faults.is_storage_error(error):
            raise
        first = (str(error).strip().splitlines() or [""])[0]
        raise ExportInputError("model_dir", model_dir, f"checkpoints/{weights.name} cannot be loaded "
                               f"({type(error).__name__}: {first[:300]})") from None
    extra = {
        "source": {"model_dir": str(model_dir.absolute()), "checkpoint": str(weights.relative_to(model_dir))},
        "test_accuracy": summary.get("test_accuracy"),
        "test_error": summary.get("test_error"),
        "training_config": config or None,
    }
    extra.update(model_card_extra or {})
    inputs = resolve_inputs(model, dataset, mean, None, None, image_size=config.get("image_size"),
                            eval_transform=recorded_transform(config, model_dir))
    return targets.export_target(export_format).write(staging, model, dataset, inputs, extra, overwrite,
                                                      quantization)
