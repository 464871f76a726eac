"""The oracles and the tuner of `python -m tuning.search`: each trial is one `keras_resnet.training.train` run.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (shortcut options A/B/C,
section 3.3; the CIFAR-10 recipe, section 4.2).

- `make_oracle(options)`: keras-tuner's random, Bayesian (Gaussian process; a proposal already tried is
  replaced by random values) or Hyperband oracle, maximising `val_accuracy`, with crash-safe state files
  (`tuning.kt_compat.CrashSafeOracleMixin`: atomic writes, a reload that trusts each `trial.json`).
- `ResNetTuner`: a `keras_tuner.engine.base_tuner.BaseTuner` whose `run_trial` trains the values of
  `tuning.hypermodel.ResNetHyperModel` in `<project_dir>/trial_<id>/model_dir` (the `model_dir` layout of
  docs/CONTRACTS.md) and reports the best validation accuracy, the iterations and the wall time. Hyperband
  trials stop at their rung (`StopAtIteration`) and a promoted trial resumes from a copy of its parent's
  `model_dir`, so successive halving retrains nothing.

A trial that fails for lack of disk space raises `TrialStorageError` (a keras-tuner `FatalError`): the
search stops (`python -m tuning.search` exits 5) and the trial, never marked failed, runs again when the
same command is rerun. A stop request (SIGTERM / SIGINT) raises `TrialStopped` the same way (exit 4): the
trial's training backed up at the iteration reached, and the rerun resumes it there.

Fault sites: `tuner.state_saved` (after the tuner's state file, at the end of each trial) and those of
`tuning.kt_compat`.

Example:
    >>> from tuning.options import SearchOptions
    >>> from tuning.tuner import make_oracle
    >>> oracle = make_oracle(SearchOptions(project_dir="runs/tune20", tuner="bayesian"))
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time

import keras
import keras_tuner

from keras_resnet import faults, stop_request
from keras_resnet.stop_request import Stopped
from tuning import kt_compat
from tuning.distributed import Heartbeat, heartbeat_interval
from tuning.options import OBJECTIVE


class TrialStorageError(keras_tuner.errors.FatalError):
    """A trial stopped by a full disk (or quota, read-only file system): it ends the search instead of
    marking the trial failed, so the same command runs it again once there is space."""


class TrialStopped(keras_tuner.errors.FatalError):
    """The search was asked to stop (SIGTERM / SIGINT, `keras_resnet.stop_request`): the running trial backed
    up where it was and is never marked failed; the same command resumes it from that backup."""


class RandomSearchOracle(kt_compat.CrashSafeOracleMixin, keras_tuner.oracles.RandomSearchOracle):
    """keras-tuner's random search with crash-safe state files."""


class HyperbandOracle(kt_compat.CrashSafeOracleMixin, keras_tuner.oracles.HyperbandOracle):
    """keras-tuner's Hyperband with crash-safe state files."""


class BayesianOptimizationOracle(kt_compat.CrashSafeOracleMixin, keras_tuner.oracles.BayesianOptimizationOracle):
    """keras-tuner's Gaussian-process oracle, with a proposal already tried replaced by random values.

    keras-tuner 1.4.8's `BayesianOptimizationOracle` does not check its proposals against past trials; on a
    small budget it proposed the same corner of the space (learning rate 0.4) three times in a row, spending
    three trials on one configuration (the random oracle does check).
    """

    def populate_space(self, trial_id):
        """The Gaussian process's proposal, or random values when it was tried before."""
        return kt_compat.replace_duplicate_proposal(self, super().populate_space(trial_id))


def make_oracle(options):
    """The oracle of `--tuner` (a `tuning.options.SearchOptions`), maximising `val_accuracy`."""
    objective = keras_tuner.Objective(OBJECTIVE, direction="max")
    common = dict(objective=objective, seed=options.seed + 1, max_retries_per_trial=1,
                  max_consecutive_failed_trials=3)
    if options.tuner == "random":
        return RandomSearchOracle(max_trials=options.max_trials, **common)
    if options.tuner == "bayesian":
        return BayesianOptimizationOracle(max_trials=options.max_trials,
                                          num_initial_points=options.num_initial_points, **common)
    oracle = HyperbandOracle(max_epochs=options.hyperband_max_units, factor=options.hyperband_factor,
                             hyperband_iterations=1, **common)
    oracle.max_trials = options.max_trials  # Oracle.create_trial stops at max_trials: a cap on Hyperband too
    return oracle


class StopAtIteration(keras.callbacks.Callback):
    """Stops `keras_resnet.training.train` at the end of the epoch that reaches `iteration` (a Hyperband rung).

    Example:
        >>> callback = StopAtIteration(300)
    """

    def __init__(self, iteration):
        super().__init__()
        self.iteration = int(iteration)

    def on_epoch_end(self, epoch, logs=None):
        if logs and int(logs.get("iteration", 0)) >= self.iteration:
            self.model.stop_training = True


def copytree_atomic(src, dst):
    """Copies the directory `src` to `dst` through a temp directory and `os.replace`."""
    tmp = f"{dst}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    os.replace(tmp, dst)


def clear_project(project_dir):
    """Removes everything in `project_dir` but its lock file (`--overwrite`: the search starts afresh)."""
    from keras_resnet.run_lock import LOCK_FILE

    for name in os.listdir(project_dir) if os.path.isdir(project_dir) else []:
        path = os.path.join(project_dir, name)
        if name == LOCK_FILE:
            continue
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def diverged_result(model_dir, start):
    """The metrics of a trial whose loss became NaN: a result (too high a learning rate), not a crash."""
    best = os.path.join(model_dir, "checkpoints", "best.json")
    error = None
    if os.path.exists(best):
        with open(best) as f:
            error = json.load(f).get("error")
    return {OBJECTIVE: 0.0 if error is None else 1.0 - float(error), "iterations": -1.0,
            "wall_time_s": time.perf_counter() - start, "diverged": 1.0}


class ResNetTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """Runs each trial with the package's training loop; reports validation accuracy, iterations, time.

    Args:
        options: `tuning.options.SearchOptions`.
        hypermodel: `tuning.hypermodel.ResNetHyperModel`.
        data: `keras_resnet.training.ArrayData` with `validation` (the objective's held-out images).
        role: "local", "chief" or "worker" (`tuning.options.resolve_role`).
        oracle: optional oracle; `make_oracle(options)` by default.

    Example:
        >>> tuner = ResNetTuner(options, hypermodel, data, role="local")  # runs a search  # doctest: +SKIP
        >>> tuner.search(verbose=0)  # runs a search  # doctest: +SKIP
    """

    def __init__(self, options, hypermodel, data, role="local", oracle=None):
        # Set before BaseTuner.__init__, which may reload (and so save) already.
        self.options, self.data, self.role = options, data, role
        self.waiting_for_trial = False
        project_dir = os.path.abspath(options.project_dir)
        overwrite = options.overwrite and role != "worker"
        if overwrite:  # keras-tuner's own overwrite removes the directory, and with it the search's lock file
            clear_project(project_dir)
        elif role != "worker":
            kt_compat.ensure_reload(project_dir, os.environ.get("KERASTUNER_TUNER_ID", "tuner0"))
        super().__init__(oracle=oracle or make_oracle(options), hypermodel=hypermodel,
                         directory=os.path.dirname(project_dir), project_name=os.path.basename(project_dir),
                         overwrite=False)
        if role != "worker":  # a reloaded or rebuilt oracle knows the whole space (idempotent)
            space = self.oracle.get_space()
            hypermodel.declare_hyperparameters(space)
            self.oracle.update_space(space)

    def trial_model_dir(self, trial_id):
        """`<project_dir>/trial_<id>/model_dir`: the trial's training run."""
        return os.path.join(self.project_dir, f"trial_{trial_id}", "model_dir")

    def save(self):
        """`BaseTuner.save` with atomic files (the oracle only where it lives: local or chief)."""
        kt_compat.save_tuner_state(self, save_oracle=self.role != "worker")
        faults.site("tuner.state_saved")

    def pre_create_trial(self):
        request = stop_request.active()
        if request is not None and request.requested:  # asked between two trials: start no new one
            raise TrialStopped(request.line(f"before trial creation ({self.tuner_id})"))
        if self.waiting_for_trial:  # the last request got no trial (Hyperband waits for a rung)
            time.sleep(0.5)
        self.waiting_for_trial = True

    def on_trial_begin(self, trial):
        self.waiting_for_trial = False
        super().on_trial_begin(trial)

    def hyperband_plan(self, trial, model_dir):
        """(steps_per_epoch, callbacks) of a trial; a Hyperband trial stops at its rung and a promoted one
        starts from a copy of its parent's `model_dir`."""
        hp, options = trial.hyperparameters, self.options
        if "tuner/epochs" not in hp.values:
            return options.steps_per_epoch or max(1, options.budget_iterations // 4), []
        unit = options.hyperband_unit()
        units = int(hp.values["tuner/epochs"])
        callbacks = [StopAtIteration(units * unit)] if units < options.hyperband_max_units else []
        parent = hp.values.get("tuner/trial_id")
        if parent and not os.path.exists(model_dir):
            parent_dir = self.trial_model_dir(parent)
            if os.path.isdir(os.path.join(parent_dir, "backup")):
                copytree_atomic(parent_dir, model_dir)
            else:
                print(f"[tuning] trial {trial.trial_id}: the model_dir of its parent trial {parent} is not "
                      "on this machine; training from scratch up to the rung.", flush=True)
        return unit, callbacks

    def run_trial(self, trial, *args, **kwargs):
        """Trains the trial's values with `keras_resnet.training.train`; returns its metrics."""
        from keras_resnet import training

        start = time.perf_counter()
        model_dir = self.trial_model_dir(trial.trial_id)
        os.makedirs(os.path.dirname(model_dir), exist_ok=True)
        with open(os.path.join(os.path.dirname(model_dir), "tuner_id"), "w") as f:
            f.write(self.tuner_id)
        steps_per_epoch, callbacks = self.hyperband_plan(trial, model_dir)
        config = self.hypermodel.train_config(trial.hyperparameters, model_dir, steps_per_epoch=steps_per_epoch,
                                              input="auto", verbose=2 if self.options.verbose else 0)
        keras.backend.clear_session()
        heartbeat = Heartbeat(self.oracle, trial.trial_id, heartbeat_interval(self.options.worker_timeout))
        try:
            with heartbeat if self.role == "worker" else contextlib.nullcontext():
                summary = training.train(config, data=self.data, callbacks=callbacks)
        except Stopped as e:  # not the trial's fault either: backed up, resumed by the same command
            raise TrialStopped(f"stopped trial {trial.trial_id} at iteration {e.iteration} on {e.signal_name}; rerun "
                               "the same command to continue") from e
        except training.NaNLossError as e:
            # A diverged run is a result (this learning rate is too high), not a crash to retry.
            print(f"[tuning] trial {trial.trial_id} diverged: {e}", flush=True)
            return diverged_result(model_dir, start)
        except Exception as e:
            if faults.is_storage_error(e):  # not the trial's fault: stop the search, the trial stays unfinished
                raise TrialStorageError(faults.describe_storage_error(e)) from e
            raise
        accuracy, wall = 1.0 - float(summary["best_validation_error"]), time.perf_counter() - start
        print(f"[tuning] trial {trial.trial_id} ({self.tuner_id}): {OBJECTIVE} {accuracy:.4f} after "
              f"{summary['iterations']} iterations, {wall:.0f} s", flush=True)
        return {OBJECTIVE: accuracy, "iterations": float(summary["iterations"]), "wall_time_s": wall,
                "diverged": 0.0}


def make_tuner(options, hypermodel, data, role=None):
    """A `ResNetTuner` for `options`; `role` from `tuning.options.resolve_role` by default."""
    from tuning.options import resolve_role

    return ResNetTuner(options, hypermodel, data, role=role or resolve_role(options))
