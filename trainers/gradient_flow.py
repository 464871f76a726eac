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

from absl import app

from keras_resnet import analysis, run_log, training
from keras_resnet.cli_flags import flags_on, read_command_line
from trainers.degradation import define_flags as experiment_flags
from trainers.degradation import experiment_config

PROG = "python -m trainers.gradient_flow"
USAGE = f"usage: {PROG} --output_dir=DIR [--depths=20,56,110] [--grad_batch_size=N] [--data=SOURCE] [trainer flags]"


def define_flags():
    """The degradation experiment's flags (depths 20, 56, 110; 300 iterations) and `--grad_batch_size`."""
    fv = experiment_flags(depths=("20", "56", "110"))
    fv.set_default("train_steps", 300)
    flags_on(fv).DEFINE_integer("grad_batch_size", 128, "Images in the fixed batch the gradient norms are "
                                "measured on.")
    return fv


def run(fv):
    """Trains fresh runs, measures the gradient norms, writes gradient_flow.png and gradient_norms.json."""
    if fv.grad_batch_size < 1:
        raise training.ConfigError(f"--grad_batch_size must be a positive integer; received {fv.grad_batch_size}.")
    config, models = experiment_config(fv, "depth")
    for name in models:
        if os.path.exists(os.path.join(fv.output_dir, name, "config.json")):
            raise training.ConfigError(f"--output_dir={fv.output_dir} already holds a run of {name}; "
                                       "gradients at initialisation need fresh runs: use a new --output_dir.")
    data = analysis.load_experiment_data(config.replace(input="memory"))
    batch = analysis.sample_batch(data, fv.grad_batch_size, seed=config.seed or 0)
    probes = {name: analysis.GradientNormsCallback(batch) for name in models}
    results = analysis.train_runs(config, models, fv.output_dir, data=data, callbacks=lambda name: [probes[name]])
    steps = results[models[0]]["iterations"]
    panels = {"at initialisation": {m: probes[m].norms["init"] for m in models},
              f"after {steps} iterations": {m: probes[m].norms["trained"] for m in models}}
    png = analysis.plot_gradient_norms(panels, os.path.join(fv.output_dir, "gradient_flow.png"),
                                       title=f"gradient norm per layer, batch of {len(batch[1])} images")
    run_log.write_json(os.path.join(fv.output_dir, "gradient_norms.json"),
                       {"iterations": steps, "norms": {m: probes[m].norms for m in models}})
    for m in models:
        init, trained = list(probes[m].norms["init"].values()), list(probes[m].norms["trained"].values())
        print(f"{m}: first/last layer gradient norm {init[0]:.3g}/{init[-1]:.3g} at init, "
              f"{trained[0]:.3g}/{trained[-1]:.3g} after {steps} iterations", flush=True)
    print(f"Wrote {png}", flush=True)


def main(argv=None):
    """Runs the command line `argv` (without the program name; default `sys.argv[1:]`); returns the exit code."""
    fv = define_flags()
    code = read_command_line(fv, PROG, sys.argv[1:] if argv is None else [str(a) for a in argv], USAGE)
    return training.exit_code(lambda: run(fv)) if code is None else code


if __name__ == "__main__":
    app.run(lambda _: sys.exit(main()), argv=[sys.argv[0]])  # absl's logging set up; the flags are main's own
