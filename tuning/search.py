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

Resume: the oracle's state lives in `--project_dir` (`oracle.json`, `trial_*/trial.json`, written atomically).
The same command after a kill, at any moment, continues the search: a trial whose `trial.json` says
COMPLETED is not run again (even when the kill came before the oracle's own state was saved), and the
interrupted one resumes from its own backup. `--overwrite` starts afresh.

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
Serving by `keras_resnet.export` (nothing is retrained), once: `export_best.json` records the version.

Modules: `tuning.options` (flags, `SearchOptions`), `tuning.tuner` (oracles, `ResNetTuner`),
`tuning.distributed` (chief, workers), `tuning.kt_compat` (every keras-tuner private name), `tuning.report`
(results files). This module wires them: `run(options)` and the absl entry point; exit codes 0, 2 (bad
flag or state file, or another search holds `--project_dir`), 4 (the search stopped early, or was asked
to stop by SIGTERM / SIGINT: the running trials back up where they are; rerun to continue), 5 (a full disk, quota or read-only file
system: the path and the cause; rerun to continue once there is space).

Fault sites: `tuner.results_written` (after the results files), `tuner.exported` (after `--export_best`),
and those of `tuning.tuner` / `tuning.kt_compat`.

Example:
    python -m tuning.search --tuner=bayesian --model=resnet20 --data=../shared/datasets/cifar10-jpeg \
        --max_trials=12 --budget_iterations=4000 --project_dir=runs/tune20 --export_best
    python -m tuning.search ... --local_workers=2          # chief + 2 workers on this machine
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

from keras_resnet import faults
from keras_resnet import run_lock
from keras_resnet.training.config import ConfigError
from keras_resnet.stop_request import StopRequest
from tuning import distributed, kt_compat, report
from tuning.distributed import free_port, launch_local_workers, serve_oracle, stop_workers, worker_argv
from tuning.options import (EXIT_BAD_CONFIG, EXIT_INCOMPLETE, OBJECTIVE, ROLES, TUNERS, SearchError, SearchOptions,
                            define_flags, options_from_flags, resolve_role)
from tuning.tuner import ResNetTuner, TrialStopped, make_oracle, make_tuner

EXPORT_RECORD = "export_best.json"

__all__ = ["EXIT_INCOMPLETE", "OBJECTIVE", "ROLES", "TUNERS", "SearchError", "SearchOptions", "define_flags",
           "export_best", "free_port", "launch_local_workers", "load_data", "main", "make_hypermodel",
           "make_oracle", "make_tuner",
           "options_from_flags", "resolve_role", "run", "serve_oracle", "stop_workers", "worker_argv"]


def load_data(options):
    """The training images in memory with `--validation_split` held out (stratified): `training.ArrayData`."""
    from keras_resnet import training

    try:
        return training.load_array_data(options.data, options.validation_split, options.data_dir)
    except training.ConfigError:
        raise
    except (ValueError, FileNotFoundError) as error:  # the data package's own words, naming the flag
        text = str(error).strip().splitlines()
        raise SearchError(f"--data={options.data}: {text[0] if text else type(error).__name__}") from None


def make_hypermodel(options, info):
    """The `ResNetHyperModel` of `options` for data described by `info` (a `DatasetInfo`)."""
    from tuning.hypermodel import ResNetHyperModel

    return ResNetHyperModel(
        model=options.model, budget_iterations=options.budget_iterations, data=options.data,
        classes=len(info.class_names), input_shape=tuple(info.image_shape), batch_size=options.batch_size,
        tune_batch_size=options.tune_batch_size, depths=options.depths if options.tune_depth else None,
        tune_block_form=options.tune_block_form,
        validation_split=options.validation_split, seed=options.seed, precision=options.precision)


def prepare_environment(options, role):
    """Sets the KERASTUNER_* variables of `--local_workers` and the chief; bounds a worker's RPC wait."""
    if options.local_workers:
        os.environ.setdefault("KERASTUNER_ORACLE_IP", "127.0.0.1")
        os.environ.setdefault("KERASTUNER_ORACLE_PORT", str(free_port()))
        os.environ["KERASTUNER_TUNER_ID"] = "chief"
    if role == "chief":
        os.environ.setdefault("KERASTUNER_TUNER_ID", "chief")
    if role == "worker":
        kt_compat.set_client_timeout(options.worker_timeout)  # a gone chief must not keep a worker an hour


def run_chief(tuner, options, argv, log=print, stop=None):
    """Serves the oracle (starting `--local_workers`) until the search ends; returns "done", "stopped" (a stop
    request: passed on to the local workers, whose trials are backed up before they exit) or why not."""
    project_dir = os.path.abspath(options.project_dir)
    tuner.save()
    workers = []
    if options.local_workers:
        workers = launch_local_workers(options.local_workers, argv or [], project_dir)
        log(f"[tuning] chief: started {len(workers)} local workers (logs in {os.path.join(project_dir, 'workers')}).")
    status = None
    try:
        status = serve_oracle(tuner.oracle, options.worker_timeout, workers, log=log, stop=stop)
        return status
    finally:
        if status == distributed.STOPPED:
            stop_workers(workers, signal_name=stop.requested, timeout=None)  # they back up, then exit 4
        else:
            stop_workers(workers)


def run(options, data=None, argv=None, log=print):
    """Runs (or continues) the search of `options` in this process; returns the exit code.

    Args:
        options: a `SearchOptions`.
        data: optional `keras_resnet.training.ArrayData` (with `validation`) instead of loading `--data`.
        argv: the command line, to start `--local_workers` with.
        log: callable for messages.

    Returns:
        0, or `EXIT_INCOMPLETE` when the chief stopped before every trial finished, or when the search was
        asked to stop (SIGTERM / SIGINT: the running trials backed up where they were; the one line says so
        on stderr).

    Raises:
        SearchError: a bad option, or another search holds `--project_dir` (named with its holder).
    """
    options.validate()
    role = resolve_role(options)
    project_dir = os.path.abspath(options.project_dir)
    prepare_environment(options, role)
    if data is None:
        data = load_data(options)
    if data.validation is None:
        raise SearchError("the objective needs held-out validation images: pass --validation_split > 0.")
    with StopRequest() as stop, lock_search(project_dir, role):
        return run_locked(options, data, argv, log, role, project_dir, stop)


def lock_search(project_dir, role):
    """The lock of `--project_dir` for the chief (or a local search); a worker shares its chief's directory and
    takes none (each trial's `model_dir` is locked by its training)."""
    if role == "worker":
        return contextlib.nullcontext()
    try:
        return run_lock.take(project_dir, "--project_dir")
    except run_lock.RunLocked as error:
        raise SearchError(str(error)) from None


def run_locked(options, data, argv, log, role, project_dir, stop):
    """The search itself, `--project_dir` locked and stop requests caught (`run`)."""
    tuner = ResNetTuner(options, make_hypermodel(options, data.info), data, role=role)
    verbose = 1 if options.verbose else 0
    stopped = None
    if role == "worker":
        try:
            tuner.search(verbose=verbose)
        except TrialStopped as e:
            print(e, file=sys.stderr, flush=True)
            return EXIT_INCOMPLETE
        log(f"[tuning] worker {tuner.tuner_id}: no more trials; exiting.")
        return 0
    tuner.oracle.verbose = verbose
    if role == "local":
        try:
            tuner.search(verbose=verbose)
            status = distributed.DONE
        except TrialStopped as e:
            status, stopped = distributed.STOPPED, str(e)
    else:
        status = run_chief(tuner, options, argv, log=log, stop=stop)
        if status == distributed.STOPPED:
            stopped = stop.line("the search (its workers backed up their trials)")
    rows = report.write_reports(project_dir)
    faults.site("tuner.results_written")
    done = sum(r["status"] == "COMPLETED" for r in rows)
    log(f"[tuning] {done} trials completed; results in {os.path.join(project_dir, 'results.md')}")
    if stopped:
        print(stopped, file=sys.stderr, flush=True)
        return EXIT_INCOMPLETE
    if status != distributed.DONE:
        log(f"[tuning] error: the search stopped early: {status}. {done} of {options.max_trials} trials finished "
            "(results written). Start the workers again, or rerun the same command to continue.")
        return EXIT_INCOMPLETE
    if options.export_best:
        export_best(project_dir, options.export_dir, log=log)
        faults.site("tuner.exported")
    return 0


def export_best(project_dir, export_dir=None, log=print):
    """Exports the best trial's `checkpoints/best.keras` with `keras_resnet.export` (retrains nothing), once.

    `<project_dir>/export_best.json` records the trial and the version chosen before the export starts
    (`keras_resnet.export.versions.publish_once`): a rerun with `--export_best`, after a kill at any moment
    or of a finished search, publishes nothing new while that version exists and the best trial is the same.

    Args:
        project_dir: the search's project directory.
        export_dir: export root; `saved_models/<basename of project_dir>` by default.
        log: callable for the message.

    Returns:
        `pathlib.Path` of the exported version.
    """
    from keras_resnet import export
    from keras_resnet.export import versions

    best = report.best_trial(project_dir)
    if best is None:
        raise SearchError(f"--export_best: no completed trial in {project_dir}.")
    model_dir = os.path.join(project_dir, f"trial_{best['trial']}", "model_dir")
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(
            f"--export_best: the best trial's model_dir {model_dir} is not on this machine (it ran on worker "
            f"{best.get('tuner') or '?'}); run `python -m keras_resnet.export --model_dir=<that dir>` there.")
    export_dir = export_dir or os.path.join("saved_models", os.path.basename(os.path.normpath(project_dir)))
    extra = {"tuning": {"project_dir": project_dir, "trial": best["trial"], OBJECTIVE: best[OBJECTIVE],
                        "hyperparameters": best["hyperparameters"]}}
    path, exported = versions.publish_once(
        os.path.join(project_dir, EXPORT_RECORD), export_dir, {"trial": best["trial"]},
        lambda version: export.export_from_model_dir(model_dir, export_dir, checkpoint="best", version=version,
                                                     model_card_extra=extra))
    done = "exported" if exported else "already exported"
    log(f"[tuning] {done} the best trial {best['trial']} ({OBJECTIVE} {best[OBJECTIVE]:.4f}) to {path}")
    return path


PROG = "python -m tuning.search"


def main(argv=None):
    """Runs the command line `argv` (without the program name; default `sys.argv[1:]`) in this process, on
    its own flag values; returns the exit code: 0, 2 for a bad flag or state file (one line), 4 incomplete,
    5 for a full disk."""
    from absl import flags

    from keras_resnet.cli_flags import read_command_line

    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    flag_values = define_flags(flags.FlagValues())
    code = read_command_line(flag_values, PROG, args,
                             f"usage: {PROG} --project_dir=DIR [--tuner=random|bayesian|hyperband] [--data=SOURCE] [flags]")
    if code is not None:
        return code
    try:
        return run(options_from_flags(flag_values), argv=args, log=functools.partial(print, flush=True))
    except (SearchError, ConfigError, kt_compat.CorruptStateError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_BAD_CONFIG
    except Exception as e:  # a full disk, a quota, a read-only file system: one line, exit 5
        if not faults.is_storage_error(e):
            raise
        print(f"error: {faults.describe_storage_error(e)}", file=sys.stderr, flush=True)
        return faults.EXIT_STORAGE


if __name__ == "__main__":
    from absl import app

    app.run(lambda _: sys.exit(main()), argv=[sys.argv[0]])  # absl's logging set up; the flags are main's own
