"""Export formats, resolved once: where a format's versions live, what it needs installed, and its writer.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the networks served; the
evaluation preprocessing of section 3.4 / 4.2 goes into every format's graph).

Every format writes the same BN-folded float32 network (`keras_resnet.export.serving_model`) with uint8
input, the training preprocessing inside, a dynamic batch axis, `labels.txt` and a model card, into a
versioned directory staged and renamed into place (`keras_resnet.export.versions`):

| format | versions in | files | runtime (extra) |
| --- | --- | --- | --- |
| `saved_model` | `<root>/<version>` | SavedModel, `assets/` | TF Serving, TensorFlow |
| `onnx` | `<root>/onnx/<version>` | `model.onnx` | ONNX Runtime (`onnx`) |
| `openvino` | `<root>/openvino/<version>` | `model.xml`, `model.bin` | OpenVINO (`openvino`) |
| `litert` | `<root>/litert/<version>` | `model.tflite` | LiteRT (`litert`) |

`onnx` and `openvino` also write int8 networks (`quantization=`, `--quantize=int8`): calibrated, evaluated and
gated by `keras_resnet.export.int8`.

Example:
    >>> target = export_target("openvino")
    >>> target.subdir, target.writes
    ('openvino', ('model.xml', 'model.bin'))
    >>> export_target("tflite")
    Traceback (most recent call last):
    ...
    ValueError: `export_format` (--format) must be one of ('saved_model', 'onnx', 'openvino', 'litert'); received 'tflite'.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class ExportTarget:
    """One export format: `name` (`--format`), `subdir` of the export root holding its versions (None: the
    root itself, as TF Serving polls it), the files a version holds, and the module and functions that check
    its packages (`require`) and write a staged version (`writer`); `quantizes`: whether `--quantize=int8`
    applies (`keras_resnet.export.int8`)."""

    name: str
    subdir: str | None
    writes: tuple
    module: str
    require: str
    writer: str
    quantizes: bool = False

    def root(self, export_root) -> Path:
        """The directory of this format's versions under `export_root`."""
        return Path(export_root) if self.subdir is None else Path(export_root) / self.subdir

    def check_installed(self):
        """Raises `ImportError` naming the extra to install when the format's packages are missing."""
        getattr(importlib.import_module(self.module), self.require)()

    def refuse_float_only(self):
        """`ValueError` naming the flags when this format has no int8 networks."""
        if not self.quantizes:
            accepted = " or ".join(f"--format={t.name}" for t in TARGETS if t.quantizes)
            raise ValueError(f"--quantize=int8 applies to {accepted}; received --format={self.name}.")

    def check_quantization(self, quantization):
        """`ValueError` naming the flags when `quantization` (an `int8.Int8Plan`) is given to a float-only
        format; ImportError when its packages are missing."""
        if quantization is None:
            return
        self.refuse_float_only()
        quantization.checked().require_installed()

    def write(self, staging, model, dataset, inputs, extra, overwrite, quantization=None) -> Path:
        """Writes and publishes one version into `staging` (`versions.Staging`), int8 with `quantization`;
        returns its directory."""
        writer = getattr(importlib.import_module(self.module), self.writer)
        if quantization is None:
            return writer(staging, model, dataset, inputs, extra, overwrite)
        return writer(staging, model, dataset, inputs, extra, overwrite, quantization=quantization)


TARGETS = (
    ExportTarget("saved_model", None, ("saved_model.pb", "variables/", "assets/"), "keras_resnet.export.saved_model",
                 "require_tensorflow", "write_version"),
    ExportTarget("onnx", "onnx", ("model.onnx",), "keras_resnet.export.onnx_export", "require_onnx",
                 "write_onnx_version", quantizes=True),
    ExportTarget("openvino", "openvino", ("model.xml", "model.bin"), "keras_resnet.export.openvino_export",
                 "require_openvino", "write_openvino_version", quantizes=True),
    ExportTarget("litert", "litert", ("model.tflite",), "keras_resnet.export.litert_export", "require_litert",
                 "write_litert_version"),
)
FORMATS = tuple(t.name for t in TARGETS)


def export_target(name) -> ExportTarget:
    """The `ExportTarget` of `--format=name`.

    Raises:
        ValueError: an unknown format, naming the flag and the accepted ones.
    """
    for target in TARGETS:
        if target.name == name:
            return target
    raise ValueError(f"`export_format` (--format) must be one of {FORMATS}; received {name!r}.")


def export_model(export_format, model, export_root, *, dataset_info=None, mean=None, class_names=None,
                 preprocessing=None, version=None, overwrite=False, model_card_extra=None, normalization=None,
                 quantization=None) -> Path:
    """Exports a Keras classifier in `export_format` as one version, atomically: the arguments are checked and
    the destination planned before anything is written, and a failed write leaves no version.

    Args:
        export_format: a name of `FORMATS`.
        model, export_root, dataset_info, mean, class_names, preprocessing, version, overwrite, model_card_extra,
            normalization: as `keras_resnet.export.export_saved_model` (the version goes to the format's root).
        quantization: an `keras_resnet.export.int8.Int8Plan` for an int8 network ("onnx", "openvino"; its `data`
            is required), or None for float32.

    Returns:
        `pathlib.Path` of the version directory written.
    """
    from keras_resnet.export import versions
    from keras_resnet.export.serving_inputs import dataset_dict, resolve_inputs

    target = export_target(export_format)
    target.check_installed()
    target.check_quantization(quantization and quantization.needing_data("give the images it is calibrated on"))
    dataset = dataset_dict(dataset_info)
    inputs = resolve_inputs(model, dataset, mean, class_names, preprocessing, normalization)
    root, version = versions.plan_destination(target.root(export_root), version, overwrite)
    staging = versions.Staging(root, version)
    try:
        return target.write(staging, model, dataset, inputs, model_card_extra, overwrite, quantization)
    except BaseException:
        staging.abort()
        raise
