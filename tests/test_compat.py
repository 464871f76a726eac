"""`keras_resnet.compat`, the only module using Keras' private names: each use still works in this Keras.

When a Keras release moves a name, these tests fail saying which function of `keras_resnet/compat.py` to
update, instead of a progress bar failing deep inside a training run.
"""

import io
from contextlib import redirect_stdout

import keras
import numpy as np
import pytest

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


SAVE_LOOP = r'''
import gc, os, sys, tempfile
import keras
import numpy as np
import pytest
from keras_resnet.training.checkpoints import save_model_atomic, BackupCheckpointer

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

inputs = keras.Input((8, 8, 3))
x = inputs
for _ in range(20):
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(x))
model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
model.optimizer.build(model.trainable_variables)
root = tempfile.mkdtemp()
backup = BackupCheckpointer(os.path.join(root, "backup"), os.path.join(root, "backup"))
sizes = []
for epoch in range(80):  # as the trainer's epoch end: latest.keras and the backup
    save_model_atomic(model, os.path.join(root, "latest.keras"))
    backup.save(model, epoch)
    gc.collect()
    sizes.append(rss_mib())
print("GROWTH_MIB", sizes[-1] - sizes[19])
'''


def test_saving_a_compiled_model_again_and_again_keeps_no_memory():
    """Keras 3.15 rebuilt reference objects (an optimizer among them) at every save, keeping 70 KiB each time:
    60 epochs of the trainer's two saves grew a 41-layer model's process by about 8 MiB; with
    `compat.keep_saving_skipsets` by nothing measurable. Run in a fresh process so that nothing else moves
    its memory. (A memory bound, not a timed one.)"""
    import subprocess
    import sys

    from conftest import REPO, env

    out = subprocess.run([sys.executable, "-c", SAVE_LOOP], env=env(), cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    growth = float(out.stdout.split("GROWTH_MIB")[1])
    assert growth < 2.0, (f"keras {keras.__version__}: 60 saves grew the process by {growth:.1f} MiB; "
                          "check keras_resnet/compat.py keep_saving_skipsets against keras.src.saving.saving_lib")


def test_keep_saving_skipsets_finds_what_keras_computed(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.save_weights(tmp_path / "a.weights.h5")
    assert compat.keep_saving_skipsets() >= 2, (
        f"keras {keras.__version__}: no skip-set cached under saving_attr_skipset_*: update "
        "keras_resnet/compat.py keep_saving_skipsets")


def test_deferred_variables_get_their_first_values_and_leave_keras_nothing_to_initialise():
    """`deferred_initial_values`, `set_value`, `initialize_deferred`, `forget_deferred`: Keras' deferred
    variables (`_value`, `_initializer`, `_deferred_initialize`) and its global list of them."""
    from keras.src.backend.common import global_state  # private: the list compat prunes, read to check it

    def pending():
        return global_state.get_global_attribute("uninitialized_variables") or []

    with compat.deferred_initial_values():
        dense = keras.layers.Dense(3, name="deferred")
        dense.build((None, 2))
    assert [compat.has_value(v) for v in dense.weights] == [False, False], (
        f"keras {keras.__version__}: variables built in keras.StatelessScope(initialize_variables=False) have "
        "values; update keras_resnet/compat.py has_value / deferred_initial_values")
    assert {id(v) for v in dense.weights} <= {id(v) for v in pending()}
    kernel = np.arange(6, dtype="float32").reshape(2, 3)
    assert compat.set_value(dense.kernel, kernel) is True
    assert compat.set_value(dense.kernel, kernel + 1) is False  # a value already: assigned
    assert compat.initialize_deferred(dense.weights, zeros=True) == 1  # the bias
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(dense.kernel), kernel + 1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(dense.bias), np.zeros(3, "float32"))
    assert not {id(v) for v in dense.weights} & {id(v) for v in pending()}, (
        f"keras {keras.__version__}: the deferred variables stay on Keras' list; update "
        "keras_resnet/compat.py _pending / forget_deferred")
    with keras.StatelessScope():  # initialises what is on the list at its exit: an error for a variable with a value
        pass
    np.testing.assert_array_equal(dense(np.ones((1, 2), "float32")), [[5.0, 7.0, 9.0]])

    with compat.deferred_initial_values():
        thrown_away = keras.layers.Dense(2)
        thrown_away.build((None, 2))
    assert compat.forget_deferred(thrown_away.weights) == 2
    assert not {id(v) for v in thrown_away.weights} & {id(v) for v in pending()}
    assert compat.initialize_deferred(thrown_away.weights) == 2  # their own initializers' values
    assert keras.ops.convert_to_numpy(thrown_away.kernel).std() > 0

    with pytest.raises(RuntimeError, match="a build that fails"):
        with compat.deferred_initial_values():
            failed = keras.layers.Dense(2)
            failed.build((None, 2))
            raise RuntimeError("a build that fails")
    assert not {id(v) for v in failed.weights} & {id(v) for v in pending()}


def test_set_weights_checks_every_array_before_setting_any():
    with compat.deferred_initial_values():
        dense = keras.layers.Dense(2, name="head")
        dense.build((None, 3))
    with compat.giving_values(dense.weights):
        with pytest.raises(ValueError, match=r"layer 'head' has 2 weights; received 1 arrays"):
            compat.set_weights(dense, [np.ones((3, 2))])
        with pytest.raises(ValueError, match=r"head/bias: expected shape \(2,\), received \(3,\)"):
            compat.set_weights(dense, [np.ones((3, 2)), np.ones(3)])
        assert not any(compat.has_value(v) for v in dense.weights)
        compat.set_weights(dense, [np.ones((3, 2)), np.full(2, 0.5)])
    np.testing.assert_array_equal(dense(np.ones((1, 3), "float32")), [[3.5, 3.5]])
