"""Started with every process the suite runs (`conftest.freeze_every_process_at_exit`): marks the modules named
in `KERAS_RESNET_TESTS_ABSENT` (set by `conftest.env()`) as not installed, so that the process starts as it
would in a user's install, and freezes the process's objects at its exit.

TensorFlow and Keras import some optional packages at start-up whenever they are installed, and fall back
when they are not: JAX (TF Lite's authoring API), IPython (Keras' file editor) and scikit-learn (Keras'
wrappers). The test extra installs JAX and IPython for the JAX-backend and notebook tests; a user's install of
keras-resnet has none of them, and in the suite they cost about 2.8 CPU-s of each of its ~200 processes.

It also freezes the process's objects when it exits (`gc.freeze` as the last exit handler): the interpreter's
exit then skips its garbage collections over everything TensorFlow and Keras made, about 1 CPU-s of each
process that imported them (`python -c "import tensorflow"`: 3.7 against 4.8 CPU-s). Nothing a test checks is
made at exit: objects are still freed as their references go; only reference cycles are left to the system.
"""

import atexit
import gc
import os
import sys

atexit.register(gc.freeze)  # runs last: exit handlers run in the reverse order of their registration

for _name in os.environ.get("KERAS_RESNET_TESTS_ABSENT", "").split(","):
    if _name:
        sys.modules.setdefault(_name, None)  # `import _name` raises ImportError, as when it is not installed
