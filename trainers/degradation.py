"""The degradation experiment (He et al. 2015, Fig. 6): plain vs residual networks of several depths.

    python -m trainers.degradation --depths=20,56 --data=../shared/datasets/cifar10-jpeg --output_dir=runs/fig6

Trains `plain<d>` and `resnet<d>` for every depth with the identical recipe (the trainer library, with every
trainer flag: --train_steps, --batch_size, --precision, --steps_per_epoch, --seed, ...), each into
`<output_dir>/<model>`, then writes `<output_dir>/degradation.png` (training error dashed, test error solid,
against iterations; plain left, ResNet right) and `<output_dir>/degradation.md` (final errors, one sentence
per half of the claim saying whether it held, and the cross-entropy and L2 term of the first epochs and the
last). The claim to see: plain-56 has a higher training and test error than plain-20, while ResNet-56 is
better than ResNet-20.
Re-running the same command resumes unfinished runs. --model and --model_dir are not used (one run per
network under --output_dir).
"""

import dataclasses
import os
import sys

from absl import app, flags

from keras_resnet import analysis, training
from keras_resnet.cli_flags import flags_on, read_command_line

PROG = "python -m trainers.degradation"
USAGE = f"usage: {PROG} --output_dir=DIR [--depths=20,56] [--data=SOURCE] [trainer flags]"


def define_flags(depths=("20", "56")):
    """The trainer flags (every `TrainConfig` field) and `--depths`, `--output_dir`, on a fresh `FlagValues`."""
    fv = training.define_flags(model="resnet20", data="cifar10", recipe="cifar", flag_values=flags.FlagValues())
    flags_on(fv).DEFINE_list("depths", list(depths), "CIFAR depths (6n+2); plain<d> and resnet<d> are trained "
                             "for each.")
    flags_on(fv).DEFINE_string("output_dir", None, "Where the runs and the figure and report go.")
    return fv


def base_config(flag_values, model):
    """A `TrainConfig` from the trainer flags (model and model_dir are set per run)."""
    values = {f.name: flag_values[f.name].value for f in dataclasses.fields(training.TrainConfig)
              if f.name in flag_values}
    if values.get("boundaries") is not None:
        try:
            values["boundaries"] = [int(b) for b in values["boundaries"]]
        except ValueError:
            raise training.ConfigError(f"--boundaries must be integers; received {values['boundaries']!r}.") from None
    values.update(model=model, model_dir=os.path.join(flag_values.output_dir, model))
    return training.TrainConfig(**values)


def parse_depths(depths):
    try:
        out = [int(d) for d in depths]
    except ValueError:
        raise training.ConfigError(f"--depths must be integers 6n+2 (20,56); received {depths!r}.") from None
    if not out:
        raise training.ConfigError("--depths must name at least one depth.")
    return out


def experiment_config(fv, order):
    """`(base TrainConfig, model names)` of the flags, every network's config checked before any training:
    `order` "kind" gives plain<d> for every depth, then resnet<d>; "depth" interleaves them."""
    if not fv.output_dir:
        raise training.ConfigError("--output_dir must be set.")
    if os.path.isfile(fv.output_dir):
        raise training.ConfigError(f"--output_dir={fv.output_dir} is a file; accepted: a directory (new, or "
                                   "one to continue).")
    depths = parse_depths(fv.depths)
    pairs = [(kind, d) for kind in ("plain", "resnet") for d in depths] if order == "kind" else \
        [(kind, d) for d in depths for kind in ("plain", "resnet")]
    models = [f"{kind}{d}" for kind, d in pairs]
    config = base_config(fv, models[0])
    for name in models:  # validates every depth before any training
        config.replace(model=name)
    return config, models


def run(fv):
    """Trains the networks and writes degradation.png and degradation.md."""
    config, models = experiment_config(fv, "kind")
    results = analysis.train_runs(config, models, fv.output_dir)
    png = analysis.plot_degradation({m: r["curves"] for m, r in results.items()},
                                    os.path.join(fv.output_dir, "degradation.png"),
                                    title=f"CIFAR-10 ({config.data}), {results[models[0]]['iterations']} iterations")
    table = analysis.degradation_table(results)
    losses = analysis.loss_table({m: r["curves"] for m, r in results.items()})
    analysis.write_report(os.path.join(fv.output_dir, "degradation.md"),
                          f"{table}\nWhat the training loss is made of (first epochs and the last):\n\n{losses}")
    print(table)
    print(f"Wrote {png} and {os.path.join(fv.output_dir, 'degradation.md')}", flush=True)


def main(argv=None):
    """Runs the command line `argv` (without the program name; default `sys.argv[1:]`); returns the exit code."""
    fv = define_flags()
    code = read_command_line(fv, PROG, sys.argv[1:] if argv is None else [str(a) for a in argv], USAGE)
    return training.exit_code(lambda: run(fv)) if code is None else code


if __name__ == "__main__":
    app.run(lambda _: sys.exit(main()), argv=[sys.argv[0]])  # absl's logging set up; the flags are main's own
