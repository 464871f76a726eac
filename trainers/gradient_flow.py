"""Gradient flow (He et al. 2015, section 3.2): per-layer gradient norms, plain vs residual networks.

    python -m trainers.gradient_flow --depths=20,56,110 --data=../shared/datasets/cifar10-jpeg \\
        --train_steps=300 --output_dir=runs/gradients

For every depth trains `plain<d>` and `resnet<d>` with the trainer library (all trainer flags apply; the
default here is --train_steps=300, "a few hundred steps") into `<output_dir>/<model>`, and measures the L2
norm of the loss gradient with respect to every convolution / dense kernel on one fixed batch of training
images (--grad_batch_size) at initialisation and after training. Writes `<output_dir>/gradient_flow.png`
(log scale, input side to output side) and `<output_dir>/gradient_norms.json`. Deep plain networks show the
gradient vanishing towards the input; the identity term of the residual networks keeps it up. Runs are
started fresh: an --output_dir that already holds one of the runs is refused.
"""

import os
import sys

from absl import app, flags

from keras_resnet import analysis, run_log, training
from trainers.degradation import base_config, parse_depths  # noqa: E402  (defines the trainer flags)

flags.DEFINE_integer("grad_batch_size", 128, "Images in the fixed batch the gradient norms are measured on.")
FLAGS = flags.FLAGS
FLAGS.set_default("depths", ["20", "56", "110"])
FLAGS.set_default("train_steps", 300)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        if not FLAGS.output_dir:
            raise training.ConfigError("--output_dir must be set.")
        depths = parse_depths(FLAGS.depths)
        models = [f"{kind}{d}" for d in depths for kind in ("plain", "resnet")]
        config = base_config(FLAGS, models[0])
        for name in models:
            config.replace(model=name)
            if os.path.exists(os.path.join(FLAGS.output_dir, name, "config.json")):
                raise training.ConfigError(f"--output_dir={FLAGS.output_dir} already holds a run of {name}; "
                                           "gradients at initialisation need fresh runs: use a new --output_dir.")
        data = analysis.load_experiment_data(config.replace(input="memory"))
        batch = analysis.sample_batch(data, FLAGS.grad_batch_size, seed=config.seed or 0)
        probes = {name: analysis.GradientNormsCallback(batch) for name in models}
        results = analysis.train_runs(config, models, FLAGS.output_dir, data=data,
                                      callbacks=lambda name: [probes[name]])
    except training.ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except training.NaNLossError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(3)
    steps = results[models[0]]["iterations"]
    panels = {"at initialisation": {m: probes[m].norms["init"] for m in models},
              f"after {steps} iterations": {m: probes[m].norms["trained"] for m in models}}
    png = analysis.plot_gradient_norms(panels, os.path.join(FLAGS.output_dir, "gradient_flow.png"),
                                       title=f"gradient norm per layer, batch of {len(batch[1])} images")
    run_log.write_json(os.path.join(FLAGS.output_dir, "gradient_norms.json"),
                       {"iterations": steps, "norms": {m: probes[m].norms for m in models}})
    for m in models:
        init, trained = list(probes[m].norms["init"].values()), list(probes[m].norms["trained"].values())
        print(f"{m}: first/last layer gradient norm {init[0]:.3g}/{init[-1]:.3g} at init, "
              f"{trained[0]:.3g}/{trained[-1]:.3g} after {steps} iterations", flush=True)
    print(f"Wrote {png}", flush=True)


if __name__ == "__main__":
    app.run(main)
