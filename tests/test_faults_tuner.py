"""The search under the fault harness (issue 16): `python -m tuning.search` killed and out of disk space
at its sites, restarted with the same command each time; with no timer.

Invariants after every attempt: no trial that was COMPLETED before the attempt runs again (its
`summary.json` is untouched and the attempt never reports it), `results.csv` lists each trial once, and
`--export_best` publishes the best trial once, however often the search is killed (also after the export
itself). The oracle's own windows (toy tuner, ten (site, n) cases) are in tests/test_kt_compat.py.
"""

import csv
import json
import re
import sys

import pytest

from conftest import make_image_folder
from faults.harness import enospc, kill, run_with_faults
from faults.invariants import Loaded, check_versions

pytest.importorskip("tensorflow")
pytest.importorskip("keras_tuner")

TRIALS = 2
PLAN = [
    enospc("backup.write"),         # disk full in trial 0's first backup: exit 5, the trial not marked failed
    kill("tuner.trial_completed"),  # trial 0's trial.json says COMPLETED, the oracle's state not yet saved
    enospc("tuner.results_write"),  # disk full writing results.csv: exit 5, no temp file
    kill("tuner.exported"),         # the best trial exported; the rerun with --export_best must not again
]


def trial_states(project):
    return {p.parent.name[len("trial_"):]: json.loads(p.read_text())["status"]
            for p in project.glob("trial_*/trial.json")}


def summary_stamps(project):
    return {p.parent.parent.name: p.stat().st_mtime_ns for p in project.glob("trial_*/model_dir/summary.json")}


def test_killed_and_out_of_space_search_never_reruns_a_trial_and_exports_once(tmp_path):
    data = make_image_folder(tmp_path / "data", train=96, test=24)
    project, export_root = tmp_path / "search", tmp_path / "export"
    command = [sys.executable, "-m", "tuning.search", "--model=resnet8", "--batch_size=16", "--validation_split=24",
               "--verbose=0", f"--data={data}", f"--project_dir={project}", "--tuner=random",
               f"--max_trials={TRIALS}", "--budget_iterations=4", "--steps_per_epoch=2", "--export_best",
               f"--export_dir={export_root}"]
    loaded, seen = Loaded(), {"completed": set(), "stamps": {}}

    def check(attempt):
        ran = set(re.findall(r"\[tuning\] trial (\w+) \(", attempt.stdout))
        assert not ran & seen["completed"], f"{attempt.fault}: completed trials {ran & seen['completed']} ran again"
        stamps = summary_stamps(project)
        for trial in seen["completed"]:
            assert stamps[f"trial_{trial}"] == seen["stamps"][f"trial_{trial}"], f"trial {trial} retrained"
        states = trial_states(project)
        assert "FAILED" not in states.values(), f"{attempt.fault}: a trial was marked failed: {states}"
        seen["completed"] = {t for t, status in states.items() if status == "COMPLETED"}
        seen["stamps"] = stamps
        if (project / "results.csv").exists():
            with open(project / "results.csv") as f:
                listed = [row["trial"] for row in csv.DictReader(f)]
            assert len(listed) == len(set(listed)) == len(states), f"results.csv lists {listed}, trials {states}"
        versions = check_versions(export_root, loaded)
        assert len(versions) <= 1, f"--export_best published {versions}"
        if attempt.fault is None:
            assert sorted(states) == [str(i) for i in range(TRIALS)] and set(states.values()) == {"COMPLETED"}
            assert list(versions) == [1] and "already exported the best trial" in attempt.stdout

    attempts = run_with_faults(command, PLAN, workdir=tmp_path, watched=[project, export_root], check=check)
    assert "Reloading Tuner" in attempts[1].stdout
    assert "cannot write" in attempts[0].stderr and "backup" in attempts[0].stderr
    best = json.loads((project / "best_hyperparameters.json").read_text())
    card = json.loads((export_root / "1" / "assets" / "model_card.json").read_text())
    assert card["tuning"]["trial"] == best["trial"]
    assert json.loads((project / "export_best.json").read_text())["version"] == 1
