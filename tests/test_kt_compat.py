"""tuning.kt_compat: the keras-tuner private names it relies on still exist, keras-tuner is in the pinned
range, and a search killed at any of its named fault sites resumes without running a finished trial again.

The crash cases use a toy tuner (no training: a trial is one random integer), so each costs one process
start (killed through the fault harness, `faults.harness`, which checks that the site was reached); the
same invariants over the real search, with results.csv and the export, are in tests/test_faults_tuner.py.
"""

import json
import os
import re
import runpy
import sys

import pytest

from conftest import REPO
from faults.harness import Fault, check_fired, run_attempt

from keras_resnet.faults import parse_spec

kt = pytest.importorskip("keras_tuner")

from tuning import kt_compat  # noqa: E402

TOY_SEARCH = '''
import os, sys
import keras_tuner as kt
from tuning import kt_compat


class Oracle(kt_compat.CrashSafeOracleMixin, kt.oracles.RandomSearchOracle):
    pass


class HyperModel(kt.HyperModel):
    def build(self, hp):
        hp.Int("x", 0, 10**6)


class Tuner(kt.engine.base_tuner.BaseTuner):
    def run_trial(self, trial, **kwargs):
        with open(os.path.join(self.project_dir, "runs.log"), "a") as f:
            f.write(f"{os.getpid()} {trial.trial_id}\\n")
        return {"val_accuracy": trial.hyperparameters.get("x") / 10**6}

    def save(self):
        kt_compat.save_tuner_state(self)


def search(project_dir, max_trials):
    kt_compat.ensure_reload(project_dir, "tuner0")
    oracle = Oracle(objective=kt.Objective("val_accuracy", "max"), max_trials=max_trials, seed=1)
    tuner = Tuner(oracle, HyperModel(), directory=os.path.dirname(project_dir),
                  project_name=os.path.basename(project_dir))
    tuner.search(verbose=0)
    return tuner


if __name__ == "__main__":
    search(sys.argv[1], int(sys.argv[2]))
'''

# Per toy trial: trial_write x3 (create, update, end), oracle_write/oracle_saved x3 (create, end, tuner save),
# trial_completed x1, state_write x1. Each case is one moment of the first, second or last trial.
CRASH_CASES = [
    "tuner.trial_write@1",       # trial 0 created: its trial.json only a temp file
    "tuner.trial_write@2",       # trial 0's metrics (update_trial) not yet in place: it runs again
    "tuner.trial_write@3",       # trial 0's COMPLETED trial.json still a temp file: it runs again
    "tuner.trial_completed@1",   # trial 0 COMPLETED on disk, oracle.json still says running (issue 16)
    "tuner.oracle_write@2",      # the same, inside the oracle's write
    "tuner.oracle_saved@2",      # oracle.json saved by end_trial still lists trial 0 as ongoing
    "tuner.state_write@1",       # the tuner's own state file of the first trial not yet in place
    "tuner.oracle_write@4",      # trial 1's trial.json written, oracle.json never heard of it
    "tuner.trial_completed@2",   # trial 1 COMPLETED on disk only
    "tuner.oracle_saved@9",      # everything finished
]


def test_keras_tuner_is_in_the_pinned_and_tested_range():
    from packaging.specifiers import SpecifierSet

    text = open(os.path.join(REPO, "pyproject.toml")).read()
    pins = re.findall(r'"keras-tuner([^"]*)"', text)
    assert pins == [kt_compat.TESTED_RANGE], (
        f"pyproject.toml pins keras-tuner{pins}; tuning/kt_compat.py was tested with {kt_compat.TESTED_RANGE}")
    assert kt.__version__ in SpecifierSet(kt_compat.TESTED_RANGE), (
        f"keras-tuner {kt.__version__} is outside the tested range {kt_compat.TESTED_RANGE}: run this file, "
        "fix tuning/kt_compat.py for what moved, then widen TESTED_RANGE and the pin in pyproject.toml")


def test_the_private_names_kt_compat_uses_still_exist():
    missing = kt_compat.missing_private_names()
    assert not missing, "keras-tuner changed names that tuning/kt_compat.py uses:\n" + "\n".join(missing)


def test_tuner_state_path_is_where_base_tuner_keeps_it(tmp_path):
    namespace = runpy.run_path(write_toy(tmp_path), run_name="toy")
    tuner = namespace["search"](str(tmp_path / "p"), 1)
    # private: BaseTuner._get_tuner_fname is the file whose existence makes BaseTuner reload (ensure_reload).
    assert kt_compat.tuner_state_path(tuner.project_dir, tuner.tuner_id) == tuner._get_tuner_fname(), (
        "keras-tuner moved the tuner's state file; fix kt_compat.tuner_state_path")


def test_client_timeout_servicer_and_requeue(tmp_path, monkeypatch):
    from keras_tuner.src.distribute import oracle_client  # private: the constant set_client_timeout patches

    monkeypatch.setattr(oracle_client, "TIMEOUT", oracle_client.TIMEOUT)
    kt_compat.set_client_timeout(7.0)
    assert oracle_client.TIMEOUT == 7.0, "keras-tuner no longer reads oracle_client.TIMEOUT"
    oracle = toy_oracle(tmp_path)
    servicer = kt_compat.oracle_servicer(oracle)
    assert kt_compat.stop_triggered(servicer) is False
    trial = oracle.create_trial("worker7")
    kt_compat.requeue_lost_trial(oracle, "worker7", trial)
    assert oracle.ongoing_trials == {} and "worker7" not in oracle.tuner_ids
    assert oracle.create_trial("worker8").trial_id == trial.trial_id  # handed to the next worker
    assert json.load(open(tmp_path / "p" / "oracle.json"))["ongoing_trials"] == {"worker8": trial.trial_id}


def test_duplicate_proposal_is_replaced_or_stops(tmp_path):
    oracle = toy_oracle(tmp_path, values=(1,))
    trial = oracle.create_trial("tuner0")
    tried = {"status": "RUNNING", "values": dict(trial.hyperparameters.values)}
    assert kt_compat.replace_duplicate_proposal(oracle, tried) == {"status": "STOPPED", "values": None}
    fresh = {"status": "RUNNING", "values": {"x": 2}}
    assert kt_compat.replace_duplicate_proposal(oracle, fresh) is fresh


def test_corrupted_oracle_state_is_named_and_a_missing_one_rebuilt(tmp_path, capsys):
    namespace = runpy.run_path(write_toy(tmp_path), run_name="toy")
    project = tmp_path / "p"
    namespace["search"](str(project), 2)
    (project / "oracle.json").write_text('{"ongoing_trials": {')
    with pytest.raises(kt_compat.CorruptStateError, match=re.escape(str(project / "oracle.json"))):
        namespace["search"](str(project), 2)
    (project / "oracle.json").unlink()
    tuner = namespace["search"](str(project), 3)
    assert "oracle.json is missing; rebuilding the search state from 2 trial.json files" in capsys.readouterr().out
    assert sorted(tuner.oracle.end_order) == ["0", "1", "2"] and runs(project) == ["0", "1", "2"]
    (project / "trial_1" / "trial.json").write_text("{}")
    with pytest.raises(kt_compat.CorruptStateError, match="trial_1"):
        namespace["search"](str(project), 3)


@pytest.mark.parametrize("fault", CRASH_CASES)
def test_killed_toy_search_resumes_without_rerunning_finished_trials(fault, tmp_path):
    script, project = write_toy(tmp_path), tmp_path / "p"
    ((site, (n, action)),) = parse_spec(fault).items()
    check_fired(run_attempt([sys.executable, script, project, "3"], Fault(site, n, action), 0, tmp_path))
    finished = {p.parent.name[len("trial_"):] for p in project.glob("trial_*/trial.json")
                if json.loads(p.read_text())["status"] == "COMPLETED"}
    tuner = runpy.run_path(script, run_name="toy")["search"](str(project), 3)
    rerun = {trial_id for pid, trial_id in runs(project, with_pid=True) if pid == os.getpid()}
    assert not finished & rerun, f"after {fault}: finished trials {sorted(finished & rerun)} ran again"
    states = {p.parent.name: json.loads(p.read_text()) for p in project.glob("trial_*/trial.json")}
    assert sorted(states) == ["trial_0", "trial_1", "trial_2"]
    assert all(s["status"] == "COMPLETED" for s in states.values()), states
    assert len({json.dumps(s["hyperparameters"]["values"]) for s in states.values()}) == 3
    oracle = json.load(open(project / "oracle.json"))
    assert sorted(oracle["end_order"]) == ["0", "1", "2"] and oracle["ongoing_trials"] == {}
    assert sorted(tuner.oracle.start_order) == ["0", "1", "2"] and not tuner.oracle.remaining_trials()
    assert not list(project.rglob("*.tmp-*")), "a temp file of a killed write was left behind"


def write_toy(tmp_path):
    script = tmp_path / "toy_search.py"
    script.write_text(TOY_SEARCH)
    return str(script)


class ToyOracle(kt_compat.CrashSafeOracleMixin, kt.oracles.RandomSearchOracle):
    pass


def toy_oracle(tmp_path, values=None):
    hp = kt.HyperParameters()
    if values:
        hp.Choice("x", list(values))
    else:
        hp.Int("x", 0, 10**6)
    oracle = ToyOracle(objective=kt.Objective("val_accuracy", "max"), max_trials=5, seed=1, hyperparameters=hp)
    # private: BaseTuner's own wiring of an oracle to its project directory, without a tuner.
    oracle._set_project_dir(str(tmp_path), "p")
    return oracle


def runs(project, with_pid=False):
    path = project / "runs.log"
    lines = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
    return [(int(pid), trial_id) for pid, trial_id in lines] if with_pid else [trial_id for _, trial_id in lines]
