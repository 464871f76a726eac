"""Command line of the export: `python -m keras_resnet.export --model_dir=... --export_dir=...`.

Two sources, exclusive: a training run (`--model_dir`) or published pretrained weights
(`--model=resnet56 --weights=cifar10`, `keras_resnet.export.pretrained`: their input normalisation in the
serving graph).

Flags (absl, like every other entry point; `--flag=value` and `--flag value` both work):

- `--model_dir`: the training run's directory (docs/CONTRACTS.md layout);
- `--model` and `--weights` (instead of `--model_dir`): a network name (`resnet56`) and `cifar10`,
  `imagenet` or a weights file; `--class_names=FILE` (one name per line) names the classes (default:
  CIFAR-10's for `cifar10`, else the label indices); `--stride_in_3x3` for torchvision's bottleneck files;
- `--export_dir` (required): the model's version root, e.g. `saved_models/resnet20`;
- `--version`: the version number (default: the next free one);
- `--overwrite`: replace an existing `--version`;
- `--checkpoint`: `best` (default) or `latest`;
- `--format`: `saved_model` (default, `<export_dir>/<version>`), `onnx` (`<export_dir>/onnx/<version>/model.onnx`,
  needs the `onnx` extra), `openvino` (`<export_dir>/openvino/<version>/model.xml`, the `openvino` extra) or
  `litert` (`<export_dir>/litert/<version>/model.tflite`; its runtime is the `litert` extra): the same BN-folded
  network, uint8 NHWC input with the preprocessing in the graph (`keras_resnet.export.targets`);
- `--quantize=int8` (with `--format=onnx` or `openvino`): an int8 network (`keras_resnet.export.int8`),
  calibrated on `--calibration_images` (default 320) training images of `--data` (default: the run's own data;
  required with `--model`), evaluated against the float network on the evaluation split of `--data` (or of
  `--eval_data`) and refused, exit 1, when it loses more than `--max_top1_drop` (default 0.5) points of top-1.

Prints the version directory written and exits 0. A bad command line (a missing or unknown flag, a bad
value, extra arguments, `--model_dir` together with `--model`, `--model` without `--weights`) prints the
usage and the reason and exits 2; so does a file the user named that cannot be used, in one line
`--flag=PATH: why`: a `--weights` file (missing, a directory, unreadable, another network's), a
`--model_dir` (missing, a file, without its checkpoint, `dataset.json` or mean, a file in it that is not
JSON or a checkpoint that does not load) or a `--class_names` file (unreadable, empty); an export that
fails otherwise (an existing version without `--overwrite`, an unwritable destination, class names that
do not fit the network, an int8 network that loses too much) prints the reason and exits 1, having written nothing; a full disk (or quota, read-only file system) exits 5 with one line naming the
path and the cause, having written nothing either. `--help` prints the flags and exits 0.

The flags live in their own `absl.flags.FlagValues`, made afresh for each call, never in the global
`absl.flags.FLAGS`: a process that also defines the trainers' flags (`--model_dir`, ...) can import and
call this module, and two calls do not share values.

Example:
    >>> main(["--model_dir=runs/resnet20", "--export_dir=saved_models/resnet20"])  # a finished run  # doctest: +SKIP
    0
"""

from __future__ import annotations

import sys

from absl import flags

from keras_resnet import faults
from keras_resnet.export import targets
from keras_resnet.export.saved_model import CHECKPOINTS, FORMATS, ExportInputError, export_from_model_dir
from keras_resnet.weights.formats import WeightsFileError

PROG = "python -m keras_resnet.export"
USAGE = (f"usage: {PROG} (--model_dir=DIR | --model=NAME --weights=cifar10|imagenet|FILE [--class_names=FILE] "
         f"[--stride_in_3x3]) --export_dir=DIR [--version=N] [--overwrite] "
         f"[--checkpoint={'|'.join(CHECKPOINTS)}] [--format={'|'.join(FORMATS)}] [--quantize=int8 [--data=DATA] "
         f"[--eval_data=DATA] [--calibration_images=N] [--max_top1_drop=POINTS]]")
DESCRIPTION = ("Export a training run's checkpoint, or a network with pretrained weights, as a versioned TF "
               "Serving SavedModel (or ONNX, OpenVINO IR, LiteRT; int8 with --quantize).")
PRETRAINED_ONLY = ("weights", "class_names", "stride_in_3x3")
INT8_ONLY = ("data", "eval_data", "calibration_images", "max_top1_drop")
"""Flags that only apply to `--quantize=int8`."""
"""Flags that only apply to `--model` (a pretrained export)."""
REQUIRED = ("model_dir", "export_dir")
HELP_ARGS = ("-h", "--help", "-help", "--helpfull", "--helpshort")


def define_flags(flag_values=None) -> flags.FlagValues:
    """Defines the export flags on `flag_values` (a new `FlagValues` by default) and returns it."""
    fv = flags.FlagValues() if flag_values is None else flag_values
    flags.DEFINE_string("model_dir", None, "The training run's directory (docs/CONTRACTS.md).", flag_values=fv)
    flags.DEFINE_string("export_dir", None, "The model's version root, e.g. saved_models/resnet20.", flag_values=fv)
    flags.DEFINE_integer("version", None, "Version number (default: the next free one).", flag_values=fv)
    flags.DEFINE_bool("overwrite", False, "Replace an existing --version.", flag_values=fv)
    flags.DEFINE_enum("checkpoint", "best", list(CHECKPOINTS), "Which checkpoint (default: best).", flag_values=fv)
    flags.DEFINE_enum("format", "saved_model", list(FORMATS), "saved_model (TF Serving), or onnx / openvino / litert (<export_dir>/<format>).",
                      flag_values=fv)
    flags.DEFINE_string("model", None, "A network name (e.g. resnet56) to export with --weights, instead of "
                        "--model_dir.", flag_values=fv)
    flags.DEFINE_string("weights", None, "With --model: cifar10, imagenet or a weights file (.th, .pth, Keras-2 .h5, "
                        ".weights.h5); its input normalisation goes into the serving graph.", flag_values=fv)
    flags.DEFINE_string("class_names", None, "With --model: a text file of class names, one per line (default: "
                        "CIFAR-10's for cifar10, else 0, 1, ...).", flag_values=fv)
    flags.DEFINE_bool("stride_in_3x3", None, "With --model: the bottleneck stride placement (default: the "
                      "weights' own; torchvision: true).", flag_values=fv)
    flags.DEFINE_enum("quantize", None, ["int8"], "int8: a calibrated int8 network (--format=onnx or openvino), "
                      "published only when its top-1 is within --max_top1_drop of the float one.", flag_values=fv)
    flags.DEFINE_string("data", None, "With --quantize: the data whose training images calibrate and whose "
                        "evaluation split gates (default: the run's own data).", flag_values=fv)
    flags.DEFINE_string("eval_data", None, "With --quantize: evaluate on this data's evaluation split instead.",
                        flag_values=fv)
    flags.DEFINE_integer("calibration_images", 320, "With --quantize: training images to calibrate on.",
                         flag_values=fv)
    flags.DEFINE_float("max_top1_drop", 0.5, "With --quantize: the most top-1 (percentage points) the int8 network "
                       "may lose against the float one.", flag_values=fv)
    return fv


def usage_error(message):
    """Prints `message` and the usage on one line to stderr and exits with code 2 (a bad command line)."""
    print(f"{PROG}: error: {message} ({USAGE})", file=sys.stderr, flush=True)
    raise SystemExit(2)


def parse_flags(args) -> flags.FlagValues:
    """Parses the command-line arguments `args` (without the program name) into fresh flag values.

    Raises:
        SystemExit: code 2 for a missing or unknown flag, a bad value or extra arguments.
    """
    fv = define_flags()
    try:
        rest = fv([PROG, *args])
    except flags.Error as error:
        usage_error(str(error))
    if rest[1:]:
        usage_error(f"unrecognized arguments: {' '.join(rest[1:])}")
    if fv.model_dir is not None and fv.model is not None:
        usage_error(f"--model_dir={fv.model_dir} and --model={fv.model} are exclusive: export a training run "
                    "(--model_dir) or a network with pretrained weights (--model and --weights), not both")
    missing = [f"--{name}" for name in REQUIRED if fv[name].value is None and not (name == "model_dir" and fv.model)]
    if missing:
        usage_error(f"the following flags are required: {', '.join(missing)}")
    if fv.model is not None and fv.weights is None:
        usage_error(f"--model={fv.model} needs --weights (cifar10, imagenet or a weights file)")
    if fv.model is not None and fv["checkpoint"].present:
        usage_error("--checkpoint applies to --model_dir only (a pretrained export has no checkpoints)")
    wrong = [f"--{name}" for name in PRETRAINED_ONLY if fv.model is None and fv[name].present]
    if wrong:
        usage_error(f"{', '.join(wrong)}: only with --model (a pretrained export), not with --model_dir")
    wrong = [f"--{name}" for name in INT8_ONLY if fv.quantize is None and fv[name].present]
    if wrong:
        usage_error(f"{', '.join(wrong)}: only with --quantize=int8")
    if fv.quantize is not None:
        try:
            targets.export_target(fv["format"].value).refuse_float_only()
            quantization_plan(fv).checked()
        except ValueError as error:
            usage_error(str(error).rstrip("."))
    if fv.quantize is not None and fv.model is not None and fv.data is None:
        usage_error(f"--quantize=int8 with --model needs --data (the images of --weights={fv.weights} to calibrate "
                    "on and evaluate with)")
    return fv


def quantization_plan(fv):
    """The `keras_resnet.export.int8.Int8Plan` of the flags, or None without `--quantize`."""
    if fv.quantize is None:
        return None
    from keras_resnet.export.int8 import Int8Plan

    return Int8Plan(data=fv.data, eval_data=fv.eval_data, calibration_images=fv.calibration_images,
                    max_top1_drop=fv.max_top1_drop)


def run_export(fv):
    """The export the parsed flags ask for; returns the version directory written."""
    if fv.model is None:
        return export_from_model_dir(fv.model_dir, fv.export_dir, checkpoint=fv.checkpoint, version=fv.version,
                                     overwrite=fv.overwrite, export_format=fv["format"].value,
                                     quantization=quantization_plan(fv))
    from keras_resnet.export import pretrained

    class_names = pretrained.read_class_names(fv.class_names) if fv.class_names else None
    return pretrained.export_pretrained(fv.model, fv.weights, fv.export_dir, class_names=class_names,
                                        stride_in_3x3=fv.stride_in_3x3, version=fv.version, overwrite=fv.overwrite,
                                        export_format=fv["format"].value, quantization=quantization_plan(fv))


def main(argv=None) -> int:
    """Runs the command line `argv` (the arguments after the program name; default `sys.argv[1:]`).

    Returns:
        0 after printing the version directory written.

    Raises:
        SystemExit: code 0 after `--help`, 2 for a bad command line or a `--weights`, `--model_dir` or
            `--class_names` the user named that cannot be used, 1 when the export fails otherwise, 5 for a storage
            error (`keras_resnet.faults.EXIT_STORAGE`).
    """
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    options = args[: args.index("--")] if "--" in args else args
    if any(a in HELP_ARGS for a in options):
        print(f"{USAGE}\n\n{DESCRIPTION}\n\nflags:\n{define_flags().get_help(include_special_flags=False)}")
        raise SystemExit(0)
    fv = parse_flags(args)
    try:
        path = run_export(fv)
    except WeightsFileError as error:  # a file the user named that cannot be used: exit 2, like every command
        print(f"{PROG}: error: --weights={error.path}: {error.reason}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except ExportInputError as error:  # --model_dir or --class_names that cannot be used: exit 2 as well
        print(f"{PROG}: error: {error.flag_line()}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except Exception as error:  # noqa: BLE001 - a full disk (any library's error) exits 5, the others as before
        if faults.is_storage_error(error):
            print(f"{PROG}: error: {faults.describe_storage_error(error, fv.export_dir)}", file=sys.stderr, flush=True)
            raise SystemExit(faults.EXIT_STORAGE) from None
        if not isinstance(error, (ValueError, OSError, ImportError)):
            raise
        print(f"{PROG}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print(path)
    return 0
