"""int8 exports: post-training quantization, calibrated on the run's training images, published only after it
was evaluated.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the networks; their top-1 on
the evaluation split is what the gate compares); Jacob et al., "Quantization and Training of Neural Networks
for Efficient Integer-Arithmetic-Only Inference", CVPR 2018 (affine uint8 / int8 quantization, per-channel
weights).

`--quantize=int8` with `--format=onnx` or `--format=openvino` (`keras_resnet.export.targets`):

1. the package's float ONNX graph (uint8 `image` in, the preprocessing inside) is quantized by ONNX Runtime's
   `quantize_static`: QDQ format, int8 weights per output channel (symmetric), uint8 activations, MinMax
   ranges over `calibration_images` (default 320) images of the data's training split (its held-out
   validation images excluded), drawn by `seed` and fed at the network's input size exactly as the export
   takes them (the evaluation geometry, no augmentation); the OpenVINO format converts that QDQ graph into IR
   (int8 convolutions on the CPU plugin);
2. the float and the int8 network are both run by the format's runtime (ONNX Runtime; OpenVINO with
   `INFERENCE_PRECISION_HINT` f32) on every image of the evaluation split (the data's `validation` split, else
   `test`; or of `eval_data`), and their top-1 goes into the model card;
3. an int8 network whose top-1 is more than `max_top1_drop` points (default 0.5) below the float one is
   refused: `Int8Refused` (a `ValueError`, exit 1 on the command line) with one line naming both numbers, and
   nothing is published.

The card's `quantization` section records the method, the calibration set (source, split, image count, seed,
SHA-256 of its decoded pixels and labels in order) and the evaluation (source, split, images, runtime, both
top-1 values and the drop). Needs `onnxruntime` (the `onnx` extra) and TensorFlow (the data pipeline).

Example:
    >>> plan = Int8Plan(data="../shared/datasets/cifar10-jpeg", calibration_images=320)
    >>> plan.checked().max_top1_drop
    0.5
    >>> Int8Plan(data="x", calibration_images=0).checked()
    Traceback (most recent call last):
    ...
    ValueError: --calibration_images must be a positive number of images; received 0.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sys
from pathlib import Path

import numpy as np

from keras_resnet.export import signal_stack

METHOD = ("onnxruntime.quantization.quantize_static: QDQ, int8 weights per output channel (symmetric), uint8 "
          "activations, MinMax calibration")
RUNTIMES = ("onnxruntime", "openvino")
EVAL_BATCH = 100


class Int8Refused(ValueError):
    """An int8 network that lost more top-1 than allowed; the message names both numbers (exit 1)."""


@dataclasses.dataclass(frozen=True)
class Int8Plan:
    """How to calibrate and gate an int8 export (`--quantize=int8` and its flags).

    Attributes:
        data: the data source whose training split calibrates and whose evaluation split gates (`--data`;
            a run's own `config.json` data by default).
        eval_data: a source whose evaluation split gates instead (`--eval_data`), or None.
        calibration_images: training images drawn for calibration (`--calibration_images`).
        max_top1_drop: the most top-1 the int8 network may lose, in percentage points (`--max_top1_drop`; a
            negative value refuses every export, for tests).
        seed: the draw of the calibration images.
        validation_size: training images the run held out (excluded from calibration).
        data_dir: TFDS data directory, for TFDS names.
    """

    data: str | None = None
    eval_data: str | None = None
    calibration_images: int = 320
    max_top1_drop: float = 0.5
    seed: int = 0
    validation_size: float = 0
    data_dir: str | None = None

    def checked(self) -> Int8Plan:
        """Itself, after checking the values; `ValueError` naming the flag otherwise."""
        n = self.calibration_images
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"--calibration_images must be a positive number of images; received {n!r}.")
        if not isinstance(self.max_top1_drop, (int, float)) or not np.isfinite(self.max_top1_drop):
            raise ValueError(f"--max_top1_drop must be a number of top-1 points; received {self.max_top1_drop!r}.")
        return self

    def require_installed(self) -> Int8Plan:
        """Itself when the quantizer (ONNX Runtime) is installed; `ImportError` naming the extra otherwise."""
        require_quantization()
        return self

    def for_run(self, config) -> Int8Plan:
        """The plan of an export from a training run: its data, TFDS directory and held-out images unless
        `--data` was given; `ValueError` naming `--data` when neither says where the images are."""
        if self.data is None and config.get("data"):
            return dataclasses.replace(self, data=str(config["data"]), data_dir=config.get("data_dir"),
                                       validation_size=config.get("validation_split") or 0).checked()
        return self.needing_data("the run's config.json records no data source").checked()

    def needing_data(self, why) -> Int8Plan:
        """Itself when `data` is set; else `ValueError` naming `--data` and `why`."""
        if self.data is None:
            raise ValueError(f"--quantize=int8 needs --data (the images to calibrate on and evaluate with): {why}.")
        return self


def require_quantization():
    """An `ImportError` naming the extra when ONNX Runtime (the quantizer) is missing."""
    try:
        import onnxruntime.quantization  # noqa: F401  (only its presence)
    except ImportError:
        raise ImportError("--quantize=int8 needs ONNX Runtime: pip install 'keras-resnet[onnx]' "
                          "(or pip install onnxruntime).") from None


def data_error(plan, source, reason):
    """The `ExportInputError` of a data source that cannot be read: `--eval_data=...` or `--data=...: reason`
    (exit 2 on the command line)."""
    from keras_resnet.export.saved_model import ExportInputError

    return ExportInputError("eval_data" if plan.eval_data and source == plan.eval_data else "data", source, reason)


def pixel_batches(source, split, inputs, plan, sample=None, batch_size=EVAL_BATCH):
    """`(uint8 images [b, H, W, 3], int labels)` batches of `split` of `source` as the export takes them:
    whole images at the network's size ("cifar"), or the evaluation resize and centre crop ("imagenet", a
    tagged set's own transform when the inputs carry one); `sample` images drawn by `plan.seed`, else all."""
    from keras_resnet import data as data_lib

    kwargs = dict(training=False, mean=np.zeros((1, 1, 3), np.float32), preprocessing=inputs.kind,
                  data_dir=plan.data_dir, seed=plan.seed, sample=sample,
                  validation_size=plan.validation_size if split == "train" else 0)
    if inputs.kind == "imagenet":
        kwargs.update(crop_size=inputs.height, eval_transform=inputs.eval_transform)
    else:
        kwargs["image_size"] = (inputs.height, inputs.width)
    try:
        ds, _ = data_lib.load(source, split, batch_size, **kwargs)
    except (ValueError, FileNotFoundError) as error:
        raise data_error(plan, source, str(error).splitlines()[0]) from None
    for images, labels in ds.as_numpy_iterator():
        yield np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8), labels


def calibration_set(inputs, plan):
    """`(uint8 images, record)`: the calibration images and the card's record of them."""
    batches = list(pixel_batches(plan.data, "train", inputs, plan, sample=plan.calibration_images))
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches]).astype(np.int64)
    digest = hashlib.sha256(images.tobytes())
    digest.update(labels.tobytes())
    record = {"source": str(plan.data), "split": "train", "images": int(len(images)), "seed": int(plan.seed),
              "held_out_validation_images": plan.validation_size or 0,
              "sha256": digest.hexdigest(), "sha256_of": "the decoded uint8 images at the network's input size "
              "and their int64 labels, in the order drawn"}
    return images, record


def quantize_onnx(float_path, int8_path, images, batch=32):
    """Writes the QDQ int8 model of the ONNX file `float_path` to `int8_path`, calibrated on `images`."""
    from onnxruntime import quantization as q

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"image": images[i:i + batch]} for i in range(0, len(images), batch)])

        def get_next(self):
            return next(self.batches, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to run shape inference first: the graph already has its shapes
    try:
        q.quantize_static(str(float_path), str(int8_path), Reader(), quant_format=q.QuantFormat.QDQ,
                          per_channel=True, activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                          calibrate_method=q.CalibrationMethod.MinMax)
    finally:
        root.setLevel(level)


def runtime_logits(runtime, onnx_path):
    """A function `uint8 batch -> float logits` running the ONNX file in `runtime` (OpenVINO: converted, f32)."""
    if runtime == "onnxruntime":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(["logits"], {"image": x})[0]
    import openvino

    compiled = openvino.Core().compile_model(openvino.convert_model(str(onnx_path)), "CPU",
                                             {"INFERENCE_PRECISION_HINT": "f32"})
    output = compiled.output("logits")
    return lambda x: compiled(x)[output]


def runtime_name(runtime) -> str:
    """The runtime and its version, for the card."""
    import importlib

    module = importlib.import_module(runtime)
    suffix = " (CPU, INFERENCE_PRECISION_HINT f32)" if runtime == "openvino" else " (CPUExecutionProvider)"
    return f"{runtime} {module.__version__}{suffix}"


def compare_top1(float_logits, int8_logits, inputs, plan):
    """`(top-1 float, top-1 int8, images, split, source)` over the evaluation split, both in one pass."""
    from keras_resnet import data as data_lib

    source = plan.eval_data or plan.data
    try:
        split = data_lib.default_eval_split(source, plan.data_dir)
    except (ValueError, FileNotFoundError) as error:
        raise data_error(plan, source, str(error).splitlines()[0]) from None
    hits, count = np.zeros(2, np.int64), 0
    for images, labels in pixel_batches(source, split, inputs, plan):
        hits += [int(np.sum(np.argmax(f(images), -1) == labels)) for f in (float_logits, int8_logits)]
        count += len(labels)
    if count == 0:
        raise data_error(plan, source, f"the {split} split has no images to evaluate the int8 network on")
    return float(hits[0] / count), float(hits[1] / count), count, split, str(source)


def quantize_staged(onnx_path, inputs, plan, runtime="onnxruntime", log=None) -> dict:
    """Replaces the staged float ONNX file `onnx_path` with its int8 network, after calibrating, evaluating
    and gating it (see the module docstring); returns the card's `quantization` section.

    Raises:
        Int8Refused: the int8 network lost more than `plan.max_top1_drop` points of top-1.
        ExportInputError: the data cannot be read (naming `--data` or `--eval_data`).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"`runtime` must be one of {RUNTIMES}; received {runtime!r}.")
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    onnx_path = Path(onnx_path)
    float_path = onnx_path.with_name("float.onnx")
    onnx_path.replace(float_path)
    log(f"int8: calibrating on {plan.calibration_images} training images of {plan.data}")
    images, calibration = calibration_set(inputs, plan)
    quantize_onnx(float_path, onnx_path, images)
    log(f"int8: evaluating the float and int8 networks on {plan.eval_data or plan.data} ({runtime})")
    with signal_stack.kept():  # OpenVINO's compiled models leave the thread on a freed signal stack otherwise
        top1_float, top1_int8, count, split, source = compare_top1(runtime_logits(runtime, float_path),
                                                                   runtime_logits(runtime, onnx_path), inputs, plan)
    float_path.unlink()
    drop = round(100.0 * (top1_float - top1_int8), 4)
    if drop > plan.max_top1_drop:
        raise Int8Refused(f"--quantize=int8: top-1 on the {split} split of {source} ({count:,} images) fell from "
                          f"{100 * top1_float:.2f}% (float) to {100 * top1_int8:.2f}% (int8), {drop:.2f} points, more "
                          f"than --max_top1_drop={plan.max_top1_drop:g}; nothing was published.")
    log(f"int8: top-1 {100 * top1_float:.2f}% float, {100 * top1_int8:.2f}% int8 on {count:,} images")
    from onnxruntime import __version__ as ort_version

    return {"dtype": "int8", "method": f"{METHOD} (onnxruntime {ort_version})", "calibration": calibration,
            "evaluation": {"source": source, "split": split, "images": count, "runtime": runtime_name(runtime),
                           "top1_float": top1_float, "top1_int8": top1_int8, "top1_drop_points": drop,
                           "max_top1_drop_points": float(plan.max_top1_drop)}}
