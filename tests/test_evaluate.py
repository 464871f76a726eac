"""`python -m keras_resnet.evaluate`: top-1 / top-5 error of a run (centre crop, 10 crops) or of published
weights, printed and as JSON; bad input exits 2 with one line (issues 13 and 14)."""

import json

import numpy as np
import pytest

from conftest import AKAMASTER, CIFAR, CIFAR_CLASSES, make_photo_folder, read_json, run_cli

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("photos") / "pets", classes=6, train=4, val=2)


@pytest.fixture(scope="module")
def run(photos, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "run"
    out = run_cli(["--model=resnet18", f"--data={photos}", f"--model_dir={run}", "--image_size=32", "--batch_size=4",
                   "--train_steps=3", "--seed=0", "--verbose=0"], module="trainers.imagenet")
    assert out.returncode == 0, out.stderr[-3000:]
    return run


def evaluate(*args, **env):
    return run_cli(list(args), module="keras_resnet.evaluate", **env)


def printed_json(out):
    return json.loads(out.stdout[out.stdout.index("{"):])


def test_a_runs_numbers_as_its_summary_printed_and_written(run, photos, tmp_path):
    output = tmp_path / "result.json"
    out = evaluate(f"--model_dir={run}", f"--data={photos}", "--checkpoint=latest", f"--output={output}")
    assert out.returncode == 0, out.stderr[-3000:]
    result, summary = printed_json(out), read_json(run / "summary.json")
    assert result == read_json(output)
    assert (result["split"], result["crops"], result["images"], result["image_size"]) == ("validation", 1, 12, 32)
    assert result["top1_error"] == pytest.approx(summary["test_error"], abs=1e-12)
    assert result["top5_error"] == pytest.approx(summary["test_top5_error"], abs=1e-12)
    assert result["loss"] == pytest.approx(summary["test_loss"], rel=1e-9)
    assert out.stdout.startswith("resnet18 (") and "top-5 error" in out.stdout.splitlines()[0]


def test_ten_crop_averages_the_probabilities_of_the_ten_crops(run, photos):
    import keras

    import keras_resnet.recipes  # noqa: F401  (registers the layers and the schedules)
    from keras_resnet import data as data_lib

    out = evaluate(f"--model_dir={run}", f"--data={photos}", "--checkpoint=latest", "--ten_crop")
    assert out.returncode == 0, out.stderr[-3000:]
    result = printed_json(out)
    assert (result["crops"], result["images"]) == (10, 12)
    model = keras.saving.load_model(run / "checkpoints" / "latest.keras")
    ds, _ = data_lib.load(str(photos), "validation", 4, training=False, mean=np.load(run / "mean_image.npy"),
                          crop_size=32, ten_crop=True)
    probs, labels = [], []
    for x, y in ds.as_numpy_iterator():
        assert x.shape[1:] == (10, 32, 32, 3)
        probs.append(np.asarray(model.predict_on_batch(x.reshape(-1, 32, 32, 3))).reshape(len(x), 10, -1).mean(1))
        labels.append(y)
    probs, labels = np.concatenate(probs), np.concatenate(labels)
    assert result["top1_error"] == pytest.approx(float(np.mean(probs.argmax(1) != labels)), abs=1e-12)
    top5 = np.argsort(-probs, 1)[:, :5]
    assert result["top5_error"] == pytest.approx(float(np.mean([l not in t for l, t in zip(labels, top5)])), abs=1e-12)


def test_bad_input_exits_2_with_one_line(run, photos, tmp_path, capsys):
    other = make_photo_folder(tmp_path / "other", classes=7, train=1, val=1)
    cases = [
        ([f"--model_dir={tmp_path / 'nothing'}", f"--data={photos}"], "--model_dir="),
        ([f"--model_dir={run}", f"--data={photos}", "--split=test"], "Split 'test' not found"),
        ([f"--model_dir={run}", f"--data={other}"], "are not the run's"),
        ([f"--model_dir={run}"], "--data is required"),
        ([f"--model_dir={run}", "--model=resnet18", f"--data={photos}"], "either --model_dir"),
        (["--model=resnet20", f"--data={photos}"], "needs --weights"),
        (["--model=resnet20", "--weights=cifar10", f"--data={photos}"], "--weights=cifar10 for --model=resnet20"),
        (["--model=resnet9", "--weights=cifar10", f"--data={photos}"], "--model"),
    ]
    from keras_resnet.evaluate.cli import main

    for index, (args, wanted) in enumerate(cases):
        if index == 0:  # the real process once: the exit code itself, no traceback or noise
            out = evaluate(*args)
            code, err = out.returncode, out.stderr
        else:  # the same command line in this process (`python -m keras_resnet.evaluate` runs exactly this)
            with pytest.raises(SystemExit) as exit_info:
                main(list(args))
            code, err = exit_info.value.code, capsys.readouterr().err
        assert code == 2, (args, err[-2000:])
        lines = err.strip().splitlines()
        assert len(lines) == 1 and wanted in lines[0], (args, err)


def test_published_cifar10_weights_agree_with_the_pytorch_original_on_the_real_test_jpegs(tmp_path_factory):
    from conftest import akamaster_test_set

    if not (CIFAR / "cifar10-test.tar.gz").is_file() or not (AKAMASTER / "resnet20-12fca82f.th").is_file():
        pytest.skip("../shared CIFAR-10 JPEGs or akamaster weights absent")
    out = evaluate("--model=resnet20", "--weights=cifar10", f"--data={CIFAR}", "--batch_size=500",
                   KERAS_RESNET_WEIGHTS=str(AKAMASTER))
    assert out.returncode == 0, out.stderr[-3000:]
    result = printed_json(out)
    assert (result["split"], result["images"], result["normalization"]["name"]) == ("test", 10000, "torch")
    _, labels, _, logits = akamaster_test_set(tmp_path_factory)
    torch_error = float(np.mean(logits.argmax(1) != labels))
    assert len(labels) == 10000 and sorted(set(labels.tolist())) == list(range(len(CIFAR_CLASSES)))
    assert abs(result["top1_error"] - torch_error) <= 0.001  # within 0.1 point of the PyTorch original
