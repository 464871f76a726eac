"""`python -m keras_resnet.evaluate --model_dir=runs/pets --data=/data/pets` (see `keras_resnet.evaluate.cli`)."""

import sys

from keras_resnet.evaluate.cli import main

if __name__ == "__main__":
    sys.exit(main())
