"""LiteRT (TensorFlow Lite) export: the serving graph as `model.tflite`, versioned and atomic.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the networks; the
evaluation preprocessing of sections 3.4 / 4.2 is in the graph).

The file is the SavedModel's `serving_default` signature (`keras_resnet.export.serving`: the BN-folded
float32 network, uint8 `images` `[batch, H, W, 3]` with a dynamic batch axis, the training preprocessing and,
for ImageNet-style exports, the resize and centre crop inside; outputs `probabilities`, `classes`,
`class_names`) converted by TensorFlow's LiteRT converter from that signature of the saved and reloaded
module, its variables frozen into the file, to LiteRT's builtin operators only. A graph the builtins cannot express is refused by
name, before anything is published. Run it with `ai_edge_litert.interpreter.Interpreter` (the `litert`
extra: `pip install "keras-resnet[litert]"`), `get_signature_runner("serving_default")(images=...)`.

Layout: `<export_root>/litert/<version>/{model.tflite, labels.txt, model_card.json}`. Writing needs
TensorFlow (its converter); running needs only LiteRT.

Example:
    >>> import numpy as np, keras_resnet
    >>> export_litert(keras_resnet.build("resnet8"), "/tmp/resnet8", mean=np.zeros((32, 32, 3)))  # writes or reads an export on disk  # doctest: +SKIP
    PosixPath('/tmp/resnet8/litert/1')
"""

from __future__ import annotations

from pathlib import Path

from keras_resnet import faults
from keras_resnet.export import card as card_lib
from keras_resnet.export import onnx_export, serving_model, targets

LITERT_FILE = "model.tflite"
SIGNATURE = "serving_default"


def require_litert():
    """A `RuntimeError` unless Keras runs on TensorFlow, whose converter writes LiteRT files."""
    from keras_resnet.export.saved_model import require_tensorflow

    require_tensorflow()


def convert(module, signatures, workdir):
    """The LiteRT flatbuffer (bytes) of `module`'s `serving_default`, builtin operators only.

    The module is first saved as a SavedModel under `workdir` (removed after) and loaded back: the converter
    freezes the loaded graph's variables into constants; from the live module's Keras variables it writes
    a graph whose outputs are NaN (TensorFlow 2.21).

    Raises:
        ValueError: the converter's first line, naming `--format=litert`.
    """
    import shutil

    import tensorflow as tf

    saved = Path(workdir) / "saved_model.tmp"
    tf.saved_model.save(module, str(saved), signatures=signatures,
                        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
    try:
        loaded = tf.saved_model.load(str(saved))
        return convert_function(loaded, loaded.signatures[SIGNATURE])
    finally:
        shutil.rmtree(saved, ignore_errors=True)


def convert_function(trackable, function):
    """`convert`'s last step: the converter on one concrete function of a loaded SavedModel."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], trackable)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises ConverterError and others, one line
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ValueError(f"--format=litert: this serving graph cannot be written with LiteRT's builtin "
                         f"operators ({first}); export --format=saved_model or onnx instead.") from None


def write_litert_version(staging, model, dataset, inputs, extra, overwrite) -> Path:
    """Builds the serving module, converts its `serving_default` signature, writes the file, labels and card
    into `staging`, and publishes it."""
    from keras_resnet.export import serving

    prepared = serving_model.prepare_serving_model(model)
    module, signatures, specs = serving.build_serving_module(prepared, inputs)
    (staging.path / LITERT_FILE).write_bytes(convert(module, signatures, staging.path))
    faults.site("export.litert_written")
    card_lib.write_labels(staging.path, inputs.class_names)
    classes = len(inputs.class_names)
    shape = [None, None, None, 3] if inputs.any_size else [None, inputs.height, inputs.width, 3]
    section = {"file": LITERT_FILE, "signature": SIGNATURE, "class_names": card_lib.LABELS_FILE,
               "inputs": {"images": {"dtype": "uint8", "shape": shape, "layout": "NHWC"}},
               "outputs": {"probabilities": {"dtype": "float32", "shape": [None, classes]},
                           "classes": {"dtype": "int64", "shape": [None]},
                           "class_names": {"dtype": "string", "shape": [None]}},
               "operators": "LiteRT builtins only", "geometry": inputs.geometry_text(),
               "runtime": "ai_edge_litert.interpreter.Interpreter (pip install 'keras-resnet[litert]')"}
    card = onnx_export.file_card(model, prepared, inputs, dataset, staging, extra, "litert", section)
    return onnx_export.publish_with_card(staging, card, overwrite)


def export_litert(model, export_root, *, dataset_info=None, mean=None, class_names=None, preprocessing=None,
                  version=None, overwrite=False, model_card_extra=None, normalization=None):
    """Exports a Keras classifier as a versioned LiteRT file, atomically (see the module docstring).

    Args:
        model, dataset_info, mean, class_names, preprocessing, version, overwrite, model_card_extra,
            normalization: as `keras_resnet.export.export_saved_model`.
        export_root: the model's export root; the version goes to `<export_root>/litert/<version>`.

    Returns:
        `pathlib.Path` of the version directory written.

    Raises:
        ValueError: bad model or arguments, or a graph LiteRT's builtins cannot express (names them).
        FileExistsError: `version` exists and not `overwrite`. RuntimeError: Keras is not on TensorFlow.
    """
    return targets.export_model("litert", model, export_root, dataset_info=dataset_info, mean=mean,
                                class_names=class_names, preprocessing=preprocessing, version=version,
                                overwrite=overwrite, model_card_extra=model_card_extra, normalization=normalization)
