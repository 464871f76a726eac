"""Contracts of keras_resnet.analysis: identity deepening, gradient norms, layer responses, figures."""

import io
import os
import tarfile

import numpy as np
import pytest

import keras

import keras_resnet
from keras_resnet import analysis

SIZE = 16
CIFAR_JPEG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                          "datasets", "cifar10-jpeg")


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.normal(size=(n, SIZE, SIZE, 3)).astype("float32") + labels[:, None, None, None] * 0.1
    return images, labels.astype("int32")


def _trained(model, images, labels, epochs=2):
    """A few SGD steps so that BN moving statistics and weights are non-trivial."""
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    model.fit(images, labels, batch_size=8, epochs=epochs, verbose=0, shuffle=False)
    return model


@pytest.fixture(scope="module")
def trained_resnet8():
    keras.utils.set_random_seed(0)
    x, y = _data()
    return _trained(keras_resnet.build("resnet8", input_shape=(SIZE, SIZE, 3)), x, y)


# --- deepen


def test_trained_model_has_nontrivial_bn_statistics(trained_resnet8):
    bn = trained_resnet8.get_layer("stage2_block1_2_bn")
    assert not np.allclose(keras.ops.convert_to_numpy(bn.moving_variance), 1.0)
    assert not np.allclose(keras.ops.convert_to_numpy(bn.moving_mean), 0.0)


@pytest.mark.parametrize("extra,depth", [(1, 14), (2, 20)])
def test_deepen_computes_the_same_function(trained_resnet8, extra, depth):
    x, _ = _data(16, seed=1)
    deep = analysis.deepen(trained_resnet8, extra)
    assert deep.name == f"resnet{depth}"
    assert len([l for l in deep.layers if l.name.endswith("_add")]) == 3 * (depth - 2) // 6
    expected = trained_resnet8.predict(x, verbose=0)
    got = deep.predict(x, verbose=0)
    assert got.shape == expected.shape == (16, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # The result is an ordinary builder model: same architecture (and parameter count) as cifar_resnet(depth').
    fresh = keras_resnet.cifar_resnet(depth, input_shape=(SIZE, SIZE, 3))
    assert [l.name for l in deep.layers] == [l.name for l in fresh.layers]
    assert deep.count_params() == fresh.count_params()
    # New blocks start as identities: zero last-BN scale.
    new_gamma = deep.get_layer(f"stage3_block{1 + extra}_2_bn").gamma
    assert np.all(keras.ops.convert_to_numpy(new_gamma) == 0)


def test_continued_training_starts_at_the_shallow_loss(trained_resnet8):
    x, y = _data(16, seed=2)
    deep = analysis.deepen(trained_resnet8, 1)
    shallow = keras.models.clone_model(trained_resnet8)
    shallow.set_weights(trained_resnet8.get_weights())
    results = {}
    for name, model in (("shallow", shallow), ("deep", deep)):
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        evaluation = model.evaluate(x, y, verbose=0, return_dict=True)
        first_step = model.train_on_batch(x, y, return_dict=True)  # loss of the forward pass before the update
        results[name] = (evaluation, first_step)
    for key in ("loss", "accuracy"):
        assert results["deep"][0][key] == pytest.approx(results["shallow"][0][key], rel=1e-5, abs=1e-6)
        assert results["deep"][1][key] == pytest.approx(results["shallow"][1][key], rel=1e-5, abs=1e-6)
    assert np.isfinite(deep.predict(x, verbose=0)).all()


@pytest.mark.parametrize("shortcut", ["B", "C"])
def test_deepen_projection_shortcuts(shortcut):
    keras.utils.set_random_seed(1)
    x, y = _data(16)
    model = _trained(keras_resnet.cifar_resnet(8, shortcut=shortcut, input_shape=(SIZE, SIZE, 3)), x, y, epochs=1)
    deep = analysis.deepen(model, 1)
    assert analysis.describe_cifar_model(deep)["shortcut"] == shortcut
    np.testing.assert_allclose(deep.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_deepen_rejects_bad_input(trained_resnet8):
    with pytest.raises(ValueError, match="plain network"):
        analysis.deepen(keras_resnet.build("plain8", input_shape=(SIZE, SIZE, 3)), 1)
    with pytest.raises(ValueError, match="extra_blocks_per_stage"):
        analysis.deepen(trained_resnet8, -1)
    with pytest.raises(ValueError, match="extra_blocks_per_stage"):
        analysis.deepen(trained_resnet8, 1.5)
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="CIFAR"):
        analysis.deepen(keras.Model(inputs, keras.layers.Dense(2)(inputs)), 1)


def _cifar_jpeg_images(per_class=3):
    """A handful of real CIFAR-10 test images straight from the JPEG archive (first `per_class` of each class)."""
    from PIL import Image

    images, labels = [], []
    with tarfile.open(os.path.join(CIFAR_JPEG, "cifar10-test.tar.gz")) as archive:
        classes = sorted({m.name.split("/")[1] for m in archive.getmembers() if m.name.count("/") == 2})
        for member in archive.getmembers():
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 3 and int(parts[2].split(".")[0]) < per_class:
                images.append(np.asarray(Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")))
                labels.append(classes.index(parts[1]))
    images = np.stack(images).astype("float32")
    return (images - images.mean(0)) / 255.0, np.asarray(labels, "int32")


@pytest.mark.skipif(not os.path.isdir(CIFAR_JPEG), reason="../shared/datasets/cifar10-jpeg not available")
def test_trained_resnet20_deepened_to_32_and_56_on_real_images():
    x, y = _cifar_jpeg_images()
    assert x.shape == (30, 32, 32, 3)
    keras.utils.set_random_seed(0)
    resnet20 = _trained(keras_resnet.ResNet20(), x, y, epochs=1)  # 4 steps of batch 8
    expected = resnet20.predict(x, verbose=0)
    for extra, depth in ((2, 32), (6, 56)):
        deep = analysis.deepen(resnet20, extra)
        assert deep.name == f"resnet{depth}"
        np.testing.assert_allclose(deep.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


# --- gradient norms


@pytest.mark.parametrize("name", ["resnet8", "plain8"])
def test_gradient_norms(name):
    keras.utils.set_random_seed(0)
    model = keras_resnet.build(name, input_shape=(SIZE, SIZE, 3))
    x, y = _data(8)
    before = [keras.ops.convert_to_numpy(v).copy() for v in model.non_trainable_variables]
    norms = analysis.gradient_norms(model, (x, y))
    kernels = [l.name for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    assert list(norms) == kernels  # every kernel, input side first
    assert list(norms)[0] == "stem_conv" and list(norms)[-1] == "predictions"
    assert len(norms) == 8  # 7 convolutions + the classifier (option A has no projections)
    values = np.array(list(norms.values()))
    assert np.isfinite(values).all() and (values > 0).all()
    # BN moving statistics are not touched.
    for b, v in zip(before, model.non_trainable_variables):
        np.testing.assert_array_equal(b, keras.ops.convert_to_numpy(v))


def test_gradient_norms_match_a_tape_gradient():
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras_resnet.build("resnet8", input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    x, y = _data(8)
    norms = analysis.gradient_norms(model, (x, y))
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=True),
                                                                          from_logits=True))
    grad = tape.gradient(loss, model.get_layer("stage2_block1_1_conv").kernel)
    assert norms["stage2_block1_1_conv"] == pytest.approx(float(tf.norm(grad)), rel=1e-4)


def test_gradient_norms_rejects_bad_batch(trained_resnet8):
    with pytest.raises(ValueError, match="batch"):
        analysis.gradient_norms(trained_resnet8, np.zeros((2, SIZE, SIZE, 3)))
    with pytest.raises(ValueError, match="labels"):
        analysis.gradient_norms(trained_resnet8, (np.zeros((2, SIZE, SIZE, 3)), np.zeros(3)))


# --- layer responses


def test_layer_responses(trained_resnet8):
    x, _ = _data(12)
    responses = analysis.layer_responses(trained_resnet8, x, batch_size=5)
    assert list(responses) == ["stem_bn"] + [f"stage{s}_block1_{i}_bn" for s in (1, 2, 3) for i in (1, 2)]
    values = np.array(list(responses.values()))
    assert np.isfinite(values).all() and (values > 0).all()
    # Matches a direct computation: per-channel std over images and positions, averaged over channels.
    probe = keras.Model(trained_resnet8.input, trained_resnet8.get_layer("stage2_block1_2_bn").output)
    out = np.asarray(probe(x, training=False), np.float64)
    assert responses["stage2_block1_2_bn"] == pytest.approx(out.reshape(-1, out.shape[-1]).std(0).mean(), rel=1e-4)


def test_layer_responses_plain_and_errors():
    model = keras_resnet.build("plain14", input_shape=(SIZE, SIZE, 3))
    assert len(analysis.layer_responses(model, _data(4)[0])) == 13
    with pytest.raises(ValueError, match="images"):
        analysis.layer_responses(model, np.zeros((0, SIZE, SIZE, 3), "float32"))
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="3x3"):
        analysis.layer_responses(keras.Model(inputs, keras.layers.Dense(2)(inputs)), np.zeros((1, 4, 4, 1)))


# --- figures and tables


def _png_size(path):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
    with Image.open(path) as image:
        return image.size


def _curves(offset):
    it = np.arange(1, 6) * 100
    return {"iteration": it, "error": 0.9 - 0.1 * np.arange(5) + offset, "test_error": 0.92 - 0.1 * np.arange(5)}


def test_plots_are_valid_pngs_of_the_expected_size(tmp_path):
    curves = {"plain20": _curves(0.0), "plain56": _curves(0.05), "resnet20": _curves(0.0), "resnet56": _curves(-0.05)}
    assert _png_size(analysis.plot_degradation(curves, str(tmp_path / "fig6.png"))) == (1000, 400)
    norms = {"plain8": {"a": 1.0, "b": 0.1, "c": 1e-3}, "resnet8": {"a": 1.0, "b": 0.8, "c": 0.9}}
    path = analysis.plot_gradient_norms({"init": norms, "trained": norms}, str(tmp_path / "g.png"), figsize=(6, 3))
    assert _png_size(path) == (600, 300)
    responses = {"plain8": {"a": 1.0, "b": 2.0}, "resnet8": {"a": 0.5, "b": 0.2}}
    path = analysis.plot_layer_responses(responses, str(tmp_path / "sub" / "fig7.png"), dpi=50)
    assert _png_size(path) == (500, 200)
    assert sorted(os.listdir(tmp_path)) == ["fig6.png", "g.png", "sub"]  # no temporary files left


def test_degradation_table():
    results = {"resnet56": {"error": 0.05, "test_error": 0.07, "iterations": 100},
               "plain20": {"error": 0.10, "test_error": 0.12, "iterations": 100},
               "plain56": {"error": 0.20, "test_error": 0.22, "iterations": 100},
               "resnet20": {"error": 0.08, "test_error": 0.09, "iterations": 100}}
    table = analysis.degradation_table(results)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split("|")[1].strip() for r in rows] == ["plain20", "plain56", "resnet20", "resnet56"]
    assert "| plain56 | 56 | 100 | 20.00 | 22.00 |" in table
    assert ("- Plain networks: plain56 has a higher training error than plain20 (20.00% vs 10.00%) and a higher test "
            "error than plain20 (22.00% vs 12.00%): degradation holds at 100 iterations.") in table
    assert ("- ResNets: resnet56 has a lower training error than resnet20 (5.00% vs 8.00%) and a lower test error "
            "than resnet20 (7.00% vs 9.00%): the gain from depth holds at 100 iterations.") in table
    results["resnet56"]["test_error"] = 0.10  # better on the training set only: the second half does not hold
    assert "the gain from depth does not hold at 100 iterations." in analysis.degradation_table(results)


def test_loss_table_shows_the_first_epochs_and_the_last():
    curves = {"resnet8": {"iteration": [2, 4, 6], "error": [0.9, 0.6, 0.3], "cross_entropy": [2.31, 1.5, 0.7],
                          "regularization": [0.1, 0.12, 0.13]}}
    rows = analysis.loss_table(curves, first=1).splitlines()[2:]
    assert rows == ["| resnet8 | 1 | 2 | 2.3100 | 0.1000 | 90.00 |", "| resnet8 | 3 (last) | 6 | 0.7000 | 0.1300 | 30.00 |"]


# --- experiments


def test_train_runs_share_one_recipe_and_report_training_error(tmp_path):
    from conftest import array_data

    from keras_resnet import training

    seen = {}

    class Probe(keras.callbacks.Callback):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def on_train_begin(self, logs=None):
            seen[self.name] = analysis.gradient_norms(self.model, analysis.sample_batch(data, 8))

    data = array_data(train=64, test=16, size=8)
    config = training.TrainConfig(model="resnet8", data="toy", model_dir=str(tmp_path), batch_size=16,
                                  train_steps=4, steps_per_epoch=2, verbose=0)
    results = analysis.train_runs(config, ["plain8", "resnet8"], str(tmp_path), data=data,
                                  callbacks=lambda name: [Probe(name)])
    assert sorted(results) == ["plain8", "resnet8"] == sorted(seen)
    for name, result in results.items():
        assert result["iterations"] == 4 and 0 <= result["error"] <= 1
        assert list(result["curves"]["iteration"]) == [2, 4]
        assert os.path.exists(os.path.join(tmp_path, name, "checkpoints", "latest.keras"))
        assert analysis.load_checkpoint(result["model_dir"], "latest").name == name
    x, y = analysis.sample_batch(data, 8)
    assert x.shape == (8, 8, 8, 3) and x.dtype == np.float32 and y.dtype == np.int32
    with pytest.raises(ValueError, match="checkpoint"):
        analysis.load_checkpoint(str(tmp_path / "plain8"), "last")
    with pytest.raises(FileNotFoundError):
        analysis.read_log(str(tmp_path / "missing"))
