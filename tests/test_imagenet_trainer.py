"""`python -m trainers.imagenet` end to end on an ImageNet-style folder of real-looking photos (issue 14).

A generated folder (train/ and val/, 6 classes, JPEGs from 40 to 900 pixels a side, a grayscale, a CMYK, an
EXIF-rotated and a PNG-named-.JPEG file among them) is trained on at `--image_size=32` with ResNet-18 for a
few iterations: the input streams (sizes differ) and says so, the evaluation split is the val/ folder, and
the top-1 / top-5 errors of summary.json and log.csv are those recomputed with numpy from the saved model's
outputs. Killed (by the fault site `train.epoch_middle`, after its first backup) and restarted, the run
ends with the weights of the uninterrupted run; exported, its `serve_bytes` in a process without keras_resnet
gives every file of the folder the probabilities of the evaluation path within 1e-4; the same run reads
TFRecord shards of the folder and a TFDS mock. User
errors exit 2 with one line, before anything is written, and no TensorFlow start-up noise.
"""

import csv
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, env, make_photo_folder, read_json, run_cli, serve_bytes_elsewhere

pytest.importorskip("tensorflow")

COMMON = ["--model=resnet18", "--image_size=32", "--batch_size=4", "--train_steps=6", "--steps_per_epoch=3",
          "--seed=1", "--deterministic", "--verbose=2"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("photos") / "pets", classes=6, train=4, val=2)


def train(data, model_dir, *extra, **env_extra):
    return run_cli([*COMMON, f"--data={data}", f"--model_dir={model_dir}", *extra], module="trainers.imagenet",
                   **env_extra)


def train_here(capsys, data, model_dir, *extra):
    """The same command line in this process (`python -m trainers.imagenet` runs exactly this), without
    `--deterministic` (TensorFlow's op determinism is process-wide): `(exit code, stdout, stderr)`."""
    from keras_resnet.training import trainer_main

    argv = [a for a in COMMON if a != "--deterministic"] + [f"--data={data}", f"--model_dir={model_dir}", *extra]
    capsys.readouterr()
    code = trainer_main(argv, "python -m trainers.imagenet", model="resnet50", data="imagenet2012", recipe="imagenet")
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory):
    """The uninterrupted run on the photo folder."""
    run = tmp_path_factory.mktemp("reference") / "run"
    out = train(photos, run)
    assert out.returncode == 0, out.stderr[-3000:]
    return run, out


def load_model(path):
    import keras

    import keras_resnet.recipes  # noqa: F401  (registers the layers and the schedules)

    return keras.saving.load_model(path, safe_mode=True)


def numpy_errors(run, photos):
    """Top-1 / top-5 error of the run's final model on the val/ folder, recomputed from its outputs."""
    from keras_resnet import data as data_lib

    model = load_model(run / "checkpoints" / "latest.keras")
    mean = np.load(run / "mean_image.npy")
    ds, info = data_lib.load(str(photos), "validation", 5, training=False, mean=mean, crop_size=32)
    outputs, labels = [], []
    for x, y in ds.as_numpy_iterator():
        outputs.append(np.asarray(model.predict_on_batch(x)))
        labels.append(y)
    outputs, labels = np.concatenate(outputs), np.concatenate(labels)
    top5 = np.argsort(-outputs, axis=1)[:, :5]
    return (float(np.mean(outputs.argmax(1) != labels)), float(np.mean([l not in t for l, t in zip(labels, top5)])),
            len(labels))


def test_trains_from_a_photo_folder_and_reports_top1_top5_as_numpy_recomputes(reference, photos):
    run, out = reference
    assert "input: tf.data, images decoded on the fly (streaming: " in out.stdout  # mixed sizes: why it streams
    assert "evaluation: the validation split" in out.stdout
    summary, config = read_json(run / "summary.json"), read_json(run / "config.json")
    assert (summary["iterations"], summary["eval_split"], summary["eval_crops"]) == (6, "validation", 1)
    assert (config["image_size"], config["eval_split"], config["image_shape"]) == (32, "validation", [32, 32, 3])
    top1, top5, count = numpy_errors(run, photos)
    assert count == 12
    assert summary["test_error"] == pytest.approx(top1, abs=1e-12)
    assert summary["test_top5_error"] == pytest.approx(top5, abs=1e-12)
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["iteration"]) for r in rows] == [3, 6]
    assert float(rows[-1]["test_top5_error"]) == pytest.approx(top5, abs=1e-12)
    assert out.stdout.strip().splitlines()[-1].startswith("resnet18: validation error")
    assert "Traceback" not in out.stderr


def final_weights(run):
    return load_model(run / "checkpoints" / "latest.keras").get_weights()


def test_killed_mid_epoch_after_its_first_backup_resumes_to_the_same_weights(reference, photos, tmp_path):
    run = tmp_path / "run"
    killed = train(photos, run, KERAS_RESNET_FAULT="train.epoch_middle@2")  # epoch 2's middle: one backup written
    assert killed.returncode == -signal.SIGKILL
    assert read_json(run / "backup" / "training_metadata.json")["iteration"] == 3
    assert not (run / "summary.json").exists()
    resumed = train(photos, run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming resnet18" in resumed.stdout and "at iteration 3" in resumed.stdout
    for got, want in zip(final_weights(run), final_weights(reference[0])):
        np.testing.assert_array_equal(got, want)
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["iteration"]) for r in rows] == [3, 6]


def evaluation_path(model, run, photos, split):
    """The files of `split` in reading order and `model`'s probabilities on them through the evaluation
    pipeline (`data.load(..., training=False)`: shorter side 37, centre 32 crop, the run's mean)."""
    from keras_resnet import data as data_lib
    from keras_resnet.data.reader import FolderSource

    ds, _ = data_lib.load(str(photos), split, 5, training=False, mean=np.load(run / "mean_image.npy"), crop_size=32)
    names = [n.numpy().decode() for _, _, n in FolderSource(str(photos), split).elements(
        split, encoded=True, named=True)]
    return names, np.concatenate([np.asarray(model.predict_on_batch(x)) for x, _ in ds.as_numpy_iterator()])


def test_the_trained_run_exports_and_serves_every_file_as_its_evaluation_path(reference, photos, tmp_path):
    run = reference[0]
    root = tmp_path / "saved_models" / "pets"
    out = run_cli([f"--model_dir={run}", f"--export_dir={root}"], module="keras_resnet.export")
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == str(root.absolute() / "1")
    names, expected, model = [], [], load_model(run / "checkpoints" / "best.keras")
    for split in ("train", "validation"):
        split_names, probabilities = evaluation_path(model, run, photos, split)
        names += split_names
        expected.append(probabilities)
    expected = np.concatenate(expected)
    assert expected.max() > 0.5  # a trained network, not a uniform guess: the probabilities tell files apart
    assert len(names) == 36 and {os.path.basename(n) for n in names} >= {
        "gray.jpg", "cmyk.jpg", "rotated.jpg", "png_named.JPEG"}
    served, serving = serve_bytes_elsewhere(root / "1", names, tmp_path / "serving")
    assert serving["imported"] == []
    gaps = np.abs(served["batch"] - expected).max(axis=1)
    assert gaps.max() < 1e-4, {os.path.basename(n): float(g) for n, g in zip(names, gaps) if g >= 1e-4}
    np.testing.assert_allclose(served["single"], served["batch"], atol=1e-5)
    class_names = read_json(run / "dataset.json")["class_names"]
    assert serving["class_names"] == [class_names[i] for i in served["batch"].argmax(1)]


def test_the_same_run_from_tfrecord_shards(reference, photos, tmp_path, capsys):
    from keras_resnet.data.convert import convert

    shards = tmp_path / "shards"
    convert(str(photos), str(shards), shards=2, progress=False)
    run = tmp_path / "run"
    code, stdout, stderr = train_here(capsys, shards, run)
    assert code == 0, stderr[-3000:]
    assert "input: tf.data" in stdout and "streaming: " in stdout
    summary = read_json(run / "summary.json")
    assert (summary["eval_split"], summary["iterations"]) == ("validation", 6)
    assert read_json(run / "dataset.json")["class_names"] == read_json(reference[0] / "dataset.json")["class_names"]
    top1, top5, _ = numpy_errors(run, photos)  # the shards hold the folder's images: the same evaluation
    assert (summary["test_error"], summary["test_top5_error"]) == pytest.approx((top1, top5), abs=1e-12)


def bare_env():
    """The test environment without TF_CPP_MIN_LOG_LEVEL: what a user's shell has."""
    out = env()
    out.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return out


def cli(args, module="trainers.imagenet"):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=bare_env(), capture_output=True,
                          text=True, timeout=300)


def broken_copies(photos, root):
    """Copies of the photo folder with one user mistake each."""
    import shutil

    copies = {}
    for name in ("no_val", "empty_class", "differing"):
        copies[name] = root / name
        shutil.copytree(photos, copies[name])
    shutil.rmtree(copies["no_val"] / "val")
    (copies["empty_class"] / "train" / "n06").mkdir()
    (copies["empty_class"] / "val" / "n06").mkdir()
    os.rename(copies["differing"] / "val" / "n05", copies["differing"] / "val" / "n09")
    return copies


def test_user_errors_exit_2_with_one_line_before_anything_is_written(photos, reference, tmp_path, capsys):
    copies = broken_copies(photos, tmp_path)
    other = tmp_path / "resnet8.keras"
    import keras_resnet

    keras_resnet.build("resnet8", classes=6).save(other)
    cases = [
        ([f"--data={copies['no_val']}"], ["--data=", "no 'test' split", "available splits: ['train']"]),
        ([f"--data={copies['empty_class']}"], ["--data=", "Class folder(s) with no images", "n06"]),
        ([f"--data={copies['differing']}"], ["--data=", "Class folders differ", "'n05'", "'n09'"]),
        ([f"--data={photos}", "--eval_split=test"], ["--eval_split=test", "available splits: ['train', 'validation']"]),
        ([f"--data={photos}", "--init_from=missing.keras"], ["--init_from=missing.keras", "no such file", "accepted"]),
        ([f"--data={photos}", f"--init_from={other}"], ["--init_from=", "another architecture than resnet18",
                                                         "first mismatching layer 'stem_conv'"]),
    ]
    for index, (args, wanted) in enumerate(cases):
        run = tmp_path / "run"
        if index == 0:  # the real process once: no traceback, no TensorFlow noise, the exit code itself
            out = cli([*COMMON, *args, f"--model_dir={run}"])
            code, err = out.returncode, out.stderr
        else:  # the same command line in this process (`python -m trainers.imagenet` runs exactly this)
            code, _, err = train_here(capsys, args[0].removeprefix("--data="), run, *args[1:])
        assert code == 2, (args, err[-2000:])
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)  # no traceback, no noise
        for text in wanted:
            assert text in lines[0], (text, lines[0])
        assert not run.exists(), args  # nothing written


def test_no_tensorflow_start_up_noise():
    for module in ("trainers.imagenet", "trainers.cifar", "keras_resnet.evaluate"):
        out = cli(["--help"], module=module)
        assert "--help" in out.stdout or "flags" in out.stdout, (module, out.stdout)  # absl's --help exits 1
        assert out.stderr == "", (module, out.stderr)


def test_the_same_run_from_a_tfds_mock(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from conftest import write_tfds_metadata

    from keras_resnet import training

    data_dir = tmp_path / "tfds"
    write_tfds_metadata(data_dir, "imagenette", {"train": 8, "validation": 8})
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=str(data_dir)):
        config = training.TrainConfig(model="resnet18", data="imagenette", data_dir=str(data_dir),
                                      model_dir=str(tmp_path / "run"), image_size=32, batch_size=4, train_steps=2,
                                      seed=1, verbose=0)
        assert training.input_choice(config) == (False, "streaming: TFDS dataset 'imagenette' through tf.data")
        summary = training.train(config)
    assert (summary["eval_split"], summary["iterations"], summary["image_shape"]) == ("validation", 2, [32, 32, 3])
    assert summary["test_top5_error"] is not None  # imagenette has 10 classes
    assert read_json(tmp_path / "run" / "config.json")["eval_split"] == "validation"


def test_a_run_ended_by_an_undecodable_image_lets_go_of_its_tf_data_iterators(photos, tmp_path, capsys):
    """The run's `tf.data` iterators are released when `train()` raises, not left in a reference cycle (the error
    naming the file, raised from the `tf.data` error, held the frame that holds it) for a later garbage collection,
    which blocks the process, holding the GIL, until each iterator's autotuning thread wakes: 30 to 90 s in this
    suite before `TFStepper.close`."""
    import gc
    import shutil

    import tensorflow as tf

    data = tmp_path / "data"
    shutil.copytree(photos, data)
    (data / "val" / "n01" / "bad.jpg").write_bytes(b"not an image")  # met while streaming, after epoch 1
    before = {id(o): o for o in gc.get_objects() if isinstance(o, tf.data.Iterator)}  # held: no id is reused
    code, _, stderr = train_here(capsys, data, tmp_path / "run")
    assert code == 2 and "bad.jpg" in stderr
    left = [o for o in gc.get_objects() if isinstance(o, tf.data.Iterator) and id(o) not in before]
    assert left == [], left


def test_undecodable_images_are_named_or_skipped_and_counted(photos, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(photos, data)
    (data / "train" / "n04" / "broken.jpg").write_bytes((data / "train" / "n04" / "001.jpg").read_bytes()[:300])
    (data / "val" / "n01" / "bad.jpg").write_bytes(b"not an image")
    code, _, stderr = train_here(capsys, data, tmp_path / "refused")
    assert code == 2 and not (tmp_path / "refused").exists()
    assert "broken.jpg" in stderr and "--skip_corrupt" in stderr
    code, stdout, stderr = train_here(capsys, data, tmp_path / "run", "--skip_corrupt")
    assert code == 0, stderr[-3000:]
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["skipped_images"] == {"train": 1, "validation": 1}
    assert "2 undecodable image(s) skipped" in stdout
    (data / "train" / "n04" / "broken.jpg").unlink()  # only the val/ one: met while streaming, after epoch 1
    code, _, stderr = train_here(capsys, data, tmp_path / "late")
    assert code == 2 and "Traceback" not in stderr, stderr[-3000:]
    assert "bad.jpg" in stderr.strip().splitlines()[-1] and "--skip_corrupt" in stderr
