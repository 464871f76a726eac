"""The fused `keras_resnet.batch_norm.BatchNormalization` computes what `keras.layers.BatchNormalization` does.

On TensorFlow the layer runs `FusedBatchNormV3`; these tests compare it with Keras' own layer on a tiny input
(2x2x4 per example, batch 3: 12 values per channel, so the unbiased variance the kernel returns is 12/11 of
the biased one Keras averages), in float32 and under mixed precision: outputs, gradients with respect to the
input, gamma and beta, and the moving statistics after several training steps; inference; the fallbacks to
Keras' code; the environment switch; loading of files written with plain Keras BN; serialisation.
"""

import keras
import numpy as np
import pytest

from keras_resnet import batch_norm
from keras_resnet.batch_norm import FUSED_ENV, BatchNormalization

TF = keras.backend.backend() == "tensorflow"
needs_tf = pytest.mark.skipif(not TF, reason="the fused kernel exists on the TensorFlow backend only")
SHAPE = (3, 2, 2, 4)
ARGS = dict(momentum=0.9, epsilon=1e-5)
STEPS = 4


@pytest.fixture
def policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    yield request.param
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def fused_off(monkeypatch):
    monkeypatch.setenv(FUSED_ENV, "0")


def make_layer(cls, zero_gamma=False, **kwargs):
    """A built layer with non-trivial gamma / beta (or gamma zero, as `zero_init_residual` makes it)."""
    layer = cls(**{**ARGS, "gamma_initializer": "zeros" if zero_gamma else "ones", **kwargs})
    layer.build(SHAPE)
    rng = np.random.default_rng(0)
    if not zero_gamma:
        layer.gamma.assign(rng.uniform(0.5, 1.5, 4).astype("float32"))
    layer.beta.assign(rng.normal(0, 0.1, 4).astype("float32"))
    return layer


def batches(dtype, steps=STEPS):
    rng = np.random.default_rng(5)
    xs = [rng.normal(2.0, 3.0, SHAPE).astype(dtype) for _ in range(steps)]
    return xs, rng.normal(size=SHAPE).astype(dtype)


def train_steps(layer, xs, upstream):
    """`STEPS` traced training calls; per step the output and the gradients w.r.t. x, gamma and beta."""
    import tensorflow as tf

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, "float32") * tf.cast(upstream, "float32"))
        return [y] + tape.gradient(loss, [x, layer.gamma, layer.beta])

    return [[np.asarray(t, "float32") for t in step(tf.constant(x))] for x in xs]


def traced_op_types(layer, training=True):
    import tensorflow as tf

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
        return tape.gradient(y, [x, layer.gamma])

    graph = forward_backward.get_concrete_function(tf.TensorSpec(SHAPE, layer.compute_dtype)).graph
    return {op.type for op in graph.get_operations()}


def close(a, b, half):
    """Within one float16 ulp of the output's scale for half tensors, float32 rounding otherwise."""
    np.testing.assert_allclose(a, b, rtol=1e-3 if half else 1e-5, atol=2e-3 if half else 1e-5)


@needs_tf
@pytest.mark.parametrize("zero_gamma", [False, True], ids=["gamma", "zero_gamma"])
@pytest.mark.parametrize("policy", ["float32", "mixed_float16"], indirect=True)
def test_training_matches_keras(policy, zero_gamma):
    """Outputs, gradients and moving statistics after several steps equal Keras' (float32 and float16)."""
    fused = make_layer(BatchNormalization, zero_gamma)
    reference = make_layer(keras.layers.BatchNormalization, zero_gamma)
    assert fused.uses_fused_kernel(keras.ops.zeros(SHAPE, fused.compute_dtype))
    xs, upstream = batches(fused.compute_dtype)
    half = policy != "float32"
    for got, want in zip(train_steps(fused, xs, upstream), train_steps(reference, xs, upstream)):
        close(got[0], want[0], half)  # output, in the compute dtype
        close(got[1], want[1], half)  # d/dx
        close(got[2], want[2], False)  # d/dgamma, float32
        close(got[3], want[3], False)  # d/dbeta
    for name in ("moving_mean", "moving_variance"):
        np.testing.assert_allclose(getattr(fused, name).numpy(), getattr(reference, name).numpy(), rtol=1e-6,
                                   atol=1e-7, err_msg=name)


@needs_tf
def test_moving_variance_uses_the_biased_batch_variance():
    """The update Keras makes, by hand: the biased variance, not the kernel's unbiased n/(n-1) one."""
    layer = make_layer(BatchNormalization)
    xs, upstream = batches("float32")
    train_steps(layer, xs, upstream)
    mean, var = np.zeros(4), np.ones(4)
    for x in xs:
        x = x.astype(np.float64)
        mean = 0.9 * mean + 0.1 * x.mean(axis=(0, 1, 2))
        var = 0.9 * var + 0.1 * x.var(axis=(0, 1, 2))
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), var, rtol=1e-5)
    unbiased = 0.9 ** STEPS + sum(0.1 * 0.9 ** (STEPS - 1 - i) * x.var(axis=(0, 1, 2), ddof=1)
                                  for i, x in enumerate(xs))
    assert np.min(np.abs(unbiased - var) / var) > 1e-2  # the two differ: the check above can tell them apart


@needs_tf
@pytest.mark.parametrize("policy", ["float32", "mixed_float16"], indirect=True)
def test_inference_matches_keras(policy):
    """training=False, and training=True on a frozen layer, normalise with the moving statistics."""
    rng = np.random.default_rng(3)
    stats = [rng.normal(0, 0.5, 4).astype("float32"), rng.uniform(0.5, 2.0, 4).astype("float32")]
    layers = [make_layer(BatchNormalization), make_layer(keras.layers.BatchNormalization)]
    for layer in layers:
        layer.moving_mean.assign(stats[0])
        layer.moving_variance.assign(stats[1])
    x = batches(layers[0].compute_dtype, 1)[0][0]
    half = policy != "float32"
    close(np.asarray(layers[0](x), "float32"), np.asarray(layers[1](x), "float32"), half)
    for layer in layers:
        layer.trainable = False
    frozen = [np.asarray(layer(x, training=True), "float32") for layer in layers]
    close(frozen[0], frozen[1], half)
    np.testing.assert_array_equal(layers[0].moving_mean.numpy(), stats[0])  # no update when frozen
    assert keras.backend.standardize_dtype(layers[0](x).dtype) == layers[0].compute_dtype


@needs_tf
def test_graph_runs_the_fused_kernel_forward_and_backward():
    ops = traced_op_types(make_layer(BatchNormalization))
    assert {"FusedBatchNormV3", "FusedBatchNormGradV3"} <= ops, sorted(ops)
    assert "FusedBatchNormV3" in traced_op_types(make_layer(BatchNormalization), training=False)


@needs_tf
def test_environment_switch_selects_keras_code(fused_off):
    """KERAS_RESNET_FUSED_BN=0: Keras' own ops (no fused kernel) and Keras' results bit for bit."""
    fused = make_layer(BatchNormalization)
    assert not fused.uses_fused_kernel(keras.ops.zeros(SHAPE))
    assert "FusedBatchNormV3" not in traced_op_types(fused)
    reference = make_layer(keras.layers.BatchNormalization)
    xs, upstream = batches("float32")
    for got, want in zip(train_steps(fused, xs, upstream), train_steps(reference, xs, upstream)):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fused.moving_variance.numpy(), reference.moving_variance.numpy())


def test_environment_values(monkeypatch):
    for value, expected in (("1", True), ("true", True), ("0", False), ("off", False), ("No", False)):
        monkeypatch.setenv(FUSED_ENV, value)
        assert batch_norm.fused_enabled() is expected, value
    monkeypatch.delenv(FUSED_ENV)
    assert batch_norm.fused_enabled() is True
    monkeypatch.setenv(FUSED_ENV, "maybe")
    with pytest.raises(ValueError, match=r"KERAS_RESNET_FUSED_BN='maybe'.*accepted"):
        batch_norm.fused_enabled()


@needs_tf
@pytest.mark.parametrize("case", ["axis1", "dense", "renorm", "mask", "float64"])
def test_other_cases_fall_back_to_keras(case):
    """What the fused kernel does not cover runs Keras' code, with Keras' results."""
    shape, kwargs, mask = SHAPE, {}, None
    if case == "axis1":
        kwargs = {"axis": 1}
    elif case == "dense":
        shape = (3, 4)
    elif case == "renorm":
        kwargs = {"renorm": True}
    elif case == "mask":
        mask = np.array([[[True, False]] * 2] * 3)
    layers = [cls(**ARGS, **kwargs, dtype="float64" if case == "float64" else None)
              for cls in (BatchNormalization, keras.layers.BatchNormalization)]
    x = np.random.default_rng(1).normal(size=shape).astype("float64" if case == "float64" else "float32")
    outputs = [np.asarray(layer(x, training=True, mask=mask)) for layer in layers]
    assert not layers[0].uses_fused_kernel(keras.ops.convert_to_tensor(x), mask)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(layers[0].moving_variance.numpy(), layers[1].moving_variance.numpy())


@needs_tf
def test_synchronized_uses_keras_code():
    layer = make_layer(BatchNormalization, synchronized=True)
    assert not layer.uses_fused_kernel(keras.ops.zeros(SHAPE))
    assert "FusedBatchNormV3" not in traced_op_types(layer)


def test_same_config_and_weights_as_keras():
    kwargs = dict(ARGS, gamma_initializer="zeros", name="stage1_block1_2_bn")
    ours, theirs = BatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    assert ours.get_config() == theirs.get_config()
    assert isinstance(ours, keras.layers.BatchNormalization)
    for layer in (ours, theirs):
        layer.build((None, 8, 8, 16))
    assert [(w.path, w.shape, w.trainable) for w in ours.weights] == [
        (w.path, w.shape, w.trainable) for w in theirs.weights]
    assert BatchNormalization(**ARGS).name.startswith("batch_normalization")


def small_model(bn_class):
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = bn_class(**ARGS, name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="pool")(x))


def trained(model):
    """A few fit steps so that weights and moving statistics are not their initial values."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(12, 4, 4, 3)).astype("float32"), rng.normal(size=(12, 4)).astype("float32")
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    return model, x


def test_files_written_with_keras_batch_norm_still_load(tmp_path):
    """An old `.keras` file loads in safe mode as it was; its weights file loads into the new layer's model."""
    old, x = trained(small_model(keras.layers.BatchNormalization))
    old.save(tmp_path / "old.keras")
    old.save_weights(tmp_path / "old.weights.h5")
    loaded = keras.saving.load_model(tmp_path / "old.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), old.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    new = small_model(BatchNormalization)
    new.load_weights(tmp_path / "old.weights.h5")
    np.testing.assert_allclose(new.predict(x, verbose=0), old.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(new.get_layer("bn").moving_variance.numpy(),
                                  old.get_layer("bn").moving_variance.numpy())


def test_serialization_round_trip_in_safe_mode(tmp_path):
    model, x = trained(small_model(BatchNormalization))
    model.save(tmp_path / "new.keras")
    loaded = keras.saving.load_model(tmp_path / "new.keras", safe_mode=True)
    assert type(loaded.get_layer("bn")) is BatchNormalization
    assert loaded.get_layer("bn").get_config() == model.get_layer("bn").get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    assert keras.saving.get_registered_name(BatchNormalization) == "keras_resnet>BatchNormalization"


def test_project_blocks_use_it():
    from keras_resnet.cifar import cifar_resnet

    model = cifar_resnet(8, zero_init_residual=True)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(type(layer) is BatchNormalization for layer in bns)
    zero = [layer.name for layer in bns if not np.any(layer.gamma.numpy())]
    assert zero == [f"stage{s}_block1_2_bn" for s in (1, 2, 3)], zero  # zero_init_residual still applies
