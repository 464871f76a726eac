"""What must hold after every kill and at the end: a training run's `model_dir`, an export root, a search.

Each check raises `AssertionError` naming the file and what is wrong. Loading checkpoints and SavedModels
is the expensive part, so `Loaded` remembers what it has loaded (by path, size and modification time) and
each file is loaded once however many attempts see it unchanged.

Example:
    >>> loaded = Loaded()  # doctest: +SKIP
    >>> check_training_run(TrainerRun(model_dir, train_steps=8, steps_per_epoch=2), loaded)  # doctest: +SKIP
"""

import csv
import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from faults.harness import digest, temporaries

VERSION_FILES = ("saved_model.pb", os.path.join("variables", "variables.index"),
                 os.path.join("assets", "model_card.json"), os.path.join("assets", "labels.txt"))
ONNX_FILES = ("model.onnx", "model_card.json", "labels.txt")


class Loaded:
    """Loads `.keras` checkpoints and export versions once per (path, size, mtime); remembers the results."""

    def __init__(self):
        self.seen = {}

    def key(self, path):
        stat = os.stat(path)
        return str(path), stat.st_size, stat.st_mtime_ns

    def keras(self, path):
        """The weights of the `.keras` file at `path` (loaded in safe mode)."""
        key = self.key(path)
        if key not in self.seen:
            import keras

            import keras_resnet.recipes  # noqa: F401  (registers the layers and the schedules)

            self.seen[key] = keras.saving.load_model(path, safe_mode=True).get_weights()
        return self.seen[key]

    def version(self, path):
        """Loads the version directory `path` (a SavedModel, or an ONNX `model.onnx`) and returns its digest."""
        path = Path(path)
        weights = path / "model.onnx" if (path / "model.onnx").exists() else path / "saved_model.pb"
        key = self.key(weights)
        if key not in self.seen:
            if weights.name == "model.onnx":
                import onnx

                onnx.checker.check_model(onnx.load(str(weights)))
            else:
                import tensorflow as tf

                assert "serving_default" in tf.saved_model.load(str(path)).signatures, path
            self.seen[key] = digest(weights)
        return self.seen[key]


@dataclasses.dataclass
class TrainerRun:
    """A trainer command's `model_dir` and the shape of its run (iterations, epochs, TensorBoard steps)."""

    model_dir: Path
    train_steps: int
    steps_per_epoch: int
    log_every: int = 1
    export_root: Path = None

    @property
    def epoch_ends(self):
        return [min(e, self.train_steps) for e in range(self.steps_per_epoch, self.train_steps + self.steps_per_epoch,
                                                        self.steps_per_epoch)]

    @property
    def logged_steps(self):
        """Steps of `train/loss`: every `log_every` iterations and each epoch's end (choose `log_every` so
        that the two never meet: the loop writes both under one tag, issue 16's report)."""
        return sorted(set(range(self.log_every, self.train_steps + 1, self.log_every)) | set(self.epoch_ends))


def csv_rows(model_dir):
    path = Path(model_dir) / "log.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def event_steps(log_dir, tag):
    """The step of every event of `tag` in the event files under `log_dir` (file order, duplicates kept).

    A record a kill cut short at the end of a file is skipped, as the resumed run's cut-back does.
    """
    from keras_resnet.run_log import read_event_records

    steps = []
    for path in sorted(Path(log_dir).glob("events.out.tfevents.*")):
        for _, event in read_event_records(str(path)):
            if event is not None and any(value.tag == tag for value in event.summary.value):
                steps.append(event.step)
    return steps


def backup_epochs(model_dir):
    """Epochs the backup says are done (`training_metadata.json`), 0 without a backup."""
    path = Path(model_dir) / "backup" / "training_metadata.json"
    return json.loads(path.read_text())["epoch"] if path.exists() else 0


def check_training_run(run, loaded, finished=False):
    """The trainer's invariants: log.csv and TensorBoard hold each epoch / step at most once and in order
    (exactly once when `finished`), summary.json only for a finished run, every checkpoint loads, and with
    an export root at most one version (exactly one when `finished`), complete and loadable."""
    model_dir = Path(run.model_dir)
    rows = csv_rows(model_dir)
    epochs, iterations = [int(r["epoch"]) for r in rows], [int(r["iteration"]) for r in rows]
    assert epochs == list(range(len(rows))), f"log.csv epochs {epochs}: each epoch once and in order"
    assert iterations == run.epoch_ends[:len(rows)], f"log.csv iterations {iterations}"
    done = backup_epochs(model_dir)
    assert done <= len(rows) <= done + 1, f"log.csv has {len(rows)} epochs, the backup {done}"
    for split, tag, expected in (("train", "loss", run.logged_steps), ("train", "error", run.epoch_ends),
                                 ("test", "error", run.epoch_ends)):
        steps = event_steps(model_dir / "logs" / split, tag)
        assert steps == sorted(set(steps)), f"TensorBoard {split}/{tag} repeats or reorders steps: {steps}"
        assert set(steps) <= set(expected), f"TensorBoard {split}/{tag} steps {steps} outside {expected}"
        if finished:
            assert steps == expected, f"TensorBoard {split}/{tag}: {steps} != {expected}"
    summary = model_dir / "summary.json"
    if summary.exists() or finished:
        assert summary.exists(), "a finished run has no summary.json"
        assert len(rows) == len(run.epoch_ends) and done == len(run.epoch_ends), (
            f"summary.json written before training finished ({len(rows)} epochs in log.csv, backup {done})")
        assert json.loads(summary.read_text())["iterations"] == run.train_steps
    for checkpoint in sorted((model_dir / "checkpoints").glob("*.keras")):
        loaded.keras(checkpoint)
    if run.export_root is not None:
        versions = check_versions(run.export_root, loaded)
        assert len(versions) <= 1, f"--export published {len(versions)} versions: {versions}"
        if finished:
            assert len(versions) == 1, f"a finished run with --export published {versions}"
    if finished:
        assert not temporaries(model_dir), f"temporary files left: {temporaries(model_dir)}"


def check_versions(root, loaded, files=VERSION_FILES):
    """Every numeric version directory under `root` is complete and loads; returns `{version: digest}`."""
    root = Path(root)
    found = {}
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name.isdigit():
            missing = [name for name in files if not (path / name).exists()]
            assert not missing, f"version {path} is incomplete (no {missing}): TF Serving would load it"
            found[int(path.name)] = loaded.version(path)
    return found


def assert_same_weights(got, want, what):
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(a, b, err_msg=f"{what}: weight {i} differs")
