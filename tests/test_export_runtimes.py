"""OpenVINO IR and LiteRT exports (`--format=openvino`, `--format=litert`) served without keras_resnet.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the CIFAR-10 ResNet-20 of
section 4.2, here with akamaster's published weights, `../shared`).

The pretrained ResNet-20 is exported as a SavedModel, OpenVINO IR and LiteRT by the command line; a process
that cannot import keras or keras_resnet serves 100 real CIFAR-10 test JPEGs through each (one batch of
100, and one image at a time for 10 of them), OpenVINO forced to float32 (its CPU plugin infers in bf16 by
default on this processor). Every format gives the SavedModel's top-1 on every image, probabilities within
1e-5, and OpenVINO's logits are the Keras network's within 1e-4 of the largest logit.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import AKAMASTER, QUIET_ENV, real_cifar_test_images

pytest.importorskip("tensorflow")

SERVE_SCRIPT = r'''
import sys
sys.modules["keras"] = sys.modules["keras_resnet"] = None  # a serving process: neither can be imported
import numpy as np
import openvino
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

root, images_path, out = sys.argv[1:4]
images = np.load(images_path)
saved = tf.saved_model.load(root + "/1").signatures["serving_default"]
compiled = openvino.Core().compile_model(root + "/openvino/1/model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
runner = Interpreter(model_path=root + "/litert/1/model.tflite").get_signature_runner("serving_default")
def run_all(x):
    ov = compiled(x)
    lite = runner(images=x)
    return {"saved": saved(images=tf.constant(x))["probabilities"].numpy(),
            "openvino": ov[compiled.output("probabilities")], "openvino_logits": ov[compiled.output("logits")],
            "litert": lite["probabilities"], "litert_names": lite["class_names"]}
batch = run_all(images)
single = [run_all(images[i:i + 1]) for i in range(10)]
arrays = {f"batch_{k}": v for k, v in batch.items()}
arrays.update({f"single_{k}": np.concatenate([s[k] for s in single]) for k in batch})
imported = [m for m in sys.modules if m.split(".")[0] in ("keras", "keras_resnet") and sys.modules[m]]
np.savez(out, imported=np.asarray(imported, dtype=object) if imported else np.zeros(0), **arrays)
'''


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The pretrained ResNet-20 exported in three formats by the command line (in this process), and the
    outputs of each on 100 real CIFAR-10 JPEGs served by a process without keras / keras_resnet."""
    if not AKAMASTER.is_dir():
        pytest.skip(f"akamaster weights not found at {AKAMASTER} (../shared absent)")
    images, labels, _ = real_cifar_test_images(per_class=10)
    work = tmp_path_factory.mktemp("runtimes")
    root = work / "resnet20"
    saved_env = {k: os.environ.get(k) for k in ("KERAS_RESNET_WEIGHTS", "KERAS_HOME")}
    os.environ.update(KERAS_RESNET_WEIGHTS=str(AKAMASTER), KERAS_HOME=str(work / "keras_home"))
    try:
        from keras_resnet.export.cli import main

        for fmt in ("saved_model", "openvino", "litert"):
            assert main(["--model=resnet20", "--weights=cifar10", f"--export_dir={root}", f"--format={fmt}"]) == 0
        import keras_resnet

        model = keras_resnet.build("resnet20", weights="cifar10", classifier_activation=None)
        logits = np.asarray(model.predict(keras_resnet.weights.TORCH.apply(images), verbose=0))
    finally:
        for key, value in saved_env.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    np.save(work / "images.npy", images)
    (work / "serve.py").write_text(SERVE_SCRIPT)
    result = subprocess.run([sys.executable, str(work / "serve.py"), str(root), str(work / "images.npy"),
                             str(work / "served.npz")], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, **QUIET_ENV))
    assert result.returncode == 0, result.stderr[-3000:]
    served = dict(np.load(work / "served.npz", allow_pickle=True))
    return root, served, logits, labels


@pytest.mark.parametrize("fmt", ["openvino", "litert"])
@pytest.mark.parametrize("batching", ["batch", "single"])
def test_each_format_serves_the_saved_models_predictions(exports, fmt, batching):
    _, served, _, _ = exports
    reference, ours = served[f"{batching}_saved"], served[f"{batching}_{fmt}"]
    assert reference.shape == ours.shape == ((100, 10) if batching == "batch" else (10, 10))
    assert np.array_equal(ours.argmax(1), reference.argmax(1))  # every image: >= 99.9% agreement
    assert np.abs(ours - reference).max() < 1e-5
    assert served["imported"].size == 0  # served without keras or keras_resnet


def test_openvino_logits_are_the_networks_and_the_models_accuracy_is_kept(exports):
    _, served, logits, labels = exports
    ov = served["batch_openvino_logits"]
    assert np.abs(ov - logits).max() < 1e-4 * np.abs(logits).max()
    assert float(np.mean(served["batch_litert"].argmax(1) == labels)) == float(np.mean(logits.argmax(1) == labels)) > 0.75  # JPEG q75: ~82%
    names = [n.decode() for n in served["batch_litert_names"][:3]]
    assert names == [["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                      "truck"][i] for i in served["batch_litert"].argmax(1)[:3]]


@pytest.mark.parametrize("fmt, files", [("openvino", ["labels.txt", "model.bin", "model.xml", "model_card.json"]),
                                        ("litert", ["labels.txt", "model.tflite", "model_card.json"])])
def test_each_format_has_its_layout_and_card(exports, fmt, files):
    root = exports[0]
    version = root / fmt / "1"
    assert sorted(p.name for p in version.iterdir()) == files
    assert sorted(p.name for p in (root / fmt).iterdir()) == ["1"]  # no staging directory left
    card = json.loads((version / "model_card.json").read_text())
    assert (card["format"], card["version"], card["model_name"]) == (fmt, 1, "resnet20")
    assert card["graph"]["batch_norm_folded"] == 19 and card["graph"]["batch_norm_left"] == 0
    assert card["source"]["pretrained"]["set"] == "cifar10"
    section = card[fmt]
    if fmt == "openvino":
        assert section["inputs"]["image"] == {"dtype": "uint8", "shape": [None, 32, 32, 3], "layout": "NHWC"}
        assert "INFERENCE_PRECISION_HINT" in section["precision"]
    else:
        assert section["inputs"]["images"] == {"dtype": "uint8", "shape": [None, 32, 32, 3], "layout": "NHWC"}
        assert section["signature"] == "serving_default"
    assert (version / "labels.txt").read_text().splitlines()[:2] == ["airplane", "automobile"]


def test_an_unknown_format_is_one_line_naming_the_flag(tmp_path, capsys):
    from keras_resnet.export.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--model=resnet20", "--weights=cifar10", f"--export_dir={tmp_path}", "--format=tflite"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 2 and "--format" in err[-1] and "litert" in err[-1] and "Traceback" not in "\n".join(err)
    assert not any(tmp_path.iterdir())


def test_an_imagenet_style_litert_export_resizes_and_crops_as_the_saved_model(tmp_path):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    import keras_resnet
    from keras_resnet.export import export_litert, export_saved_model

    model = keras_resnet.build("resnet18", input_shape=(64, 64, 3), classes=3)
    common = dict(mean=np.full((1, 1, 3), 110.0, np.float32), preprocessing="imagenet", class_names=["a", "b", "c"])
    lite = export_litert(model, tmp_path, **common)
    saved = tf.saved_model.load(str(export_saved_model(model, tmp_path, **common))).signatures["serving_default"]
    runner = Interpreter(model_path=str(lite / "model.tflite")).get_signature_runner("serving_default")
    for shape in [(2, 90, 120, 3), (1, 300, 73, 3)]:  # any size: the resize and crop are in the file
        x = np.random.RandomState(sum(shape)).randint(0, 256, shape).astype(np.uint8)
        expected = saved(images=tf.constant(x))["probabilities"].numpy()
        assert np.abs(runner(images=x)["probabilities"] - expected).max() < 1e-5
    card = json.loads((lite / "model_card.json").read_text())
    assert card["litert"]["inputs"]["images"]["shape"] == [None, None, None, 3]
    assert card["litert"]["geometry"].startswith("shorter side resized to 73 (bilinear), centre 64x64 crop")
