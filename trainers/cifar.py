"""Trains a CIFAR ResNet with the paper's recipe (section 4.2).

    python -m trainers.cifar --model=resnet110 --data=cifar10 --model_dir=runs/resnet110
    python -m trainers.cifar --flagfile=runs/resnet56.flags

Flags override any recipe field (--batch_size, --train_steps, --learning_rate, --schedule, --shortcut, ...);
see `python -m trainers.cifar --helpfull`. Killed and restarted with the same command, it resumes.
`--init_from=cifar10` starts from akamaster's published CIFAR-10 weights (with their input normalisation),
`--init_from=PATH` from a run's `checkpoints/best.keras`; `--freeze=stem,stage1` keeps layers fixed.
`--steps_per_call=K` runs K iterations per compiled call (the same weights as one per call).
"""

import sys

from absl import app, flags

from keras_resnet import training

training.define_flags(model="resnet20", data="cifar10", recipe="cifar")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sys.exit(training.run_main(flags.FLAGS))


if __name__ == "__main__":
    app.run(main)
