"""The trainer under the fault harness (issue 16): killed at every critical moment, out of disk space, fed
corrupted files; through the real CLI (`python -m trainers.cifar`), with no timer.

One command (resnet8, 8x8 images, 4 epochs of 2 iterations, `--export`) is run under a fixed plan of
(site, n, action) faults, each attempt restarting it as a user would; after every attempt the invariants
of `faults.invariants.check_training_run` hold, and at the end its weights equal those of an uninterrupted
run with the same seed (`--deterministic`), bit for bit.
"""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import make_image_folder, run_cli
from faults.harness import check_storage_error, enospc, kill, run_attempt, run_with_faults, snapshot, temporaries
from faults.invariants import Loaded, TrainerRun, assert_same_weights, check_training_run

pytest.importorskip("tensorflow")

TRAIN_STEPS, STEPS_PER_EPOCH, LOG_EVERY = 8, 2, 5  # per-step scalars at 5: never an epoch's end

# In order; each attempt restarts the same command from what the previous one left. The comments say
# where the process stops (epochs counted from 1; "backup N": the iteration the run resumes from).
PLAN = [
    kill("train.start"),                  # config.json, dataset.json, mean_image.npy written; nothing trained
    kill("checkpoint.write"),             # epoch 1's latest.keras complete under its temporary name
    kill("backup.write"),                 # epoch 1 written but for its backup (temporary file complete)
    kill("csv.write", 2),                 # backup 2; epoch 2's checkpoints written, its log.csv row not yet
    kill("backup.rotate"),                # epoch 2's backup: the previous kept as .bkp, the new one not renamed in
    enospc("backup.write"),               # disk full writing epoch 2's backup: backup 2 intact
    kill("tensorboard.flush", 2),         # backup 4; epoch 3's scalars flushed, its backup not written
    kill("tensorboard.truncate"),         # the restart cutting epoch 3's events back, mid-rewrite
    enospc("checkpoint.write"),           # disk full writing latest.keras: the previous one intact
    kill("train.epoch_middle", 2),        # backup 6; the middle of epoch 4
    enospc("csv.replace", 2),             # disk full writing log.csv: its 3 rows intact
    kill("train.epoch_end"),              # backup 8: trained, summary.json not yet written
    kill("json.replace", 2),              # summary.json complete under its temporary name
    enospc("json.replace", 2),            # disk full writing summary.json: still none
    kill("export.saved_model_written"),   # the SavedModel in its staging directory (version 1 recorded)
    enospc("export.version_written"),     # disk full at the export's rename: staging removed, no version
    kill("export.published"),             # version 1 published; the rerun must not publish a second one
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data"), train=96, test=24)


def trainer_args(data, model_dir, *extra):
    return ["--model=resnet8", f"--data={data}", f"--model_dir={model_dir}", "--batch_size=16",
            f"--train_steps={TRAIN_STEPS}", f"--steps_per_epoch={STEPS_PER_EPOCH}", "--seed=3", "--deterministic",
            "--verbose=2", f"--log_every={LOG_EVERY}", *extra]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted run (no fault, no export): its model_dir."""
    model_dir = tmp_path_factory.mktemp("reference") / "run"
    out = run_cli(trainer_args(data, model_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    return model_dir


@pytest.fixture(scope="module")
def loaded():
    return Loaded()


def command(data, model_dir, *extra):
    return [sys.executable, "-m", "trainers.cifar", *trainer_args(data, model_dir, *extra)]


def test_killed_and_out_of_space_at_every_site_resumes_to_the_same_weights(data, reference, loaded, tmp_path):
    model_dir, export_root = tmp_path / "run", tmp_path / "export"
    run = TrainerRun(model_dir, TRAIN_STEPS, STEPS_PER_EPOCH, LOG_EVERY, export_root)
    attempts = run_with_faults(
        command(data, model_dir, "--export", f"--export_dir={export_root}"), PLAN, workdir=tmp_path,
        watched=[model_dir, export_root],
        check=lambda attempt: check_training_run(run, loaded, finished=attempt.fault is None))
    assert_same_weights(loaded.keras(model_dir / "checkpoints" / "latest.keras"),
                        loaded.keras(reference / "checkpoints" / "latest.keras"), "killed run vs uninterrupted run")
    assert sorted(p.name for p in export_root.iterdir()) == ["1"]  # no staging directory left either
    assert "Already exported to" in attempts[-1].stdout
    card = json.loads((export_root / "1" / "assets" / "model_card.json").read_text())
    assert card["version"] == 1 and card["source"]["checkpoint"] == "checkpoints/best.keras"
    # Every attempt after the first backup resumed (but the one killed while cutting the history back, which
    # is before the message), and never from scratch.
    resumed = [a.index for a in attempts if "Resuming resnet8" in a.stdout]
    cut_short = [i for i, fault in enumerate(PLAN) if fault.site == "tensorboard.truncate"]
    assert resumed == [i for i in range(4, len(attempts)) if i not in cut_short], resumed


def finished_copy(reference, tmp_path):
    """A copy of the finished reference run whose config.json says where it is (as a run there would)."""
    model_dir = tmp_path / "run"
    shutil.copytree(reference, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["model_dir"] = str(model_dir)
    (model_dir / "config.json").write_text(json.dumps(config, indent=1))
    return model_dir


def test_corrupted_newest_backup_falls_back_loudly_to_the_previous_one(data, reference, loaded, tmp_path):
    model_dir = finished_copy(reference, tmp_path)
    latest = model_dir / "backup" / "latest.weights.h5"
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # truncated
    kept = latest.read_bytes()
    out = run_cli(trainer_args(data, model_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"warning: the newest backup cannot be used: {latest}" in out.stderr and "truncated" in out.stderr
    assert f"resuming from the previous backup {latest}.bkp (iteration 6)" in out.stderr
    assert "Resuming resnet8" in out.stdout and "at iteration 6" in out.stdout
    assert (model_dir / "backup" / "latest.weights.h5.corrupt").read_bytes() == kept  # set aside, not deleted
    check_training_run(TrainerRun(model_dir, TRAIN_STEPS, STEPS_PER_EPOCH, LOG_EVERY), loaded, finished=True)
    assert_same_weights(loaded.keras(model_dir / "checkpoints" / "latest.keras"),
                        loaded.keras(reference / "checkpoints" / "latest.keras"), "after the fallback")


def test_another_models_backup_is_named_and_nothing_is_replaced(data, reference, tmp_path):
    model_dir = finished_copy(reference, tmp_path)
    backup = model_dir / "backup"
    other = subprocess.run([sys.executable, "-c", (
        "import sys, keras, keras_resnet\n"
        "m = keras_resnet.build('resnet14', input_shape=(8, 8, 3), classes=3)\n"
        "m.compile(optimizer=keras.optimizers.SGD(momentum=0.9)); m.optimizer.build(m.trainable_variables)\n"
        "m.save_weights(sys.argv[1])\n"), str(backup / "latest.weights.h5")], capture_output=True, text=True)
    assert other.returncode == 0, other.stderr[-2000:]
    (backup / "latest.weights.h5.bkp").write_bytes(b"not an HDF5 file" * 64)  # garbage
    before = snapshot(model_dir)
    out = run_cli(trainer_args(data, model_dir))
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = [line for line in out.stderr.splitlines() if "error:" in line]
    assert f"the backup in {backup} cannot be read" in line and "Traceback" not in out.stderr
    assert f"{backup / 'latest.weights.h5'} (ValueError" in line and f"{backup / 'latest.weights.h5.bkp'} (" in line
    assert snapshot(model_dir) == before  # nothing replaced, nothing set aside


@pytest.mark.parametrize("name, corrupt, message", [
    ("checkpoints/latest.keras", lambda b: b[: len(b) // 2], "is not a readable .keras archive"),
    ("config.json", lambda b: b"\x00garbage{", "is corrupted"),
    ("config.json", lambda b: b.replace(b'"resnet8"', b'"resnet14"'), "holds a run with a different configuration"),
])
def test_corrupted_run_file_is_named_and_left_alone(name, corrupt, message, data, reference, tmp_path):
    model_dir = finished_copy(reference, tmp_path)
    path = model_dir / name
    path.write_bytes(corrupt(path.read_bytes()))
    before = snapshot(model_dir)
    out = run_cli(trainer_args(data, model_dir))
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = [line for line in out.stderr.splitlines() if "error:" in line]
    assert message in line and (str(path) in line or name == "config.json" and "--model" in line), line
    assert snapshot(model_dir) == before


def mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                          text=True)


def test_real_full_disk_exits_5_cleanly_and_the_same_command_finishes_with_space(data, loaded, tmp_path):
    import os

    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the injected ENOSPC cases cover the same code")
    disk = tmp_path / "disk"
    mounted = mount_tmpfs(disk, "1500k")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the injected ENOSPC cases cover it")
    try:
        model_dir = disk / "run"
        full = run_attempt(command(data, model_dir), None, 0, tmp_path, watched=[model_dir])
        assert full.returncode == 5, full.tail()
        path = check_storage_error(full, [model_dir])
        assert path.startswith(str(model_dir)), path
        for checkpoint in model_dir.glob("checkpoints/*.keras"):
            loaded.keras(checkpoint)  # what was written before the disk filled up is whole
        remount = subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], capture_output=True, text=True)
        assert remount.returncode == 0, remount.stderr
        again = run_attempt(command(data, model_dir), None, 1, tmp_path, watched=[model_dir])
        assert again.returncode == 0, again.tail()
        check_training_run(TrainerRun(model_dir, TRAIN_STEPS, STEPS_PER_EPOCH, LOG_EVERY), loaded, finished=True)
        assert not temporaries(model_dir)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
