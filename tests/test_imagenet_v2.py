"""keras.applications' pre-activation ResNets (`ResNet50V2` / `ResNet101V2` / `ResNet152V2`) as the package builds
them (issue 25): exact parameter counts, and with keras.applications' weights copied layer by layer, its
outputs on real images."""

import re

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from conftest import real_cifar_test_images, relative_difference  # noqa: E402

from keras_resnet.imagenet_v2 import imagenet_resnet_v2  # noqa: E402


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("depth, count", [
    (50, 25_568_360), (101, 44_577_896), pytest.param(152, 60_236_904, marks=pytest.mark.slow)])
def test_exact_parameter_counts_are_keras_applications(depth, count):
    model = imagenet_resnet_v2(depth)
    assert trainable(model) == count and model.name == f"resnet{depth}v2" and model.output_shape == (None, 1000)


def package_name(applications_name):
    """keras.applications' layer name in the package's prefixes: `conv3_block2_1_conv` -> `stage2_block2_1_conv`."""
    if applications_name == "conv1_conv":
        return "stem_conv"
    return re.sub(r"^conv(\d)_", lambda m: f"stage{int(m.group(1)) - 1}_", applications_name)


def test_with_keras_applications_weights_the_outputs_are_keras_applications_on_real_images():
    reference = keras.applications.ResNet50V2(weights=None)
    rng = np.random.default_rng(0)
    for layer in reference.layers:  # trained-looking BN statistics, so that a misplaced BN would show
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2.0, variance.shape)])
    model = imagenet_resnet_v2(50)
    weighted = [layer for layer in reference.layers if layer.weights]
    for layer in weighted:
        model.get_layer(package_name(layer.name)).set_weights(layer.get_weights())
    assert len(weighted) == len([layer for layer in model.layers if layer.weights])  # every layer has its twin
    images, _, _ = real_cifar_test_images(per_class=1)
    pixels = np.array(keras.ops.convert_to_numpy(keras.ops.image.resize(images.astype("float32"), (224, 224))))
    x = keras.applications.resnet_v2.preprocess_input(pixels)  # x / 127.5 - 1
    want = np.asarray(keras.ops.convert_to_numpy(reference(x, training=False)))
    got = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))
    assert relative_difference(got, want) < 1e-5 and (got.argmax(1) == want.argmax(1)).all()


def test_the_stride_and_the_biases_sit_where_keras_applications_puts_them():
    model = imagenet_resnet_v2(50)
    assert model.get_layer("stage1_block3_2_conv").strides == (2, 2)  # the last unit of stages 1-3
    assert model.get_layer("stage1_block1_1_conv").strides == (1, 1)
    assert model.get_layer("stage4_block3_2_conv").strides == (1, 1)
    assert type(model.get_layer("stage2_block4_shortcut")).__name__ == "MaxPooling2D"
    biased = sorted(layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D) and layer.use_bias)
    assert biased == sorted(["stem_conv"] + [f"stage{s}_block{b}_{i}_conv" for s, n in zip((1, 2, 3, 4), (3, 4, 6, 3))
                                             for b in range(1, n + 1) for i in ((0, 3) if b == 1 else (3,))])


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=34), "must be one of [50, 101, 152]; received 34"),
    (dict(depth=50, zero_init_residual=True), "a pre-activation unit ends with a convolution"),
    (dict(depth=50, weights="cifar10"), "`weights`='cifar10' does not fit the ImageNet resnet50v2"),
    (dict(depth=50, weights="imagenet", classes=10), "needs `classes`=1000"),
])
def test_mistakes_name_the_argument(kwargs, message):
    with pytest.raises(ValueError) as error:
        imagenet_resnet_v2(**kwargs)
    assert message in str(error.value), str(error.value)


def test_a_keras_applications_v2_h5_loads_exactly_with_its_normalisation(tmp_path):
    """A file in keras.applications' published Keras-2 layout (`resnet50v2_weights_tf_dim_ordering_tf_kernels.h5`),
    every tensor random: loaded by `weights=PATH` and converted by `keras_resnet.weights.convert`, the network
    gives keras.applications' logits on real images normalised as the file says ([-1, 1])."""
    import keras_resnet
    from test_weights import randomise_keras, save_legacy_h5

    reference = keras.applications.ResNet50V2(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    randomise_keras(reference, seed=11)
    path = tmp_path / "resnet50v2_weights_tf_dim_ordering_tf_kernels.h5"
    save_legacy_h5(reference, path)
    images, _, _ = real_cifar_test_images(per_class=1)
    pixels = np.array(keras.ops.convert_to_numpy(keras.ops.image.resize(images.astype("float32"), (64, 64))))
    x = keras_resnet.preprocess_input(pixels, weights=path)
    np.testing.assert_allclose(x, keras.applications.resnet_v2.preprocess_input(pixels.copy()), atol=1e-5)
    np.testing.assert_allclose(keras_resnet.preprocess_input(pixels, weights="imagenet", model="resnet50v2"), x)
    want = np.asarray(reference(x, training=False))
    model = keras_resnet.ResNet50V2(weights=str(path), input_shape=(64, 64, 3), classifier_activation=None)
    assert relative_difference(np.asarray(model(x, training=False)), want) < 1e-5

    from keras_resnet.weights.__main__ import main as weights_main

    output = tmp_path / "converted.weights.h5"  # the converter's command line, in this process
    assert weights_main(["convert", f"--from={path}", "--model=resnet50v2",
                         f"--output={output}"]) == 0
    assert keras_resnet.weights.preprocessing_of(output) == keras_resnet.weights.TF_MODE
    again = keras_resnet.ResNet50V2(weights=str(output), input_shape=(64, 64, 3), classifier_activation=None)
    assert relative_difference(np.asarray(again(x, training=False)), want) < 1e-5


def test_the_named_sets_hold_keras_applications_v2_files():
    from keras_resnet.weights import sets

    entries = {s.model: s for s in sets.NAMED_SETS if s.model.endswith("v2")}
    assert sorted(entries) == ["resnet101v2", "resnet152v2", "resnet50v2"]
    for model, entry in entries.items():
        assert entry.file_name == f"{model}_weights_tf_dim_ordering_tf_kernels.h5" and entry.hash_algorithm == "md5"
        assert entry.url == sets.KERAS_APPLICATIONS_URL + entry.file_name and entry.preprocessing.name == "tf"
        assert sets.find_set("imagenet", family="imagenet", depth=int(model[6:-2]), shortcut="B",
                             variant="v2") is entry


def test_trains_through_the_imagenet_trainer_library_and_freezes_by_stage(tmp_path):
    """`--model=resnet50v2` of `python -m trainers.imagenet` (`training.train`: the ImageNet recipe, streaming
    photos of any size) with `--freeze=stem,stage1`: the frozen layers keep their initial weights."""
    from conftest import make_photo_folder

    from keras_resnet import training

    photos = make_photo_folder(tmp_path / "photos", classes=3, train=4, val=2)
    init = tmp_path / "init.weights.h5"
    imagenet_resnet_v2(50, input_shape=(32, 32, 3), classes=3).save_weights(init)
    config = training.TrainConfig(model="resnet50v2", data=str(photos), model_dir=str(tmp_path / "run"),
                                  image_size=32, batch_size=4, train_steps=2, seed=1, verbose=0, recipe="imagenet",
                                  init_from=str(init), freeze=["stem", "stage1"])
    summary = training.train(config)
    assert summary["iterations"] == 2 and summary["eval_split"] == "validation"
    trained = keras.saving.load_model(tmp_path / "run" / "checkpoints" / "latest.keras", safe_mode=True)
    start = imagenet_resnet_v2(50, input_shape=(32, 32, 3), classes=3, weights=str(init))
    for name in ("stem_conv", "stage1_block1_preact_bn", "stage1_block3_3_conv"):
        for got, want in zip(trained.get_layer(name).get_weights(), start.get_layer(name).get_weights()):
            np.testing.assert_array_equal(got, want, err_msg=name)
    assert any(not np.array_equal(g, w) for g, w in zip(trained.get_layer("stage2_block1_1_conv").get_weights(),
                                                        start.get_layer("stage2_block1_1_conv").get_weights()))


@pytest.mark.parametrize("name, size", [("preact_resnet20", 32), ("resnet50v2", 64)])
def test_onnx_and_saved_model_exports_of_the_pre_activation_networks_give_their_logits(name, size, tmp_path):
    """Both pre-activation forms export (BN folded where it follows a convolution, the rest kept) to a SavedModel
    and to ONNX that compute the Keras network's logits on pixels normalised as their weights ("tf" mode)."""
    import tensorflow as tf

    import keras_resnet
    from conftest import randomise_batch_norms
    from keras_resnet import export
    from keras_resnet.weights import TF_MODE

    model = randomise_batch_norms(keras_resnet.build(name, input_shape=(size, size, 3), classifier_activation=None),
                                  seed=5)
    images = np.random.default_rng(0).integers(0, 256, (4, size, size, 3), dtype=np.uint8)
    expected = keras.ops.convert_to_numpy(model(TF_MODE.apply(images), training=False))
    path = export.export_saved_model(model, tmp_path / "sm", normalization=TF_MODE)
    logits = tf.saved_model.load(str(path)).signatures["logits"](images=tf.constant(TF_MODE.apply(images)))
    assert relative_difference(logits["logits"].numpy(), expected) < 1e-4
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is installed by .ci/run (the onnx extra)")
    onnx_path = export.export_onnx(model, tmp_path / "sm", normalization=TF_MODE)
    session = ort.InferenceSession(str(onnx_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert relative_difference(session.run(["logits"], {"image": images})[0], expected) < 1e-4
