"""`python -m keras_resnet.export --model_dir=runs/resnet20 --export_dir=saved_models/resnet20`.

See `keras_resnet.export.cli` for the flags and exit codes.
"""

import sys

from keras_resnet.export.cli import main

if __name__ == "__main__":
    sys.exit(main())
