"""OpenVINO export: the BN-folded network as OpenVINO IR (`model.xml` + `model.bin`), versioned and atomic.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the networks; the
evaluation preprocessing of sections 3.4 / 4.2 is in the graph).

The IR is the package's own ONNX graph (`keras_resnet.export.onnx_export.onnx_network`: uint8 NHWC `image`
with a dynamic batch axis, the training preprocessing inside, outputs `logits` and `probabilities`)
converted by OpenVINO's `convert_model` and saved with float32 weights (`compress_to_fp16=False`), so the
file is exactly the ONNX graph. OpenVINO's CPU plugin *infers* in bfloat16 by default on processors with
AVX-512 BF16 or AMX (its `INFERENCE_PRECISION_HINT`); compile with `{"INFERENCE_PRECISION_HINT": "f32"}`
for float32 results. ImageNet-style exports expect the caller to resize and crop first, as ONNX's do (the
card's `caller_geometry`).

Layout: `<export_root>/openvino/<version>/{model.xml, model.bin, labels.txt, model_card.json}`. Needs the
`openvino` and `onnx` packages (the `openvino` extra: `pip install "keras-resnet[openvino]"`).

Example:
    >>> import numpy as np, keras_resnet
    >>> export_openvino(keras_resnet.build("resnet8"), "/tmp/resnet8", mean=np.zeros((32, 32, 3)))  # writes or reads an export on disk  # doctest: +SKIP
    PosixPath('/tmp/resnet8/openvino/1')
"""

from __future__ import annotations

from pathlib import Path

from keras_resnet import faults
from keras_resnet.export import card as card_lib
from keras_resnet.export import onnx_export, targets

XML_FILE, BIN_FILE = "model.xml", "model.bin"
PRECISION_NOTE = ("float32 weights; the CPU plugin infers in bf16 by default on processors with AVX-512 BF16 / AMX: "
                  "compile with {'INFERENCE_PRECISION_HINT': 'f32'} for float32 results")
INT8_NOTE = ("int8 weights and activations (the QDQ graph of keras_resnet.export.int8) in the int8 convolutions of "
             "the CPU plugin; the layers left in float infer in bf16 by default on processors with AVX-512 BF16 / AMX")


def require_openvino():
    """An `ImportError` naming the extra to install when `openvino` or `onnx` is missing."""
    try:
        import onnx  # noqa: F401  (only their presence)
        import openvino  # noqa: F401
    except ImportError:
        raise ImportError("OpenVINO export needs the `openvino` and `onnx` packages: pip install "
                          "'keras-resnet[openvino]' (or pip install openvino onnx).") from None


def write_openvino_version(staging, model, dataset, inputs, extra, overwrite, quantization=None) -> Path:
    """Prepares the folded network, converts its ONNX graph to IR, writes it, labels and card into `staging`,
    and publishes it; with `quantization` (`keras_resnet.export.int8.Int8Plan`) the IR of the int8 (QDQ)
    graph, once it passed its gate in OpenVINO."""
    import openvino

    prepared, proto, section = onnx_export.onnx_network(model, inputs)
    staged_onnx = staging.path / onnx_export.ONNX_FILE
    staged_onnx.write_bytes(proto.SerializeToString())
    if quantization is not None:
        from keras_resnet.export import int8

        section["quantization"] = int8.quantize_staged(staged_onnx, inputs, quantization, runtime="openvino")
    converted = openvino.convert_model(str(staged_onnx))
    openvino.save_model(converted, str(staging.path / XML_FILE), compress_to_fp16=False)
    staged_onnx.unlink()
    faults.site("export.openvino_written")
    card_lib.write_labels(staging.path, inputs.class_names)
    section = dict(files=[XML_FILE, BIN_FILE], converter=f"openvino.convert_model {openvino.__version__} of the "
                   "package's ONNX graph", precision=INT8_NOTE if quantization else PRECISION_NOTE,
                   **section)
    card = onnx_export.file_card(model, prepared, inputs, dataset, staging, extra, "openvino", section)
    return onnx_export.publish_with_card(staging, card, overwrite)


def export_openvino(model, export_root, *, dataset_info=None, mean=None, class_names=None, preprocessing=None,
                    version=None, overwrite=False, model_card_extra=None, normalization=None, quantization=None):
    """Exports a Keras classifier as versioned OpenVINO IR, atomically (see the module docstring).

    Args:
        model, dataset_info, mean, class_names, preprocessing, version, overwrite, model_card_extra,
            normalization: as `keras_resnet.export.export_saved_model`.
        export_root: the model's export root; the version goes to `<export_root>/openvino/<version>`.
        quantization: an `keras_resnet.export.int8.Int8Plan` (its `data` required) for the IR of an int8
            network, gated on its top-1 in OpenVINO; None (default) for float32.

    Returns:
        `pathlib.Path` of the version directory written.

    Raises:
        ValueError: bad model or arguments (names them). FileExistsError: `version` exists and not
        `overwrite`. ImportError: `openvino` or `onnx` is missing.
    """
    return targets.export_model("openvino", model, export_root, dataset_info=dataset_info, mean=mean,
                                class_names=class_names, preprocessing=preprocessing, version=version,
                                overwrite=overwrite, model_card_extra=model_card_extra, normalization=normalization,
                                quantization=quantization)
