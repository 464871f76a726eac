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

training.define_flags(model="resnet20", data="cifar10", recipe="cifar")
flags.DEFINE_list("depths", ["20", "56"], "CIFAR depths (6n+2); plain<d> and resnet<d> are trained for each.")
flags.DEFINE_string("output_dir", None, "Where the runs, degradation.png and degradation.md go.")
FLAGS = flags.FLAGS


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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        if not FLAGS.output_dir:
            raise training.ConfigError("--output_dir must be set.")
        depths = parse_depths(FLAGS.depths)
        models = [f"{kind}{d}" for kind in ("plain", "resnet") for d in depths]
        config = base_config(FLAGS, models[0])
        for name in models:  # validates every depth before any training
            config.replace(model=name)
        results = analysis.train_runs(config, models, FLAGS.output_dir)
    except training.ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    except training.NaNLossError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(3)
    png = analysis.plot_degradation({m: r["curves"] for m, r in results.items()},
                                    os.path.join(FLAGS.output_dir, "degradation.png"),
                                    title=f"CIFAR-10 ({config.data}), {results[models[0]]['iterations']} iterations")
    table = analysis.degradation_table(results)
    losses = analysis.loss_table({m: r["curves"] for m, r in results.items()})
    analysis.write_report(os.path.join(FLAGS.output_dir, "degradation.md"),
                          f"{table}\nWhat the training loss is made of (first epochs and the last):\n\n{losses}")
    print(table)
    print(f"Wrote {png} and {os.path.join(FLAGS.output_dir, 'degradation.md')}", flush=True)


if __name__ == "__main__":
    app.run(main)
