"""The trainer computes what it computed before `keras_resnet/training.py` became a package.

`tests/data/make_reference.py` recorded, from the trainer before the split (commit f27f58e), one small
CIFAR command (`python -m trainers.cifar`, resnet8 on a toy image folder, `--deterministic`, a learning-rate
boundary inside the run): its final weights and optimizer state (`final_weights.npz`), the numbers of its
`log.csv` (`log.json`) and the `model_dir` of the same command killed after its first epoch
(`old_backup_run/`). Here the same command must give bitwise-identical weights and the same `log.csv`
numbers (the evaluation losses within 1e-6, see `EVALUATION_LOSSES`; the columns added since, see
`ADDED_COLUMNS`, on top), and the old backup must resume to exactly the same end.

Bitwise equality holds for one kind of CPU and one set of library versions: TensorFlow's CPU kernels (and
so the rounding) follow the vector instructions of the CPU. So there is one reference per CPU, in
`tests/data/training_references/<machine>-<hash of the vector flags>/`, and the tests take the one recorded
on this kind of CPU; where there is none they skip, saying what differs: record one there with
`git worktree add /tmp/old f27f58e && python tests/data/make_reference.py --code=/tmp/old`.
"""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, env, make_image_folder

pytest.importorskip("tensorflow")

DATA = os.path.join(REPO, "tests", "data")
REFERENCES = os.path.join(DATA, "training_references")
TIMING_COLUMNS = ("wall_time_s", "images_per_second")
EVALUATION_LOSSES = ("val_loss", "test_loss")
"""Compared within 1e-6 relative, every other number exactly. Training is bitwise (weights, optimizer state,
training losses and accuracy), but the inference graph's float rounding depends on how TensorFlow's graph
optimiser rewrites it: since the option-A shortcut subsamples with a reshape and a slice
(`keras_resnet.blocks.subsample`) instead of a strided slice, the optimiser can prove the shortcut's shape
equal to the residual's and merges their addition (AddN) for one block of this unfused-BN ResNet-8, which
moves the evaluation losses in the 9th digit (0.7374040293 against 0.7374040323); the errors are unchanged."""

ADDED_COLUMNS = ("cross_entropy", "regularization")
"""`log.csv` columns written since the reference was recorded (issue 22: the loss, still written, is their
sum); the reference's own columns must be equal."""


def recorded_references():
    """`{directory: reference.json}` of every recorded reference."""
    found = {}
    for name in sorted(os.listdir(REFERENCES)):
        with open(os.path.join(REFERENCES, name, "reference.json")) as f:
            found[os.path.join(REFERENCES, name)] = json.load(f)
    return found


RECORDED_ALL = recorded_references()
REFERENCE, RECORDED = next(iter(RECORDED_ALL.items()))  # replaced by this CPU's in `same_platform`


def platform_differences(recorded):
    """What differs from the machine and versions `recorded` was recorded with ([] when nothing)."""
    import platform

    import keras
    import tensorflow as tf

    sys.path.insert(0, DATA)
    try:
        from make_reference import cpu_flags
    finally:
        sys.path.remove(DATA)
    now = {"machine": platform.machine(), "cpu_flags": cpu_flags(), "keras": keras.__version__,
           "tensorflow": tf.__version__}
    return [f"{k}: recorded {recorded[k]!r}, here {v!r}" for k, v in now.items() if recorded[k] != v]


@pytest.fixture(scope="module", autouse=True)
def same_platform():
    """Takes the reference recorded on this kind of CPU, or skips saying what differs from each."""
    global REFERENCE, RECORDED
    differences = {}
    for directory, recorded in RECORDED_ALL.items():
        differences[directory] = platform_differences(recorded)
        if not differences[directory]:
            REFERENCE, RECORDED = directory, recorded
            return
    pytest.skip("no bitwise reference recorded on this CPU: " + " | ".join(
        f"{os.path.basename(d)}: {'; '.join(diff)}" for d, diff in differences.items()))


def workdir(root):
    """`root/data`: the recorded image folder; the command's `--data=data --model_dir=run` are relative to root."""
    folder = RECORDED["folder"]
    make_image_folder(root / "data", train=folder["train"], test=folder["test"], size=folder["size"],
                      classes=folder["classes"])
    return root


def run_trainer(root):
    out = subprocess.run([sys.executable, "-m", "trainers.cifar", *RECORDED["args"]], cwd=root,
                         env=env(**RECORDED["env"]), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]


def final_state(run_dir):
    import keras

    import keras_resnet  # noqa: F401  (registers the layers and schedules the checkpoint names)

    model = keras.saving.load_model(run_dir / "checkpoints" / "latest.keras")
    state = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    state.update({f"opt{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.optimizer.variables)})
    return state


def log_rows(run_dir, drop=TIMING_COLUMNS):
    with open(run_dir / "log.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


def assert_matches_reference(run_dir):
    want = np.load(os.path.join(REFERENCE, "final_weights.npz"))
    got = final_state(run_dir)
    assert sorted(got) == sorted(want.files)
    differing = [k for k in want.files if not np.array_equal(got[k], want[k])]
    assert not differing, f"not bitwise equal to the reference: {differing}"
    with open(os.path.join(REFERENCE, "log.json")) as f:
        want_rows = json.load(f)
    got_rows = log_rows(run_dir)
    assert len(got_rows) == len(want_rows)
    for got_row, want_row in zip(got_rows, want_rows):
        assert set(want_row) <= set(got_row) and set(got_row) - set(want_row) <= set(ADDED_COLUMNS), (got_row, want_row)
    for got_row, want_row in zip(got_rows, want_rows):
        for column, want_value in want_row.items():
            if column in EVALUATION_LOSSES:
                assert float(got_row[column]) == pytest.approx(float(want_value), rel=1e-6), (column, got_row)
            else:
                assert got_row[column] == want_value, (column, got_row)


def test_the_recorded_command_gives_bitwise_the_recorded_weights_and_log(tmp_path):
    root = workdir(tmp_path)
    run_trainer(root)
    assert_matches_reference(root / "run")


def test_a_backup_written_by_the_old_trainer_resumes_to_the_same_end(tmp_path):
    root = workdir(tmp_path)
    shutil.copytree(os.path.join(REFERENCE, "old_backup_run"), root / "run")
    with open(root / "run" / "backup" / "training_metadata.json") as f:
        assert json.load(f)["iteration"] == 4  # killed after its first epoch of 12 iterations
    old_first_row = log_rows(root / "run", drop=())[0]
    run_trainer(root)
    assert_matches_reference(root / "run")
    # The first epoch was not trained again: its row (timings included) is the old run's.
    assert {k: v for k, v in log_rows(root / "run", drop=())[0].items() if k in old_first_row} == old_first_row
