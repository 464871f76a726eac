"""Layer responses (He et al. 2015, Fig. 7): std of each 3x3 layer's response, from trained checkpoints.

    python -m trainers.layer_responses --model_dirs=runs/fig6/plain20,runs/fig6/plain56,runs/fig6/resnet20,\\
        runs/fig6/resnet56 --output_dir=runs/fig7

The response of a 3x3 layer is the output of its BN, before the addition and the ReLU (inference mode), on
--num_images images of --split of each run's training data (or --data), preprocessed with the run's
`mean_image.npy`. Writes `<output_dir>/layer_responses.png` (by layer index, left; sorted by magnitude,
right) and `<output_dir>/layer_responses.json`. Claim: residual functions respond less than plain layers,
and deeper ResNets have smaller responses.
"""

import json
import os
import sys

import numpy as np
from absl import app, flags

from keras_resnet import analysis, run_log, training
from keras_resnet.cli_flags import flags_on, read_command_line
from keras_resnet.data import normalize

PROG = "python -m trainers.layer_responses"
USAGE = f"usage: {PROG} --model_dirs=RUN[,RUN...] --output_dir=DIR [--checkpoint=best|latest] [--num_images=N]"


def define_flags():
    """The command's flags on a fresh `FlagValues`."""
    fv = flags.FlagValues()
    define = flags_on(fv)
    define.DEFINE_list("model_dirs", None, "Training runs (model_dir of keras_resnet.training) to analyse.")
    define.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of each run.")
    define.DEFINE_string("data", None, "Image source (default: each run's --data from its config.json).")
    define.DEFINE_enum("split", "test", ["train", "test"], "Split the images come from.")
    define.DEFINE_integer("num_images", 1000, "Images the responses are measured on (a seeded subset).")
    define.DEFINE_integer("seed", 0, "Chooses the images.")
    define.DEFINE_string("output_dir", None, "Where layer_responses.png and layer_responses.json go.")
    return fv


def read_run(model_dir, checkpoint):
    """`(config dict, mean or None)` of a run, checked before any model is loaded; a `ConfigError` naming
    `--model_dirs` and the run otherwise."""
    config_path = os.path.join(model_dir, "config.json")
    if not os.path.isdir(model_dir):
        what = "is a file" if os.path.exists(model_dir) else "does not exist"
        raise training.ConfigError(f"--model_dirs: {model_dir!r} {what}; accepted: training runs' directories.")
    if not os.path.isfile(config_path):
        raise training.ConfigError(f"--model_dirs: {model_dir!r} has no config.json (not a training run).")
    if not os.path.isfile(os.path.join(model_dir, "checkpoints", f"{checkpoint}.keras")):
        other = "latest" if checkpoint == "best" else "best"
        raise training.ConfigError(f"--model_dirs: {model_dir!r} has no checkpoints/{checkpoint}.keras (train it "
                                   f"first, or pass --checkpoint={other}).")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        mean_path = os.path.join(model_dir, "mean_image.npy")
        mean = np.load(mean_path, allow_pickle=False) if os.path.exists(mean_path) else None
    except (OSError, ValueError) as error:
        raise training.ConfigError(f"--model_dirs: {model_dir!r}: {type(error).__name__}: "
                                   f"{str(error).splitlines()[0] if str(error) else ''}") from None
    return config, mean


def run(fv):
    """Measures every run's layer responses and writes layer_responses.png and layer_responses.json."""
    if not fv.model_dirs or not fv.output_dir:
        raise training.ConfigError("--model_dirs and --output_dir must be set.")
    if os.path.isfile(fv.output_dir):
        raise training.ConfigError(f"--output_dir={fv.output_dir} is a file; accepted: a directory.")
    if fv.num_images < 1:
        raise training.ConfigError(f"--num_images must be a positive integer; received {fv.num_images}.")
    runs = {model_dir: read_run(model_dir, fv.checkpoint) for model_dir in fv.model_dirs}
    responses, images = {}, {}
    for model_dir, (config, mean) in runs.items():
        model = analysis.load_checkpoint(model_dir, fv.checkpoint)
        label = config.get("model", model.name)
        source = fv.data or config["data"]
        if source not in images:  # one seeded subset per source, shared by the runs that use it
            images[source] = analysis.sample_images(source, fv.split, fv.num_images, fv.seed)
        responses[label] = analysis.layer_responses(model, normalize(images[source], mean))
        values = np.array(list(responses[label].values()))
        print(f"{label}: {len(values)} 3x3 layers, mean std {values.mean():.3f}, max {values.max():.3f}", flush=True)
    os.makedirs(fv.output_dir, exist_ok=True)
    png = analysis.plot_layer_responses(responses, os.path.join(fv.output_dir, "layer_responses.png"),
                                        title=f"std of 3x3 layer responses ({fv.split}, {fv.checkpoint})")
    run_log.write_json(os.path.join(fv.output_dir, "layer_responses.json"), responses)
    print(f"Wrote {png}", flush=True)


def main(argv=None):
    """Runs the command line `argv` (without the program name; default `sys.argv[1:]`); returns the exit code."""
    fv = define_flags()
    code = read_command_line(fv, PROG, sys.argv[1:] if argv is None else [str(a) for a in argv], USAGE)
    return training.exit_code(lambda: run(fv)) if code is None else code


if __name__ == "__main__":
    app.run(lambda _: sys.exit(main()), argv=[sys.argv[0]])  # absl's logging set up; the flags are main's own
