"""The one place that touches keras-tuner's private names, each use with the reason it is needed.

keras-tuner (tested: `TESTED_RANGE`, pinned in pyproject.toml) has no public API for what the search
needs beyond a plain local `Tuner.search()`: an oracle whose state files survive a SIGKILL, a chief that
notices a dead worker, a worker that gives up on a gone chief. Everything here works around one of those
gaps; `tests/test_kt_compat.py` fails with a message naming the moved name when a keras-tuner release
changes one of them (`missing_private_names()`).

Crash consistency (issue 16): keras-tuner writes `trial_<id>/trial.json`, `oracle.json` and the tuner's
own `<tuner_id>.json` in place, and `Oracle.end_trial` writes `trial.json` ("COMPLETED") *before* the
oracle state that says the trial is no longer running; the tuner file appears only after the first trial.
A kill in between made a rerun start over, or run the finished trial again. `CrashSafeOracleMixin` writes
every file atomically (temp + fsync + `os.replace`) and reloads trusting `trial.json`; `ensure_reload`
makes `BaseTuner` reload whenever a project already has trials.

Fault sites (`keras_resnet.faults`): `tuner.trial_write`, `tuner.oracle_write`, `tuner.state_write` (temp
file written, before its `os.replace`), `tuner.trial_completed` (trial.json says COMPLETED, oracle.json not
yet saved), `tuner.oracle_saved` (after each oracle save).

Example:
    >>> from tuning import kt_compat
    >>> kt_compat.missing_private_names()  # runs a search  # doctest: +SKIP
    []
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import threading

from keras_resnet import atomic, faults

TESTED_RANGE = ">=1.4.7,<1.5"
FINISHED = ("COMPLETED", "FAILED")

# (module, attribute or None, what uses it): names keras-tuner may move; checked by missing_private_names().
PRIVATE_MODULES = (
    ("keras_tuner.src.protos", "get_service_grpc", "the chief's gRPC server (add_oracle_servicer)"),
    ("keras_tuner.src.protos", "get_service", "the gRPC request messages (tests' fake worker)"),
    ("keras_tuner.src.distribute.oracle_chief", "OracleServicer", "the chief's servicer (oracle_servicer)"),
    ("keras_tuner.src.distribute.oracle_client", "TIMEOUT", "a worker's RPC timeout (set_client_timeout)"),
)
# Oracle attributes read or overridden here (on an instance: some are set in Oracle.__init__).
PRIVATE_ORACLE_ATTRIBUTES = (
    ("_retry_queue", "requeue_lost_trial and the reload (trials to run again)"),
    ("_run_times", "the reload (attempts per trial)"),
    ("_id_to_hash", "the reload (values already tried)"),
    ("_duplicate", "replace_duplicate_proposal (Bayesian proposals already tried)"),
    ("_random_values", "replace_duplicate_proposal"),
    ("_record_values", "the reload (values already tried)"),
    ("_save_trial", "CrashSafeOracleMixin (atomic trial.json, the tuner.trial_completed site)"),
    ("_get_trial_dir", "CrashSafeOracleMixin"),
    ("_get_oracle_fname", "CrashSafeOracleMixin (oracle.json)"),
    ("_project_dir", "CrashSafeOracleMixin.reload"),
)


class CorruptStateError(ValueError):
    """A search state file that cannot be read; the message names the file and what to do."""


def write_json_atomic(path, obj, site):
    """Writes `obj` as JSON to `path` through a temp file, fsync and `os.replace` (never a partial file).

    `faults.site(site)` marks the moment between the complete temp file and the replace; a failure
    (e.g. ENOSPC) removes the temp file and leaves the previous `path` intact (a storage error is raised
    as `keras_resnet.faults.StorageError` naming `path`).
    """
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"  # the chief saves from gRPC threads
    with atomic.replacing(path, tmp, moment=site):
        with open(tmp, "w") as f:
            f.write(json.dumps(obj))
            f.flush()
            os.fsync(f.fileno())


class CrashSafeOracleMixin:
    """Mixin before a `keras_tuner.Oracle` class: atomic state files and a reload that trusts trial.json.

    Example:
        >>> import keras_tuner
        >>> class Oracle(CrashSafeOracleMixin, keras_tuner.oracles.RandomSearchOracle):
        ...     pass
    """

    def save(self):
        """`Oracle.save`, atomically (keras-tuner writes oracle.json in place: a kill left it truncated)."""
        # private: Oracle._get_oracle_fname is keras-tuner's own path of oracle.json (the reload reads it).
        write_json_atomic(self._get_oracle_fname(), self.get_state(), site="tuner.oracle_write")
        faults.site("tuner.oracle_saved")

    def _save_trial(self, trial):
        # private: Oracle._save_trial is where keras-tuner writes trial_<id>/trial.json (create, update and
        # end of a trial). Overriding it is the only way to make that write atomic and to mark the moment
        # between "trial.json says COMPLETED" and the oracle's own save, which end_trial() does next.
        path = os.path.join(self._get_trial_dir(trial.trial_id), "trial.json")
        write_json_atomic(path, trial.get_state(), site="tuner.trial_write")
        if trial.status == "COMPLETED":
            faults.site("tuner.trial_completed")

    def reload(self):
        """`Oracle.reload` that trusts each trial's own trial.json over a stale or missing oracle.json.

        A trial whose trial.json says COMPLETED (or FAILED) is finished, whatever oracle.json says; a trial
        that oracle.json never recorded (killed inside `create_trial`, before any training) is dropped and
        created again; a trial that was running goes back to the queue (keras-tuner's own rule).
        """
        reload_trusting_trials(self)


def remove_stale_temporaries(project_dir, tuner_id=None):
    """Removes the temp files a killed `write_json_atomic` of the oracle, a trial or the tuner `tuner_id`
    left behind (the chief's or local tuner's own files: a worker's are its own business)."""
    patterns = ["oracle.json.tmp-*", os.path.join("trial_*", "trial.json.tmp-*")]
    if tuner_id:
        patterns.append(f"{glob.escape(str(tuner_id))}.json.tmp-*")
    for pattern in patterns:
        for path in glob.glob(os.path.join(project_dir, pattern)):
            os.remove(path)


def read_trials(project_dir):
    """{trial_id: keras_tuner Trial} of `project_dir/trial_*/trial.json`; a bad file is named."""
    from keras_tuner.engine.trial import Trial

    trials = {}
    for path in sorted(glob.glob(os.path.join(project_dir, "trial_*", "trial.json"))):
        try:
            trial = Trial.load(path)
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptStateError(
                f"{path} is not a readable keras-tuner trial ({type(e).__name__}: {e}); restore it, or pass "
                "--overwrite to start the search afresh.") from None
        trials[trial.trial_id] = trial
    return trials


def read_oracle_state(path):
    """The JSON state of oracle.json at `path`, None when it does not exist; a bad file is named."""
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise CorruptStateError(
            f"{path} is corrupted ({e}); delete it to rebuild the search state from the trial_*/trial.json "
            "files, or pass --overwrite to start afresh.") from None


def drop_unrecorded_trials(oracle, state):
    """Forgets RUNNING trials that `state` never recorded: `create_trial` writes trial.json before
    oracle.json, so such a trial was killed before it was handed out and nothing trained."""
    known = set(state.get("start_order", ()))
    for trial_id, trial in list(oracle.trials.items()):
        if trial_id not in known and trial.status == "RUNNING":
            del oracle.trials[trial_id]
            os.remove(os.path.join(oracle._project_dir, f"trial_{trial_id}", "trial.json"))
            print(f"[tuning] resume: trial {trial_id} was created but never started; creating it again.",
                  flush=True)


def reconcile_with_trials(oracle):
    """Makes the oracle's queues agree with the trials' own status (trial.json is the truth).

    Returns:
        list of the trial ids that finished although the oracle state still had them running.
    """
    for trial in oracle.ongoing_trials.values():
        if trial.status not in FINISHED and trial.trial_id not in oracle._retry_queue:
            oracle._retry_queue.append(trial.trial_id)  # keras-tuner's rule: a trial that was running reruns
    oracle.ongoing_trials = {}
    recovered = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        if trial_id not in oracle.start_order:
            oracle.start_order.append(trial_id)
        if oracle._id_to_hash.get(trial_id) is None:
            oracle._record_values(trial)  # so that a random proposal never repeats these values
        if trial.status not in FINISHED:
            if trial_id not in oracle._retry_queue:
                oracle._retry_queue.append(trial_id)
            continue
        if trial_id in oracle._retry_queue:
            oracle._retry_queue.remove(trial_id)
        if trial_id not in oracle.end_order:
            oracle.end_order.append(trial_id)
            oracle._run_times[trial_id] = max(1, oracle._run_times[trial_id])
            recovered.append(trial_id)
        if trial.status == "COMPLETED" and trial.score is None:
            oracle.score_trial(trial)
    return recovered


def reload_trusting_trials(oracle):
    """The body of `CrashSafeOracleMixin.reload` (see there); saves the reconciled state."""
    project_dir = oracle._project_dir
    remove_stale_temporaries(project_dir)
    oracle.trials.update(read_trials(project_dir))
    path = oracle._get_oracle_fname()
    state = read_oracle_state(path)
    if state is None:
        if oracle.trials:
            print(f"[tuning] resume: {path} is missing; rebuilding the search state from "
                  f"{len(oracle.trials)} trial.json files.", flush=True)
        for trial_id in sorted(oracle.trials):
            oracle.update_space(oracle.trials[trial_id].hyperparameters)
    else:
        drop_unrecorded_trials(oracle, state)
        try:
            oracle.set_state(state)
        except KeyError as e:
            raise CorruptStateError(f"{path} names trial or field {e} that is not in {project_dir}; delete "
                                    "it to rebuild the state from the trial.json files, or pass --overwrite.")
    recovered = reconcile_with_trials(oracle)
    if recovered:
        print(f"[tuning] resume: trial(s) {', '.join(recovered)} had finished (trial.json COMPLETED) before "
              "the last run stopped; they are not run again.", flush=True)
    oracle.save()


def replace_duplicate_proposal(oracle, response):
    """`populate_space`'s `response` with random values instead of a proposal already tried.

    keras-tuner 1.4.8's `BayesianOptimizationOracle` does not check its proposals against past trials; on a
    small budget it proposed the same corner of the space three times in a row (the random oracle checks,
    with the private `_duplicate` / `_random_values` used here).
    """
    values = response.get("values")
    if response.get("status") == "RUNNING" and values and oracle._duplicate(values):
        values = oracle._random_values()
        return {"status": "RUNNING", "values": values} if values else {"status": "STOPPED", "values": None}
    return response


def requeue_lost_trial(oracle, tuner_id, trial):
    """Puts the trial of a dead worker back in the queue, as `Oracle.reload` does for a killed search.

    keras-tuner has no public way to hand a running trial to another worker; its chief waits forever.
    """
    import keras_tuner

    def requeue(oracle):
        if oracle.ongoing_trials.get(tuner_id) is trial:
            oracle.ongoing_trials.pop(tuner_id)
            oracle.tuner_ids.discard(tuner_id)
            oracle._retry_queue.append(trial.trial_id)
            oracle.save()

    keras_tuner.synchronized(requeue)(oracle)


def ongoing_snapshot(oracle):
    """(ongoing trials by tuner id, tuner ids, number of trials), read under the oracle's lock."""
    import keras_tuner

    return keras_tuner.synchronized(lambda o: (dict(o.ongoing_trials), set(o.tuner_ids), len(o.trials)))(oracle)


def set_client_timeout(seconds):
    """Bounds every worker -> chief RPC to `seconds` (keras-tuner's module constant is one hour, so a gone
    chief kept a worker waiting an hour)."""
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = seconds


def oracle_servicer(oracle):
    """keras-tuner's gRPC servicer of `oracle` (its chief's `start_server` waits forever; ours does not)."""
    from keras_tuner.src.distribute import oracle_chief

    return oracle_chief.OracleServicer(oracle)


def stop_triggered(servicer):
    """Whether the servicer has told a worker that the search is over (set by its `CreateTrial`)."""
    return bool(servicer.stop_triggered)


def add_oracle_servicer(servicer, server):
    """Registers `servicer` (anything with the OracleServicer methods) on a `grpc.server`."""
    from keras_tuner.src import protos

    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)


def tuner_state_path(project_dir, tuner_id):
    """Where `BaseTuner` keeps its own state (`_get_tuner_fname`): `<project_dir>/<tuner_id>.json`."""
    return os.path.join(str(project_dir), f"{tuner_id}.json")


def ensure_reload(project_dir, tuner_id):
    """Makes the next `BaseTuner(overwrite=False)` in `project_dir` reload when the project has state.

    `BaseTuner.__init__` reloads only if its own `<tuner_id>.json` exists, and keras-tuner writes that file
    first at the end of the first trial, after trial_0/trial.json said COMPLETED: a kill in between made the
    rerun start the search over. Also removes the temp files of a killed write. Returns True when it wrote
    the (empty) tuner state.
    """
    if os.path.isdir(project_dir):
        remove_stale_temporaries(project_dir, tuner_id)
    path = tuner_state_path(project_dir, tuner_id)
    has_state = os.path.exists(os.path.join(project_dir, "oracle.json")) or glob.glob(
        os.path.join(project_dir, "trial_*", "trial.json"))
    if os.path.exists(path) or not has_state:
        return False
    write_json_atomic(path, {}, site="tuner.state_write")
    return True


def save_tuner_state(tuner, save_oracle=True):
    """`BaseTuner.save`, atomically: the oracle (chief or local only) and then `<tuner_id>.json`."""
    if save_oracle:
        tuner.oracle.save()
    write_json_atomic(tuner_state_path(tuner.project_dir, tuner.tuner_id), tuner.get_state(),
                      site="tuner.state_write")


def missing_private_names():
    """One message per private keras-tuner name used here that the installed keras-tuner lacks."""
    import keras_tuner

    missing = []
    for module_name, attribute, use in PRIVATE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            missing.append(f"keras-tuner {keras_tuner.__version__} moved module {module_name} ({e}); used by {use}")
            continue
        if attribute and not hasattr(module, attribute):
            missing.append(f"keras-tuner {keras_tuner.__version__} has no {module_name}.{attribute}; used by {use}")
    oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=1)
    for attribute, use in PRIVATE_ORACLE_ATTRIBUTES:
        if not hasattr(type(oracle), attribute) and attribute not in vars(oracle):
            missing.append(f"keras-tuner {keras_tuner.__version__} has no Oracle.{attribute}; used by {use}")
    if not missing and not hasattr(oracle_servicer(oracle), "stop_triggered"):
        missing.append(f"keras-tuner {keras_tuner.__version__} has no OracleServicer.stop_triggered; used by "
                       "stop_triggered (the chief's end of the search)")
    return missing
