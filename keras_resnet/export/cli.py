"""Command line of the export: `python -m keras_resnet.export --model_dir=... --export_dir=...`.

Flags (absl, like every other entry point; `--flag=value` and `--flag value` both work):

- `--model_dir` (required): the training run's directory (docs/CONTRACTS.md layout);
- `--export_dir` (required): the model's version root, e.g. `saved_models/resnet20`;
- `--version`: the version number (default: the next free one);
- `--overwrite`: replace an existing `--version`;
- `--checkpoint`: `best` (default) or `latest`;
- `--format`: `saved_model` (default, `<export_dir>/<version>`) or `onnx` (`<export_dir>/onnx/<version>/model.onnx`,
  BN folded, uint8 NHWC input with the preprocessing in the graph; needs the `onnx` extra).

Prints the version directory written and exits 0. A bad command line (a missing or unknown flag, a bad
value, extra arguments) prints the usage and the reason and exits 2; an export that fails (a missing
file, an existing version without `--overwrite`, an unwritable destination) prints the reason and exits
1, having written nothing. `--help` prints the flags and exits 0.

The flags live in their own `absl.flags.FlagValues`, made afresh for each call, never in the global
`absl.flags.FLAGS`: a process that also defines the trainers' flags (`--model_dir`, ...) can import and
call this module, and two calls do not share values.

Example:
    >>> main(["--model_dir=runs/resnet20", "--export_dir=saved_models/resnet20"])  # doctest: +SKIP
    .../saved_models/resnet20/1
    0
"""

from __future__ import annotations

import sys

from absl import flags

from keras_resnet.export.saved_model import CHECKPOINTS, FORMATS, export_from_model_dir

PROG = "python -m keras_resnet.export"
USAGE = (f"usage: {PROG} --model_dir=DIR --export_dir=DIR [--version=N] [--overwrite] "
         f"[--checkpoint={'|'.join(CHECKPOINTS)}] [--format={'|'.join(FORMATS)}]")
DESCRIPTION = "Export a training run's checkpoint as a versioned TF Serving SavedModel."
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
    flags.DEFINE_enum("format", "saved_model", list(FORMATS), "saved_model (TF Serving) or onnx (<export_dir>/onnx).",
                      flag_values=fv)
    return fv


def usage_error(message):
    """Prints the usage and `message` to stderr and exits with code 2 (a bad command line)."""
    print(f"{USAGE}\n{PROG}: error: {message}", file=sys.stderr, flush=True)
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
    missing = [f"--{name}" for name in REQUIRED if fv[name].value is None]
    if missing:
        usage_error(f"the following flags are required: {', '.join(missing)}")
    return fv


def main(argv=None) -> int:
    """Runs the command line `argv` (the arguments after the program name; default `sys.argv[1:]`).

    Returns:
        0 after printing the version directory written.

    Raises:
        SystemExit: code 0 after `--help`, 2 for a bad command line, 1 when the export fails.
    """
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    options = args[: args.index("--")] if "--" in args else args
    if any(a in HELP_ARGS for a in options):
        print(f"{USAGE}\n\n{DESCRIPTION}\n\nflags:\n{define_flags().get_help(include_special_flags=False)}")
        raise SystemExit(0)
    fv = parse_flags(args)
    try:
        path = export_from_model_dir(fv.model_dir, fv.export_dir, checkpoint=fv.checkpoint, version=fv.version,
                                     overwrite=fv.overwrite, export_format=fv["format"].value)
    except (ValueError, OSError, ImportError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print(path)
    return 0
