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

from absl import app

from keras_resnet import training

PROG = "python -m trainers.cifar"


def main(argv=None):
    """Runs the command line `argv` (without the program name; default `sys.argv[1:]`); returns the exit code."""
    return training.trainer_main(sys.argv[1:] if argv is None else [str(a) for a in argv], PROG,
                                 model="resnet20", data="cifar10", recipe="cifar")


if __name__ == "__main__":
    app.run(lambda _: sys.exit(main()), argv=[sys.argv[0]])  # absl's logging set up; the flags are main's own
