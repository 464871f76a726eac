"""Told to stop, a trainer stops cleanly; two trainers never share a run (issue 24).

Through the real CLI (`python -m trainers.cifar`: resnet8, 8x8 images, the device
input, 3 epochs of 12 iterations, 4 iterations per compiled call, a host read every 4): SIGTERM or SIGINT makes it finish the
iterations dispatched, back up at the iteration reached (mid-epoch too), print one line and exit 4; the same
command then ends with the weights, `log.csv` and TensorBoard steps of an uninterrupted run, bit for bit.
The signals are sent by the test once the process has reported a fault site (it waits there: no timer), or
by the process itself at a site (`KERAS_RESNET_FAULT=site:sigterm`). A second trainer on the same
directory is refused; the lock of a SIGKILLed one is taken over.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, env, make_image_folder, run_cli
from faults.harness import (HANG_GUARD_S, check_stopped, kill, read_hits, run_attempt, run_with_faults, snapshot,
                            stop, temporaries)
from faults.invariants import Loaded, TrainerRun, assert_same_weights, check_training_run

from keras_resnet.faults import FAULT_ENV, LOG_ENV
from keras_resnet.run_lock import RunLock, RunLocked
from keras_resnet.stop_request import EXIT_STOPPED, StopRequest, Stopped

TRAIN_STEPS, STEPS_PER_EPOCH, LOG_EVERY = 36, 12, 5  # per-step scalars at 5, 10, ...: never an epoch's end
TIMING_COLUMNS = ("images_per_second", "wall_time_s")


def test_stop_request_turns_signals_into_a_request_and_puts_the_handlers_back():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop_request:
        assert stop_request.requested is None
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal while stopping changes nothing
        with StopRequest() as inner:  # a trial inside a search shares the search's request
            assert inner is stop_request
        assert (stop_request.requested, stop_request.repeated) == ("SIGINT", 1)
        error = stop_request.stopped(17)
    assert signal.getsignal(signal.SIGTERM) is before
    assert isinstance(error, Stopped) and (error.iteration, error.signal_name) == (17, "SIGINT")
    assert str(error) == "stopped at iteration 17 on SIGINT; rerun the same command to continue"


def test_run_lock_refuses_a_second_holder_and_is_taken_over_after_its_holder_died(tmp_path):
    directory = tmp_path / "run"
    with RunLock(directory) as first:
        assert first.took_over is None
        with pytest.raises(RunLocked) as refused:
            RunLock(directory).acquire()
        assert f"--model_dir={directory} is in use by another process (host " in str(refused.value)
        assert f"pid {os.getpid()} since " in str(refused.value)
    assert (directory / ".lock").read_text() == ""  # released: nobody holds it
    died = subprocess.run([sys.executable, "-c", (
        "import os, sys\nfrom keras_resnet.run_lock import RunLock\n"
        "RunLock(sys.argv[1]).acquire()\nos.kill(os.getpid(), 9)\n"), str(directory)], cwd=REPO, env=env())
    assert died.returncode == -signal.SIGKILL
    with RunLock(directory) as taker:
        assert taker.took_over.startswith("host ") and "pid " in taker.took_over and str(os.getpid()) not in taker.took_over


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data"), train=96, test=24)


def trainer_args(data, model_dir, *extra):
    return ["--model=resnet8", f"--data={data}", f"--model_dir={model_dir}", "--batch_size=8",
            f"--train_steps={TRAIN_STEPS}", f"--steps_per_epoch={STEPS_PER_EPOCH}", "--seed=3", "--deterministic",
            "--input=device", "--steps_per_call=4", "--sync_every=4", "--verbose=2", f"--log_every={LOG_EVERY}",
            *extra]


def command(data, model_dir, *extra):
    return [sys.executable, "-m", "trainers.cifar", *trainer_args(data, model_dir, *extra)]


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted run: its model_dir."""
    model_dir = tmp_path_factory.mktemp("reference") / "run"
    out = run_cli(trainer_args(data, model_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    return model_dir


@pytest.fixture(scope="module")
def loaded():
    return Loaded()


def log_rows(model_dir):
    """log.csv without the timing columns."""
    with open(model_dir / "log.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def assert_same_run(model_dir, reference, loaded, what):
    """The run in `model_dir` finished with the reference's weights and log.csv, each step once in TensorBoard."""
    check_training_run(TrainerRun(model_dir, TRAIN_STEPS, STEPS_PER_EPOCH, LOG_EVERY), loaded, finished=True)
    assert_same_weights(loaded.keras(model_dir / "checkpoints" / "latest.keras"),
                        loaded.keras(reference / "checkpoints" / "latest.keras"), what)
    assert log_rows(model_dir) == log_rows(reference), what


def wait_for_site(process, log, site):
    """Blocks until the process's fault log shows `site` (it then waits there for a signal); no timer decides."""
    deadline = time.monotonic() + HANG_GUARD_S  # a hang guard only: the site is reached in seconds
    while (site not in [f"{s} {n}" for s, n in read_hits(log)]) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        time.sleep(0.05)


def test_sigterm_mid_epoch_backs_up_there_and_the_same_command_ends_as_an_uninterrupted_run(
        data, reference, loaded, tmp_path):
    model_dir, log = tmp_path / "run", tmp_path / "sites.log"
    first = subprocess.Popen([str(part) for part in command(data, model_dir)], cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env(**{FAULT_ENV: "train.epoch_middle@2:wait", LOG_ENV: log}))
    wait_for_site(first, log, "train.epoch_middle 2")  # the middle of epoch 2, waiting for a signal

    # Meanwhile the same command again: refused before it writes anything, naming the holder.
    before = snapshot(model_dir)
    second = run_cli(trainer_args(data, model_dir))
    assert second.returncode == 2, second.stderr[-3000:]
    (line,) = second.stderr.strip().splitlines()
    assert f"--model_dir={model_dir} is in use by another process" in line and f"pid {first.pid} " in line, line
    assert snapshot(model_dir) == before

    first.send_signal(signal.SIGTERM)
    stdout, stderr = first.communicate(timeout=HANG_GUARD_S)
    attempt = type("Attempt", (), dict(returncode=first.returncode, stderr=stderr, fault=None, index=0,
                                       tail=lambda self: stderr[-3000:]))()
    iteration = check_stopped(attempt, [model_dir])
    assert iteration % STEPS_PER_EPOCH and STEPS_PER_EPOCH < iteration < TRAIN_STEPS, iteration
    metadata = json.loads((model_dir / "backup" / "training_metadata.json").read_text())
    assert (metadata["iteration"], metadata["epoch"], metadata["batch"]) == (iteration, 1, iteration - STEPS_PER_EPOCH)
    check_training_run(TrainerRun(model_dir, TRAIN_STEPS, STEPS_PER_EPOCH, LOG_EVERY), loaded)
    assert (model_dir / ".lock").read_text() == ""  # released on the way out

    again = run_cli(trainer_args(data, model_dir))
    assert again.returncode == 0, again.stderr[-3000:]
    assert (f"Resuming resnet8 from {model_dir / 'backup'} at iteration {iteration} (epoch 2, "
            f"{iteration - STEPS_PER_EPOCH} of its {STEPS_PER_EPOCH} iterations done)") in again.stdout
    assert_same_run(model_dir, reference, loaded, "stopped by SIGTERM mid-epoch vs uninterrupted")


def test_stopped_at_each_site_and_killed_once_the_same_command_ends_as_an_uninterrupted_run(
        data, reference, loaded, tmp_path):
    model_dir = tmp_path / "run"
    plan = [
        stop("train.start"),                      # nothing trained yet: it stops at iteration 0
        stop("train.epoch_middle", 1, "sigint"),  # Ctrl-C in the middle of epoch 1: backed up at 8
        stop("backup.write"),                     # asked inside epoch 1's backup: it completes, stop at 12
        stop("csv.write"),                        # asked while writing epoch 2's files: they complete, stop at 24
        kill("train.epoch_middle"),               # SIGKILL in epoch 3: the lock is left behind, taken over next
    ]

    def check(attempt):
        if attempt.index and attempt.index - 1 < len(plan) and plan[attempt.index - 1].action == "kill":
            assert "warning: took over the lock of --model_dir=" in attempt.stderr, attempt.tail()
        check_training_run(TrainerRun(model_dir, TRAIN_STEPS, STEPS_PER_EPOCH, LOG_EVERY), loaded,
                           finished=attempt.fault is None)

    attempts = run_with_faults(command(data, model_dir), plan, workdir=tmp_path, watched=[model_dir], check=check)
    stopped = [check_stopped(a, [model_dir]) for a in attempts[:4]]
    assert stopped == [0, 8, 12, 24], stopped
    assert_same_run(model_dir, reference, loaded, "stopped at every site vs uninterrupted")


def test_a_second_signal_while_stopping_still_completes_the_backup(data, reference, loaded, tmp_path):
    model_dir = tmp_path / "run"
    both = run_attempt(command(data, model_dir), None, 0, tmp_path, [model_dir],
                       extra_env={FAULT_ENV: "train.epoch_middle@2:sigterm,backup.write@2:sigint"})
    iteration = check_stopped(both, [model_dir])
    assert "on SIGTERM" in both.stderr and iteration % STEPS_PER_EPOCH, both.tail()
    again = run_cli(trainer_args(data, model_dir))
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_run(model_dir, reference, loaded, "a second signal while stopping")


def test_backup_every_bounds_what_a_sigkill_loses_and_resumes_exactly(data, reference, loaded, tmp_path):
    model_dir = tmp_path / "run"
    # Backups at 4, 8, 12 (epoch 1's end), 16; the kill comes at iteration 18, before the next one at 20.
    killed = run_attempt(command(data, model_dir, "--backup_every=4"), kill("train.epoch_middle", 2), 0, tmp_path,
                         [model_dir])
    assert killed.returncode == -signal.SIGKILL, killed.tail()
    metadata = json.loads((model_dir / "backup" / "training_metadata.json").read_text())
    assert metadata["iteration"] == 16 and metadata["partial_epoch"]["batches"] == 4, metadata
    again = run_cli(trainer_args(data, model_dir, "--backup_every=4"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "at iteration 16 (epoch 2, 4 of its 12 iterations done)" in again.stdout
    assert_same_run(model_dir, reference, loaded, "--backup_every=4, killed mid-epoch")
    assert not temporaries(model_dir)
