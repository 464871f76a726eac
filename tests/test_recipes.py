"""The paper's recipes and schedules: values at the boundaries, warm-up, serialization, weight decay."""

import numpy as np
import pytest

import keras
from keras_resnet import recipes


def lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_cifar_recipe_matches_the_paper():
    r = recipes.cifar_recipe(56)
    assert (r.batch_size, r.learning_rate, r.train_steps, r.boundaries) == (128, 0.1, 64000, (32000, 48000))
    assert (r.momentum, r.weight_decay, r.warmup) == (0.9, 1e-4, "none")
    s = r.learning_rate_schedule()
    for step, want in ((0, 0.1), (31999, 0.1), (32000, 0.01), (47999, 0.01), (48000, 0.001), (63999, 0.001)):
        assert lr(s, step) == pytest.approx(want, rel=1e-6), step


@pytest.mark.parametrize("depth", [110, 1202])
def test_deep_cifar_warms_up_at_001_then_goes_back_to_01(depth):
    s = recipes.cifar_recipe(depth).learning_rate_schedule()
    for step, want in ((0, 0.01), (399, 0.01), (400, 0.1), (401, 0.1), (31999, 0.1), (32000, 0.01),
                       (48000, 0.001)):
        assert lr(s, step) == pytest.approx(want, rel=1e-6), step


def test_imagenet_recipe_is_keyed_by_iterations():
    r = recipes.imagenet_recipe()
    assert r.batch_size == 256 and r.train_steps == 90 * 5005 and r.boundaries == (30 * 5005, 60 * 5005)
    s = r.learning_rate_schedule()
    assert [lr(s, t) for t in (150149, 150150, 300300)] == pytest.approx([0.1, 0.01, 0.001], rel=1e-6)


def test_alternative_schedules():
    r = recipes.cifar_recipe(20)
    cos = r.with_schedule("cosine").learning_rate_schedule()
    assert [lr(cos, t) for t in (0, 32000, 64000)] == pytest.approx([0.1, 0.05, 0.0], abs=1e-6)
    ws = r.with_schedule("warmup_step", warmup_steps=100).learning_rate_schedule()
    assert [lr(ws, t) for t in (0, 50, 100, 32000)] == pytest.approx([0.0, 0.05, 0.1, 0.01], abs=1e-6)
    wc = r.with_schedule("warmup_cosine", warmup_steps=100).learning_rate_schedule()
    assert [lr(wc, t) for t in (50, 100, 64000)] == pytest.approx([0.05, 0.1, 0.0], abs=1e-6)
    with pytest.raises(ValueError, match="schedule"):
        r.with_schedule("exponential")


def test_linear_scaling_with_global_batch():
    r = recipes.cifar_recipe(110).scaled_to_batch(256)
    assert (r.batch_size, r.learning_rate, r.warmup_learning_rate) == (256, pytest.approx(0.2), pytest.approx(0.02))
    assert r.boundaries == (32000, 48000)


def test_schedule_serializes_with_the_optimizer():
    opt = recipes.cifar_recipe(110).optimizer()
    config = keras.optimizers.serialize(opt)
    restored = keras.optimizers.deserialize(config)
    # private: Keras keeps the schedule object only as `_learning_rate` (`learning_rate` is its current value).
    assert isinstance(restored._learning_rate, recipes.StepDecay)
    assert [lr(restored._learning_rate, t) for t in (399, 400)]  # private: as above == pytest.approx([0.01, 0.1], rel=1e-6)
    cos = recipes.CosineDecay.from_config(recipes.CosineDecay(0.1, 1000, warmup="linear", warmup_steps=10).get_config())
    assert lr(cos, 5) == pytest.approx(0.05, rel=1e-5)


def test_bad_recipe_values_raise():
    with pytest.raises(ValueError, match="train_steps"):
        recipes.cifar_recipe().replace(train_steps=-1)
    with pytest.raises(ValueError, match="boundaries"):
        recipes.cifar_recipe().replace(boundaries=(48000, 32000))


def test_l2_half_weight_decay_equals_pytorch_coupled_weight_decay():
    """PyTorch `weight_decay=wd` adds wd * w to the gradient; the recipe's regulariser must do the same."""
    wd = 1e-4
    reg = recipes.cifar_recipe().regularizer()
    w = keras.Variable(np.random.default_rng(0).normal(size=(3, 4)).astype("float32"))
    if keras.backend.backend() != "tensorflow":
        pytest.skip("gradient check written with tf.GradientTape")
    import tensorflow as tf

    with tf.GradientTape() as tape:
        penalty = reg(w.value)
    grad = tape.gradient(penalty, w.value)
    np.testing.assert_allclose(np.asarray(grad), wd * np.asarray(w.value), rtol=1e-5)
    assert recipes.cifar_recipe().replace(weight_decay=0).regularizer() is None
