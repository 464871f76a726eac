"""The trainers through their real CLI: every artifact of a run, bad flags, and SIGKILL + resume (at a named
fault site, no timer; every site and a full disk: tests/test_faults_trainer.py)."""

import os
import signal

import numpy as np
import pytest

from conftest import make_image_folder, read_json, run_cli

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data"), train=240, test=60)


def test_end_to_end_resnet8_run_leaves_every_artifact(data, tmp_path):
    run, export = tmp_path / "run", tmp_path / "export"
    flagfile = tmp_path / "run.flags"
    flagfile.write_text(f"--model=resnet8\n--data={data}\n--model_dir={run}\n--batch_size=32\n")
    out = run_cli([f"--flagfile={flagfile}", "--train_steps=30", "--steps_per_epoch=10", "--validation_split=0.1",
                   "--log_every=5", "--export", f"--export_dir={export}"])
    assert out.returncode == 0, out.stderr[-3000:]
    assert "iteration: 30/30" in out.stdout and "lr: 0.025" in out.stdout  # progress bar
    assert out.stdout.strip().splitlines()[-1].startswith("resnet8: test error")  # one-line result
    config = read_json(run / "config.json")
    assert (config["model"], config["batch_size"], config["train_steps"]) == ("resnet8", 32, 30)
    assert config["recipe_fields"]["learning_rate"] == pytest.approx(0.025)  # 0.1 * 32 / 128
    dataset = read_json(run / "dataset.json")
    assert dataset["class_names"] == ["class0", "class1", "class2"] and dataset["image_shape"] == [8, 8, 3]
    assert np.load(run / "mean_image.npy").shape == (8, 8, 3)
    summary = read_json(run / "summary.json")
    for key in ("test_error", "test_accuracy", "best_validation_error", "iterations", "wall_time_s",
                "images_per_second"):
        assert summary[key] is not None, key
    assert summary["iterations"] == 30 and summary["test_error"] < 0.5
    rows = list(__import__("csv").DictReader(open(run / "log.csv")))
    assert [int(r["iteration"]) for r in rows] == [10, 20, 30] and all(r["val_error"] != "" for r in rows)
    # What the loss is made of, logged apart: cross-entropy + the L2 weight-decay term (issue 22).
    for r in rows:
        ce, reg = float(r["cross_entropy"]), float(r["regularization"])
        assert 0 < reg < 1 and float(r["loss"]) == pytest.approx(ce + reg, rel=1e-6)
    assert float(rows[-1]["cross_entropy"]) < float(rows[0]["cross_entropy"])
    assert (summary["train_cross_entropy"], summary["train_regularization"], summary["train_loss"]) == (
        pytest.approx(float(rows[-1]["cross_entropy"])), pytest.approx(float(rows[-1]["regularization"])),
        pytest.approx(float(rows[-1]["loss"])))
    assert " - ce: " in out.stdout and " - l2: " in out.stdout  # the progress bar shows both
    import keras

    import keras_resnet.recipes  # noqa: F401  (registers the layers and the schedules)

    model = keras.saving.load_model(run / "checkpoints" / "best.keras", safe_mode=True)
    assert model.output_shape == (None, 3)
    assert (run / "checkpoints" / "latest.keras").exists() and (run / "curves.png").stat().st_size > 1000
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for split in ("train", "validation", "test"):
        acc = EventAccumulator(str(run / "logs" / split))
        acc.Reload()
        tags |= {f"{split}/{t}" for t in acc.Tags()["tensors"]}
    for tag in ("train/loss", "train/cross_entropy", "train/regularization", "train/learning_rate",
                "train/images_per_second", "train/error", "train/accuracy", "validation/error", "test/error"):
        assert tag in tags, tags
    assert any((export / v / "saved_model.pb").exists() for v in os.listdir(export))

    # The same model_dir with a different configuration fails fast, naming the flag.
    again = run_cli([f"--flagfile={flagfile}", "--train_steps=30", "--steps_per_epoch=10",
                     "--validation_split=0.1", "--batch_size=16"])
    assert again.returncode == 2 and "--batch_size" in again.stderr and "different configuration" in again.stderr


def test_bad_flags_fail_fast_naming_the_flag(tmp_path, capsys):
    from trainers.cifar import main  # the command line in this process (the real process: test_command_errors)

    assert main(["--model=resnet9", f"--model_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "--model" in err and "resnet9" in err
    assert main(["--model=resnet8", f"--model_dir={tmp_path}", "--train_steps=-3"]) == 2
    assert "--train_steps" in capsys.readouterr().err
    assert not (tmp_path / "config.json").exists()


def final_weights(run):
    import keras

    import keras_resnet.recipes  # noqa: F401  (registers the layers and the schedules)

    return keras.saving.load_model(run / "checkpoints" / "latest.keras").get_weights()


def test_sigkill_and_restart_resumes_to_the_same_weights(data, tmp_path):
    def args(run):
        return ["--model=resnet8", f"--data={data}", f"--model_dir={run}", "--batch_size=32", "--train_steps=24",
                "--steps_per_epoch=3", "--seed=7", "--deterministic", "--verbose=2"]

    reference = run_cli(args(tmp_path / "ref"))
    assert reference.returncode == 0, reference.stderr[-3000:]
    # Killed (SIGKILL, by itself: keras_resnet.faults) in the middle of the 4th epoch, after 3 backups; no
    # timer, so the moment is the same on a fast and on a busy machine.
    victim = run_cli(args(tmp_path / "run"), KERAS_RESNET_FAULT="train.epoch_middle@4")
    assert victim.returncode == -signal.SIGKILL, victim.stderr[-3000:]
    metadata = tmp_path / "run" / "backup" / "training_metadata.json"
    killed_at = read_json(metadata)["iteration"]
    assert killed_at == 9
    resumed = run_cli(args(tmp_path / "run"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming resnet8" in resumed.stdout and "at iteration 9" in resumed.stdout
    run = tmp_path / "run"
    assert read_json(run / "summary.json")["iterations"] == 24
    rows = list(__import__("csv").DictReader(open(run / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(8))  # one continuous log, no gaps or repeats
    assert [int(r["iteration"]) for r in rows] == list(range(3, 25, 3))
    from conftest import scalar_steps

    for split, tag in (("test", "error"), ("train", "error"), ("train", "learning_rate")):
        steps = [step for step, _ in scalar_steps(run / "logs" / split, tag)]
        assert steps == list(range(3, 25, 3)), (split, tag, steps)  # one continuous TensorBoard history
    for got, want in zip(final_weights(run), final_weights(tmp_path / "ref")):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
