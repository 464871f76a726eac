"""The analysis commands through their real CLIs (subprocess) and the JAX backend of keras_resnet.analysis."""

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, env, make_image_folder, run_cli


def _png_size(path):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.fixture(scope="module")
def degradation_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("degradation")
    data = make_image_folder(str(root / "data"), train=96, test=32, size=8)
    out = str(root / "out")
    proc = run_cli(["--depths=8", f"--data={data}", f"--output_dir={out}", "--train_steps=20", "--batch_size=16",
                    "--steps_per_epoch=5", "--verbose=0"], module="trainers.degradation", timeout=240)
    return proc, data, out


def test_degradation_cli_writes_png_and_table(degradation_run):
    proc, _, out = degradation_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _png_size(os.path.join(out, "degradation.png")) == (1000, 400)
    with open(os.path.join(out, "degradation.md")) as f:
        table = f.read()
    assert "| plain8 | 8 | 20 |" in table and "| resnet8 | 8 | 20 |" in table
    for name in ("plain8", "resnet8"):
        with open(os.path.join(out, name, "summary.json")) as f:
            assert json.load(f)["iterations"] == 20
        with open(os.path.join(out, name, "config.json")) as f:
            config = json.load(f)
        assert config["batch_size"] == 16 and config["train_steps"] == 20  # the identical recipe for both
        assert os.path.exists(os.path.join(out, name, "checkpoints", "best.keras"))


def test_layer_responses_cli_from_checkpoints(degradation_run, tmp_path):
    proc, data, out = degradation_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    dirs = ",".join(os.path.join(out, name) for name in ("plain8", "resnet8"))
    proc = run_cli([f"--model_dirs={dirs}", f"--output_dir={tmp_path}", "--num_images=16"],
                   module="trainers.layer_responses", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _png_size(os.path.join(tmp_path, "layer_responses.png")) == (1000, 400)
    with open(os.path.join(tmp_path, "layer_responses.json")) as f:
        responses = json.load(f)
    assert sorted(responses) == ["plain8", "resnet8"]
    assert all(len(v) == 7 and all(x > 0 for x in v.values()) for v in responses.values())


JAX_SCRIPT = r"""
import json, sys
import numpy as np
import keras, keras_resnet
from keras_resnet import analysis
assert keras.backend.backend() == "jax"
model = keras_resnet.build("resnet8", input_shape=(8, 8, 3))
model.load_weights(sys.argv[1])
x, y = np.load(sys.argv[2]), np.arange(4) % 10
deep = analysis.deepen(model, 1)
diff = float(np.abs(deep.predict(x, verbose=0) - model.predict(x, verbose=0)).max())
print(json.dumps({"norms": analysis.gradient_norms(model, (x, y)), "diff": diff,
                  "responses": analysis.layer_responses(model, x)}))
"""


def test_jax_backend_matches_tensorflow(tmp_path):
    import keras
    import numpy as np

    import keras_resnet
    from keras_resnet import analysis

    keras.utils.set_random_seed(0)
    model = keras_resnet.build("resnet8", input_shape=(8, 8, 3))
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    weights, images = str(tmp_path / "m.weights.h5"), str(tmp_path / "x.npy")
    model.save_weights(weights)
    np.save(images, x)
    proc = subprocess.run([sys.executable, "-c", JAX_SCRIPT, weights, images], cwd=REPO,
                          env=env(KERAS_BACKEND="jax"), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["diff"] < 1e-5
    expected = analysis.gradient_norms(model, (x, np.arange(4) % 10))
    assert list(result["norms"]) == list(expected)
    np.testing.assert_allclose(list(result["norms"].values()), list(expected.values()), rtol=1e-3)
    np.testing.assert_allclose(list(result["responses"].values()),
                               list(analysis.layer_responses(model, x).values()), rtol=1e-4)
