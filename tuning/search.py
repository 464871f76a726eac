"""Hyperparameter search over shortcut option and learning-rate schedule: `python -m tuning.search`.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (shortcut options A/B/C,
section 3.3; the CIFAR-10 recipe, section 4.2).

A trial is one `keras_resnet.training.train` run (the trainers' loop, checkpoints and resume) with the values
of `tuning.hypermodel.ResNetHyperModel`, in `<project_dir>/trial_<id>/model_dir` (the `model_dir` layout of
docs/CONTRACTS.md). Its objective is the best validation accuracy on the held-out `--validation_split`
images of the *training* split (5000 of 50k for CIFAR-10, stratified); the test split is never looked at by
the search.

Oracles (`--tuner`): random search, Bayesian optimisation (Gaussian process; needs scikit-learn) and
Hyperband. Hyperband's resource unit is `--budget_iterations / --hyperband_max_units` iterations; every
trial follows the schedule of the full budget (step boundaries at 50% / 75% of `--budget_iterations`) and
stops at its rung, and a promoted trial resumes from a copy of its parent's `model_dir` (weights, optimizer
and iteration count), so successive halving retrains nothing.

Resume: the oracle's state lives in `--project_dir` (`oracle.json`, `trial_*/trial.json`). The same command
after a kill continues the search: finished trials are not run again and the interrupted one resumes from
its own backup. `--overwrite` starts afresh.

Distributed (keras-tuner's chief/worker protocol over gRPC): the chief serves the oracle, the workers run
trials. Each process reads `KERASTUNER_TUNER_ID` ("chief" or a unique worker id), `KERASTUNER_ORACLE_IP`
and `KERASTUNER_ORACLE_PORT`; `--role=chief|worker` checks them. `--local_workers=N` starts a chief and N
workers on 127.0.0.1 (logs in `<project_dir>/workers/`). Workers report to the chief while a trial runs; a
trial whose worker is silent for `--worker_timeout` seconds is handed to another worker, and a chief that
hears from no worker for `--worker_timeout` seconds stops with a message saying what finished (restart the
same command to continue). Every process should see the same `--project_dir` (a shared file system) for
`--export_best` and the results' `tuner` column; the search itself does not need it.

At the end: `results.csv`, `results.md`, `best_hyperparameters.json` and `results.png` in `--project_dir`
(`tuning.report`), and with `--export_best` the best trial's `checkpoints/best.keras` exported for TF
Serving by `keras_resnet.export` (nothing is retrained).

Example:
    python -m tuning.search --tuner=bayesian --model=resnet20 --data=../shared/datasets/cifar10-jpeg \
        --max_trials=12 --budget_iterations=4000 --project_dir=runs/tune20 --export_best
    python -m tuning.search ... --local_workers=2          # chief + 2 workers on this machine
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

ROLES = ("auto", "chief", "worker")
TUNERS = ("random", "bayesian", "hyperband")
OBJECTIVE = "val_accuracy"
EXIT_INCOMPLETE = 4


class SearchError(ValueError):
    """A bad flag or environment; the message names the flag or variable."""


@dataclasses.dataclass
class SearchOptions:
    """The flags of `python -m tuning.search` (see `define_flags` for their meaning)."""

    project_dir: str
    tuner: str = "random"
    model: str = "resnet20"
    data: str = "cifar10"
    data_dir: str | None = None
    max_trials: int = 12
    budget_iterations: int = 4000
    steps_per_epoch: int | None = None
    batch_size: int = 128
    tune_batch_size: bool = False
    tune_depth: bool = False
    depths: tuple = (20, 32, 44, 56, 110)
    validation_split: float = 5000
    hyperband_max_units: int = 9
    hyperband_factor: int = 3
    num_initial_points: int | None = None
    overwrite: bool = False
    role: str = "auto"
    local_workers: int = 0
    worker_timeout: float = 600.0
    export_best: bool = False
    export_dir: str | None = None
    seed: int = 0
    precision: str = "auto"
    verbose: int = 1

    def validate(self):
        """Raises `SearchError` naming the flag of the first bad value (cheap; before any work)."""
        from keras_resnet.registry import family_of

        if not self.project_dir:
            raise SearchError("--project_dir must be set.")
        if self.tuner not in TUNERS:
            raise SearchError(f"--tuner must be one of {list(TUNERS)}; received {self.tuner!r}.")
        try:
            _, _, plain = family_of(self.model)
        except ValueError as e:
            raise SearchError(f"--model: {e}") from None
        if plain:
            raise SearchError(f"--model must be a residual network (the search tunes `shortcut`); received "
                              f"{self.model!r}.")
        for name in ("max_trials", "budget_iterations", "batch_size", "hyperband_max_units"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SearchError(f"--{name} must be a positive integer; received {value!r}.")
        if self.budget_iterations < 2:
            raise SearchError(f"--budget_iterations must be >= 2; received {self.budget_iterations}.")
        if self.steps_per_epoch is not None and not 0 < self.steps_per_epoch <= self.budget_iterations:
            raise SearchError(f"--steps_per_epoch must be in [1, --budget_iterations]; received "
                              f"{self.steps_per_epoch!r}.")
        if self.tuner == "hyperband":
            if self.hyperband_factor < 2:
                raise SearchError(f"--hyperband_factor must be >= 2; received {self.hyperband_factor}.")
            if self.budget_iterations // self.hyperband_max_units < 1:
                raise SearchError(f"--budget_iterations={self.budget_iterations} is smaller than "
                                  f"--hyperband_max_units={self.hyperband_max_units}.")
        if not self.validation_split > 0:
            raise SearchError("--validation_split must be > 0: the objective is the validation accuracy on "
                              f"held-out training images; received {self.validation_split!r}.")
        if self.tune_depth:
            for depth in self.depths:
                try:
                    family = family_of(f"resnet{int(depth)}")[0]
                except ValueError:
                    family = None
                if family != "cifar":
                    raise SearchError(f"--depths must be CIFAR depths 6n+2; received {list(self.depths)!r}.")
        if self.role not in ROLES:
            raise SearchError(f"--role must be one of {list(ROLES)}; received {self.role!r}.")
        if self.local_workers < 0 or (self.local_workers and self.role == "worker"):
            raise SearchError(f"--local_workers must be >= 0 and is for the chief; received {self.local_workers} "
                              f"with --role={self.role}.")
        if not self.worker_timeout > 0:
            raise SearchError(f"--worker_timeout must be positive; received {self.worker_timeout!r}.")

    def hyperband_unit(self):
        """Iterations of one Hyperband resource unit."""
        return self.budget_iterations // self.hyperband_max_units


# ----------------------------------------------------------------------------------------------------------
# Roles.


def resolve_role(options, environ=None):
    """"local", "chief" or "worker" from `--role`, `--local_workers` and the KERASTUNER_* variables."""
    environ = os.environ if environ is None else environ
    if options.local_workers:
        return "chief"
    has_env = "KERASTUNER_ORACLE_IP" in environ
    if options.role == "auto":
        if not has_env:
            return "local"
        return "chief" if "chief" in environ.get("KERASTUNER_TUNER_ID", "") else "worker"
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        if name not in environ:
            raise SearchError(f"--role={options.role} needs the environment variable {name} (the chief's address; "
                              "or use --local_workers=N on one machine).")
    tuner_id = environ.get("KERASTUNER_TUNER_ID")
    if options.role == "chief" and tuner_id is not None and "chief" not in tuner_id:
        raise SearchError(f"--role=chief needs KERASTUNER_TUNER_ID to contain 'chief'; it is {tuner_id!r}.")
    if options.role == "worker" and (not tuner_id or "chief" in tuner_id):
        raise SearchError("--role=worker needs KERASTUNER_TUNER_ID set to a unique worker id (not containing "
                          f"'chief'); it is {tuner_id!r}.")
    return options.role


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------------------------------------
# The tuner.


def _keras_tuner():
    import keras_tuner

    return keras_tuner


def make_oracle(options):
    """The keras-tuner oracle of `--tuner`, maximising `val_accuracy`."""
    kt = _keras_tuner()
    objective = kt.Objective(OBJECTIVE, direction="max")
    common = dict(objective=objective, seed=options.seed + 1, max_retries_per_trial=1,
                  max_consecutive_failed_trials=3)
    if options.tuner == "random":
        return kt.oracles.RandomSearchOracle(max_trials=options.max_trials, **common)
    if options.tuner == "bayesian":
        return _bayesian_oracle_class()(max_trials=options.max_trials,
                                        num_initial_points=options.num_initial_points, **common)
    oracle = kt.oracles.HyperbandOracle(max_epochs=options.hyperband_max_units, factor=options.hyperband_factor,
                                        hyperband_iterations=1, **common)
    oracle.max_trials = options.max_trials  # Oracle.create_trial stops at max_trials: a cap on Hyperband too
    return oracle


def _bayesian_oracle_class():
    """keras-tuner's Gaussian-process oracle, with a proposal already tried replaced by random values.

    keras-tuner 1.4.8's `BayesianOptimizationOracle` does not check its proposals against past trials; on a
    small budget it proposed the same corner of the space (learning rate 0.4) three times in a row, spending
    three trials on one configuration (the random oracle does check).
    """
    kt = _keras_tuner()

    class BayesianOptimizationOracle(kt.oracles.BayesianOptimizationOracle):
        def populate_space(self, trial_id):
            response = super().populate_space(trial_id)
            values = response.get("values")
            if response.get("status") == "RUNNING" and values and self._duplicate(values):
                values = self._random_values()
                return {"status": "RUNNING", "values": values} if values else {"status": "STOPPED", "values": None}
            return response

    return BayesianOptimizationOracle


def _stop_at(iteration):
    """A callback stopping `keras_resnet.training.train` at the end of the epoch reaching `iteration`
    (a Hyperband rung)."""
    import keras

    class StopAt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if logs and int(logs.get("iteration", 0)) >= iteration:
                self.model.stop_training = True

    return StopAt()


class _Heartbeat:
    """While a trial runs on a worker, asks the chief for the trial every `interval` seconds (it is alive)."""

    def __init__(self, oracle, trial_id, interval):
        self.oracle, self.trial_id, self.interval = oracle, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tuning-heartbeat", daemon=True)

    def _run(self):
        while not self.stop.wait(self.interval):
            try:
                self.oracle.get_trial(self.trial_id)
            except Exception:  # the chief is gone or busy: the trial itself will notice when it reports
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()


def _copytree_atomic(src, dst):
    tmp = f"{dst}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    os.replace(tmp, dst)


def make_tuner(options, hypermodel, data):
    """A keras-tuner `BaseTuner` whose trials are `keras_resnet.training.train` runs."""
    kt = _keras_tuner()

    class ResNetTuner(kt.engine.base_tuner.BaseTuner):
        """Runs each trial with the package's training loop; reports validation accuracy, iterations, time."""

        def trial_model_dir(self, trial_id):
            return os.path.join(self.project_dir, f"trial_{trial_id}", "model_dir")

        def pre_create_trial(self):
            if getattr(self, "_waiting", False):  # the last request got no trial (Hyperband waits for a rung)
                time.sleep(0.5)
            self._waiting = True

        def on_trial_begin(self, trial):
            self._waiting = False
            super().on_trial_begin(trial)

        def run_trial(self, trial, *args, **kwargs):
            import keras

            from keras_resnet import training

            start = time.perf_counter()
            hp = trial.hyperparameters
            model_dir = self.trial_model_dir(trial.trial_id)
            os.makedirs(os.path.dirname(model_dir), exist_ok=True)
            with open(os.path.join(os.path.dirname(model_dir), "tuner_id"), "w") as f:
                f.write(self.tuner_id)
            callbacks, steps_per_epoch = [], options.steps_per_epoch
            if "tuner/epochs" in hp.values:  # Hyperband
                unit = options.hyperband_unit()
                steps_per_epoch = unit
                units = int(hp.values["tuner/epochs"])
                if units < options.hyperband_max_units:
                    callbacks.append(_stop_at(units * unit))
                parent = hp.values.get("tuner/trial_id")
                if parent and not os.path.exists(model_dir):
                    parent_dir = self.trial_model_dir(parent)
                    if os.path.isdir(os.path.join(parent_dir, "backup")):
                        _copytree_atomic(parent_dir, model_dir)
                    else:
                        print(f"[tuning] trial {trial.trial_id}: the model_dir of its parent trial {parent} is not "
                              "on this machine; training from scratch up to the rung.", flush=True)
            if steps_per_epoch is None:
                steps_per_epoch = max(1, options.budget_iterations // 4)
            config = hypermodel.train_config(hp, model_dir, steps_per_epoch=steps_per_epoch, input="auto",
                                             verbose=2 if options.verbose else 0)
            keras.backend.clear_session()
            heartbeat = _Heartbeat(self.oracle, trial.trial_id, max(1.0, min(10.0, options.worker_timeout / 4)))
            try:
                with heartbeat if self._is_worker() else _nullcontext():
                    summary = training.train(config, data=data, callbacks=callbacks)
            except training.NaNLossError as e:
                # A diverged run is a result (this learning rate is too high), not a crash to retry.
                print(f"[tuning] trial {trial.trial_id} diverged: {e}", flush=True)
                best = os.path.join(model_dir, "checkpoints", "best.json")
                error = json.load(open(best)).get("error") if os.path.exists(best) else None
                return {OBJECTIVE: 0.0 if error is None else 1.0 - float(error), "iterations": -1.0,
                        "wall_time_s": time.perf_counter() - start, "diverged": 1.0}
            error = summary["best_validation_error"]
            wall = time.perf_counter() - start
            print(f"[tuning] trial {trial.trial_id} ({self.tuner_id}): {OBJECTIVE} {1.0 - float(error):.4f} after "
                  f"{summary['iterations']} iterations, {wall:.0f} s", flush=True)
            return {OBJECTIVE: 1.0 - float(error), "iterations": float(summary["iterations"]),
                    "wall_time_s": wall, "diverged": 0.0}

    kt_overwrite = options.overwrite and resolve_role(options) != "worker"
    project_dir = os.path.abspath(options.project_dir)
    return ResNetTuner(oracle=make_oracle(options), hypermodel=hypermodel,
                       directory=os.path.dirname(project_dir), project_name=os.path.basename(project_dir),
                       overwrite=kt_overwrite)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------------------------------------
# The chief: keras-tuner's oracle server with a bounded wait for workers.


def serve_oracle(oracle, worker_timeout, workers=(), poll=0.5, log=print):
    """Serves `oracle` to the workers until the search is over, a worker is lost for good, or all are gone.

    keras-tuner's own `start_server` waits forever for a trial whose worker died. Here a trial whose worker
    has been silent (no request, no heartbeat) for `worker_timeout` seconds goes back to the oracle's queue
    for another worker, and the chief stops when no worker has contacted it for `worker_timeout` seconds or
    when all `workers` (local subprocesses) have exited.

    Args:
        oracle: the chief's `keras_tuner.Oracle` (project directory set).
        worker_timeout: float, seconds.
        workers: sequence of `subprocess.Popen` (local workers), optional.
        poll: float, seconds between checks.
        log: callable for the messages.

    Returns:
        "done" when every trial finished, else a one-line reason the search stopped early.
    """
    from concurrent import futures

    import grpc
    import keras_tuner
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    class Servicer(oracle_chief.OracleServicer):
        def __init__(self, oracle):
            super().__init__(oracle)
            self.last_contact = time.monotonic()
            self.seen = {}

        def _touch(self, trial_id=None):
            self.last_contact = time.monotonic()
            if trial_id:
                self.seen[trial_id] = self.last_contact

        def GetSpace(self, request, context):
            self._touch()
            return super().GetSpace(request, context)

        def UpdateSpace(self, request, context):
            self._touch()
            return super().UpdateSpace(request, context)

        def CreateTrial(self, request, context):
            response = super().CreateTrial(request, context)
            self._touch(response.trial.trial_id)
            return response

        def UpdateTrial(self, request, context):
            self._touch(request.trial_id)
            return super().UpdateTrial(request, context)

        def EndTrial(self, request, context):
            self._touch(request.trial.trial_id)
            return super().EndTrial(request, context)

        def GetTrial(self, request, context):
            self._touch(request.trial_id)
            return super().GetTrial(request, context)

        def GetBestTrials(self, request, context):
            self._touch()
            return super().GetBestTrials(request, context)

    @keras_tuner.synchronized
    def lost(oracle, tuner_id, trial):
        # What `Oracle.reload` does with the trials of a killed search: back to the queue, run again.
        if oracle.ongoing_trials.get(tuner_id) is trial:
            oracle.ongoing_trials.pop(tuner_id)
            oracle.tuner_ids.discard(tuner_id)
            oracle._retry_queue.append(trial.trial_id)
            oracle.save()

    @keras_tuner.synchronized
    def snapshot(oracle):
        return dict(oracle.ongoing_trials), set(oracle.tuner_ids), len(oracle.trials)

    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = Servicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise SearchError(f"the chief cannot listen on {address} (KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT).")
    server.start()
    log(f"[tuning] chief: oracle serving on {address}; waiting for workers (--worker_timeout={worker_timeout:g} s).")
    start, stopped_at, reason = time.monotonic(), None, None
    try:
        while True:
            time.sleep(poll)
            now = time.monotonic()
            ongoing, tuner_ids, _ = snapshot(oracle)
            if servicer.stop_triggered and not ongoing:
                stopped_at = stopped_at or now
                # Every trial is done; wait briefly for the other workers to ask and be told to stop.
                if not tuner_ids or now - stopped_at > min(worker_timeout, 10.0):
                    return "done"
                continue
            for tuner_id, trial in ongoing.items():
                silent = now - servicer.seen.get(trial.trial_id, start)
                if silent > worker_timeout:
                    log(f"[tuning] chief: worker {tuner_id!r} has not reported on trial {trial.trial_id} for "
                        f"{silent:.0f} s (--worker_timeout={worker_timeout:g}); presumed dead, the trial goes back "
                        "to the queue for another worker.")
                    lost(oracle, tuner_id, trial)
            if workers and all(w.poll() is not None for w in workers):
                codes = [w.returncode for w in workers]
                reason = f"all {len(workers)} local workers exited (exit codes {codes}) before the search finished"
                return reason
            if now - servicer.last_contact > worker_timeout:
                reason = (f"no worker has contacted the chief for {now - servicer.last_contact:.0f} s "
                          f"(--worker_timeout={worker_timeout:g})")
                return reason
    finally:
        server.stop(grace=1.0)


def _worker_argv(argv):
    """The chief's command line for its local workers: same search, --role=worker, no chief-only flags."""
    drop = ("--local_workers", "--overwrite", "--nooverwrite", "--export_best", "--noexport_best", "--role")
    out = [a for a in argv if not any(a == d or a.startswith(d + "=") for d in drop)]
    return out + ["--role=worker"]


def launch_local_workers(n, argv, project_dir):
    """Starts `n` workers (`python -m tuning.search ... --role=worker`) talking to this chief; logs in
    `<project_dir>/workers/worker<i>.log`."""
    log_dir = os.path.join(project_dir, "workers")
    os.makedirs(log_dir, exist_ok=True)
    workers = []
    for i in range(n):
        env = dict(os.environ, KERASTUNER_TUNER_ID=f"worker{i}")
        log = open(os.path.join(log_dir, f"worker{i}.log"), "ab")
        workers.append(subprocess.Popen([sys.executable, "-m", "tuning.search", *_worker_argv(argv)], env=env,
                                        stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd()))
        log.close()
    return workers


def _stop_workers(workers, timeout=10.0):
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for w in workers:
        try:
            w.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


# ----------------------------------------------------------------------------------------------------------
# Putting it together.


def load_data(options):
    """The training images in memory with `--validation_split` held out (stratified): `training.ArrayData`."""
    from keras_resnet import training

    return training.load_array_data(options.data, options.validation_split, options.data_dir)


def make_hypermodel(options, info):
    from tuning.hypermodel import ResNetHyperModel

    return ResNetHyperModel(
        model=options.model, budget_iterations=options.budget_iterations, data=options.data,
        classes=len(info.class_names), input_shape=tuple(info.image_shape), batch_size=options.batch_size,
        tune_batch_size=options.tune_batch_size, depths=options.depths if options.tune_depth else None,
        validation_split=options.validation_split, seed=options.seed, precision=options.precision)


def run(options, data=None, argv=None, log=print):
    """Runs (or continues) the search of `options` in this process; returns the exit code.

    Args:
        options: a `SearchOptions`.
        data: optional `keras_resnet.training.ArrayData` (with `validation`) instead of loading `--data`.
        argv: the command line, to start `--local_workers` with.
        log: callable for messages.
    """
    options.validate()
    role = resolve_role(options)
    project_dir = os.path.abspath(options.project_dir)
    workers = []
    if options.local_workers:
        os.environ.setdefault("KERASTUNER_ORACLE_IP", "127.0.0.1")
        os.environ.setdefault("KERASTUNER_ORACLE_PORT", str(free_port()))
        os.environ["KERASTUNER_TUNER_ID"] = "chief"
    if role == "chief":
        os.environ.setdefault("KERASTUNER_TUNER_ID", "chief")
    if role == "worker":
        from keras_tuner.src.distribute import oracle_client

        oracle_client.TIMEOUT = options.worker_timeout  # a gone chief must not keep a worker waiting an hour
    if data is None:
        data = load_data(options)
    if data.validation is None:
        raise SearchError("the objective needs held-out validation images: pass --validation_split > 0.")
    hypermodel = make_hypermodel(options, data.info)
    tuner = make_tuner(options, hypermodel, data)
    verbose = 1 if options.verbose else 0
    from tuning import report

    if role == "worker":
        tuner.search(verbose=verbose)
        log(f"[tuning] worker {tuner.tuner_id}: no more trials; exiting.")
        return 0
    if role == "local":
        tuner.search(verbose=verbose)
        status = "done"
    else:
        tuner.oracle.verbose = verbose
        tuner.save()
        if options.local_workers:
            workers = launch_local_workers(options.local_workers, argv or [], project_dir)
            log(f"[tuning] chief: started {len(workers)} local workers (logs in {os.path.join(project_dir, 'workers')}).")
        try:
            status = serve_oracle(tuner.oracle, options.worker_timeout, workers, log=log)
        finally:
            _stop_workers(workers)
    rows = report.write_reports(project_dir)
    done = sum(r["status"] == "COMPLETED" for r in rows)
    log(f"[tuning] {done} trials completed; results in {os.path.join(project_dir, 'results.md')}")
    if status != "done":
        log(f"[tuning] error: the search stopped early: {status}. {done} of {options.max_trials} trials finished "
            "(results written). Start the workers again, or rerun the same command to continue.")
        return EXIT_INCOMPLETE
    if options.export_best:
        export_best(project_dir, options.export_dir, log=log)
    return 0


def export_best(project_dir, export_dir=None, log=print):
    """Exports the best trial's `checkpoints/best.keras` with `keras_resnet.export` (retrains nothing).

    Args:
        project_dir: the search's project directory.
        export_dir: export root; `saved_models/<basename of project_dir>` by default.

    Returns:
        `pathlib.Path` of the exported version.
    """
    from keras_resnet import export
    from tuning import report

    best = report.best_trial(project_dir)
    if best is None:
        raise SearchError(f"--export_best: no completed trial in {project_dir}.")
    model_dir = os.path.join(project_dir, f"trial_{best['trial']}", "model_dir")
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(
            f"--export_best: the best trial's model_dir {model_dir} is not on this machine (it ran on worker "
            f"{best.get('tuner') or '?'}); run `python -m keras_resnet.export --model_dir=<that dir>` there.")
    export_dir = export_dir or os.path.join("saved_models", os.path.basename(os.path.normpath(project_dir)))
    path = export.export_from_model_dir(model_dir, export_dir, checkpoint="best", model_card_extra={
        "tuning": {"project_dir": project_dir, "trial": best["trial"], OBJECTIVE: best[OBJECTIVE],
                   "hyperparameters": best["hyperparameters"]}})
    log(f"[tuning] exported the best trial {best['trial']} ({OBJECTIVE} {best[OBJECTIVE]:.4f}) to {path}")
    return path


# ----------------------------------------------------------------------------------------------------------
# absl entry point.


def define_flags():
    from absl import flags

    f = flags
    f.DEFINE_enum("tuner", "random", list(TUNERS), "Search algorithm (keras-tuner oracle).")
    f.DEFINE_string("model", "resnet20", "Residual network (keras_resnet.build name); the depth when not tuned.")
    f.DEFINE_string("data", "cifar10", "Image folder / archive / TFRecord directory / TFDS name (held in memory).")
    f.DEFINE_string("data_dir", None, "TFDS data directory.")
    f.DEFINE_integer("max_trials", 12, "Number of trials (also caps Hyperband).")
    f.DEFINE_integer("budget_iterations", 4000, "Iterations of one trial (Hyperband: of the largest rung).")
    f.DEFINE_integer("steps_per_epoch", None, "Iterations between validations (default budget/4; Hyperband: "
                                              "one resource unit).")
    f.DEFINE_integer("batch_size", 128, "Batch size when --tune_batch_size is off.")
    f.DEFINE_bool("tune_batch_size", False, "Also search batch_size in {64, 128, 256}.")
    f.DEFINE_bool("tune_depth", False, "Also search the depth (hyperparameter `model` over --depths).")
    f.DEFINE_list("depths", ["20", "32", "44", "56", "110"], "CIFAR depths searched with --tune_depth.")
    f.DEFINE_float("validation_split", 5000, "Held-out training images for the objective: count or fraction.")
    f.DEFINE_integer("hyperband_max_units", 9, "Hyperband: resource units of the largest rung (max_epochs).")
    f.DEFINE_integer("hyperband_factor", 3, "Hyperband: reduction factor.")
    f.DEFINE_integer("num_initial_points", None, "Bayesian: random trials before the Gaussian process.")
    f.DEFINE_string("project_dir", None, "Search directory (oracle state, trials, results).")
    f.DEFINE_bool("overwrite", False, "Start afresh instead of continuing the search in --project_dir.")
    f.DEFINE_enum("role", "auto", list(ROLES), "Distributed role (auto: from KERASTUNER_* variables).")
    f.DEFINE_integer("local_workers", 0, "Start a chief and this many workers on 127.0.0.1.")
    f.DEFINE_float("worker_timeout", 600, "Seconds of silence after which a worker is presumed dead.")
    f.DEFINE_bool("export_best", False, "Export the best trial's model for TF Serving (no retraining).")
    f.DEFINE_string("export_dir", None, "Export root (default saved_models/<project_dir name>).")
    f.DEFINE_integer("seed", 0, "Seed of every trial and of the oracle.")
    f.DEFINE_string("precision", "auto", "Trainer --precision.")
    f.DEFINE_integer("verbose", 1, "0: one line per trial; 1: also trial tables and one line per evaluation.")


def options_from_flags(flag_values):
    names = [f.name for f in dataclasses.fields(SearchOptions)]
    values = {n: flag_values[n].value for n in names if n in flag_values}
    if values.get("project_dir") is None:
        raise SearchError("--project_dir must be set.")
    try:
        values["depths"] = tuple(int(d) for d in values["depths"])
    except ValueError:
        raise SearchError(f"--depths must be integers; received {values['depths']!r}.") from None
    vs = values["validation_split"]
    values["validation_split"] = int(vs) if vs >= 1 and float(vs).is_integer() else vs
    return SearchOptions(**values)


def main(argv):
    from absl import flags

    try:
        options = options_from_flags(flags.FLAGS)
        return run(options, argv=sys.argv[1:])
    except (SearchError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(lambda argv: sys.exit(main(argv)))
