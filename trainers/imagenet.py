"""Trains an ImageNet ResNet with the paper's recipe (section 3.4): batch 256, 0.1 / 10 at epochs 30, 60 of 90.

    python -m trainers.imagenet --model=resnet50 --data=imagenet2012 --data_dir=... --model_dir=runs/r50

Flags override any recipe field; see `python -m trainers.imagenet --helpfull`.
"""

import sys

from absl import app, flags

from keras_resnet import training

training.define_flags(model="resnet50", data="imagenet2012", recipe="imagenet")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    sys.exit(training.run_main(flags.FLAGS))


if __name__ == "__main__":
    app.run(main)
