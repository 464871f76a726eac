"""Told to stop, a search stops cleanly and never reruns a trial from scratch; two searches never share a
`--project_dir` (issue 24). Through the real CLI (`python -m tuning.search`), with no timer: the test signals
the search once it has reported (through the fault-site log) that a trial is in the middle of an epoch, or
the search signals itself at a site.
"""

import csv
import json
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, env, make_image_folder
from faults.harness import HANG_GUARD_S, read_hits, run_attempt, stop
from test_stop_request import wait_for_site

from keras_resnet.faults import FAULT_ENV, LOG_ENV
from keras_resnet.stop_request import EXIT_STOPPED

pytest.importorskip("keras_tuner")

TRIALS = 2


def trial_states(project):
    return {p.parent.name[len("trial_"):]: json.loads(p.read_text())["status"]
            for p in project.glob("trial_*/trial.json")}


def test_a_stopped_search_resumes_its_trial_and_a_second_search_is_refused(tmp_path):
    data = make_image_folder(tmp_path / "data", train=96, test=24)
    project, log = tmp_path / "search", tmp_path / "sites.log"
    command = [sys.executable, "-m", "tuning.search", "--model=resnet8", "--batch_size=16", "--validation_split=24",
               "--verbose=1", f"--data={data}", f"--project_dir={project}", "--tuner=random",
               f"--max_trials={TRIALS}", "--budget_iterations=8", "--steps_per_epoch=2"]

    # 1. SIGTERM from outside while trial 0 is in the middle of its second epoch.
    first = subprocess.Popen(command, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env(**{FAULT_ENV: "train.epoch_middle@2:wait", LOG_ENV: log}))
    wait_for_site(first, log, "train.epoch_middle 2")
    second = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert second.returncode == 2, second.stderr[-3000:]
    (line,) = second.stderr.strip().splitlines()
    assert f"--project_dir={project} is in use by another process" in line and f"pid {first.pid} " in line, line
    first.send_signal(signal.SIGTERM)
    stdout, stderr = first.communicate(timeout=HANG_GUARD_S)
    assert first.returncode == EXIT_STOPPED, stderr[-3000:]
    assert "Traceback" not in stderr and re.search(
        r"^stopped trial 0 at iteration 4 on SIGTERM; rerun the same command to continue$", stderr, re.M), stderr
    assert trial_states(project) == {"0": "RUNNING"}  # neither failed nor completed

    # 2. Asked again (by itself) once trial 0 has finished: no new trial is started.
    between = run_attempt(command, stop("tuner.state_saved"), 1, tmp_path, [project])
    assert between.returncode == EXIT_STOPPED, between.tail()
    assert "Resuming resnet8" in between.stdout and "at iteration 4" in between.stdout  # not from scratch
    assert "stopped before trial creation (tuner0) on SIGTERM" in between.stderr, between.tail()
    assert trial_states(project) == {"0": "COMPLETED"}

    # 3. The same command finishes the search; each trial once in results.csv.
    done = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[tuning] trial 0 (" not in done.stdout  # the completed trial is not run again
    assert trial_states(project) == {"0": "COMPLETED", "1": "COMPLETED"}
    with open(project / "results.csv") as f:
        assert sorted(row["trial"] for row in csv.DictReader(f)) == ["0", "1"]


def test_the_chief_passes_a_stop_on_to_its_local_workers_and_waits_for_their_backups(tmp_path):
    data = make_image_folder(tmp_path / "data", train=96, test=24)
    project, log = tmp_path / "search", tmp_path / "sites.log"
    command = [sys.executable, "-m", "tuning.search", "--model=resnet8", "--batch_size=16", "--validation_split=24",
               "--verbose=1", f"--data={data}", f"--project_dir={project}", "--tuner=random", "--max_trials=3",
               "--budget_iterations=8", "--steps_per_epoch=4", "--local_workers=2", "--worker_timeout=120"]
    # Each worker waits in the middle of its first epoch (the fault log is theirs: the chief trains nothing);
    # once both do, the test asks the chief to stop.
    chief = subprocess.Popen(command, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=env(**{FAULT_ENV: "train.epoch_middle:wait", LOG_ENV: log}))
    deadline = time.monotonic() + HANG_GUARD_S  # a hang guard only
    while read_hits(log).count(("train.epoch_middle", 1)) < 2 and time.monotonic() < deadline:
        assert chief.poll() is None, chief.communicate()[1][-3000:]
        time.sleep(0.05)
    chief.send_signal(signal.SIGTERM)
    stdout, stderr = chief.communicate(timeout=HANG_GUARD_S)
    assert chief.returncode == EXIT_STOPPED, stderr[-3000:]
    assert "stopped the search (its workers backed up their trials) on SIGTERM; rerun the same command" in stderr
    for i in range(2):
        worker_log = (project / "workers" / f"worker{i}.log").read_text()
        assert re.search(r"^stopped trial \d+ at iteration 4 on SIGTERM", worker_log, re.M), worker_log[-3000:]
    assert sorted(trial_states(project).values()) == ["RUNNING", "RUNNING"]

    done = subprocess.run(command, cwd=REPO, env=env(), capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(trial_states(project).values()) == ["COMPLETED"] * 3
    logs = "".join((project / "workers" / f"worker{i}.log").read_text() for i in range(2))
    assert logs.count("Resuming resnet8") == 2  # both stopped trials resumed from their backups
    with open(project / "results.csv") as f:
        assert sorted(row["trial"] for row in csv.DictReader(f)) == ["0", "1", "2"]
