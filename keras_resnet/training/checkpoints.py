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

Crash and disk safety: every file is written under a temporary name and renamed into place; a failed
write (a full disk: `keras_resnet.faults.StorageError`, naming the file) removes its temporary file and
leaves the previous file intact. The backup checks the free space first (h5py cannot close a file that
ran out of space cleanly). The backup keeps the previous weights as a hard link (`.bkp`) before the
new ones are renamed in, so `latest.weights.h5` exists at every moment. An unreadable newest backup
(truncated, garbage, another model's) is set aside as `latest.weights.h5.corrupt` and the run resumes,
loudly, from the previous one; when neither can be read the error names both (`ConfigError`: nothing is
replaced). An unreadable `best.json` is named too.

Fault sites (`keras_resnet.faults`): "checkpoint.write" (a .keras file written under its temporary name,
not yet renamed), "backup.write" (the new weights written, not yet renamed; the old backup intact),
"backup.rotate" (the previous weights kept as `.bkp`, the new ones not yet renamed in).

Example:
    >>> backup = BackupCheckpointer("/tmp/run/backup")  # needs a run directory  # doctest: +SKIP
    >>> start = backup.restore(model)  # the optimizer's iteration count (0 without a backup)  # doctest: +SKIP
    >>> backup.save(model, epoch=0)  # needs a run directory  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile

import numpy as np

import keras

from keras_resnet import atomic, compat, faults
from keras_resnet.run_log import write_json
from keras_resnet.training.config import ConfigError
from keras_resnet.training.model import batch_norm_layers

WEIGHTS_FILE = "latest.weights.h5"
PREVIOUS_WEIGHTS_FILE = "latest.weights.h5.bkp"
METADATA_FILE = "training_metadata.json"
CORRUPT_SUFFIX = ".corrupt"


def variable_int(variable):
    """int() of a scalar variable, also a `tf.distribute` mirrored one."""
    return int(np.asarray(keras.ops.convert_to_numpy(variable)))


def save_model_atomic(model, path):
    """Saves the whole `model` (.keras) to `path` through a temporary file renamed into place.

    Synchronised BatchNormalization (`--sync_batch_norm`) is saved as plain BatchNormalization, which every
    backend can load. A failed save (e.g. a full disk) removes the temporary file and leaves `path` as it
    was; a storage error is raised as `keras_resnet.faults.StorageError` naming `path`.
    """
    tmp = atomic.temporary_name(path, keep_suffix=True)
    synchronized = [layer for layer in batch_norm_layers(model) if layer.synchronized]
    with atomic.replacing(path, tmp, moment="checkpoint.write"):
        for layer in synchronized:  # `synchronized=True` cannot be loaded on other backends
            layer.synchronized = False
        try:
            model.save(tmp)
        finally:
            for layer in synchronized:
                layer.synchronized = True
    compat.keep_saving_skipsets()  # Keras 3.15 would otherwise keep 70 KiB per save (keras_resnet.compat)


def keep_previous(final, previous):
    """Makes `previous` a copy of `final` (a hard link; a rename where links are not supported)."""
    link = atomic.temporary_name(previous)
    atomic.discard(link)
    try:
        os.link(final, link)
    except OSError:  # no hard links on this file system: `final` is missing until the new one is renamed in
        os.replace(final, previous)
        return
    os.replace(link, previous)


def load_weights_file(model, path):
    """`model.load_weights(path)`, also for a name Keras refuses by its suffix (the `.bkp` backup): that one
    is read through a link named `*.weights.h5` in a temporary directory (the file itself is untouched)."""
    if path.endswith(".weights.h5"):
        model.load_weights(path)
        return
    with tempfile.TemporaryDirectory() as directory:
        alias = os.path.join(directory, "previous.weights.h5")
        try:
            os.symlink(os.path.abspath(path), alias)
        except OSError:  # no symbolic links here: a copy
            shutil.copyfile(path, alias)
        model.load_weights(alias)


def backup_size(model, final):
    """Bytes a backup of `model` takes: the size of the previous one at `final`, else an upper estimate."""
    if os.path.exists(final):
        return os.path.getsize(final)
    variables = list(model.weights) + list(model.optimizer.variables if model.optimizer is not None else [])
    data = sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in variables)
    return int(1.2 * data) + (128 << 10)


def check_free_space(path, needed):
    """Raises `keras_resnet.faults.StorageError` (ENOSPC) naming `path` when its file system has less than
    `needed` bytes (plus 64 KiB) free.

    The backup is written by h5py, which on a disk that fills up in the middle of a write cannot close
    its file cleanly (and can crash the process at exit): checking first keeps that from happening.
    """
    stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    if stat.f_bavail * stat.f_frsize < needed + (64 << 10):
        raise faults.StorageError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def first_line(error):
    """`Type: first line of the message` of an exception, for one-line reports."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


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

        A newest weights file that cannot be read (truncated, garbage, another model's) is reported on
        stderr, set aside as `latest.weights.h5.corrupt` (by the writer of `backup_dir` only) and the
        previous one (`.bkp`) is loaded instead; a missing newest file (a kill in the middle of the rotation
        on a file system without hard links) falls back to it too.

        Returns:
            The optimizer's iteration count after loading (0 without a backup).

        Raises:
            ConfigError: no backup file can be read (each is named with the reason; nothing is changed).
        """
        latest = os.path.join(self.backup_dir, WEIGHTS_FILE)
        previous = os.path.join(self.backup_dir, PREVIOUS_WEIGHTS_FILE)
        candidates = [path for path in (latest, previous) if os.path.exists(path)]
        if candidates and model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        failures = []
        for path in candidates:
            try:
                load_weights_file(model, path)
            except Exception as error:  # noqa: BLE001 - any unreadable file is reported below
                failures.append(f"{path} ({first_line(error)})")
                continue
            if path != latest:
                self.report_fallback(latest, previous, failures, variable_int(model.optimizer.iterations))
            return variable_int(model.optimizer.iterations)
        if failures:
            raise ConfigError(f"the backup in {self.backup_dir} cannot be read: {'; '.join(failures)}. Restore it, "
                              "or move it away to train this run from the start (nothing was changed).")
        return variable_int(model.optimizer.iterations)

    def report_fallback(self, latest, previous, failures, iteration):
        """Says loudly (stderr) that the run resumes from the previous backup; sets the unreadable one aside."""
        if failures and self.write_dir == self.backup_dir:
            os.replace(latest, latest + CORRUPT_SUFFIX)  # the next save must not rotate it over the good `.bkp`
            kept = f" (kept as {latest + CORRUPT_SUFFIX})"
        else:
            kept = ""
        reason = f"{failures[0]}{kept}" if failures else f"{latest} is missing"
        print(f"warning: the newest backup cannot be used: {reason}; resuming from the previous backup {previous} "
              f"(iteration {iteration}).", file=sys.stderr, flush=True)

    def save(self, model, epoch, partial=None):
        """Writes the backup: the new weights, then the metadata.

        Args:
            model: the model (its optimizer's iteration count is the backup's iteration).
            epoch: the epoch (0-based) the backup is written in.
            partial: None for a backup at the end of epoch `epoch`; for one in its middle (a stop request,
                `--backup_every`), the epoch's running sums so far (a JSON-ready dict, `EpochTotals.partial`),
                recorded with the iteration they belong to so that the resumed epoch reports what an
                uninterrupted one does.

        The previous weights file is kept as `latest.weights.h5.bkp`. A failed write (e.g. a full disk)
        removes the temporary file and leaves the backup as it was (`keras_resnet.faults.StorageError`).
        """
        os.makedirs(self.write_dir, exist_ok=True)
        final = os.path.join(self.write_dir, WEIGHTS_FILE)
        check_free_space(final, backup_size(model, final))
        with atomic.replacing(final, atomic.temporary_name(final, keep_suffix=True)) as tmp:
            model.save_weights(tmp, overwrite=True)
            compat.keep_saving_skipsets()
            faults.site("backup.write")
            if os.path.exists(final):
                keep_previous(final, os.path.join(self.write_dir, PREVIOUS_WEIGHTS_FILE))
            faults.site("backup.rotate")
        iteration = variable_int(model.optimizer.iterations)
        metadata = {"epoch": epoch + 1, "batch": 0, "iteration": iteration}
        if partial is not None:
            metadata.update(epoch=epoch, batch=int(partial["batches"]), partial_epoch=partial)
        write_json(os.path.join(self.write_dir, METADATA_FILE), metadata)

    def partial_epoch(self, iteration):
        """The running sums of the epoch a mid-epoch backup was written in, when the metadata beside the
        restored weights belongs to them (its `iteration` is theirs), else None: an epoch-end backup, or a
        kill between the weights and the metadata (the epoch then reports the iterations run after the
        resume only)."""
        try:
            with open(os.path.join(self.backup_dir, METADATA_FILE)) as f:
                metadata = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(metadata, dict) or metadata.get("iteration") != iteration:
            return None
        return metadata.get("partial_epoch")


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
            try:
                with open(self.path) as f:
                    best = json.load(f)
            except ValueError as error:
                raise ConfigError(f"{self.path} is corrupted ({error}); restore it, or delete it and "
                                  "checkpoints/best.keras to choose the best again from here on.") from None
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
