"""Fine-tuning: `--init_from` a finished run's `best.keras` (or a `.weights.h5`, or a named set) on another
folder with another number of classes, `--freeze`, the `finetune` recipe, and the configuration checks on
resumption (issue 14; issue 13 for `--init_from=cifar10`)."""

import numpy as np
import pytest

from conftest import AKAMASTER, make_image_folder, read_json, run_cli

pytest.importorskip("tensorflow")

BASE = ["--model=resnet8", "--batch_size=16", "--train_steps=4", "--steps_per_epoch=2", "--seed=2",
        "--deterministic", "--verbose=2"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    return (make_image_folder(root / "three", train=48, test=12, size=8, classes=3),
            make_image_folder(root / "four", train=64, test=16, size=8, classes=4))


@pytest.fixture(scope="module")
def first_run(folders, tmp_path_factory):
    """A finished run on the 3-class folder."""
    run = tmp_path_factory.mktemp("first") / "run"
    out = run_cli([*BASE, f"--data={folders[0]}", f"--model_dir={run}"])
    assert out.returncode == 0, out.stderr[-3000:]
    return run


def layer_weights(path):
    import keras

    import keras_resnet.recipes  # noqa: F401  (registers the layers and the schedules)

    model = keras.saving.load_model(path, safe_mode=True)
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


class StartWeights:
    """A callback recording every layer's weights when training begins."""

    def __new__(cls):
        import keras

        class Capture(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.weights = {layer.name: [np.asarray(w) for w in layer.get_weights()]
                                for layer in self.model.layers if layer.weights}

        return Capture()


def assert_loaded_except_classifier(start, source):
    assert set(start) == set(source)
    for name, weights in source.items():
        if name == "predictions":
            assert start[name][0].shape != weights[0].shape  # 4 classes now, 3 before: replaced
            continue
        for got, want in zip(start[name], weights):
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_loaded_layers_hold_the_first_runs_weights_at_the_start(folders, first_run, tmp_path):
    from keras_resnet import training

    source = layer_weights(first_run / "checkpoints" / "best.keras")
    weights_file = tmp_path / "first.weights.h5"
    import keras

    keras.saving.load_model(first_run / "checkpoints" / "best.keras").save_weights(weights_file)
    for i, init_from in enumerate((first_run / "checkpoints" / "best.keras", weights_file)):
        capture = StartWeights()
        config = training.TrainConfig(model="resnet8", data=str(folders[1]), model_dir=str(tmp_path / f"run{i}"),
                                      batch_size=16, train_steps=2, init_from=str(init_from), recipe="finetune",
                                      verbose=0)
        summary = training.train(config, callbacks=[capture])
        assert summary["iterations"] == 2
        assert_loaded_except_classifier(capture.weights, source)


def finetune_cli(folders, first_run, tmp_path, *extra):
    """`python -m trainers.cifar` on the second folder from the first run's `best.keras`, plus `extra` flags;
    asserts success and returns `(best, run, args, output)`."""
    best = first_run / "checkpoints" / "best.keras"
    run = tmp_path / "run"
    args = [*BASE, f"--data={folders[1]}", f"--model_dir={run}", f"--init_from={best}", *extra]
    out = run_cli(args)
    assert out.returncode == 0, out.stderr[-3000:]
    return best, run, args, out


def test_finetune_from_best_keras_through_the_cli(folders, first_run, tmp_path):
    best, run, args, out = finetune_cli(folders, first_run, tmp_path, "--recipe=finetune")
    assert "layers loaded: stem_conv, stem_bn" in out.stdout
    assert "not loaded (trained from their initialisation): predictions." in out.stdout
    config = read_json(run / "config.json")
    assert config["init_from"] == str(best) and config["classes"] == 4
    assert (config["recipe_fields"]["name"], config["recipe_fields"]["schedule"]) == ("finetune", "cosine")
    assert read_json(run / "summary.json")["iterations"] == 4
    again = run_cli(args)  # finished: the backup wins, nothing is loaded or trained again
    assert again.returncode == 0 and "not loaded: the run resumes from its backup" in again.stdout
    assert read_json(run / "summary.json")["iterations"] == 4


def test_freeze_keeps_weights_and_bn_statistics(folders, first_run, tmp_path, capsys):
    best, run, args, out = finetune_cli(folders, first_run, tmp_path, "--freeze=stem,stage1")
    assert "--freeze=stem,stage1: " in out.stdout
    before, after = layer_weights(best), layer_weights(run / "checkpoints" / "latest.keras")
    frozen = [name for name in before if name.startswith(("stem_", "stage1_"))]
    assert "stem_bn" in frozen and "stage1_block1_2_bn" in frozen
    for name in frozen:  # kernels, gamma/beta and the moving mean and variance
        for got, want in zip(after[name], before[name]):
            np.testing.assert_array_equal(got, want, err_msg=name)
    trained = [name for name in before if name.startswith(("stage2_", "stage3_"))]
    assert all(any(not np.array_equal(g, w) for g, w in zip(after[n], before[n])) for n in trained)
    assert not np.array_equal(after["stage3_block1_2_bn"][2], before["stage3_block1_2_bn"][2])  # moving mean

    # The same command with one flag changed, in this process (`python -m trainers.cifar` runs exactly this;
    # without --deterministic, TensorFlow's op determinism being process-wide: it is named as changed too).
    from trainers.cifar import main

    for changed, flag in ((["--freeze=stem"], "--freeze"), (["--init_from=cifar10"], "--init_from"),
                          (["--image_size=16"], "--image_size")):
        replaced = [a for a in args if a != "--deterministic" and not a.startswith(changed[0].split("=")[0] + "=")]
        capsys.readouterr()
        assert main(replaced + changed) == 2
        err = capsys.readouterr().err
        assert "different configuration" in err and f"{flag}: " in err, err


def test_init_from_a_named_set_trains_with_its_normalisation(tmp_path):
    if not (AKAMASTER / "resnet20-12fca82f.th").is_file():
        pytest.skip(f"akamaster ResNet-20 not found in {AKAMASTER} (../shared absent)")
    data = make_image_folder(tmp_path / "data", train=48, test=12, size=32, classes=3)
    run = tmp_path / "run"
    out = run_cli(["--model=resnet20", f"--data={data}", f"--model_dir={run}", "--batch_size=16", "--train_steps=2",
                   "--init_from=cifar10", "--freeze=stem,stage1,stage2,stage3", "--verbose=2"],
                  KERAS_RESNET_WEIGHTS=str(AKAMASTER))
    assert out.returncode == 0, out.stderr[-3000:]
    from keras_resnet.weights import TORCH

    assert read_json(run / "config.json")["input_normalization"] == TORCH.to_dict()
    np.testing.assert_allclose(np.load(run / "mean_image.npy").ravel(), 255 * np.asarray(TORCH.mean), rtol=1e-6)
    import os

    os.environ["KERAS_RESNET_WEIGHTS"] = str(AKAMASTER)
    import keras_resnet

    published = keras_resnet.ResNet20(weights="cifar10")
    after = layer_weights(run / "checkpoints" / "latest.keras")
    for layer in published.layers:  # every group frozen: the published weights, BN statistics included
        if layer.weights and layer.name != "predictions":
            for got, want in zip(after[layer.name], layer.get_weights()):
                np.testing.assert_array_equal(got, want, err_msg=layer.name)
