"""`train(config)`: one training job, in phases: prepare, resume, epochs (dispatch, read, end), finish.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the recipes of
`keras_resnet.recipes`: iterations, learning-rate boundaries, evaluation of test error against iterations).

The loop is a custom distributed loop (compiled steps of `keras_resnet.training.steppers`: `strategy.run` +
all-reduce on TensorFlow, a jitted stateless step on JAX) rather than `model.fit`, because Keras 3.15's
`fit` fails under `MultiWorkerMirroredStrategy` (tensorflow/tensorflow#72388, keras-team/keras#20329) and
because the data of epoch `e` must be a function of `(seed, e)` only, so that a run killed and resumed at
an epoch boundary reaches the same weights as an uninterrupted one.

Per epoch: the steps are dispatched `steps_per_call` iterations per compiled call, and the host reads the
losses every `sync_every` iterations (progress bar, NaN check naming the iteration where it appeared,
batch callbacks, TensorBoard); at the epoch's end the model is evaluated, `checkpoints/` and `log.csv`
written, then the backup (never ahead of `log.csv`).

Stop on request (`keras_resnet.stop_request`): during `train()`, SIGTERM and SIGINT no longer end the
process; at the next read of the host the loop writes the backup at the iteration reached (mid-epoch, with
the epoch's running sums, so the resumed epoch's `log.csv` row is the uninterrupted one's) and raises
`Stopped` (the trainers exit 4). `--backup_every` writes the same mid-epoch backup on a clock. With several
workers, every read is also a tiny all-reduce of "has anyone been asked to stop?", so all workers stop at
the same iteration. The run directory is locked (`keras_resnet.run_lock`) from its first write to the end.

Fault sites (`keras_resnet.faults`): "train.epoch_middle" (the host has read the middle iteration of an
epoch), "csv.write" (the epoch's checkpoints written, its `log.csv` row not yet), "train.epoch_end" (the
epoch's backup written, its callbacks not yet run), "train.summary" (training done, summary.json not yet
written); "checkpoint.write" and "backup.write" in `keras_resnet.training.checkpoints`.

Example:
    >>> from keras_resnet.training import TrainConfig, train
    >>> config = TrainConfig(model="resnet8", data="/data/tiny", model_dir="/tmp/run", batch_size=32,
    ...                      train_steps=40)  # trains a network (minutes)  # doctest: +SKIP
    >>> train(config)["test_error"]  # trains a network (minutes)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

import keras

from keras_resnet import faults, run_log
from keras_resnet.stop_request import StopRequest
from keras_resnet.run_log import read_csv, rewrite_csv, row_numbers, write_json
from keras_resnet.training import scoring
from keras_resnet.training.checkpoints import BackupCheckpointer, BestCheckpoint, save_model_atomic
from keras_resnet.training.config import NaNLossError
from keras_resnet.training.data_spec import undecodable_image
from keras_resnet.training.progress import epoch_line, evaluation_line, log, progress, progress_bar, start_lines
from keras_resnet.training.rundir import export_run
from keras_resnet.training.runtime import logger
from keras_resnet.training.setup import TrainingRun, prepare
from keras_resnet.training.steppers import make_stepper


def resume(run, callbacks=None):
    """Restores the backup (if any), cuts the history back to it and creates the stepper."""
    model_dir, backend, verbose = run.model_dir, run.runtime.backend, run.verbose
    tf_ok = backend == "tensorflow"
    write_dir = os.path.join(model_dir, "backup") if run.chief else os.path.join(
        model_dir, ".workers", str(run.runtime.worker_index), "backup")
    run.backup = BackupCheckpointer(os.path.join(model_dir, "backup"), write_dir)
    run.callbacks = keras.callbacks.CallbackList(callbacks or [], model=run.model)
    run.state.start = run.state.iteration = run.state.backup_iteration = run.backup.restore(run.model)
    run.state.partial = run.backup.partial_epoch(run.state.start) if run.state.start % run.steps_per_epoch else None
    # What the killed process wrote after its last backup is dropped: one continuous CSV and TensorBoard history.
    if run.chief:
        run.state.rows = run_log.truncate_history(model_dir, run.state.start, tensorboard=tf_ok)
    else:
        run.state.rows = [r for r in read_csv(run.csv_path) if int(r["iteration"]) <= run.state.start]
    run.state.previous_wall = float(run.state.rows[-1]["wall_time_s"]) if run.state.rows else 0.0
    run.tensorboard = run_log.TensorBoard(os.path.join(model_dir, "logs"), enabled=tf_ok and run.chief)
    if not tf_ok:
        logger.warning("TensorBoard logs skipped: the %s backend runs without TensorFlow.", backend)
        log(verbose, f"[keras_resnet] {backend} backend: TensorBoard, tf.data and tf.distribute skipped; "
                     "in-memory input.")
    run.stepper = make_stepper(run.model, run.runtime, run.run_input)
    run_input = run.run_input
    log(verbose, f"[keras_resnet] input: {run_input.path.describe()}.")
    for line in start_lines(run):
        log(verbose, line)
    run.best = BestCheckpoint(os.path.join(model_dir, "checkpoints"), run.state.start)
    name, recipe = run.parts.model.name, run.recipe
    if run.state.start:
        done, into = divmod(run.state.start, run.steps_per_epoch)
        if finished(run):
            where = "finished: nothing left to train"
        else:
            where = f"epoch {done + 1}, {into} of its {run.steps_per_epoch} iterations done" if into else f"epoch {done}"
        log(verbose, f"Resuming {name} from {os.path.join(model_dir, 'backup')} at iteration {run.state.start} "
                     f"({where}).")
    log(verbose, f"{name}: {recipe.train_steps} iterations, global batch {run.run_input.global_batch} on "
                 f"{run.runtime.replicas} replica(s) ({run.runtime.distribution}), {run.precision}, "
                 f"lr {recipe.learning_rate:g} ({recipe.schedule}, warm-up {recipe.warmup}), "
                 f"{run.run_input.num_train} training images, {run.steps_per_epoch} iterations per epoch.")
    return run


def evaluate(run, role):
    """`EvalResult` of the stepper's current model on `role` ("validation": held out; "test": the evaluation
    split), centre crop or 10 crops (`--ten_crop`)."""
    return scoring.evaluate(run.stepper.predict, run.run_input.data_input.eval_batches(role),
                               run.run_input.info.num_classes)


@dataclasses.dataclass
class EpochTotals:
    """Running sums of one epoch, as the host reads the losses.

    `steps` is the number of iterations this process runs in the epoch and `done` how many it has read;
    `batches` counts every iteration the sums hold, those of a mid-epoch backup the run resumed from
    included (`from_partial`), so the epoch's `log.csv` row is what an uninterrupted epoch writes.
    """

    epoch: int
    steps: int
    bar: object
    loss_sum: float = 0.0
    ce_sum: float = 0.0
    reg_sum: float = 0.0
    correct_sum: float = 0.0
    seen: int = 0
    batches: int = 0
    done: int = 0
    t0: float = dataclasses.field(default_factory=time.perf_counter)

    SUMS = ("loss_sum", "ce_sum", "reg_sum", "correct_sum", "seen", "batches")

    def partial(self):
        """The sums so far as a JSON-ready dict, for a mid-epoch backup (with the epoch's elapsed seconds)."""
        return {**{name: getattr(self, name) for name in self.SUMS}, "elapsed_s": time.perf_counter() - self.t0}

    def restore(self, partial):
        """Continues the sums of `partial` (`partial()` of the process that wrote the backup)."""
        for name in self.SUMS:
            setattr(self, name, type(getattr(self, name))(partial[name]))
        self.t0 -= float(partial.get("elapsed_s", 0.0))
        return self


def train_epoch(run, epoch, schedule, stop=None):
    """Dispatches the iterations of epoch `epoch`, `steps_per_call` per compiled call, reading the losses
    every `sync_every` iterations; returns its `EpochTotals`.

    After each read it writes a mid-epoch backup when `--backup_every` says one is due, and it returns early
    (`done < steps`) when `stop` (a `keras_resnet.stop_request.StopRequest`) was requested: the iterations
    already dispatched are read first.
    """
    host = run.parts.runtime  # how often the host dispatches and reads
    skip = run.state.start % run.steps_per_epoch if epoch == run.state.start // run.steps_per_epoch else 0
    steps = min(run.steps_per_epoch, run.recipe.train_steps - epoch * run.steps_per_epoch) - skip
    run.stepper.start_epoch(run.run_input.data_input, epoch, skip, steps)
    run.callbacks.on_epoch_begin(epoch)
    log(run.verbose, f"Epoch {epoch + 1}/{run.epochs}")
    totals = EpochTotals(epoch, steps, progress_bar(steps, run.verbose))
    if skip and run.state.partial is not None:
        totals.restore(run.state.partial)
    run.state.partial = None
    pending, dispatched, batch = [], 0, 0  # calls dispatched whose losses the host has not read yet
    while batch < steps:
        k = min(host.steps_per_call, steps - batch)
        for b in range(batch, batch + k):
            run.callbacks.on_train_batch_begin(b)
        pending.append((batch, *run.stepper.run(k)))
        batch, dispatched = batch + k, dispatched + k
        if dispatched < host.sync_every and batch < steps and not (stop and stop.requested):
            continue
        # One read of the host per `sync_every` iterations: the device runs ahead in between.
        read_window(run, pending, totals, schedule)
        pending, dispatched, totals.done = [], 0, batch
        if batch < steps and run.runtime.any_worker(stop is not None and stop.requested is not None):
            break
        if batch < steps and backup_due(run):
            save_mid_epoch(run, totals)
    return totals


def backup_due(run):
    """Whether `--backup_every` asks for a mid-epoch backup now (iterations or time since the last backup);
    decided by the chief for every worker."""
    host, state = run.parts.runtime, run.state
    due = ((host.backup_iterations is not None and state.iteration - state.backup_iteration >= host.backup_iterations)
           or (host.backup_seconds is not None and time.monotonic() - state.backup_time >= host.backup_seconds))
    return run.runtime.any_worker(due and run.chief) if run.runtime.num_workers > 1 else due


def save_mid_epoch(run, totals):
    """Writes the backup at the current iteration, in the middle of `totals.epoch`, with the epoch's sums (the
    same atomic writer as at an epoch's end); TensorBoard is flushed up to it."""
    run.stepper.sync()
    run.tensorboard.flush()
    run.backup.save(run.model, totals.epoch, partial=totals.partial())
    run.state.backup_iteration, run.state.backup_time = run.state.iteration, time.monotonic()


def read_window(run, pending, totals, schedule):
    """Reads the losses of the dispatched calls `pending` and reports each iteration in order.

    Raises:
        NaNLossError: at the first iteration whose loss is not finite, naming it.
    """
    values = []
    for first, ces, regs, corrects in pending:
        ces, regs, corrects = (np.atleast_1d(keras.ops.convert_to_numpy(v)).astype(np.float32)
                               for v in (ces, regs, corrects))
        # The training loss is the float32 sum the step minimised (cross-entropy + L2 term), as the device adds.
        values += [(first + j, float(ce + reg), float(ce), float(reg), float(correct))
                   for j, (ce, reg, correct) in enumerate(zip(ces, regs, corrects))]
    global_batch, middle = run.run_input.global_batch, (totals.steps + 1) // 2
    images_per_second = (totals.seen + len(values) * global_batch) / max(time.perf_counter() - totals.t0, 1e-9)
    lrs = keras.ops.convert_to_numpy(schedule(np.arange(run.state.iteration, run.state.iteration + len(values))))
    for (b, loss, ce, reg, correct), lr in zip(values, np.atleast_1d(lrs).astype(np.float64).tolist()):
        run.state.iteration += 1
        if not math.isfinite(loss):
            run.tensorboard.flush()
            raise NaNLossError(
                f"NaN/inf training loss ({loss}) at iteration {run.state.iteration} (epoch {totals.epoch + 1}, learning "
                f"rate {lr:g}): stopping. The last good checkpoint "
                f"{os.path.join(run.model_dir, 'checkpoints', 'latest.keras')} and the backup in "
                f"{os.path.join(run.model_dir, 'backup')} (iteration {run.state.backup_iteration}) are kept.")
        totals.loss_sum, totals.correct_sum = totals.loss_sum + loss, totals.correct_sum + correct
        totals.ce_sum, totals.reg_sum = totals.ce_sum + ce, totals.reg_sum + reg
        totals.seen, totals.batches = totals.seen + global_batch, totals.batches + 1
        progress(totals.bar, b + 1, run.state.iteration, run.recipe.train_steps, lr,
                 {"ce": totals.ce_sum / totals.batches, "l2": totals.reg_sum / totals.batches,
                  "error": 1 - totals.correct_sum / totals.seen})
        run.callbacks.on_train_batch_end(b, {"loss": loss, "cross_entropy": ce, "regularization": reg,
                                             "learning_rate": lr, "iteration": run.state.iteration})
        # The epoch's last iteration gets the epoch's scalars (same tags) in `end_epoch`: each step once.
        if run.state.iteration % run.parts.runtime.log_every == 0 and b + 1 != totals.steps:
            run.tensorboard.scalars("train", run.state.iteration, {"loss": loss, "cross_entropy": ce, "regularization": reg,
                                                             "learning_rate": lr,
                                                             "images_per_second": images_per_second})
        if b + 1 == middle:
            faults.site("train.epoch_middle")


def end_epoch(run, totals, schedule):
    """Evaluates, writes the checkpoints, `log.csv`, TensorBoard and the backup of the finished epoch."""
    epoch, steps, seen = totals.epoch, totals.batches, totals.seen
    epoch_time = time.perf_counter() - totals.t0
    run.state.train_time += epoch_time  # a resumed epoch's time includes its part before the stop
    run.stepper.sync()
    epoch_loss, epoch_error = totals.loss_sum / max(steps, 1), 1 - totals.correct_sum / max(seen, 1)
    if not math.isfinite(epoch_loss):  # pragma: no cover - caught per step
        raise NaNLossError(f"NaN training loss in epoch {epoch + 1}.")
    data_input = run.run_input.data_input
    val = evaluate(run, "validation") if data_input.has_validation else None
    test = evaluate(run, "test")
    ips = seen / max(epoch_time, 1e-9)
    lr = float(keras.ops.convert_to_numpy(schedule(run.state.iteration)))
    run.state.last = {"epoch": epoch, "iteration": run.state.iteration, "learning_rate": lr, "loss": epoch_loss,
                "cross_entropy": totals.ce_sum / max(steps, 1), "regularization": totals.reg_sum / max(steps, 1),
                "accuracy": 1 - epoch_error, "error": epoch_error, "val_loss": val.loss if val else None,
                "val_error": val.error if val else None, "test_loss": test.loss, "test_error": test.error,
                "images_per_second": ips, "wall_time_s": run.state.previous_wall + run.state.train_time}
    if test.top5_error is not None:  # a column only where top-5 means something (more than 5 classes)
        run.state.last.update(val_top5_error=val.top5_error if val else None, test_top5_error=test.top5_error)
    if run.chief:
        write_epoch_files(run)
    run.backup.save(run.model, epoch)  # after the checkpoints: a backup never runs ahead of log.csv
    run.state.backup_iteration, run.state.backup_time = run.state.iteration, time.monotonic()
    faults.site("train.epoch_end")
    run.callbacks.on_epoch_end(epoch, dict(run.state.last))
    if run.verbose:
        print(epoch_line(run.state.last, run.run_input.eval_split), flush=True)


def write_epoch_files(run):
    """The chief's files of an epoch: latest/best checkpoints, the `log.csv` row, TensorBoard scalars."""
    last = run.state.last
    monitor = last["val_error"] if last["val_error"] is not None else last["test_error"]
    save_model_atomic(run.model, os.path.join(run.model_dir, "checkpoints", "latest.keras"))
    run.best.update(run.model, monitor, "val_error" if last["val_error"] is not None else "test_error",
                    last["iteration"], last["epoch"])
    run.state.rows.append({k: ("" if v is None else v) for k, v in last.items()})
    faults.site("csv.write")
    rewrite_csv(run.csv_path, run.state.rows)
    tensorboard, iteration = run.tensorboard, last["iteration"]
    tensorboard.scalars("train", iteration, {"loss": last["loss"], "cross_entropy": last["cross_entropy"],
                                             "regularization": last["regularization"], "accuracy": last["accuracy"],
                                             "error": last["error"], "learning_rate": last["learning_rate"],
                                             "images_per_second": last["images_per_second"]})
    if last["val_error"] is not None:
        tensorboard.scalars("validation", iteration, {"loss": last["val_loss"], "error": last["val_error"],
                                                      "accuracy": 1 - last["val_error"],
                                                      "top5_error": last.get("val_top5_error")})
    tensorboard.scalars("test", iteration, {"loss": last["test_loss"], "error": last["test_error"],
                                            "accuracy": 1 - last["test_error"],
                                            "top5_error": last.get("test_top5_error")})
    tensorboard.flush()


def finished(run):
    """Whether the backup restored is at the recipe's last iteration (a rerun of a finished run trains nothing)."""
    return run.state.start >= run.recipe.train_steps


def final_evaluation(run):
    """The numbers of the last epoch: this process's, else the logged ones of the epoch the backup restored
    (a rerun of a finished run), else the restored model's test numbers."""
    if run.state.last:
        return run.state.last
    if run.state.rows and int(run.state.rows[-1]["iteration"]) == run.state.iteration:
        return row_numbers(run.state.rows[-1])
    run.stepper.sync()  # already finished before this start: evaluate the restored model
    test = evaluate(run, "test")
    return {"test_loss": test.loss, "test_error": test.error, "test_top5_error": test.top5_error}


def finish(run):
    """Evaluates a run that had nothing left to train, writes summary.json and curves.png, exports."""
    name, output, model_dir, iteration = run.parts.model.name, run.parts.output, run.model_dir, run.state.iteration
    last = final_evaluation(run)
    all_rows = read_csv(run.csv_path) if run.chief else run.state.rows
    wall = run.state.previous_wall + run.state.train_time if run.state.train_time else (
        float(all_rows[-1]["wall_time_s"]) if all_rows else 0.0)
    ips_all = (iteration * run.run_input.global_batch / wall) if wall else 0.0
    info = run.run_input.info
    summary = {"model": name, "test_error": last["test_error"], "test_accuracy": 1 - last["test_error"],
               "train_error": last.get("error"), "train_loss": last.get("loss"),
               "train_cross_entropy": last.get("cross_entropy"), "train_regularization": last.get("regularization"),
               "test_loss": last["test_loss"], "test_top5_error": last.get("test_top5_error"),
               "val_error": last.get("val_error"), "val_top5_error": last.get("val_top5_error"),
               "best_validation_error": run.best.validation_error,
               "best_iteration": run.best.iteration, "iterations": iteration, "epochs": run.epochs,
               "wall_time_s": wall, "images_per_second": ips_all, "precision": run.precision,
               "replicas": run.runtime.replicas, "backend": run.runtime.backend,
               "eval_split": run.run_input.eval_split, "eval_crops": 10 if run.parts.data.ten_crop else 1,
               "image_shape": list(info.image_shape), "skipped_images": run.run_input.data_input.skipped()}
    faults.site("train.summary")
    if run.chief:
        write_json(os.path.join(model_dir, "summary.json"), summary)
        run_log.plot_curves(run.csv_path, os.path.join(model_dir, "curves.png"), title=name)
        if output.export:
            export_run(model_dir, output.export_dir, run.verbose)
    log(run.verbose or (output.verbose and run.chief), evaluation_line(summary, model_dir))
    return summary


def train(config, data=None, callbacks=None):
    """Trains `config.model` following its recipe and writes everything into `config.model_dir`.

    Args:
        config: a `TrainConfig`.
        data: optional `ArrayData` to train on in memory instead of loading `config.data`.
        callbacks: optional list of `keras.callbacks.Callback`, called at train/epoch/batch boundaries.

    Returns:
        The summary dict also written to `summary.json`.

    Raises:
        ConfigError: bad configuration (names the flag), including a `model_dir` holding another run, and an
            undecodable image met while streaming without `--skip_corrupt` (names the file).
        NaNLossError: the loss became NaN or infinite; the last good checkpoint and backup are kept.
        keras_resnet.stop_request.Stopped: SIGTERM or SIGINT arrived (a scheduler's preemption, Ctrl-C, a
            notebook's interrupt): the iterations dispatched were finished and backed up, mid-epoch if need
            be; calling `train` again with the same config continues exactly there.
    """
    with StopRequest() as stop:  # SIGTERM / SIGINT: stop at the next read of the host, backed up (exit 4)
        run = prepare(config, data)
        stop.rearm()  # over the SIGTERM handler a multi-worker strategy's coordination service installs
        try:
            return train_prepared(resume(run, callbacks), stop)
        finally:
            if run.stepper is not None:
                run.stepper.close()
            run.lock.release()


def train_prepared(run, stop):
    """The epochs of a resumed `run` and its end (`finish`); raises `Stopped` once backed up on a stop request."""
    schedule = run.recipe.learning_rate_schedule()
    run.callbacks.on_train_begin()
    try:
        for epoch in range(run.state.start // run.steps_per_epoch, 0 if finished(run) else run.epochs):
            if run.runtime.any_worker(stop.requested is not None):
                raise stop.stopped(run.state.iteration)  # the backup is at this iteration already
            totals = train_epoch(run, epoch, schedule, stop)
            if totals.done < totals.steps:
                save_mid_epoch(run, totals)
                raise stop.stopped(run.state.iteration)
            end_epoch(run, totals, schedule)
            if run.model.stop_training:
                break
    except Exception as error:  # an undecodable image in a streamed split: one line naming it (exit 2)
        problem = undecodable_image(run.parts.data, error)
        if problem is None:
            raise
        try:
            raise problem from None
        finally:  # this frame would hold the error whose traceback holds this frame: no cycle to collect later
            del problem
    run.callbacks.on_train_end(dict(run.state.last))
    return finish(run)
