"""`keras_resnet.compat`, the only module using Keras' private names: each use still works in this Keras.

When a Keras release moves a name, these tests fail saying which function of `keras_resnet/compat.py` to
update, instead of a progress bar failing deep inside a training run.
"""

import io
from contextlib import redirect_stdout

import keras

from keras_resnet import compat


def test_progbar_still_has_the_private_value_tables():
    bar = keras.utils.Progbar(4)
    missing = [name for name in compat.PROGBAR_PRIVATES if not hasattr(bar, name)]
    assert not missing, (f"keras {keras.__version__}: keras.utils.Progbar has no {missing}; update "
                         "keras_resnet/compat.py progbar_set_text (the trainer's progress bar text values)")
    assert isinstance(bar._values_order, list) and isinstance(bar._values, dict)  # private: what compat relies on


def test_progbar_shows_text_values_as_they_are():
    bar = keras.utils.Progbar(4, verbose=1, stateful_metrics=["loss"])
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        compat.progbar_set_text(bar, "iteration", "12/64000")
        compat.progbar_set_text(bar, "lr", "0.1")
        compat.progbar_set_text(bar, "lr", "0.01")  # a key set again is updated, not repeated
        bar.update(4, [("loss", 0.5)])
    text = buffer.getvalue()
    assert "iteration: 12/64000" in text and "lr: 0.01" in text and "loss: 0.5000" in text, (
        f"keras {keras.__version__}: Progbar no longer prints compat.progbar_set_text values: {text!r}")
    assert text.count("lr:") == 1
