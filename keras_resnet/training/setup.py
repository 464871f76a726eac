"""The first phase of `train()`: everything before resuming, every user error raised before a file is written.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (a run is its recipe, its
network and its data: sections 3.4 and 4.2).

`prepare(config, data)` makes the runtime, resolves the evaluation split, checks the data's splits and
class folders, decides the input normalisation and evaluation transform (`--init_from` published weights)
and opens the input,
resolves the recipe, checks that `model_dir` holds no other run, builds the model (loading `--init_from`
unless a backup will be restored, freezing `--freeze`), and only then writes config.json, dataset.json and
mean_image.npy. A `ConfigError` from any of these steps leaves `model_dir` untouched.

config.json written by earlier versions lacks the fields added since (`DEFAULTED_FIELDS`); an absent field
means its default, so such runs resume.

Example:
    >>> run = prepare(TrainConfig(model="resnet8", data="/data/tiny", model_dir="/tmp/run"))  # needs a run directory  # doctest: +SKIP
    >>> run.run_input.eval_split, run.steps_per_epoch  # needs a run directory  # doctest: +SKIP
    ('test', 7)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

from typing import TYPE_CHECKING

from keras_resnet import run_lock
from keras_resnet.training.checkpoints import WEIGHTS_FILE
from keras_resnet.training.config import DEFAULTED_FIELDS, ConfigError
from keras_resnet.training.data_spec import check_data, resolve_eval_split
from keras_resnet.training.finetune import check_freeze, check_init_file
from keras_resnet.training.inputs import open_input
from keras_resnet.training.model import build_run_model
from keras_resnet.eval_transform import RUN_KEY, EvalTransform
from keras_resnet.normalization import InputNormalization
from keras_resnet.training.init_normalization import eval_transform_of, normalization_of
from keras_resnet.training.run_recipe import default_batch_size, resolve_recipe
from keras_resnet.training.rundir import check_model_dir, read_config, resolved_config, write_run_files
from keras_resnet.training.run_parts import resolve_run
from keras_resnet.training.runtime import make_runtime, prepare_backend

if TYPE_CHECKING:  # the types of `TrainingRun`'s fields, for readers and type checkers only
    import keras

    from keras_resnet.recipes import Recipe
    from keras_resnet.run_log import TensorBoard
    from keras_resnet.training.checkpoints import BackupCheckpointer, BestCheckpoint
    from keras_resnet.training.inputs import RunInput
    from keras_resnet.training.model import BuiltModel
    from keras_resnet.training.run_parts import ResolvedRun
    from keras_resnet.training.runtime import Runtime
    from keras_resnet.training.steppers import JaxStepper, TFStepper


@dataclasses.dataclass
class LoopState:
    """The loop's own state, all it changes as it goes: where this process started (`start`, the backup's
    iteration), the current `iteration`, the `log.csv` rows so far, the wall time of the runs before this one
    (`previous_wall`) and of this one (`train_time`), the last epoch's numbers (`last`), the sums of the epoch
    a mid-epoch backup was written in (`partial`, consumed by that epoch), and the iteration and monotonic
    time of the last backup (`backup_iteration`, `backup_time`: what `--backup_every` counts from)."""

    start: int = 0
    iteration: int = 0
    rows: list = dataclasses.field(default_factory=list)
    previous_wall: float = 0.0
    train_time: float = 0.0
    last: dict = dataclasses.field(default_factory=dict)
    partial: dict | None = None
    backup_iteration: int = 0
    backup_time: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass
class TrainingRun:
    """Everything one `train()` call holds between its phases: what `prepare` resolved (the run's `parts`, the
    runtime, precision, input, recipe, epoch length and the built model), the services `resume` opens (backup,
    callbacks, stepper, best checkpoint, TensorBoard), the loop's `state` (`LoopState`) and the lock of the
    directory it writes (`keras_resnet.run_lock.RunLock`, released when `train()` returns or raises)."""

    parts: ResolvedRun
    runtime: Runtime
    precision: str
    verbose: int
    run_input: RunInput
    recipe: Recipe
    steps_per_epoch: int
    epochs: int
    model: keras.Model
    built: BuiltModel | None = None
    callbacks: keras.callbacks.CallbackList | None = None
    backup: BackupCheckpointer | None = None
    stepper: TFStepper | JaxStepper | None = None
    best: BestCheckpoint | None = None
    tensorboard: TensorBoard | None = None
    state: LoopState = dataclasses.field(default_factory=LoopState)
    lock: run_lock.RunLock | None = None

    @property
    def model_dir(self):
        return self.parts.output.model_dir

    @property
    def chief(self):
        return self.runtime.is_chief

    @property
    def csv_path(self):
        return os.path.join(self.model_dir, "log.csv")


def old_config(model_dir):
    """The config.json already in `model_dir` as a dict ({} when there is none; a `ConfigError` naming it when
    it cannot be read)."""
    path = os.path.join(model_dir, "config.json")
    return read_config(path) if os.path.isfile(path) else {}


def has_backup(model_dir):
    """Whether `model_dir` holds a backup to resume from (it wins over `--init_from`)."""
    return os.path.isfile(os.path.join(model_dir, "backup", WEIGHTS_FILE))


def comparable(resolved, old):
    """`resolved` without the fields an old config.json lacks and that hold their default (`DEFAULTED_FIELDS`)."""
    return {k: v for k, v in resolved.items()
            if not (k in DEFAULTED_FIELDS and k not in old and v == DEFAULTED_FIELDS[k])}


def run_normalization(model, old, resuming):
    """The input normalisation of the run: recorded in its config.json when resuming, else from `--init_from`
    (`model`: the run's `ModelPart`)."""
    if resuming and "input_normalization" in old:
        return InputNormalization.from_dict(old["input_normalization"])
    try:
        return normalization_of(model.init_from, model.name)
    except ValueError as error:
        raise ConfigError(f"--init_from={model.init_from}: {str(error).splitlines()[0]}") from None


def run_eval_transform(model, old, resuming):
    """The evaluation transform of the run: recorded in its config.json when resuming (already at the run's
    crop), else that of the `--init_from` weights (`eval_transform_of`; the run input scales it to the crop)."""
    if resuming and RUN_KEY in old:
        try:
            return EvalTransform.of_run(old)
        except ValueError as error:
            raise ConfigError(f"the run's {error}") from None
    return eval_transform_of(model.init_from, model.name)


def prepare(config, data=None):
    """Runtime, input, recipe, the model and the `model_dir` files: everything before resuming.

    Raises:
        ConfigError: before anything is written (see the module docstring).
    """
    parts = resolve_run(config, data)  # every flag resolved once, --data included
    runtime = make_runtime(parts.runtime.distribution)  # first: multi-worker collectives
    verbose = parts.output.verbose if runtime.is_chief else 0
    precision = prepare_backend(parts.runtime, runtime)
    model_dir = parts.output.model_dir
    old, resuming = old_config(model_dir), has_backup(model_dir)
    if not resuming:
        check_init_file(parts.model.init_from)
    check_freeze(parts.model.freeze, parts.model.spec)
    eval_split = resolve_eval_split(parts.data, data)
    train_images = check_data(parts.data, eval_split) if data is None else None
    normalization = run_normalization(parts.model, old, resuming)
    eval_transform = run_eval_transform(parts.model, old, resuming)
    schedule = parts.schedule
    global_batch = schedule.batch_size or default_batch_size(schedule)
    if train_images is not None and global_batch > train_images:  # before the input computes (and caches) a mean
        raise ConfigError(f"--batch_size={global_batch} is larger than the {train_images} training images.")
    run_input = open_input(parts.data, runtime, global_batch, schedule.eval_batch_size, data, eval_split,
                           normalization, eval_transform)
    recipe = resolve_recipe(schedule, run_input.num_train, run_input.global_batch)
    steps_per_epoch = min(schedule.steps_per_epoch or run_input.num_train // run_input.global_batch,
                          recipe.train_steps)
    epochs = math.ceil(recipe.train_steps / steps_per_epoch)
    resolved = resolved_config(config.to_dict(), run_input, recipe, precision, runtime, steps_per_epoch, epochs)
    resolved.update(eval_split=eval_split,
                    input_normalization=None if normalization is None else normalization.to_dict(),
                    **{RUN_KEY: None if run_input.eval_transform is None else run_input.eval_transform.to_dict()})
    check_model_dir(model_dir, comparable(resolved, old))
    info = run_input.info
    built = build_run_model(parts.model, recipe, info.num_classes, info.image_shape, runtime, load_init=not resuming)
    lock = lock_run(model_dir, runtime)  # before the first write: a second writer is refused here
    if runtime.is_chief:
        write_run_files(model_dir, resolved, info)
    return TrainingRun(parts, runtime, precision, verbose, run_input, recipe, steps_per_epoch, epochs, built.model,
                       built, lock=lock)


def lock_run(model_dir, runtime):
    """Takes the lock of the directory this process writes (`model_dir` for the chief, its own `.workers/<i>`
    for another worker), saying so when it takes over one left by a process that died.

    Raises:
        ConfigError: another live process writes there (it is named); nothing was written.
    """
    directory = model_dir if runtime.is_chief else os.path.join(model_dir, ".workers", str(runtime.worker_index))
    try:
        return run_lock.take(directory, "--model_dir")
    except run_lock.RunLocked as error:
        raise ConfigError(str(error)) from None
