"""Command line: `python -m keras_resnet.evaluate (--model_dir=DIR | --model=NAME --weights=W) --data=SRC`.

Flags (absl, in their own `FlagValues`, never the global `absl.flags.FLAGS`):

- `--model_dir` (a training run; `--checkpoint=best|latest`) or `--model` with `--weights` (`cifar10`,
  `imagenet` or a weights file; `--stride_in_3x3`, `--image_size` for ImageNet networks);
- `--data` (required): an image folder or archive, TFRecord shards or a TFDS name;
- `--split` (default: "validation" when the data has `val/` or `validation/`, else "test");
- `--ten_crop`: the paper's 10-crop testing (ImageNet-style); `--batch_size`; `--data_dir` (TFDS);
- `--output=FILE.json`: also write the result as JSON (atomically).

Prints one line (top-1 and top-5 error, images, split) and the JSON; exits 0. A bad command line or input (a
missing flag or file, a split the data lacks, classes that are not the run's, weights for another network)
prints one line naming it and exits 2; `--help` prints the flags.

Example:
    >>> main(["--model=resnet56", "--weights=cifar10", "--data=../shared/datasets/cifar10-jpeg"])  # needs ../shared  # doctest: +SKIP
    resnet56 (cifar10): top-1 error 16.07%, ... on 10000 images of the test split ...
"""

from __future__ import annotations

import json
import os
import sys

from absl import flags

from keras_resnet.evaluate.api import CHECKPOINTS, EvaluationError, evaluate_model_dir, evaluate_pretrained

PROG = "python -m keras_resnet.evaluate"
USAGE = (f"usage: {PROG} (--model_dir=DIR [--checkpoint=best|latest] | --model=NAME --weights=cifar10|imagenet|FILE) "
         "--data=SOURCE [--split=SPLIT] [--ten_crop] [--image_size=N] [--batch_size=N] [--output=FILE.json]")
HELP_ARGS = ("-h", "--help", "-help", "--helpfull", "--helpshort")


def define_flags(flag_values=None):
    """The evaluation flags on `flag_values` (a new `FlagValues` by default)."""
    fv = flags.FlagValues() if flag_values is None else flag_values
    f = dict(flag_values=fv)
    flags.DEFINE_string("model_dir", None, "A training run's directory (docs/CONTRACTS.md).", **f)
    flags.DEFINE_enum("checkpoint", "best", list(CHECKPOINTS), "With --model_dir: which checkpoint.", **f)
    flags.DEFINE_string("model", None, "A network name (resnet56, resnet50, ...), with --weights.", **f)
    flags.DEFINE_string("weights", None, "With --model: cifar10, imagenet, imagenet-tv2, imagenet-a1 or a weights file.", **f)
    flags.DEFINE_bool("stride_in_3x3", None, "With --model: bottleneck stride placement (torchvision: true).", **f)
    flags.DEFINE_string("data", None, "Image folder / archive, TFRecord shard directory or TFDS name.", **f)
    flags.DEFINE_string("split", None, "Split to evaluate (default: validation when present, else test).", **f)
    flags.DEFINE_bool("ten_crop", False, "10-crop testing (the paper's Table 3), ImageNet-style images.", **f)
    flags.DEFINE_integer("image_size", None, "With --model: the crop of an ImageNet network (default 224).", **f)
    flags.DEFINE_integer("batch_size", 64, "Images per batch.", **f)
    flags.DEFINE_string("data_dir", None, "TFDS data directory.", **f)
    flags.DEFINE_string("output", None, "Also write the result to this JSON file.", **f)
    return fv


def fail(message):
    """One line on stderr, exit code 2."""
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def parse_flags(args):
    """Parses `args` (without the program name); a bad command line exits with 2."""
    fv = define_flags()
    try:
        rest = fv([PROG, *args])
    except flags.Error as error:
        fail(str(error))
    if rest[1:]:
        fail(f"unrecognized arguments: {' '.join(rest[1:])}")
    if (fv.model_dir is None) == (fv.model is None):
        fail("pass either --model_dir (a training run) or --model with --weights (published weights)")
    if fv.model is not None and not fv.weights:
        fail(f"--model={fv.model} needs --weights (cifar10, imagenet or a weights file)")
    if fv.model_dir is not None and (fv.weights or fv["image_size"].present or fv["stride_in_3x3"].present):
        fail("--weights, --image_size and --stride_in_3x3 apply to --model only (a run has its own)")
    if not fv.data:
        fail("--data is required")
    if fv.batch_size < 1:
        fail(f"--batch_size must be a positive integer; received {fv.batch_size}")
    if fv["image_size"].present and fv.image_size < 1:
        fail(f"--image_size must be a positive integer; received {fv.image_size}")
    if fv.output is not None:
        check_output(fv.output)
    return fv


def check_output(path):
    """`--output` before anything is evaluated: a file name in an existing directory, not a directory."""
    folder = os.path.dirname(os.path.abspath(path))
    if not path or os.path.isdir(path):
        fail(f"--output={path}: {'empty' if not path else 'a directory'}; accepted: a JSON file to write")
    if not os.path.isdir(folder):
        fail(f"--output={path}: its directory {folder} does not exist; accepted: a JSON file in an existing "
             "directory")


def run(fv):
    """The evaluation the flags ask for; returns the result dict."""
    common = dict(split=fv.split, ten_crop=fv.ten_crop, batch_size=fv.batch_size, data_dir=fv.data_dir)
    if fv.model_dir is not None:
        return evaluate_model_dir(fv.model_dir, fv.data, checkpoint=fv.checkpoint, **common)
    return evaluate_pretrained(fv.model, fv.weights, fv.data, image_size=fv.image_size,
                               stride_in_3x3=fv.stride_in_3x3, **common)


def summary_line(result):
    """`resnet56 (cifar10): top-1 error 7.00%, top-5 error 0.40% on 10000 images of the test split (centre crop)`."""
    source = result.get("weights") or f"{result['model_dir']}, {result['checkpoint']}"
    top5 = f", top-5 error {100 * result['top5_error']:.2f}%" if result["top5_error"] is not None else ""
    crops = "10 crops" if result["crops"] == 10 else f"{result['image_size']}x{result['image_size']}"
    return (f"{result['model']} ({source}): top-1 error {100 * result['top1_error']:.2f}%{top5} on {result['images']} "
            f"images of the {result['split']} split of {result['data']} ({crops})")


def write_json(path, result):
    """Writes `result` to `path` atomically (a temporary name of this process's own, then a rename)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv=None):
    """Runs the command line `argv` (default `sys.argv[1:]`); returns 0, exits 2 on bad input."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if any(a in HELP_ARGS for a in args):
        print(f"{USAGE}\n\nflags:\n{define_flags().get_help(include_special_flags=False)}")
        return 0
    fv = parse_flags(args)
    try:
        result = run(fv)
    except EvaluationError as error:
        fail(str(error))
    print(summary_line(result), flush=True)
    print(json.dumps(result, indent=1), flush=True)
    if fv.output:
        try:
            write_json(fv.output, result)
        except OSError as error:
            fail(f"--output={fv.output}: {error}")
    return 0
