"""`python -m keras_resnet.weights convert`: a published weights file to a Keras `.weights.h5`.

Example:
    python -m keras_resnet.weights convert --from=resnet56-4bfd9763.th --model=resnet56 \\
        --output=resnet56.weights.h5
    python -m keras_resnet.weights convert --from=resnet50-0676ba61.pth --model=resnet50 \\
        --output=resnet50_tv.weights.h5   # torchvision bottlenecks: stride_in_3x3 chosen from the format
    python -m keras_resnet.weights convert --from=model.safetensors --model=resnet50 \\
        --output=resnet50_timm.weights.h5  # timm / torchvision names in a .safetensors file, no PyTorch needed

The classifier's width is read from the file. Exit code 2 for bad flags or a file that does not fit.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from keras_resnet.cli_flags import flags_on, parse, wants_help

PROG = "python -m keras_resnet.weights"
USAGE = f"usage: {PROG} convert --from=FILE --model=NAME --output=FILE.weights.h5"


def define_flags(flag_values=None):
    """The flags of `convert` on `flag_values` (a new `FlagValues` by default); returns it."""
    fv = flags.FlagValues() if flag_values is None else flag_values
    f = flags_on(fv)
    f.DEFINE_string("from", None, "Published weights file: akamaster .th, torchvision .pth, .safetensors (torchvision "
                                  "/ timm names), keras.applications .h5.")
    f.DEFINE_string("model", None, "Network name, e.g. resnet56 or resnet50 (see keras_resnet.MODELS).")
    f.DEFINE_string("output", None, "The .weights.h5 file to write.")
    f.DEFINE_enum("format", "auto", ["auto", "akamaster", "torchvision", "safetensors", "keras_applications"],
                  "Format of --from; auto: from the file name (.th/.pth/.pt: PyTorch, .safetensors: a state dict "
                  "read without PyTorch, .h5: keras.applications).")
    f.DEFINE_enum("stride_in_3x3", "auto", ["auto", "true", "false"],
                  "Bottleneck stride placement; auto: true for PyTorch (torchvision) and .safetensors files, false "
                  "for Keras ones.")
    f.DEFINE_boolean("include_top", True, "Keep the classifier (false: convert the features only).")
    return fv


COMMANDS = ("convert",)


def classifier_width(table):
    """The number of classes of a tensor table's classifier, or `None` if it has none."""
    entry = table.get("predictions", {})
    if "bias" in entry:
        return int(entry["bias"][0].shape[0])
    return None


def check_output(output):
    """Raises `ValueError` naming `--output` when it cannot be the `.weights.h5` file to write."""
    if not output.endswith(".weights.h5"):
        raise ValueError(f"--output={output}: the file must end in .weights.h5 (Keras' weights format).")
    if os.path.isdir(output):
        raise ValueError(f"--output={output} is a directory; accepted: the path of a .weights.h5 file.")


def run_convert(fv):
    """Builds the named network, converts `--from` into it and writes `--output`; returns the output path."""
    from keras_resnet.registry import build, model_spec
    from keras_resnet.weights import api, formats

    source = fv["from"].value
    for name, value in (("--from", source), ("--model", fv.model), ("--output", fv.output)):
        if not value:
            raise ValueError(f"{name} is required (convert --from=FILE --model=NAME --output=FILE.weights.h5).")
    try:
        spec = model_spec(fv.model)
    except ValueError as error:
        raise ValueError(f"--model={fv.model}: {error}") from None
    family = spec.family
    check_output(fv.output)
    if not os.path.isfile(source):
        what = "a directory" if os.path.isdir(source) else "no such file"
        raise formats.WeightsFileError(source, f"{what}; accepted: an akamaster .th, torchvision .pth, "
                                               ".safetensors (torchvision / timm) or keras.applications .h5 file")
    source_format = (None if fv.format == "auto" else fv.format) or formats.detect_format(source)
    if source_format == "keras":
        raise ValueError(f"--from={source!r} is a Keras 3 file already; nothing to convert.")
    table, resolved = formats.read_source(source, source_format)
    kwargs = dict(include_top=fv.include_top, classifier_activation="softmax")
    if fv.include_top:
        kwargs["classes"] = classifier_width(table) or (10 if family == "cifar" else 1000)
    if family == "imagenet" and not spec.preactivation:  # the V2 networks have one stride placement
        stride = fv.stride_in_3x3
        kwargs["stride_in_3x3"] = resolved != "keras_applications" if stride == "auto" else stride == "true"
    model = build(fv.model, **kwargs)
    return api.convert(source, model, fv.output, source_format=source_format)  # the file's format: read again


def main(argv=None):
    """Runs the command line `argv` (without the program name; default `sys.argv[1:]`) in this process;
    returns 0 after writing, 2 for a bad command line or a file that cannot be used (one line)."""
    from keras_resnet.weights import formats

    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    fv = define_flags()
    if wants_help(args):
        print(f"{USAGE}\n\nflags:\n{fv.get_help(include_special_flags=False)}", flush=True)
        return 0
    malformed = parse(fv, PROG, args)
    rest = [a for a in args if not a.startswith("-")]
    if malformed and not malformed.startswith("unrecognized arguments"):
        print(f"error: {malformed}", file=sys.stderr, flush=True)
        return 2
    if rest != ["convert"]:
        print(f"error: expected the command convert ({USAGE}); received {' '.join(rest) or 'no command'}",
              file=sys.stderr, flush=True)
        return 2
    try:
        path = run_convert(fv)
    except formats.WeightsFileError as error:
        print(f"error: --from={error.path}: {error.reason}", file=sys.stderr, flush=True)
        return 2
    except (ValueError, ImportError) as error:
        print(f"error: {str(error).strip().splitlines()[0]}", file=sys.stderr, flush=True)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    app.run(lambda _: sys.exit(main()), argv=[sys.argv[0]])  # absl's logging set up; the flags are main's own
