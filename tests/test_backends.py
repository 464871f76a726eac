"""The builders use keras.layers / keras.ops only: they build and run on the JAX and PyTorch backends too.

The GPU machines have JAX but no TensorFlow, so JAX is the path GPU training takes (JAX is in the test
extra). PyTorch is checked when it is installed (`pip install torch`). Each check runs in a subprocess
with `KERAS_BACKEND` set and `import tensorflow` blocked.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_resnet

NO_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None\n"
needs_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
BACKENDS = [
    pytest.param("jax", marks=needs_jax),
    pytest.param(
        "torch",
        marks=pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed"),
    ),
]


def run_jax(code, tmp_path, backend="jax"):
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
    script = tmp_path / "script.py"
    script.write_text(NO_TENSORFLOW + textwrap.dedent(code))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_builders_match_parameter_counts_on_other_backends(tmp_path, backend):
    out = run_jax(
        """
        import json, keras, numpy as np
        assert keras.backend.backend() == BACKEND
        import keras_resnet
        counts = {}
        for shortcut in ("A", "B", "C", None):
            model = keras_resnet.cifar_resnet(8, shortcut=shortcut, input_shape=(16, 16, 3))
            y = model(np.ones((2, 16, 16, 3), "float32"))
            assert y.shape == (2, 10) and np.isfinite(keras.ops.convert_to_numpy(y)).all()
            counts[str(shortcut)] = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        counts["resnet56"] = sum(int(np.prod(w.shape)) for w in keras_resnet.ResNet56().trainable_weights)
        counts["resnet50"] = sum(int(np.prod(w.shape)) for w in keras_resnet.ResNet50().trainable_weights)
        print(json.dumps(counts))
        """.replace("BACKEND", repr(backend)),
        tmp_path,
        backend,
    )
    counts = json.loads(out.strip().splitlines()[-1])
    expected = {
        str(s): sum(int(np.prod(w.shape)) for w in keras_resnet.cifar_resnet(8, shortcut=s, input_shape=(16, 16, 3)).trainable_weights)
        for s in ("A", "B", "C", None)
    }
    expected.update(resnet56=853_018, resnet50=25_557_032)
    assert counts == expected


@needs_jax
def test_jax_outputs_equal_tensorflow_outputs_for_same_weights(tmp_path):
    """Correctness before speed: the same .keras file gives the same outputs on both backends."""
    model = keras_resnet.cifar_resnet(8, shortcut="A", input_shape=(16, 16, 3), classifier_activation=None)
    images = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(images, np.arange(4))  # non-trivial BN statistics
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "images.npy", images)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    run_jax(
        f"""
        import keras, numpy as np
        import keras_resnet  # registers ZeroPadShortcut
        model = keras.saving.load_model({str(tmp_path / 'm.keras')!r}, safe_mode=True)
        np.save({str(tmp_path / 'jax.npy')!r}, np.asarray(model(np.load({str(tmp_path / 'images.npy')!r}), training=False)))
        """,
        tmp_path,
    )
    np.testing.assert_allclose(np.load(tmp_path / "jax.npy"), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_training_step_on_other_backends(tmp_path, backend):
    out = run_jax(
        """
        import keras, numpy as np, keras_resnet
        model = keras_resnet.build("resnet8", input_shape=(16, 16, 3), zero_init_residual=True)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
        x = np.random.default_rng(0).normal(size=(8, 16, 16, 3)).astype("float32")
        before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
        kernel = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel).copy()
        loss = model.train_on_batch(x, np.arange(8) % 10)
        after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
        moved = sum(not np.array_equal(a, b) for a, b in zip(before, after))
        kernel_moved = not np.array_equal(kernel, keras.ops.convert_to_numpy(model.get_layer("predictions").kernel))
        print("RESULT", float(loss), moved, len(after), int(kernel_moved))
        """,
        tmp_path,
        backend,
    )
    _, loss, moved, total, kernel_moved = out.strip().splitlines()[-1].split()
    assert np.isfinite(float(loss))
    # One SGD step changes the weights: the classifier's kernel and, in all, at least a third of the
    # variables (with zero_init_residual the branches behind a zero BN scale get no gradient yet).
    assert kernel_moved == "1" and int(moved) >= int(total) // 3, out
