"""ONNX export: the BN-folded network as `model.onnx`, versioned and atomic, next to the SavedModel versions.

For people who serve with ONNX Runtime or OpenVINO. The network is the same float32 logits network as
the SavedModel's (`keras_resnet.export.serving_model`, BN folded into the convolutions), written by
`keras_resnet.inference.onnx_graph` with the training preprocessing in the graph:

- input `image`: uint8 RGB pixels `[batch, H, W, 3]` (NHWC, dynamic batch axis) at the network's input
  size; `input_dtype="float32"` takes float pixels (0..255) with the same preprocessing instead.
  ImageNet-style exports expect the caller to resize and centre-crop to `H x W` first (the card's
  `preprocessing.geometry` says how); the SavedModel does that in its graph;
- preprocessing `(float(image) - offset) * scale` per channel: the training formula `(image - mean) / 255`
  (mean in 0..255 units), or the normalisation of pretrained weights, `(x / 255 - mean) / std` written as
  `(x - 255 * mean) * (1 / (255 * std))` (`keras_resnet.export.serving_inputs`); for BGR (Caffe) weights the
  graph still takes RGB pixels: the offset and scale are given in RGB order and the stem convolution's
  kernel has its input channels reversed (`serving_model.reverse_input_channels`, exact);
- outputs `logits` and `probabilities` (softmax), float32 `[batch, classes]`; opset `onnx_graph.OPSET`.

Layout: `<export_root>/onnx/<version>/{model.onnx, labels.txt, model_card.json}`. The folder `onnx` is not
a number, so TF Serving, which polls `<export_root>/<version>/`, ignores it. A version is staged in a
temporary directory and renamed into place (`keras_resnet.export.versions`), exactly like a SavedModel.

Needs the `onnx` package (the `onnx` extra: `pip install "keras-resnet[onnx]"`); not TensorFlow.

Example:
    >>> import numpy as np, keras_resnet
    >>> export_onnx(keras_resnet.build("resnet8"), "/tmp/resnet8", mean=np.zeros((32, 32, 3)))  # writes or reads an export on disk  # doctest: +SKIP
    PosixPath('/tmp/resnet8/onnx/1')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_resnet import faults
from keras_resnet.export import card as card_lib
from keras_resnet.export import serving_model, targets, versions
from keras_resnet.export.serving_inputs import dataset_dict, resolve_inputs

ONNX_DIR = "onnx"
"""The sub-folder of an export root that holds the ONNX versions."""
ONNX_FILE = "model.onnx"
INPUT_DTYPES = ("uint8", "float32")


def require_onnx():
    """An `ImportError` naming the extra to install when the `onnx` package is missing."""
    try:
        import onnx  # noqa: F401  (only its presence)
    except ImportError:
        raise ImportError("ONNX export needs the `onnx` package: pip install 'keras-resnet[onnx]' "
                          "(or pip install onnx).") from None


def onnx_root(export_root) -> Path:
    """`<export_root>/onnx`, where the ONNX versions live."""
    return Path(export_root) / ONNX_DIR


def onnx_preprocessing(inputs):
    """`(offset, scale)` float32 arrays for `onnx_graph.to_onnx`, in RGB order: `(x - offset) * scale`.

    The training formula: the mean image and 1/255. Pretrained weights: `mean / scale` and `scale / std` per
    channel (e.g. `255 * mean` and `1 / (255 * std)` for "torch"), reversed to RGB order for BGR networks.
    """
    offset = np.asarray(inputs.mean, np.float32)
    scale = np.asarray(inputs.multiplier, np.float32).reshape(-1)
    if inputs.channel_order == "BGR":
        offset, scale = offset[..., ::-1], scale[::-1]
    return np.ascontiguousarray(offset), np.ascontiguousarray(scale)


def onnx_network(model, inputs, input_dtype="uint8"):
    """`(prepared, proto, card section)`: the folded network (`serving_model.ServingModel`), its ONNX graph with
    the preprocessing inside, and the card's description of that graph's inputs, outputs and preprocessing."""
    from keras_resnet.inference import onnx_graph

    prepared = serving_model.prepare_serving_model(model)
    offset, scale = onnx_preprocessing(inputs)
    network = serving_model.reverse_input_channels(prepared.model) if inputs.channel_order == "BGR" else prepared.model
    proto = onnx_graph.to_onnx(network, offset=offset, scale=scale, input_dtype=input_dtype, name=model.name)
    section = {"opset": onnx_graph.OPSET, "class_names": card_lib.LABELS_FILE,
               "inputs": {"image": {"dtype": input_dtype, "shape": [None, inputs.height, inputs.width, 3],
                                    "layout": "NHWC"}},
               "outputs": {"logits": {"dtype": "float32", "shape": [None, len(inputs.class_names)]},
                           "probabilities": {"dtype": "float32", "shape": [None, len(inputs.class_names)]}},
               "preprocessing_in_graph": "(float(image) - offset) * scale, per channel, RGB",
               "offset": [float(v) for v in np.ravel(offset)] if offset.size <= 3 else list(offset.shape),
               "scale": [float(v) for v in np.ravel(scale)],
               "caller_geometry": None if inputs.kind == "cifar" else inputs.geometry_text()}
    return prepared, proto, section


def file_card(model, prepared, inputs, dataset, staging, extra, export_format, section):
    """The model card of a single-file format (ONNX, OpenVINO, LiteRT): the SavedModel's card without its
    signatures, with `format` and the format's own section."""
    card = card_lib.model_card(model, prepared, inputs, dataset, {}, staging.version, extra)
    card.pop("signatures", None)
    card["format"] = export_format
    card[export_format] = section
    card["xla"] = None
    return card


def publish_with_card(staging, card, overwrite) -> Path:
    """Writes `model_card.json` beside the model file(s) in `staging` (its version set), then publishes it."""
    return staging.publish(overwrite, before_rename=lambda version: card_lib.write_card(staging.path, card, version))


def write_onnx_version(staging, model, dataset, inputs, extra, overwrite, input_dtype="uint8",
                       quantization=None) -> Path:
    """Prepares the folded network, writes `model.onnx`, labels and card into `staging`, and publishes it; with
    `quantization` (`keras_resnet.export.int8.Int8Plan`) the int8 network, once it passed its gate."""
    prepared, proto, section = onnx_network(model, inputs, input_dtype)
    (staging.path / ONNX_FILE).write_bytes(proto.SerializeToString())
    if quantization is not None:
        from keras_resnet.export import int8

        section["quantization"] = int8.quantize_staged(staging.path / ONNX_FILE, inputs, quantization)
    faults.site("export.onnx_written")
    card_lib.write_labels(staging.path, inputs.class_names)
    card = file_card(model, prepared, inputs, dataset, staging, extra, "onnx", dict(file=ONNX_FILE, **section))
    return publish_with_card(staging, card, overwrite)


def export_onnx(model, export_root, *, dataset_info=None, mean=None, class_names=None, preprocessing=None,
                version=None, overwrite=False, model_card_extra=None, input_dtype="uint8", normalization=None,
                quantization=None):
    """Exports a Keras classifier as a versioned ONNX model, atomically (see the module docstring).

    Args:
        model, dataset_info, mean, class_names, preprocessing, version, overwrite, model_card_extra,
            normalization: as `keras_resnet.export.export_saved_model`.
        export_root: the model's export root; the version goes to `<export_root>/onnx/<version>`.
        input_dtype: "uint8" (default) or "float32" pixels.
        quantization: an `keras_resnet.export.int8.Int8Plan` (its `data` required) for an int8 network, gated
            on its top-1; None (default) for float32.

    Returns:
        `pathlib.Path` of the version directory written.

    Raises:
        ValueError: bad model or arguments (names them). FileExistsError: `version` exists and not
        `overwrite`. ImportError: the `onnx` package is missing.
    """
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"`input_dtype` must be one of {INPUT_DTYPES}; received {input_dtype!r}.")
    require_onnx()
    if quantization is not None:
        targets.export_target("onnx").check_quantization(quantization.needing_data("give the images to calibrate on"))
    dataset = dataset_dict(dataset_info)
    inputs = resolve_inputs(model, dataset, mean, class_names, preprocessing, normalization)
    root, version = versions.plan_destination(onnx_root(export_root), version, overwrite)
    staging = versions.Staging(root, version)
    try:
        return write_onnx_version(staging, model, dataset, inputs, model_card_extra, overwrite, input_dtype,
                                  quantization)
    except BaseException:
        staging.abort()
        raise
