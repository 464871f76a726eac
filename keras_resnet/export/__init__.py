"""SavedModel export for TF Serving: versioned, atomic, with serving signatures that preprocess like training.

TensorFlow-only when writing (it traces the model into `tf.function` signatures and writes a TensorFlow
SavedModel with `tf.saved_model.save`); importing this package loads neither TensorFlow nor Keras.

Layout (TF Serving's convention)::

    <export_root>/<version>/saved_model.pb
                            variables/
                            assets/labels.txt        one class name per line, in label order
                            assets/model_card.json   model, dataset, input specs, preprocessing, accuracy

`<version>` is an integer, the next free one by default. A version is written into a temporary directory
beside it (`<export_root>/.tmp-<version>-*`, a name TF Serving ignores) and renamed into place, so a
polling model server never sees a half-written version; an existing version is replaced only with
`overwrite=True`.

Signatures (all return `probabilities` float32 `[None, classes]`, `classes` int64 `[None]` (top-1 id) and
`class_names` string `[None]` (top-1 label)):

- `serving_default`: uint8 RGB images `[None, H, W, 3]`. CIFAR-style models take the training size;
  ImageNet-style models take any size and resize the shorter side to 256 (bilinear) and crop the centre
  224x224 in the graph (scaled for other crop sizes), as in evaluation.
- `serve_bytes`: `tf.string [None]` of encoded JPEG/PNG images (TF Serving's `{"b64": ...}`).
- `logits`: float32 preprocessed images `[None, H, W, 3]` (the network's input, already normalised); also
  returns `logits`.

Preprocessing is the training formula of `docs/CONTRACTS.md`, `(float32(image) - mean) / 255` with the
mean image (0..255 units) stored in the SavedModel as the variable `mean_image`; for pretrained weights
(`export_pretrained`, `normalization=`, or a run recording `input_normalization`) it is the normalisation
they were trained with, e.g. `(x / 255 - mean) / std` per channel for the akamaster CIFAR-10 and
torchvision models, Caffe's BGR mean subtraction for keras.applications' (the `logits` signature then takes
`keras_resnet.preprocess_input`'s output). The exported network is a
float32 copy of the model whatever precision policy it was trained under, its classifier rebuilt without
activation to expose logits; no function is XLA-compiled.

Modules, one job each:

- `versions`: atomic versioned publishing (`existing_versions`, `next_version`, `plan_destination`, `Staging`);
- `serving_inputs`: the inputs of an export resolved and checked (`resolve_inputs` -> `ServingInputs`):
  class names, preprocessing kind, input size, mean; where a new in-graph preprocessing is added;
- `serving_model`: the float32 logits network (`prepare_serving_model` -> `ServingModel`), with the graph
  transforms (`DEFAULT_TRANSFORMS`: BN folded into the convolutions) applied after the copy;
- `serving`: the `tf.Module` and its three signatures (`ServingModule`, `build_serving_module`);
- `card`: `assets/model_card.json` and `assets/labels.txt`;
- `saved_model`: `export_saved_model`, `export_from_model_dir` (the steps above, in order);
- `pretrained`: `export_pretrained`, a named network with pretrained weights, no training run;
- `feature_export`: `export_features`, a backbone's feature pyramid (`keras_resnet.features`) as a SavedModel;
- `onnx_export`: `export_onnx`, the same network as ONNX in `<export_root>/onnx/<version>/model.onnx`;
- `openvino_export`: `export_openvino`, that ONNX graph as OpenVINO IR in `<export_root>/openvino/<version>/`;
- `litert_export`: `export_litert`, the SavedModel's `serving_default` as `<export_root>/litert/<version>/model.tflite`;
- `int8`: `--quantize=int8`, a calibrated int8 ONNX graph gated on top-1 (`Int8Plan`, `Int8Refused`);
- `signal_stack`: `kept()`, the thread's alternate signal stack put back after OpenVINO's compiled models;
- `targets`: the formats (`--format`), each resolved once into an `ExportTarget` (root, packages, writer);
- `contract`: `SIGNATURES`, `OUTPUT_KEYS`;
- `cli` (+ `__main__`): the command line, absl flags in their own `FlagValues`.

Example:
    >>> import keras_resnet
    >>> from keras_resnet import export
    >>> path = export.export_from_model_dir("runs/resnet20", "saved_models/resnet20")  # writes or reads an export on disk  # doctest: +SKIP
    >>> path.name  # writes or reads an export on disk  # doctest: +SKIP
    '1'

Command line::

    python -m keras_resnet.export --model_dir=runs/resnet20 --export_dir=saved_models/resnet20 \
        [--version N] [--overwrite] [--checkpoint best|latest] [--format saved_model|onnx|openvino|litert]
        [--quantize=int8 [--data=DATA] [--eval_data=DATA] [--calibration_images=320] [--max_top1_drop=0.5]]
    python -m keras_resnet.export --model=resnet56 --weights=cifar10 --export_dir=saved_models/resnet56
"""

from keras_resnet.export.contract import OUTPUT_KEYS, SIGNATURES
from keras_resnet.export.serving_inputs import NORMALIZATION_KEY, PREPROCESSING_KINDS
from keras_resnet.export.feature_export import export_features
from keras_resnet.export.int8 import Int8Plan, Int8Refused
from keras_resnet.export.litert_export import export_litert
from keras_resnet.export.onnx_export import export_onnx
from keras_resnet.export.openvino_export import export_openvino
from keras_resnet.export.pretrained import CIFAR10_CLASS_NAMES, export_pretrained
from keras_resnet.export.saved_model import (CHECKPOINTS, FORMATS, ExportInputError, export_from_model_dir,
                                             export_saved_model)
from keras_resnet.export.targets import export_model
from keras_resnet.export.versions import existing_versions, next_version

__all__ = [
    "CHECKPOINTS",
    "CIFAR10_CLASS_NAMES",
    "ExportInputError",
    "FORMATS",
    "Int8Plan",
    "Int8Refused",
    "NORMALIZATION_KEY",
    "OUTPUT_KEYS",
    "PREPROCESSING_KINDS",
    "SIGNATURES",
    "existing_versions",
    "export_features",
    "export_litert",
    "export_model",
    "export_onnx",
    "export_openvino",
    "export_pretrained",
    "export_from_model_dir",
    "export_saved_model",
    "main",
    "next_version",
]


def main(argv=None):
    """The command line (`keras_resnet.export.cli.main`): exports a run, prints the version directory.

    Args:
        argv: the arguments after the program name (default `sys.argv[1:]`).

    Returns:
        0. Raises `SystemExit` 2 for a bad command line or a named file that cannot be used, 1 when the
        export fails otherwise (see `cli`).

    Example:
        >>> main(["--model_dir=runs/resnet20", "--export_dir=saved_models/resnet20"])  # writes or reads an export on disk  # doctest: +SKIP
    """
    from keras_resnet.export import cli

    return cli.main(argv)
