"""The pre-activation CIFAR networks of He et al. (2016b), "Identity Mappings in Deep Residual Networks" (issue 25):
exact parameter counts, the unit's structure, a clean identity path, errors, safe-mode loading, the registry
names, the recipe, BN folding, mixed precision, and a run trained, exported and served on real JPEGs."""

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras  # noqa: E402

from keras_resnet import preact_cifar_resnet  # noqa: E402
from keras_resnet.preactivation import preact_depth_units  # noqa: E402


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize("depth, block, shortcut, count", [
    (110, "basic", None, 1_727_962),      # the paper's 1.7M: option A, as the first paper's CIFAR ResNet-110
    (110, "basic", "B", 1_730_522),       # 1x1 projections where the width grows: 2,560 more
    (164, "bottleneck", None, 1_703_258),  # the paper's 1.7M
    pytest.param(1001, "bottleneck", None, 10_327_706, marks=pytest.mark.slow),  # the paper's 10.2M
])
def test_exact_parameter_counts(depth, block, shortcut, count):
    model = preact_cifar_resnet(depth, block=block, shortcut=shortcut)
    assert trainable(model) == count and model.name == f"preact_resnet{depth}"
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("block, depth", [("basic", 14), ("bottleneck", 11)])
def test_every_unit_starts_with_bn_relu_and_nothing_follows_the_addition(block, depth):
    model = preact_cifar_resnet(depth, block=block)
    names = [layer.name for layer in model.layers]
    units = [name[:-len("_out")] for name in names if name.endswith("_out")]
    assert len(units) == 3 * preact_depth_units(depth, block)

    def consumers(tensor):
        return [layer.name for layer in model.layers[1:]
                if any(t is tensor for t in (layer.input if isinstance(layer.input, list) else [layer.input]))]

    for unit, following in zip(units, units[1:] + ["post"]):
        assert names.index(f"{unit}_preact_bn") + 1 == names.index(f"{unit}_preact_relu")
        # the sum goes on as it is: into the next unit's BN and its shortcut (or the final BN), no ReLU
        outputs = set(consumers(model.get_layer(f"{unit}_out").output))
        assert f"{following}_preact_bn" in outputs or following == "post" and outputs == {"post_bn"}, outputs
        assert not any(isinstance(model.get_layer(n), keras.layers.ReLU) for n in outputs), outputs
    # the stem is a bare convolution; the last addition goes through BN-ReLU before pooling
    assert names[1:3] == ["stem_conv", "stage1_block1_preact_bn"]
    assert names[-4:] == ["post_bn", "post_relu", "avg_pool", "predictions"]
    assert not any(isinstance(layer, keras.layers.Conv2D) and layer.use_bias for layer in model.layers)


def test_the_identity_path_is_clean_from_the_stem_to_the_last_unit():
    """With every unit's last convolution at zero, each unit is its shortcut: ResNet-20's pre-activation form
    then hands the stem's output, subsampled and zero-padded by the option-A shortcuts only, to `post_bn`."""
    model = preact_cifar_resnet(20)
    for layer in model.layers:
        if layer.name.endswith("_2_conv"):
            layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    stem = keras.Model(model.input, model.get_layer("stem_conv").output)(x)
    last = keras.Model(model.input, model.get_layer("stage3_block3_out").output)(x)
    expected = np.pad(np.asarray(stem)[:, ::4, ::4, :], [(0, 0), (0, 0), (0, 0), (24, 24)])
    np.testing.assert_allclose(np.asarray(last), expected, rtol=0, atol=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=21), "must be 6n+2 (basic units: 20, 56, 110, ...) or 9n+2 (bottleneck units: 29, 164, 1001"),
    (dict(depth=21, block="basic"), "with basic units must be 6n+2 (20, 56, 110, ...); received 21"),
    (dict(depth=20, zero_init_residual=True), "a pre-activation unit ends with a convolution"),
    (dict(depth=23, block="bottleneck"), "with bottleneck units must be 9n+2 (29, 164, 1001, ...); received 23"),
    (dict(depth=20, block="wide"), "`block` must be 'basic' or 'bottleneck'; received 'wide'"),
    (dict(depth=164, block="bottleneck", shortcut="A"), "must be None (the paper's: 'B') or one of ['B']"),
    (dict(depth=20, shortcut="D"), "received 'D'"),
    (dict(depth=20, weights="cifar10"), "no published set for the pre-activation CIFAR networks"),
])
def test_mistakes_name_the_argument(kwargs, message):
    with pytest.raises(ValueError) as error:
        preact_cifar_resnet(**kwargs)
    assert message in str(error.value), str(error.value)


def test_saves_and_loads_in_safe_mode_with_the_same_outputs(tmp_path):
    model = preact_cifar_resnet(11, block="bottleneck", input_shape=(16, 16, 3), classes=3)
    x = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    model.save_weights(tmp_path / "m.weights.h5")
    again = preact_cifar_resnet(11, block="bottleneck", input_shape=(16, 16, 3), classes=3,
                                weights=str(tmp_path / "m.weights.h5"))
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(model(x)))


def test_the_registry_names_build_the_papers_networks():
    import keras_resnet

    assert keras_resnet.build("preact_resnet20").count_params() == preact_cifar_resnet(20).count_params()
    assert keras_resnet.PreActResNet164 is keras_resnet.MODELS["preact_resnet164"]
    # the unit a depth names: bottleneck for the paper's 164 (also of the basic form 6n+2) and for 9n+2 only
    assert [n for n in ("preact_resnet164", "preact_resnet29", "preact_resnet20") if any(
        layer.name.endswith("_3_conv") for layer in keras_resnet.build(n).layers)] == ["preact_resnet164",
                                                                                     "preact_resnet29"]


def test_trains_through_the_trainer_library(tmp_path):
    """The trainer's own path (`training.train`: recipe, regulariser, checkpoints) takes a pre-activation name."""
    from conftest import make_image_folder

    from keras_resnet import training

    data = make_image_folder(tmp_path / "data", train=48, test=12, size=8, classes=3)
    config = training.TrainConfig(model="preact_resnet11", data=str(data), model_dir=str(tmp_path / "run"),
                                  batch_size=16, train_steps=4, steps_per_epoch=2, seed=1, verbose=0)
    summary = training.train(config)
    assert summary["iterations"] == 4 and np.isfinite(summary["train_loss"])
    loaded = keras.saving.load_model(tmp_path / "run" / "checkpoints" / "latest.keras", safe_mode=True)
    assert loaded.name == "preact_resnet11" and loaded.get_layer("post_bn") is not None


def test_the_recipe_is_the_papers_with_its_warm_up_at_every_depth():
    """He et al. 2016b, appendix: the first paper's CIFAR recipe, 0.01 for the first 400 iterations "for all
    CIFAR experiments" (the original networks warm up from depth 110 only)."""
    from keras_resnet.training import TrainConfig
    from keras_resnet.training.run_recipe import resolve_recipe

    def recipe(model):
        return resolve_recipe(TrainConfig(model=model, data="cifar10", model_dir="unused"), 45_000, 128)

    for model in ("preact_resnet20", "preact_resnet164", "preact_resnet1001"):
        got = recipe(model)
        assert (got.train_steps, got.batch_size, got.boundaries, got.weight_decay, got.momentum) == (
            64_000, 128, (32_000, 48_000), 1e-4, 0.9)
        assert (got.warmup, got.warmup_steps, got.warmup_learning_rate, got.learning_rate) == (
            "constant", 400, 0.01, 0.1), model
        schedule = got.learning_rate_schedule()
        assert [float(keras.ops.convert_to_numpy(schedule(i))) for i in (0, 399, 400, 32_000)] == pytest.approx(
            [0.01, 0.01, 0.1, 0.01])
    assert recipe("resnet20").warmup == "none"


@pytest.mark.parametrize("depth", [20, 11], ids=["basic", "bottleneck"])
def test_folding_merges_the_bn_after_each_convolution_and_keeps_the_pre_activations(depth):
    """Inside a unit a BN directly follows a convolution and folds into it exactly; a unit's pre-activation BN
    follows an addition, and `post_bn` the last one: they stay. The first unit's pre-activation BN follows the
    stem's convolution: folded where the unit projects (bottleneck: the stem feeds nothing else), kept where the
    stem's output is also the identity shortcut (basic). The folded network computes the same logits (random
    BN statistics)."""
    from conftest import randomise_batch_norms, relative_difference

    from keras_resnet.inference import fold_batch_norms

    model = randomise_batch_norms(preact_cifar_resnet(depth, classifier_activation=None))
    folded, pairs = fold_batch_norms(model)
    kept = sorted(layer.name for layer in folded.layers if isinstance(layer, keras.layers.BatchNormalization))
    units = 3 * preact_depth_units(depth, "basic" if depth == 20 else "bottleneck")
    preacts = [f"stage{s}_block{b}_preact_bn" for s in (1, 2, 3) for b in range(1, units // 3 + 1)]
    stem_folded = depth != 20
    assert kept == sorted(preacts[stem_folded:] + ["post_bn"])
    assert len(pairs) == units * (1 if depth == 20 else 2) + stem_folded and all(c.endswith("_conv") for c, _ in pairs)
    assert (("stem_conv", "stage1_block1_preact_bn") in pairs) == stem_folded
    x = np.random.default_rng(2).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    assert relative_difference(np.asarray(folded(x)), np.asarray(model(x))) < 1e-5


@pytest.mark.parametrize("name, size", [("preact_resnet11", 16), ("resnet50v2", 32)])
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_computes_in_the_mixed_policy_with_a_float32_classifier(policy, name, size):
    import keras_resnet

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = keras_resnet.build(name, input_shape=(size, size, 3))
        assert model.get_layer("stage1_block1_1_conv").compute_dtype == policy.split("_")[1]
        assert model.get_layer("post_bn").compute_dtype == policy.split("_")[1]
        out = model(np.zeros((1, size, size, 3), "float32"))
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
    finally:
        keras.config.set_dtype_policy(previous)


def real_jpeg_folder(root, train=8, test=4):
    """`root/{train,test}/<class>/*.jpg`: real CIFAR-10 JPEG files (bytes unchanged) of ../shared's test archive,
    `train` then `test` of each class; skips when ../shared is absent."""
    import tarfile

    from conftest import CIFAR

    archive = CIFAR / "cifar10-test.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 test archive not found at {archive} (../shared absent)")
    taken = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or taken.get(parts[1], 0) >= train + test:
                continue
            split = "train" if taken.get(parts[1], 0) < train else "test"
            taken[parts[1]] = taken.get(parts[1], 0) + 1
            (root / split / parts[1]).mkdir(parents=True, exist_ok=True)
            (root / split / parts[1] / parts[2]).write_bytes(tar.extractfile(member).read())
    return root


def test_trains_through_the_cli_and_serves_the_evaluation_paths_probabilities(tmp_path, capsys):
    """`python -m trainers.cifar --model=preact_resnet20` then `python -m keras_resnet.export` (both command lines
    run in this process), served by a process that imports TensorFlow only: on real JPEG files, the
    probabilities of the evaluation path (`data.load(..., training=False)` and the checkpoint) within 1e-4."""
    from conftest import serve_bytes_elsewhere

    from keras_resnet import data as data_lib
    from keras_resnet.data.reader import FolderSource
    from keras_resnet.export import cli as export_cli
    from trainers.cifar import main as train_main

    data, run = real_jpeg_folder(tmp_path / "jpegs"), tmp_path / "run"
    assert train_main(["--model=preact_resnet20", f"--data={data}", f"--model_dir={run}", "--batch_size=16",
                       "--train_steps=4", "--steps_per_epoch=2", "--seed=1", "--verbose=0"]) == 0
    capsys.readouterr()
    assert export_cli.main([f"--model_dir={run}", f"--export_dir={tmp_path / 'models'}"]) == 0
    version = tmp_path / "models" / "1"
    assert capsys.readouterr().out.strip().endswith(str(version))
    card = json.loads((version / "assets" / "model_card.json").read_text())
    assert card["model_name"] == "preact_resnet20" and card["graph"]["batch_norm_folded"] == 9

    model = keras.saving.load_model(run / "checkpoints" / "best.keras", safe_mode=True)
    ds, _ = data_lib.load(str(data), "test", 8, training=False, mean=np.load(run / "mean_image.npy"))
    expected = np.concatenate([np.asarray(model.predict_on_batch(x)) for x, _ in ds.as_numpy_iterator()])
    names = [n.numpy().decode() for _, _, n in FolderSource(str(data), "test").elements("test", encoded=True,
                                                                                          named=True)]
    served, serving = serve_bytes_elsewhere(version, names, tmp_path / "serving")
    assert serving["imported"] == [] and len(names) == 40
    assert np.abs(served["batch"] - expected).max() < 1e-4
