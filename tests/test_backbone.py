"""Contracts of `keras_resnet.features` (multi-scale features) and `keras_resnet.export.export_features`.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (Table 1: the stages and
their output sizes); He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016 (pre-activation:
the features are taken after the BN-ReLU the network applies next).
"""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_resnet
from conftest import AKAMASTER, CIFAR, QUIET_ENV, REPO, randomise_batch_norms, real_cifar_test_images, relative_difference
from keras_resnet.export import export_features
from keras_resnet.normalization import CAFFE
from keras_resnet.registry import MODELS

DEEPEST = ("resnet1202", "preact_resnet1001")
"""Built by the same builders as ResNet-110 / PreAct-164 with more blocks per stage; their graphs take a
minute each to build, so the registry-wide test covers the families through their shallower members."""
CIFAR_SIZE, IMAGENET_SIZE = 32, 64


def family_table(name):
    """`(keys, channels per level, input size)` from Table 1 and section 4.2 of the paper."""
    if name.startswith("preact_resnet"):
        bottleneck = name != "preact_resnet110"
        return ("P0", "P1", "P2"), tuple(c * (4 if bottleneck else 1) for c in (16, 32, 64)), CIFAR_SIZE
    depth = int("".join(filter(str.isdigit, name)))
    if depth in (20, 32, 44, 56, 110, 1202):
        return ("P0", "P1", "P2"), (16, 32, 64), CIFAR_SIZE
    bottleneck = depth >= 50
    return ("P2", "P3", "P4", "P5"), tuple(c * (4 if bottleneck else 1) for c in (64, 128, 256, 512)), IMAGENET_SIZE


def build(name, **kwargs):
    _, _, size = family_table(name)
    if size == IMAGENET_SIZE:
        kwargs.setdefault("input_shape", (size, size, 3))
    return MODELS[name](**kwargs)


@pytest.mark.parametrize("name", [n for n in MODELS if n not in DEEPEST])
def test_keys_strides_and_shapes_for_every_registered_network(name):
    keys, channels, size = family_table(name)
    model = build(name)
    backbone = keras_resnet.features(model)
    shapes = {key: tuple(tensor.shape) for key, tensor in backbone.output.items()}
    expected = {key: (None, size // 2 ** int(key[1:]), size // 2 ** int(key[1:]), c) for key, c in zip(keys, channels)}
    assert shapes == expected
    assert backbone.name == f"{model.name}_features"
    assert [w.path for w in backbone.weights] == [w.path for w in model.weights if "predictions" not in w.path]
    levels = keras_resnet.pyramid_levels(model)
    assert list(levels) == list(keys)
    preactivation = name.startswith("preact") or name.endswith("v2")
    assert levels[keys[-1]] == ("post_relu" if preactivation else f"{levels[keys[-1]].split('_block')[0]}_block"
                                f"{levels[keys[-1]].split('_block')[1].split('_')[0]}_out")


def classifier_logits(model, last_level):
    """The full model's classifier applied to the global average of the last feature level."""
    pooled = np.mean(last_level, axis=(1, 2))
    kernel, bias = model.get_layer("predictions").get_weights()
    return pooled @ kernel + bias


REPRESENTATIVES = ("resnet20", "plain20", "preact_resnet110", "preact_resnet164", "resnet18", "resnet50",
                   "resnet50v2")


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(0).normal(0, 1, (2, IMAGENET_SIZE, IMAGENET_SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_values_equal_the_full_models_layers_and_feed_its_classifier(name, inputs):
    keys, _, size = family_table(name)
    model = randomise_batch_norms(build(name, classifier_activation=None), seed=1)
    images = inputs[:, :size, :size]
    maps = keras_resnet.features(model).predict(images, verbose=0)
    levels = keras_resnet.pyramid_levels(model)
    intermediate = keras.Model(model.inputs, [model.get_layer(levels[k]).output for k in keys] + [model.output])
    *layers, logits = intermediate.predict(images, verbose=0)
    for key, layer_output in zip(keys, layers):
        np.testing.assert_array_equal(maps[key], layer_output)
    # the last level is the trunk the classifier reads: pooled and through "predictions", the model's logits
    assert relative_difference(classifier_logits(model, maps[keys[-1]]), logits) < 1e-5


@pytest.mark.parametrize("name", ["preact_resnet110", "resnet50v2"])
def test_preactivation_features_are_the_next_bn_relu_of_the_last_tensor_at_their_stride(name, inputs):
    keys, _, size = family_table(name)
    model = randomise_batch_norms(build(name), seed=2)
    images = inputs[:, :size, :size]
    maps = keras_resnet.features(model).predict(images, verbose=0)
    levels = keras_resnet.pyramid_levels(model)
    for key in keys[:-1]:
        unit = levels[key].removesuffix("_preact_relu")
        stage, block = (int(part) for part in unit.removeprefix("stage").split("_block"))
        before = f"stage{stage}_block{block - 1}_out" if block > 1 else f"stage{stage - 1}_block"
        if block == 1:  # the first unit of a stage reads the previous stage's last unit
            before = [n.name for n in model.layers if n.name.startswith(before) and n.name.endswith("_out")][-1]
        raw = keras.Model(model.inputs, model.get_layer(before).output).predict(images, verbose=0)
        gamma, beta, mean, variance = model.get_layer(f"{unit}_preact_bn").get_weights()
        epsilon = model.get_layer(f"{unit}_preact_bn").epsilon
        expected = np.maximum((raw - mean) / np.sqrt(variance + epsilon) * gamma + beta, 0)
        assert relative_difference(maps[key], expected) < 1e-5
        assert maps[key].shape[1] == size // 2 ** int(key[1:])


def test_a_model_of_another_package_is_refused_with_one_line():
    other = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv")], name="mine")
    with pytest.raises(ValueError, match=r"`model` 'mine' has no layers named stage<i>_block<j>_out"):
        keras_resnet.features(other)
    with pytest.raises(ValueError, match=r"`model` must be a keras.Model built by keras_resnet; received a str"):
        keras_resnet.features("resnet50")


SERVE_FEATURES = r'''
import sys
sys.modules["keras"] = sys.modules["keras_resnet"] = None  # a serving process: neither can be imported
import json
import numpy as np, tensorflow as tf
work = sys.argv[1]
out = {}
for name in ("cifar", "imagenet"):
    images = np.load(f"{work}/{name}_images.npy")
    signature = tf.saved_model.load(f"{work}/{name}/1").signatures["serving_default"]
    for key, value in signature(images=tf.constant(images)).items():
        out[f"{name}_{key}"] = value.numpy()
    out[f"{name}_single_P2"] = signature(images=tf.constant(images[:1]))["P2"].numpy()
np.savez(f"{work}/served.npz", **out)
'''


def test_feature_exports_are_served_without_the_package(tmp_path):
    pixels, _, _ = real_cifar_test_images(per_class=2)
    cifar = randomise_batch_norms(keras_resnet.ResNet20(), seed=3)
    imagenet = randomise_batch_norms(keras_resnet.ResNet18(include_top=False, input_shape=(None, None, 3)), seed=4)
    photos = np.random.default_rng(5).integers(0, 256, (3, 72, 96, 3)).astype(np.uint8)
    expected = {
        "cifar": keras_resnet.features(cifar).predict(keras_resnet.preprocess_input(pixels, "cifar10"), verbose=0),
        "imagenet": keras_resnet.features(imagenet).predict(CAFFE.apply(photos), verbose=0),
    }
    paths = {"cifar": export_features(cifar, tmp_path / "cifar", normalization="cifar10"),
             "imagenet": export_features(imagenet, tmp_path / "imagenet", normalization=CAFFE)}
    np.save(tmp_path / "cifar_images.npy", pixels)
    np.save(tmp_path / "imagenet_images.npy", photos)
    (tmp_path / "serve.py").write_text(SERVE_FEATURES)
    result = subprocess.run([sys.executable, str(tmp_path / "serve.py"), str(tmp_path)], capture_output=True,
                            text=True, timeout=600, env=dict(os.environ, **QUIET_ENV))
    assert result.returncode == 0, result.stderr[-3000:]
    served = dict(np.load(tmp_path / "served.npz"))
    for name, maps in expected.items():
        assert sorted(k.removeprefix(f"{name}_") for k in served if k.startswith(name) and "single" not in k) == \
            sorted(maps)
        for key, value in maps.items():
            assert served[f"{name}_{key}"].shape == value.shape
            assert relative_difference(served[f"{name}_{key}"], value) < 1e-4, (name, key)
        assert relative_difference(served[f"{name}_single_P2"], maps["P2"][:1]) < 1e-4
    card = json.loads((paths["cifar"] / "assets" / "model_card.json").read_text())
    assert card["kind"] == "features" and card["model"] == "resnet20" and card["version"] == 1
    assert card["levels"] == {"P0": {"layer": "stage1_block3_out", "stride": 1, "channels": 16},
                              "P1": {"layer": "stage2_block3_out", "stride": 2, "channels": 32},
                              "P2": {"layer": "stage3_block3_out", "stride": 4, "channels": 64}}
    assert card["preprocessing"]["normalization"]["name"] == "torch"
    assert card["signatures"]["serving_default"]["inputs"]["images"] == {"dtype": "uint8", "shape": [None, 32, 32, 3]}
    imagenet_card = json.loads((paths["imagenet"] / "assets" / "model_card.json").read_text())
    assert imagenet_card["signatures"]["serving_default"]["inputs"]["images"]["shape"] == [None, None, None, 3]
    assert imagenet_card["preprocessing"]["normalization"]["channel_order"] == "BGR"
    assert sorted(p.name for p in (tmp_path / "cifar").iterdir()) == ["1"]  # nothing else left beside it


def test_feature_export_needs_the_normalization(tmp_path):
    with pytest.raises(ValueError, match="`normalization` is required"):
        export_features(keras_resnet.ResNet20(), tmp_path / "x", normalization=None)
    assert not (tmp_path / "x").exists()


def test_the_offline_backbone_example_trains_a_head_on_the_pretrained_features(capsys, tmp_path, monkeypatch):
    weights = AKAMASTER / "resnet20-12fca82f.th"
    if not (CIFAR / "cifar10-test.tar.gz").is_file() or not weights.is_file():
        pytest.skip(f"../shared absent: needs {CIFAR} and {weights}")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # the conversion's cache, not the user's
    monkeypatch.setenv("KERAS_RESNET_WEIGHTS", str(AKAMASTER))  # the example sets it: restored afterwards
    spec = importlib.util.spec_from_file_location("backbone_example", os.path.join(REPO, "examples", "backbone_features.py"))
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    accuracy = example.main([f"--data={CIFAR}", f"--weights_dir={AKAMASTER}"])
    printed = capsys.readouterr().out
    assert "{'P0': (None, 32, 32, 16), 'P1': (None, 16, 16, 32), 'P2': (None, 8, 8, 64)}" in printed
    assert f"{accuracy:.2%} on 5000 held-out test images" in printed
    assert accuracy > 0.80  # a linear head on frozen pretrained features; chance is 10%
