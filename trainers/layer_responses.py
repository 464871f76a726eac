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

from keras_resnet import analysis, run_log
from keras_resnet.data import normalize

flags.DEFINE_list("model_dirs", None, "Training runs (model_dir of keras_resnet.training) to analyse.")
flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint of each run.")
flags.DEFINE_string("data", None, "Image source (default: each run's --data from its config.json).")
flags.DEFINE_enum("split", "test", ["train", "test"], "Split the images come from.")
flags.DEFINE_integer("num_images", 1000, "Images the responses are measured on (a seeded subset).")
flags.DEFINE_integer("seed", 0, "Chooses the images.")
flags.DEFINE_string("output_dir", None, "Where layer_responses.png and layer_responses.json go.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.model_dirs or not FLAGS.output_dir:
        print("error: --model_dirs and --output_dir must be set.", file=sys.stderr)
        sys.exit(2)
    responses, images = {}, {}
    for model_dir in FLAGS.model_dirs:
        config_path = os.path.join(model_dir, "config.json")
        if not os.path.exists(config_path):
            print(f"error: --model_dirs: {model_dir!r} has no config.json (not a training run).", file=sys.stderr)
            sys.exit(2)
        with open(config_path) as f:
            config = json.load(f)
        mean_path = os.path.join(model_dir, "mean_image.npy")
        mean = np.load(mean_path) if os.path.exists(mean_path) else None
        model = analysis.load_checkpoint(model_dir, FLAGS.checkpoint)
        label = config.get("model", model.name)
        source = FLAGS.data or config["data"]
        if source not in images:  # one seeded subset per source, shared by the runs that use it
            images[source] = analysis.sample_images(source, FLAGS.split, FLAGS.num_images, FLAGS.seed)
        responses[label] = analysis.layer_responses(model, normalize(images[source], mean))
        values = np.array(list(responses[label].values()))
        print(f"{label}: {len(values)} 3x3 layers, mean std {values.mean():.3f}, max {values.max():.3f}", flush=True)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    png = analysis.plot_layer_responses(responses, os.path.join(FLAGS.output_dir, "layer_responses.png"),
                                        title=f"std of 3x3 layer responses ({FLAGS.split}, {FLAGS.checkpoint})")
    run_log.write_json(os.path.join(FLAGS.output_dir, "layer_responses.json"), responses)
    print(f"Wrote {png}", flush=True)


if __name__ == "__main__":
    app.run(main)
