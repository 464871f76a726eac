"""What a run saves at each epoch's end, atomically: the whole models and the backup it resumes from.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (a 64k-iteration CIFAR run
takes hours: a run killed at any moment must resume where its last epoch ended).

- `save_model_atomic(model, path)`: `checkpoints/latest.keras` / `best.keras` (whole models), written to a
  temporary name and renamed into place;
- `BackupCheckpointer(backup_dir, write_dir)`: the backup in `backup/` with the files and format of
  `keras.callbacks.BackupAndRestore` (`latest.weights.h5`, the previous one as `latest.weights.h5.bkp`,
  `training_metadata.json` with `epoch`, `batch` and `iteration`), so backups written by earlier versions of
  this package resume. It uses only public Keras APIs (`Model.save_weights` / `load_weights`); the weights
  file holds the optimizer state too, hence the iteration count, so the weights and the point to resume
  from can never disagree. Nothing deletes a backup: a NaN or a `TerminateOnNaN` keeps it, and rerunning a
  finished command re-evaluates instead of retraining;
- `AtomicBackupAndRestore`: the same backup as a Keras callback (`on_train_begin` restores,
  `on_epoch_end` saves);
- `BestCheckpoint`: `checkpoints/best.keras` and `best.json` (the lowest validation error, or test error
  without a validation split).

Fault sites (`keras_resnet.faults`): "checkpoint.write" (a .keras file written under its temporary name,
not yet renamed), "backup.write" (the new weights written, not yet renamed; the old backup intact).

Example:
    >>> backup = BackupCheckpointer("/tmp/run/backup")  # doctest: +SKIP
    >>> start = backup.restore(model)  # the optimizer's iteration count (0 without a backup)  # doctest: +SKIP
    >>> backup.save(model, epoch=0)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

import numpy as np

import keras

from keras_resnet import faults
from keras_resnet.run_log import write_json
from keras_resnet.training.model import batch_norm_layers

WEIGHTS_FILE = "latest.weights.h5"
PREVIOUS_WEIGHTS_FILE = "latest.weights.h5.bkp"
METADATA_FILE = "training_metadata.json"


def variable_int(variable):
    """int() of a scalar variable, also a `tf.distribute` mirrored one."""
    return int(np.asarray(keras.ops.convert_to_numpy(variable)))


def save_model_atomic(model, path):
    """Saves the whole `model` (.keras) to `path` through a temporary file renamed into place.

    Synchronised BatchNormalization (`--sync_batch_norm`) is saved as plain BatchNormalization, which every
    backend can load.
    """
    tmp = os.path.join(os.path.dirname(path), f".tmp-{os.path.basename(path)}")
    synchronized = [layer for layer in batch_norm_layers(model) if layer.synchronized]
    for layer in synchronized:  # `synchronized=True` cannot be loaded on other backends
        layer.synchronized = False
    try:
        model.save(tmp)
    finally:
        for layer in synchronized:
            layer.synchronized = True
    faults.site("checkpoint.write")
    os.replace(tmp, path)


class BackupCheckpointer:
    """The resume point of a run: model and optimizer state in `backup_dir`, written atomically.

    Args:
        backup_dir: where the backup is read from (the chief's `model_dir/backup`).
        write_dir: where it is written (`backup_dir` by default; a worker other than the chief writes to its
            own directory and reads the chief's).
    """

    def __init__(self, backup_dir, write_dir=None):
        self.backup_dir = backup_dir
        self.write_dir = write_dir or backup_dir

    def restore(self, model):
        """Loads the backup into `model` (weights and optimizer), if there is one.

        A weights file that cannot be read (`OSError`, e.g. truncated) falls back to the previous one, as
        `keras.callbacks.BackupAndRestore` does.

        Returns:
            The optimizer's iteration count after loading (0 without a backup).
        """
        latest = os.path.join(self.backup_dir, WEIGHTS_FILE)
        previous = os.path.join(self.backup_dir, PREVIOUS_WEIGHTS_FILE)
        if os.path.exists(latest):
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
            try:
                model.load_weights(latest)
            except OSError:
                if not os.path.exists(previous):
                    raise
                model.load_weights(previous)
        return variable_int(model.optimizer.iterations)

    def save(self, model, epoch):
        """Writes the backup after epoch `epoch` (0-based): the new weights, then the metadata.

        The previous weights file is kept as `latest.weights.h5.bkp`.
        """
        os.makedirs(self.write_dir, exist_ok=True)
        final = os.path.join(self.write_dir, WEIGHTS_FILE)
        tmp = os.path.join(self.write_dir, "tmp.weights.h5")
        model.save_weights(tmp, overwrite=True)
        faults.site("backup.write")
        if os.path.exists(final):
            os.replace(final, os.path.join(self.write_dir, PREVIOUS_WEIGHTS_FILE))
        os.replace(tmp, final)
        write_json(os.path.join(self.write_dir, METADATA_FILE),
                   {"epoch": epoch + 1, "batch": 0, "iteration": variable_int(model.optimizer.iterations)})


class AtomicBackupAndRestore(keras.callbacks.Callback):
    """`BackupCheckpointer` as a Keras callback: restores at `on_train_begin`, saves at every epoch's end.

    Unlike `keras.callbacks.BackupAndRestore` it never deletes the backup (not at `on_train_end`, not after
    `TerminateOnNaN`), and a SIGKILL at any moment leaves a consistent one.

    Args:
        backup_dir: where the backup is read from.
        write_dir: where it is written (`backup_dir` by default).
    """

    def __init__(self, backup_dir, write_dir=None):
        super().__init__()
        self.checkpointer = BackupCheckpointer(backup_dir, write_dir)
        self.backup_dir, self.write_dir = backup_dir, self.checkpointer.write_dir

    def on_train_begin(self, logs=None):
        self.checkpointer.restore(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self.checkpointer.save(self.model, epoch)


class BestCheckpoint:
    """`checkpoints/best.keras` and `best.json`: the model of the epoch with the lowest monitored error.

    Args:
        checkpoint_dir: the run's `checkpoints/` directory.
        start: the iteration the run resumes from; a best chosen after it (among epochs run again) is
            forgotten.
    """

    def __init__(self, checkpoint_dir, start=0):
        self.checkpoint_dir = checkpoint_dir
        self.path = os.path.join(checkpoint_dir, "best.json")
        best = {"error": None}
        if os.path.exists(self.path):
            with open(self.path) as f:
                best = json.load(f)
        if (best.get("iteration") or 0) > start:
            best = {"error": None}
        self.best = best

    def update(self, model, error, monitor, iteration, epoch):
        """Saves `model` as the best when `error` (of `monitor`: "val_error" / "test_error") is lower."""
        if self.best["error"] is None or error < self.best["error"]:
            save_model_atomic(model, os.path.join(self.checkpoint_dir, "best.keras"))
            self.best = {"error": error, "iteration": iteration, "epoch": epoch, "monitor": monitor}
            write_json(self.path, self.best)

    @property
    def validation_error(self):
        """The best validation error, or None when the monitor was the test error (or nothing was saved)."""
        return self.best["error"] if self.best.get("monitor") == "val_error" else None

    @property
    def iteration(self):
        return self.best.get("iteration")
