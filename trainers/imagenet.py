"""Trains an ImageNet ResNet with the paper's recipe (section 3.4): batch 256, 0.1 / 10 at epochs 30, 60 of 90.

    python -m trainers.imagenet --model=resnet50 --data=imagenet2012 --data_dir=... --model_dir=runs/r50
    python -m trainers.imagenet --model=resnet18 --data=pets --image_size=128 --model_dir=runs/pets
    python -m trainers.imagenet --model=resnet18 --data=flowers --init_from=runs/pets/checkpoints/best.keras \
        --recipe=finetune --freeze=stem,stage1 --model_dir=runs/flowers

`--data` is a TFDS name, TFRecord shards or a folder (or archive) `train/<class>/*`, `val/<class>/*` of
photos of any size, streamed and augmented on the fly; the evaluation split (`--eval_split`, default the
data's validation split) is reported as top-1 and top-5 error, centre crop or `--ten_crop`. Flags override
any recipe field; see `python -m trainers.imagenet --helpfull`. A mistake in the flags or the data is one
line and exit code 2, before anything is written; TensorFlow starts without its banners (importing
`keras_resnet` from `python -m trainers.*` does that, see `keras_resnet.startup`).
"""

import sys

from absl import app

from keras_resnet import training

PROG = "python -m trainers.imagenet"


def main(argv=None):
    """Runs the command line `argv` (without the program name; default `sys.argv[1:]`); returns the exit code."""
    return training.trainer_main(sys.argv[1:] if argv is None else [str(a) for a in argv], PROG,
                                 model="resnet50", data="imagenet2012", recipe="imagenet")


if __name__ == "__main__":
    app.run(lambda _: sys.exit(main()), argv=[sys.argv[0]])  # absl's logging set up; the flags are main's own
