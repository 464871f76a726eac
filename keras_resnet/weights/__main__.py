"""`python -m keras_resnet.weights convert`: a published weights file to a Keras `.weights.h5`.

Example:
    python -m keras_resnet.weights convert --from=resnet56-4bfd9763.th --model=resnet56 \\
        --output=resnet56.weights.h5
    python -m keras_resnet.weights convert --from=resnet50-0676ba61.pth --model=resnet50 \\
        --output=resnet50_tv.weights.h5   # torchvision bottlenecks: stride_in_3x3 chosen from the format

The classifier's width is read from the file. Exit code 2 for bad flags or a file that does not fit.
"""

from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("from", None, "Published weights file: akamaster .th, torchvision .pth, keras.applications .h5.")
flags.DEFINE_string("model", None, "Network name, e.g. resnet56 or resnet50 (see keras_resnet.MODELS).")
flags.DEFINE_string("output", None, "The .weights.h5 file to write.")
flags.DEFINE_enum("format", "auto", ["auto", "akamaster", "torchvision", "keras_applications"],
                  "Format of --from; auto: from the file name (.th/.pth/.pt: PyTorch, .h5: keras.applications).")
flags.DEFINE_enum("stride_in_3x3", "auto", ["auto", "true", "false"],
                  "Bottleneck stride placement; auto: true for PyTorch (torchvision) files, false for Keras ones.")
flags.DEFINE_boolean("include_top", True, "Keep the classifier (false: convert the features only).")

COMMANDS = ("convert",)


def classifier_width(table):
    """The number of classes of a tensor table's classifier, or `None` if it has none."""
    entry = table.get("predictions", {})
    if "bias" in entry:
        return int(entry["bias"][0].shape[0])
    return None


def run_convert():
    """Builds the named network, converts `--from` into it and writes `--output`; returns the output path."""
    from keras_resnet.registry import build, model_spec
    from keras_resnet.weights import api, formats

    source = getattr(FLAGS, "from")
    for name, value in (("--from", source), ("--model", FLAGS.model), ("--output", FLAGS.output)):
        if not value:
            raise ValueError(f"{name} is required (convert --from=FILE --model=NAME --output=FILE.weights.h5).")
    source_format = None if FLAGS.format == "auto" else FLAGS.format
    resolved = source_format or formats.detect_format(source)
    if resolved == "keras":
        raise ValueError(f"--from={source!r} is a Keras 3 file already; nothing to convert.")
    table, resolved = formats.read_source(source, resolved)
    family = model_spec(FLAGS.model).family
    kwargs = dict(include_top=FLAGS.include_top, classifier_activation="softmax")
    if FLAGS.include_top:
        kwargs["classes"] = classifier_width(table) or (10 if family == "cifar" else 1000)
    if family == "imagenet":
        stride = FLAGS.stride_in_3x3
        kwargs["stride_in_3x3"] = resolved != "keras_applications" if stride == "auto" else stride == "true"
    model = build(FLAGS.model, **kwargs)
    return api.convert(source, model, FLAGS.output, source_format=resolved)


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        print(f"usage: python -m keras_resnet.weights convert --from=FILE --model=NAME --output=FILE.weights.h5 "
              f"(received {' '.join(argv[1:]) or 'no command'})", file=sys.stderr)
        sys.exit(2)
    try:
        path = run_convert()
    except (ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main)
