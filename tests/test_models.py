"""Contracts of the networks: exact parameter counts, structure, shortcuts, errors, serialization.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (Tables 1 and 6).
"""

import dataclasses
import functools
import inspect

import keras
import numpy as np
import pytest

import keras_resnet
from keras_resnet import blocks

from conftest import layer_inputs

# Exact trainable parameter counts (PAPER.md): CIFAR option A, ImageNet option B (torchvision-equal).
EXPECTED_PARAMS = {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
for _depth in (20, 32, 44, 56, 110):  # plain = option A: the shortcuts add no parameters
    EXPECTED_PARAMS[f"plain{_depth}"] = EXPECTED_PARAMS[f"resnet{_depth}"]


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _imagenet_projection_params(depth):
    """Parameters of option B's projections (1x1 conv + BN) in an ImageNet ResNet."""
    block, _ = keras_resnet.IMAGENET_SPECS[depth]
    expansion = 4 if block == "bottleneck" else 1
    total, channels = 0, 64
    for filters in (64, 128, 256, 512):
        out = filters * expansion
        if out != channels:
            total += channels * out + 2 * out
        channels = out
    return total


# Plain ImageNet nets are option B minus its projections.
EXPECTED_PARAMS["plain18"] = EXPECTED_PARAMS["resnet18"] - _imagenet_projection_params(18)
EXPECTED_PARAMS["plain34"] = EXPECTED_PARAMS["resnet34"] - _imagenet_projection_params(34)
# Pre-activation (He et al. 2016b; tests/test_preactivation.py derives them): 110 with option A, 164 and 1001
# with bottleneck units and pre-activated projections.
EXPECTED_PARAMS.update(preact_resnet110=1_727_962, preact_resnet164=1_703_258, preact_resnet1001=10_327_706)
# keras.applications' V2 networks (tests/test_imagenet_v2.py checks them against keras.applications).
EXPECTED_PARAMS.update(resnet50v2=25_568_360, resnet101v2=44_577_896, resnet152v2=60_236_904)

SLOW = {"resnet1202", "preact_resnet1001", "resnet152v2"}


def registry_params():
    for name in keras_resnet.MODELS:
        marks = [pytest.mark.slow] if name in SLOW else []
        yield pytest.param(name, marks=marks, id=name)


@functools.lru_cache(maxsize=None)
def built(name):
    return keras_resnet.build(name)


def test_registry_covers_the_paper():
    assert set(keras_resnet.MODELS) == set(EXPECTED_PARAMS)
    for name in EXPECTED_PARAMS:
        label = name.replace("preact_", "PreAct").replace("resnet", "ResNet").replace("plain", "PlainNet")
        label = label.replace("v2", "V2")
        assert getattr(keras_resnet, label) is keras_resnet.MODELS[name]


@pytest.mark.parametrize("name", registry_params())
def test_registry_contract(name):
    """Every registered model: its name, exact parameter count, output shape and a finite softmax."""
    model = built(name)
    assert model.name == name
    assert trainable(model) == EXPECTED_PARAMS[name]
    height, width, channels = model.input_shape[1:]
    classes = 10 if (height, width) == (32, 32) else 1000
    assert model.output_shape == (None, classes)
    images = np.random.default_rng(0).normal(size=(2, height, width, channels)).astype("float32")
    # Untrained BN statistics (mean 0, variance 1) make inference a sum of 600 unnormalised residual
    # branches in ResNet-1202, which overflows float32 at initialisation (as in any framework); with batch
    # statistics, as in training, the output is finite.
    probabilities = keras.ops.convert_to_numpy(model(images, training=name in SLOW))
    assert probabilities.shape == (2, classes)
    assert np.all(np.isfinite(probabilities))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_random_initial_values_are_each_initializers_draw():
    """The builders give the variables their values after the build (keras_resnet.compat): each kernel is
    still its initializer's draw (the seed is the initializer's), the BN variables its ones and zeros."""
    model = keras_resnet.ResNet20()
    kernels = 0
    for layer in model.layers:
        for variable in layer.weights:
            initializer = getattr(layer, f"{variable.name}_initializer", None)
            if initializer is None:
                continue
            expected = keras.ops.convert_to_numpy(initializer(variable.shape, dtype=variable.dtype))
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), expected, err_msg=variable.path)
            kernels += variable.name == "kernel"
    assert kernels == 20  # 19 convolutions and the classifier


def test_named_constructor_equals_build():
    assert keras_resnet.ResNet56().name == keras_resnet.build("resnet56").name == "resnet56"
    assert keras_resnet.build("resnet8").name == "resnet8"
    assert keras_resnet.build("plain8").name == "plain8"


@pytest.mark.parametrize("depth", [8, 20, 32, 44, 56, 110])
def test_cifar_shortcut_option_counts(depth):
    a = trainable(keras_resnet.cifar_resnet(depth, shortcut="A"))
    b = trainable(keras_resnet.cifar_resnet(depth, shortcut="B"))
    c = trainable(keras_resnet.cifar_resnet(depth, shortcut="C"))
    plain = trainable(keras_resnet.cifar_resnet(depth, shortcut=None))
    assert b == a + 2_752
    assert plain == a
    assert a < b < c


@pytest.mark.parametrize("depth", [18, 50])
def test_imagenet_shortcut_options_ordered(depth):
    counts = [trainable(keras_resnet.imagenet_resnet(depth, shortcut=s, input_shape=(64, 64, 3))) for s in "ABC"]
    assert counts[0] < counts[1] < counts[2]
    assert counts[1] == EXPECTED_PARAMS[f"resnet{depth}"]


STRUCTURE_MODELS = {  # test id (the model's name): how to build it
    "resnet8": lambda: keras_resnet.cifar_resnet(8, shortcut="B"),
    "plain8": lambda: keras_resnet.cifar_resnet(8, shortcut=None),
    "resnet18": lambda: keras_resnet.imagenet_resnet(18, input_shape=(64, 64, 3)),
    "resnet50": lambda: keras_resnet.imagenet_resnet(50, input_shape=(64, 64, 3), shortcut="C"),
}


@functools.lru_cache(maxsize=None)
def structure_model(name):
    """One of `STRUCTURE_MODELS`, built when a test first asks for it (not while every worker collects)."""
    model = STRUCTURE_MODELS[name]()
    assert model.name == name
    return model


def _consumers(model):
    """Maps each layer name to the layers that take its output (from the public functional config)."""
    consumers = {layer.name: [] for layer in model.layers}
    for name, sources in layer_inputs(model).items():
        for source in sources:
            consumers[source].append(model.get_layer(name))
    return consumers


@pytest.mark.parametrize("name", STRUCTURE_MODELS)
def test_structure(name):
    """No conv bias, BN after every conv, ReLU after every addition, He-normal init, no dropout."""
    model = structure_model(name)
    consumers = _consumers(model)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs
    for conv in convs:
        assert not conv.use_bias, conv.name
        assert isinstance(conv.kernel_initializer, keras.initializers.HeNormal), conv.name
        # keras_resnet.batch_norm.BatchNormalization (fused on TensorFlow) subclasses Keras' layer.
        assert [isinstance(c, keras.layers.BatchNormalization) for c in consumers[conv.name]] == [True], conv.name
    for layer in model.layers:
        assert not isinstance(layer, (keras.layers.Dropout, keras.layers.Lambda)), layer.name
        if isinstance(layer, keras.layers.Add):
            assert [type(c) for c in consumers[layer.name]] == [keras.layers.ReLU], layer.name


@pytest.mark.parametrize("name", STRUCTURE_MODELS)
def test_stride2_convolutions_pad_symmetrically(name):
    """Every strided k>1 convolution is a `valid` conv fed by a symmetric ZeroPadding2D of (k-1)/2."""
    model = structure_model(name)
    strided = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.strides != (1, 1) and layer.kernel_size != (1, 1)
    ]
    assert strided
    for conv in strided:
        assert conv.padding == "valid", conv.name
        producer = model.get_layer(layer_inputs(model)[conv.name][0])
        assert isinstance(producer, keras.layers.ZeroPadding2D), conv.name
        pad = (conv.kernel_size[0] - 1) // 2
        assert tuple(map(tuple, producer.padding)) == ((pad, pad), (pad, pad)), conv.name
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.strides == (1, 1):
            assert layer.padding == "same" or layer.kernel_size == (1, 1), layer.name


def test_imagenet_stem():
    model = keras_resnet.ResNet18()
    assert tuple(map(tuple, model.get_layer("stem_pad").padding)) == ((3, 3), (3, 3))
    assert model.get_layer("stem_conv").kernel_size == (7, 7)
    assert model.get_layer("stem_conv").strides == (2, 2)
    assert tuple(map(tuple, model.get_layer("stem_pool_pad").padding)) == ((1, 1), (1, 1))
    pool = model.get_layer("stem_pool")
    assert pool.pool_size == (3, 3) and pool.strides == (2, 2) and pool.padding == "valid"
    assert model.get_layer("stem_pool").output.shape[1:3] == (56, 56)
    assert model.get_layer("stage4_block2_out").output.shape[1:] == (7, 7, 512)


def test_symmetric_stride2_conv_matches_reference_padding():
    """A strided conv samples windows centred on even pixels (PyTorch/Caffe pad=1), unlike Keras' 'same'."""
    inputs = keras.Input((8, 8, 1))
    outputs = blocks.conv_bn(inputs, 1, 3, 2, "probe")
    model = keras.Model(inputs, outputs)
    model.get_layer("probe_conv").set_weights([np.ones((3, 3, 1, 1), "float32")])
    image = np.zeros((1, 8, 8, 1), "float32")
    image[0, 0, 0, 0] = 1.0  # the top-left pixel is inside the first window only when padding is symmetric
    bn = model.get_layer("probe_bn")
    bn.set_weights([np.ones(1), np.zeros(1), np.zeros(1), np.ones(1) - blocks.BN_EPSILON])
    out = keras.ops.convert_to_numpy(model(image, training=False))[0, :, :, 0]
    expected = np.zeros((4, 4))
    expected[0, 0] = 1.0
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_option_a_subsamples_and_pads_both_sides():
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 16)).astype("float32")
    y = keras.ops.convert_to_numpy(keras_resnet.ZeroPadShortcut(32, 2)(x))
    assert y.shape == (2, 4, 4, 32)
    np.testing.assert_array_equal(y[..., 8:24], x[:, ::2, ::2, :])
    assert not y[..., :8].any() and not y[..., 24:].any()


@pytest.mark.parametrize("shape", [(2, 8, 8, 16), (3, 7, 8, 5), (1, 9, 9, 3)])
@pytest.mark.parametrize("strides", [1, 2, 3])
def test_subsample_equals_the_strided_slice_with_its_gradient(shape, strides):
    """The option-A subsampling (a reshape and a plain slice where the sizes divide) is `x[:, ::s, ::s, :]`
    exactly, forward and backward, also on a batch whose size the graph does not know."""
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(3).normal(size=shape).astype("float32"))
    expected = x[:, ::strides, ::strides, :]
    weights = tf.constant(np.random.default_rng(4).normal(size=expected.shape).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([None, *shape[1:]], tf.float32)])
    def value_and_gradient(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            y = blocks.subsample(images, strides)
            loss = tf.reduce_sum(y * weights)
        return y, tape.gradient(loss, images)

    y, gradient = value_and_gradient(x)
    np.testing.assert_array_equal(y.numpy(), expected.numpy())
    dense = np.zeros(shape, "float32")
    dense[:, ::strides, ::strides, :] = weights.numpy()
    np.testing.assert_array_equal(gradient.numpy(), dense)
    assert keras.ops.convert_to_numpy(blocks.subsample(x.numpy(), strides)).shape == expected.shape


def test_option_a_shortcut_layers_in_cifar_net():
    model = keras_resnet.cifar_resnet(8)
    names = [layer.name for layer in model.layers if isinstance(layer, keras_resnet.ZeroPadShortcut)]
    assert names == ["stage2_block1_shortcut", "stage3_block1_shortcut"]
    assert not any(isinstance(layer, keras.layers.Conv2D) and "shortcut" in layer.name for layer in model.layers)


@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
@pytest.mark.parametrize("training", [False, True])
def test_zero_init_residual_blocks_are_identities(shortcut, training):
    """With zero_init_residual every residual branch is exactly zero, so each block outputs its shortcut.

    Where the shortcut is the identity (options A and B inside a stage) the block is an exact identity.
    """
    model = keras_resnet.cifar_resnet(8, shortcut=shortcut, zero_init_residual=True, input_shape=(16, 16, 3))
    images = np.random.default_rng(2).normal(size=(2, 16, 16, 3)).astype("float32")
    blocks_in = {"stage1_block1": "stem_relu", "stage2_block1": "stage1_block1_out", "stage3_block1": "stage2_block1_out"}
    for block, previous in blocks_in.items():
        add = model.get_layer(f"{block}_add")
        residual_tensor, shortcut_tensor = (model.get_layer(n).output for n in layer_inputs(model)[add.name])
        probe = keras.Model(
            model.input,
            [model.get_layer(previous).output, residual_tensor, shortcut_tensor, model.get_layer(f"{block}_out").output],
        )
        block_in, residual, short, out = (keras.ops.convert_to_numpy(t) for t in probe(images, training=training))
        assert not residual.any(), block
        np.testing.assert_array_equal(out, np.maximum(short, 0))
        if block == "stage1_block1" and shortcut != "C":
            np.testing.assert_array_equal(out, block_in)
        if shortcut == "A" and block != "stage1_block1":
            expected = keras.ops.convert_to_numpy(keras_resnet.ZeroPadShortcut(out.shape[-1], 2)(block_in))
            np.testing.assert_array_equal(out, expected)


def test_kernel_regularizer_reaches_every_kernel():
    model = keras_resnet.cifar_resnet(8, shortcut="B", kernel_regularizer=keras.regularizers.L2(5e-5))
    kernels = [l for l in model.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    assert all(isinstance(l.kernel_regularizer, keras.regularizers.L2) for l in kernels)
    assert len(model.losses) == len(kernels)
    assert not any(isinstance(l, keras.layers.BatchNormalization) and l.gamma_regularizer for l in model.layers)


def test_applications_keywords():
    features = keras_resnet.ResNet20(include_top=False)
    assert features.output_shape == (None, 8, 8, 64)
    assert keras_resnet.ResNet20(include_top=False, pooling="avg").output_shape == (None, 64)
    assert keras_resnet.ResNet20(include_top=False, pooling="max").output_shape == (None, 64)
    assert keras_resnet.ResNet18(include_top=False, pooling="avg", input_shape=(None, None, 3)).output_shape == (
        None,
        512,
    )
    model = keras_resnet.ResNet20(classes=100, classifier_activation=None, input_shape=(40, 40, 1), name="mine")
    assert model.name == "mine" and model.output_shape == (None, 100)
    assert model.get_layer("predictions").activation is keras.activations.linear


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_classifier_output_is_float32_under_mixed_precision(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = keras_resnet.cifar_resnet(8, input_shape=(16, 16, 3))
        assert model.get_layer("stage1_block1_1_conv").compute_dtype == policy.split("_")[1]
        out = model(np.zeros((1, 16, 16, 3), "float32"))
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        assert model.get_layer("stage1_block1_1_conv").kernel.dtype == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize(
    "kwargs",
    [dict(depth=8, shortcut="A"), dict(depth=8, shortcut="B"), dict(depth=8, shortcut="C"), dict(depth=8, shortcut=None)],
    ids=["A", "B", "C", "plain"],
)
def test_keras_round_trip_in_safe_mode(tmp_path, kwargs):
    model = keras_resnet.cifar_resnet(**kwargs, input_shape=(16, 16, 3))
    images = np.random.default_rng(3).normal(size=(4, 16, 16, 3)).astype("float32")
    # One training step moves BN statistics away from their initial values, so the round trip checks them.
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.train_on_batch(images, np.arange(4))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.name == model.name
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(images, training=False)),
        keras.ops.convert_to_numpy(model(images, training=False)),
    )


def test_imagenet_round_trip(tmp_path):
    model = keras_resnet.imagenet_resnet(50, shortcut="A", input_shape=(64, 64, 3), classes=5)
    images = np.random.default_rng(4).normal(size=(2, 64, 64, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(images)), keras.ops.convert_to_numpy(model(images)))


def test_bottleneck_stride_placement():
    caffe = keras_resnet.imagenet_resnet(50, input_shape=(64, 64, 3))
    v15 = keras_resnet.imagenet_resnet(50, input_shape=(64, 64, 3), stride_in_3x3=True)
    assert caffe.get_layer("stage2_block1_1_conv").strides == (2, 2)
    assert caffe.get_layer("stage2_block1_2_conv").strides == (1, 1)
    assert v15.get_layer("stage2_block1_1_conv").strides == (1, 1)
    assert v15.get_layer("stage2_block1_2_conv").strides == (2, 2)
    assert trainable(caffe) == trainable(v15)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: keras_resnet.cifar_resnet(21), r"`depth`.*6n\+2.*received 21"),
        (lambda: keras_resnet.cifar_resnet(2), r"`depth`.*received 2"),
        (lambda: keras_resnet.imagenet_resnet(42), r"`depth`.*\[18, 34, 50, 101, 152\].*received 42"),
        (lambda: keras_resnet.cifar_resnet(20, shortcut="D"), r"`shortcut`.*'A', 'B', 'C' or None.*'D'"),
        (lambda: keras_resnet.imagenet_resnet(18, shortcut="b"), r"`shortcut`.*'b'"),
        (lambda: keras_resnet.ResNet20(input_shape=(2, 2, 3)), r"`input_shape`.*too small.*at least 4"),
        (lambda: keras_resnet.ResNet18(input_shape=(16, 16, 3)), r"`input_shape`.*too small.*at least 32"),
        (lambda: keras_resnet.ResNet20(input_shape=(32, 32)), r"`input_shape`.*3 entries"),
        (lambda: keras_resnet.ResNet20(input_shape=(32, 32, None)), r"`input_shape`.*channel"),
        (lambda: keras_resnet.ResNet20(classes=0), r"`classes`.*>= 1.*received 0"),
        (lambda: keras_resnet.ResNet20(classes=2.5), r"`classes`.*received 2.5"),
        (lambda: keras_resnet.ResNet20(pooling="sum"), r"`pooling`.*'avg'.*'sum'"),
        (lambda: keras_resnet.ResNet20(classifier_activation="nope"), r"`classifier_activation`.*'nope'"),
        (lambda: keras_resnet.PlainNet20(zero_init_residual=True), r"`zero_init_residual=True`.*`shortcut=None`"),
        (lambda: keras_resnet.PlainNet20(shortcut="A"), r"plain network.*`shortcut`='A'"),
        (lambda: keras_resnet.build("resnet21"), r"`name`.*'resnet21'.*6n\+2"),
        (lambda: keras_resnet.build("vgg16"), r"`name`.*'resnet<depth>'.*'vgg16'"),
    ],
)
def test_bad_arguments_raise_value_error_before_building(build, message, monkeypatch):
    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built before the arguments were checked")

    monkeypatch.setattr(keras, "Input", no_layers)
    with pytest.raises(ValueError, match=message):
        build()


APPLICATIONS_ARGUMENTS = (
    "include_top",
    "weights",
    "input_tensor",
    "input_shape",
    "pooling",
    "classes",
    "classifier_activation",
    "name",
)


def test_a_model_name_is_parsed_once_into_a_frozen_spec():
    from keras_resnet.registry import ModelSpec, model_spec

    specs = {name: model_spec(name) for name in keras_resnet.MODELS}
    assert all(spec.name == name for name, spec in specs.items())
    assert sorted((s.family, s.depth) for s in specs.values() if s.preactivation) == [
        ("cifar", 110), ("cifar", 164), ("cifar", 1001), ("imagenet", 50), ("imagenet", 101), ("imagenet", 152)]
    assert sorted((s.family, s.depth) for s in specs.values() if s.plain) == [
        ("cifar", 20), ("cifar", 32), ("cifar", 44), ("cifar", 56), ("cifar", 110), ("imagenet", 18), ("imagenet", 34)]
    assert model_spec(" ResNet152 ") == ModelSpec("resnet152", "imagenet", 152, False)  # 152 is 6n+2 too
    assert model_spec("resnet8").residual and (model_spec("resnet8").family, model_spec("resnet8").depth) == ("cifar", 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model_spec("resnet20").depth = 56
    with pytest.raises(ValueError, match=r"`name` 'resnet21' has no valid depth: CIFAR depths are 6n\+2"):
        model_spec("resnet21")
    with pytest.raises(ValueError, match=r"`name` 'preact_resnet21' has no valid depth: 6n\+2 \(basic units"):
        model_spec("preact_resnet21")
    with pytest.raises(ValueError, match="the V2 networks are resnet50v2, resnet101v2 and resnet152v2"):
        model_spec("plain50v2")
    with pytest.raises(ValueError, match="`name` must be 'resnet<depth>', 'plain<depth>', 'preact_resnet<depth>' or"):
        model_spec("vgg16")
    from keras_resnet.training.config import TrainConfig

    config = TrainConfig(model="plain56", data="cifar10", model_dir="unused")
    assert config.model_spec is config.model_spec == specs["plain56"]  # parsed once per config


@pytest.mark.parametrize("name", list(keras_resnet.MODELS))
def test_named_constructor_signature_lists_every_accepted_argument(name, monkeypatch):
    """`inspect.signature(ResNet56)` shows every builder argument (keras.applications' first) with its default."""
    spec = keras_resnet.registry.model_spec(name)
    family, plain = spec.family, spec.plain
    builder = {(False, "cifar"): keras_resnet.cifar_resnet, (False, "imagenet"): keras_resnet.imagenet_resnet,
               (True, "cifar"): keras_resnet.preact_cifar_resnet,
               (True, "imagenet"): keras_resnet.imagenet_resnet_v2}[spec.preactivation, family]
    constructor = keras_resnet.MODELS[name]
    parameters = inspect.signature(constructor).parameters
    builder_defaults = {k: p.default for k, p in inspect.signature(builder).parameters.items() if k != "depth"}
    assert set(parameters) == set(builder_defaults)
    assert tuple(parameters)[: len(APPLICATIONS_ARGUMENTS)] == APPLICATIONS_ARGUMENTS
    assert {p.kind for p in parameters.values()} == {inspect.Parameter.POSITIONAL_OR_KEYWORD}
    defaults = {k: p.default for k, p in parameters.items()}
    expected = dict(builder_defaults, name=name)
    if plain:
        expected["shortcut"] = None
    assert defaults == expected
    assert defaults["weights"] is None and defaults["input_tensor"] is None
    assert defaults["classes"] == (10 if family == "cifar" else 1000)
    assert "`weights`" in constructor.__doc__ and "`input_tensor`" in constructor.__doc__
    with pytest.raises(TypeError, match="depth"):
        constructor(depth=8)
    with pytest.raises(TypeError, match="bogus"):
        constructor(bogus=1)

    class Reached(Exception):
        pass

    def reached(*args, **kwargs):
        raise Reached

    # Every listed argument, passed explicitly, gets past the checks to the first layer.
    monkeypatch.setattr(keras, "Input", reached)
    with pytest.raises(Reached):
        constructor(**defaults)
    with pytest.raises(Reached):
        keras_resnet.build(name, **{k: v for k, v in defaults.items() if k != "name"})


def test_named_constructor_takes_positional_arguments_as_keras_applications():
    model = keras_resnet.ResNet20(False, None, None, (32, 32, 3), "avg")
    assert model.output_shape == (None, 64) and model.name == "resnet20"
    assert "weights" in inspect.signature(keras_resnet.build).parameters


def test_input_tensor_builds_on_an_existing_keras_tensor():
    raw = keras.Input((32, 32, 3), name="raw")
    scaled = keras.layers.Rescaling(1 / 255.0, name="scale")(raw)
    model = keras_resnet.ResNet20(input_tensor=scaled, classifier_activation=None)
    assert [t.name for t in model.inputs] == ["raw"]
    assert model.get_layer("scale") is not None and model.output_shape == (None, 10)
    reference = keras_resnet.ResNet20(classifier_activation=None)
    reference.set_weights(model.get_weights())
    images = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(images)), keras.ops.convert_to_numpy(reference(images / 255.0)), rtol=1e-5,
        atol=1e-5,
    )
    imagenet = keras_resnet.build("resnet18", input_tensor=keras.Input((None, None, 3)), include_top=False)
    assert imagenet.output_shape == (None, None, None, 512)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_tensor=np.zeros((1, 32, 32, 3))), r"`input_tensor` must be a Keras tensor.*received a ndarray"),
        (dict(input_tensor="image"), r"`input_tensor` must be a Keras tensor.*received a str"),
        (dict(input_tensor=keras.KerasTensor((None, 32, 3))), r"`input_tensor` must have shape \(batch, height"),
        (dict(input_tensor=keras.KerasTensor((None, 32, 32, 3)), input_shape=(40, 40, 3)), r"does not agree"),
        (dict(input_tensor=keras.KerasTensor((None, 2, 2, 3))), r"`input_shape` .*too small"),
        (dict(input_tensor=keras.KerasTensor((None, 32, 32, 1)), weights="cifar10"), r"needs RGB inputs"),
    ],
)
def test_bad_input_tensor(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_resnet.ResNet20(**kwargs)
