"""Started with every command-line process the suite runs through `conftest.env()`: marks the modules named in
`KERAS_RESNET_TESTS_ABSENT` as not installed, so that the process starts as it would in a user's install.

TensorFlow and Keras import some optional packages at start-up whenever they are installed, and fall back
when they are not: JAX (TF Lite's authoring API), IPython (Keras' file editor) and scikit-learn (Keras'
wrappers). The test extra installs JAX and IPython for the JAX-backend and notebook tests; a user's install of
keras-resnet has none of them, and in the suite they cost about 2.8 CPU-s of each of its ~200 processes.
"""

import os
import sys

for _name in os.environ.get("KERAS_RESNET_TESTS_ABSENT", "").split(","):
    if _name:
        sys.modules.setdefault(_name, None)  # `import _name` raises ImportError, as when it is not installed
