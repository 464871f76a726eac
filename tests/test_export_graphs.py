"""Serving graphs built for speed (issue 15): the SavedModel and the ONNX export run the BN-folded network
and give the unfolded model's logits within 1e-4 (relative) on real images."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_resnet
from keras_resnet import export
from keras_resnet.data import DatasetInfo

from conftest import REPO, env, randomise_batch_norms, real_cifar_test_images, relative_difference

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def images():
    pixels, labels, _ = real_cifar_test_images(per_class=5)
    return pixels


def reference_logits(model, pixels, mean):
    """The unfolded Keras model's logits: features of `avg_pool` through the classifier's kernel and bias."""
    features = keras.Model(model.inputs, model.get_layer("avg_pool").output).predict(
        (pixels.astype(np.float32) - mean) / 255.0, verbose=0)
    head = model.get_layer("predictions")
    return features @ keras.ops.convert_to_numpy(head.kernel) + keras.ops.convert_to_numpy(head.bias)


def model_dir_of(tmp_path, model, mean):
    """A minimal training-run directory (docs/CONTRACTS.md layout) holding `model` as its best checkpoint."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    model.save(run / "checkpoints" / "best.keras")
    info = DatasetInfo(name="cifar10-jpeg", class_names=CLASSES, image_shape=(32, 32, 3),
                       num_examples={"train": 50000, "test": 10000}, mean=mean)
    (run / "dataset.json").write_text(info.to_json())
    np.save(run / "mean_image.npy", mean)
    return run


def graph_op_types(version_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((version_dir / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    return {node.op for function in graph.library.function for node in function.node_def} | {
        node.op for node in graph.node}


@pytest.mark.parametrize("zero_init", [False, True], ids=["random-bn", "zero-init-residual"])
def test_saved_model_serves_the_folded_network_exactly(tmp_path, images, zero_init):
    import tensorflow as tf

    model = randomise_batch_norms(keras_resnet.ResNet20(zero_init_residual=zero_init), seed=3)
    if zero_init:  # the zero-initialised last BN scales, as a fresh zero_init_residual model has them
        for layer in model.layers:
            if layer.name.endswith("_2_bn"):
                layer.gamma.assign(np.zeros(layer.gamma.shape, np.float32))
    mean = images.astype(np.float32).mean(0)
    path = export.export_saved_model(model, tmp_path / "export", mean=mean, class_names=CLASSES)
    loaded = tf.saved_model.load(str(path))
    pre = (images.astype(np.float32) - mean) / 255.0
    served = loaded.signatures["logits"](images=tf.constant(pre))["logits"].numpy()
    assert relative_difference(served, reference_logits(model, images, mean)) < 1e-4
    card = json.loads((path / "assets" / "model_card.json").read_text())
    assert card["graph"]["transforms"] == ["fold_batch_norm"]
    assert card["graph"]["batch_norm_folded"] == 19 and card["graph"]["batch_norm_left"] == 0
    ops = graph_op_types(path)
    assert not {op for op in ops if "BatchNorm" in op} and "Rsqrt" not in ops and "Conv2D" in ops


def test_onnx_export_from_a_run_matches_keras_in_onnx_runtime(tmp_path, images):
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is installed by .ci/run (the onnx extra)")
    model = randomise_batch_norms(keras_resnet.ResNet20(), seed=5)
    mean = images.astype(np.float32).mean(0)
    run = model_dir_of(tmp_path, model, mean)
    root = tmp_path / "saved_models" / "resnet20"
    cmd = [sys.executable, "-m", "keras_resnet.export", f"--model_dir={run}", f"--export_dir={root}", "--format=onnx"]
    result = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    version = root / "onnx" / "1"
    assert result.stdout.strip().endswith(str(version))
    assert sorted(p.name for p in version.iterdir()) == ["labels.txt", "model.onnx", "model_card.json"]
    assert export.existing_versions(root) == []  # TF Serving sees no half version: `onnx` is not a number
    assert not [p for p in (root / "onnx").iterdir() if p.name.startswith(".")]
    card = json.loads((version / "model_card.json").read_text())
    assert card["format"] == "onnx" and card["onnx"]["opset"] == 17 and card["version"] == 1
    assert card["onnx"]["inputs"]["image"] == {"dtype": "uint8", "shape": [None, 32, 32, 3], "layout": "NHWC"}
    assert card["graph"]["batch_norm_folded"] == 19
    assert (version / "labels.txt").read_text().split() == CLASSES
    session = ort.InferenceSession(str(version / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, probabilities = session.run(["logits", "probabilities"], {"image": images})
    assert relative_difference(logits, reference_logits(model, images, mean)) < 1e-4
    np.testing.assert_allclose(probabilities, model.predict((images - mean) / 255.0, verbose=0), atol=1e-5)
    again = subprocess.run(cmd + ["--version=1"], cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "Version 1 already exists" in again.stderr


def test_onnx_export_bad_arguments_name_them(tmp_path):
    model = keras_resnet.cifar_resnet(8)
    with pytest.raises(ValueError, match=r"`input_dtype` must be one of \('uint8', 'float32'\); received 'int8'"):
        export.export_onnx(model, tmp_path, mean=np.zeros((32, 32, 3)), input_dtype="int8")
    with pytest.raises(ValueError, match=r"`export_format` \(--format\) must be one of"):
        export.export_from_model_dir(tmp_path, tmp_path / "out", export_format="tflite")
    assert not (tmp_path / "out").exists()
