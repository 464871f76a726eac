"""Hyperparameter search (issue 6): the space, a tiny search with each tuner, resume after SIGKILL, a chief
with local workers, a dead worker, the results files and the export of the best trial."""

import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, env, make_image_folder, read_json

pytest.importorskip("tensorflow")
kt = pytest.importorskip("keras_tuner")

from tuning import hypermodel as hm  # noqa: E402
from tuning import distributed, report, search  # noqa: E402

TINY = ["--model=resnet8", "--batch_size=32", "--validation_split=48", "--verbose=0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    # 240 training images (48 held out for the objective, stratified) and 60 test images, 16x16, 3 classes.
    return make_image_folder(tmp_path_factory.mktemp("data"), train=240, test=60, size=16)


def run_search(*args, timeout=240, **env_extra):
    return subprocess.run([sys.executable, "-m", "tuning.search", *args], cwd=REPO, env=env(**env_extra),
                          capture_output=True, text=True, timeout=timeout)


def csv_rows(project):
    with open(project / "results.csv") as f:
        return list(csv.DictReader(f))


def check_results(project, trials):
    rows = csv_rows(project)
    assert len(rows) == trials and all(r["status"] == "COMPLETED" for r in rows), rows
    accuracies = [float(r["val_accuracy"]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True)  # best first
    for r in rows:
        assert r["shortcut"] in ("A", "B", "C") and r["schedule"] in hm.recipes.SCHEDULES
        assert (r["warmup_steps"] != "") == r["schedule"].startswith("warmup")  # conditional
        assert 0.01 <= float(r["learning_rate"]) <= 0.4 and float(r["weight_decay"]) in hm.WEIGHT_DECAYS
        assert int(float(r["iterations"])) > 0 and float(r["wall_time_s"]) > 0
    md = (project / "results.md").read_text().splitlines()
    assert len(md) == 2 + trials and "val accuracy %" in md[0] and "wall time s" in md[0]
    best = read_json(project / "best_hyperparameters.json")
    assert best["trial"] == rows[0]["trial"] and best["val_accuracy"] == pytest.approx(accuracies[0])
    assert best["hyperparameters"]["shortcut"] == rows[0]["shortcut"]
    assert (project / "results.png").stat().st_size > 1000
    return rows


# ----------------------------------------------------------------------------------------------------------
# The space.


def test_space_registers_hyperparameters_and_conditions():
    model = hm.ResNetHyperModel("resnet8", budget_iterations=1000, classes=3, input_shape=(16, 16, 3),
                                tune_batch_size=True, depths=(20, 32))
    hp = kt.HyperParameters()
    model.declare_hyperparameters(hp)
    space = {p.name: p for p in hp.space}
    assert set(space) == {"model", "shortcut", "schedule", "warmup_steps", "learning_rate", "weight_decay",
                          "zero_init_residual", "batch_size"}
    assert list(space["shortcut"].values) == ["A", "B", "C"]
    assert list(space["schedule"].values) == ["step", "cosine", "warmup_step", "warmup_cosine"]
    lr = space["learning_rate"]
    assert (lr.min_value, lr.max_value, lr.sampling) == (0.01, 0.4, "log")
    assert list(space["weight_decay"].values) == [5e-5, 1e-4, 2e-4]
    assert isinstance(space["zero_init_residual"], kt.engine.hyperparameters.Boolean)
    assert list(space["batch_size"].values) == [64, 128, 256]
    assert list(space["model"].values) == ["resnet20", "resnet32"]
    warmup = space["warmup_steps"]
    assert (warmup.min_value, warmup.max_value, warmup.sampling) == (10, 100, "log")  # 1%..10% of the budget
    (condition,) = warmup.conditions
    assert condition.name == "schedule" and list(condition.values) == ["warmup_step", "warmup_cosine"]
    for name in set(space) - {"warmup_steps"}:
        assert not space[name].conditions, name

    # The values map onto the trainer's config and recipe (one word per idea).
    hp.values.update(schedule="step", learning_rate=0.2, model="resnet20", batch_size=64, shortcut="B")
    assert not hp.is_active("warmup_steps")
    config = model.train_config(hp, "/tmp/unused")
    assert (config.model, config.shortcut, config.schedule, config.warmup_steps) == ("resnet20", "B", "step", None)
    assert (config.batch_size, config.train_steps, config.boundaries) == (64, 1000, (500, 750))
    recipe = model.recipe(hp)
    assert recipe.boundaries == (500, 750) and recipe.learning_rate == pytest.approx(0.2)
    hp.values.update(schedule="warmup_cosine", warmup_steps=40)
    assert hp.is_active("warmup_steps")
    recipe = model.recipe(hp)
    assert (recipe.schedule, recipe.warmup, recipe.warmup_steps) == ("cosine", "linear", 40)

    # build(): the package's own builder with the chosen shortcut and regulariser, compiled with the recipe.
    hp = kt.HyperParameters()
    hp.values.update(shortcut="C")
    net = hm.ResNetHyperModel("resnet8", budget_iterations=100, classes=3, input_shape=(16, 16, 3)).build(hp)
    assert net.output_shape == (None, 3) and net.optimizer is not None
    assert sum("shortcut_proj" in layer.name for layer in net.layers) > 0

    with pytest.raises(ValueError, match="residual"):
        hm.ResNetHyperModel("plain20")


def test_the_block_form_is_searched_beside_the_shortcut():
    """`tune_block_form`: `block_form` chooses the original unit or the pre-activation one (He et al. 2016b);
    `zero_init_residual` is asked of the original unit only, and a pre-activation trial trains
    `preact_resnet<depth>` with its recipe (the 400-iteration warm-up of the paper's appendix)."""
    model = hm.ResNetHyperModel("resnet8", budget_iterations=1000, classes=3, input_shape=(16, 16, 3),
                                tune_block_form=True)
    hp = kt.HyperParameters()
    model.declare_hyperparameters(hp)
    space = {p.name: p for p in hp.space}
    assert list(space["block_form"].values) == ["original", "preactivation"] and not space["block_form"].conditions
    (condition,) = space["zero_init_residual"].conditions
    assert condition.name == "block_form" and list(condition.values) == ["original"]
    hp.values.update(block_form="preactivation", shortcut="B", schedule="step", zero_init_residual=True)
    assert not hp.is_active("zero_init_residual")
    config = model.train_config(hp, "/tmp/unused")
    assert (config.model, config.shortcut, config.zero_init_residual) == ("preact_resnet8", "B", False)
    recipe = model.recipe(hp)
    assert (recipe.warmup, recipe.warmup_steps, recipe.boundaries) == ("constant", 400, (500, 750))
    net = model.build(hp)
    assert net.name == "preact_resnet8" and net.get_layer("post_bn") is not None
    hp.values.update(block_form="original")
    assert model.train_config(hp, "/tmp/unused").model == "resnet8"
    with pytest.raises(ValueError, match="`tune_block_form` needs a CIFAR network of the original form"):
        hm.ResNetHyperModel("resnet50", tune_block_form=True)


def test_bad_options_fail_fast_naming_the_flag(tmp_path):
    with pytest.raises(search.SearchError, match="--tuner"):
        search.SearchOptions(project_dir=str(tmp_path), tuner="grid").validate()
    with pytest.raises(search.SearchError, match="--validation_split"):
        search.SearchOptions(project_dir=str(tmp_path), validation_split=0).validate()
    with pytest.raises(search.SearchError, match="--model"):
        search.SearchOptions(project_dir=str(tmp_path), model="plain20").validate()
    search.SearchOptions(project_dir=str(tmp_path), tuner="bayesian").validate()  # installed by the test extra


def test_bayesian_without_scikit_learn_names_the_extra_before_any_work(tmp_path, monkeypatch):
    """A user's install without the `bayesian` extra gets one line naming the flag and the extra."""
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` fails, as when it is not installed
    with pytest.raises(search.SearchError) as raised:
        search.SearchOptions(project_dir=str(tmp_path / "p"), tuner="bayesian").validate()
    assert str(raised.value) == ("--tuner=bayesian needs scikit-learn and SciPy (sklearn not installed): "
                                 "pip install 'keras-resnet[bayesian]'; or use --tuner=random|hyperband.")
    assert not (tmp_path / "p").exists()
    search.SearchOptions(project_dir=str(tmp_path / "p"), tuner="random").validate()


def test_roles_name_the_missing_variable_and_workers_get_the_chiefs_flags():
    with pytest.raises(search.SearchError, match="KERASTUNER_ORACLE_PORT"):
        search.resolve_role(search.SearchOptions(project_dir=".", role="worker"), {"KERASTUNER_ORACLE_IP": "x"})
    with pytest.raises(search.SearchError, match="KERASTUNER_TUNER_ID"):
        search.resolve_role(search.SearchOptions(project_dir=".", role="worker"),
                            {"KERASTUNER_ORACLE_IP": "x", "KERASTUNER_ORACLE_PORT": "1"})
    assert search.resolve_role(search.SearchOptions(project_dir=".")) == "local"
    argv = ["--model=resnet8", "--local_workers=2", "--overwrite", "--export_best", "--project_dir=p"]
    assert distributed.worker_argv(argv) == ["--model=resnet8", "--project_dir=p", "--role=worker"]


# ----------------------------------------------------------------------------------------------------------
# A tiny search with each tuner (in process).


@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_tiny_search_with_each_tuner(tuner, data, tmp_path):
    project = tmp_path / "search"
    options = search.SearchOptions(
        project_dir=str(project), tuner=tuner, model="resnet8", data=data, batch_size=32, validation_split=48,
        max_trials=4 if tuner == "hyperband" else 2, budget_iterations=9 if tuner == "hyperband" else 8,
        steps_per_epoch=None if tuner == "hyperband" else 4, hyperband_max_units=3, num_initial_points=1,
        verbose=0)
    assert search.run(options) == 0
    rows = check_results(project, options.max_trials)
    for row in rows:  # every trial left a model_dir of the CONTRACTS layout; the objective is validation
        run = project / f"trial_{row['trial']}" / "model_dir"
        config, summary = read_json(run / "config.json"), read_json(run / "summary.json")
        assert config["validation_split"] == 48 and config["shortcut"] == row["shortcut"]
        assert 1 - summary["best_validation_error"] == pytest.approx(float(row["val_accuracy"]))
        assert (run / "checkpoints" / "best.keras").exists()
    if tuner == "random":  # the reports can be rewritten from the directory alone
        (project / "results.csv").unlink()
        assert report.main([f"--project_dir={project}"]) == 0 and csv_rows(project) == rows
    if tuner == "hyperband":
        # 3 trials at one unit (3 iterations), the best promoted to 3 units, resuming from its parent's run.
        trials = {r["trial"]: r for r in rows}
        assert sorted(int(float(r["iterations"])) for r in rows) == [3, 3, 3, 9]
        child = next(t for t, r in trials.items() if int(float(r["iterations"])) == 9)
        values = read_json(project / f"trial_{child}" / "trial.json")["hyperparameters"]["values"]
        parent = values["tuner/trial_id"]
        assert trials[parent]["schedule"] == trials[child]["schedule"]
        log = list(csv.DictReader(open(project / f"trial_{child}" / "model_dir" / "log.csv")))
        assert [int(r["iteration"]) for r in log] == [3, 6, 9]  # iterations 1-3 are the parent's
        config = read_json(project / f"trial_{child}" / "model_dir" / "config.json")
        assert config["recipe_fields"]["boundaries"] == [4, 7]  # 50% / 75% of the full budget of 9 (rounded)


# ----------------------------------------------------------------------------------------------------------
# Resume after SIGKILL; export of the best trial.


def test_killed_search_resumes_without_rerunning_finished_trials(data, tmp_path):
    project, export = tmp_path / "search", tmp_path / "export"
    args = [*TINY, f"--data={data}", f"--project_dir={project}", "--tuner=random", "--max_trials=3",
            "--budget_iterations=8", "--steps_per_epoch=4"]
    # Killed (SIGKILL, by itself) the moment trial_0/trial.json says COMPLETED, before the oracle's state is
    # saved: the window in which a rerun used to start over.
    killed = run_search(*args, KERAS_RESNET_FAULT="tuner.trial_completed@1")
    assert killed.returncode == -9, killed.stdout[-2000:] + killed.stderr[-3000:]
    finished = [p.parent.name for p in project.glob("trial_*/trial.json")
                if json.loads(p.read_text()).get("status") == "COMPLETED"]
    assert finished == ["trial_0"]
    stamps = {t: os.path.getmtime(project / t / "model_dir" / "summary.json") for t in finished}

    out = run_search(*args, "--export_best", f"--export_dir={export}")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Reloading Tuner" in out.stdout
    assert out.stdout.count("[tuning] trial ") == 3 - len(finished)  # finished trials are not run again
    assert "[tuning] trial 0 " not in out.stdout
    for t, stamp in stamps.items():
        assert os.path.getmtime(project / t / "model_dir" / "summary.json") == stamp
    rows = check_results(project, 3)
    versions = [p for p in export.iterdir() if (p / "saved_model.pb").exists()]
    assert len(versions) == 1
    card = read_json(versions[0] / "assets" / "model_card.json")
    assert card["tuning"]["trial"] == rows[0]["trial"]


# ----------------------------------------------------------------------------------------------------------
# Distributed: a chief and two workers on localhost; a dead worker.


def test_chief_and_two_local_workers_run_the_requested_trials(data, tmp_path):
    project = tmp_path / "search"
    out = run_search(*TINY, f"--data={data}", f"--project_dir={project}", "--tuner=random", "--max_trials=3",
                     "--budget_iterations=8", "--steps_per_epoch=4", "--local_workers=2", "--worker_timeout=60",
                     timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    rows = check_results(project, 3)
    assert {r["tuner"] for r in rows} <= {"worker0", "worker1"}  # the chief serves, the workers train
    for i in range(2):
        assert "no more trials" in (project / "workers" / f"worker{i}.log").read_text()


def test_dead_worker_does_not_hang_the_chief(data, tmp_path):
    import grpc
    from keras_tuner.src import protos  # private: the fake worker speaks keras-tuner's gRPC (no public client)

    project, port = tmp_path / "search", search.free_port()
    address = dict(KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port)
    with open(tmp_path / "chief.err", "w") as err:
        chief = subprocess.Popen(
            [sys.executable, "-m", "tuning.search", *TINY, f"--data={data}", f"--project_dir={project}",
             "--max_trials=2", "--budget_iterations=8", "--role=chief", "--worker_timeout=3"],
            cwd=REPO, env=env(KERASTUNER_TUNER_ID="chief", **address), stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        # Once the chief says it listens (its --worker_timeout counts from then), a worker takes a trial and
        # dies without a word. Connecting before that raced gRPC's reconnect backoff against the timeout.
        stdout = ""
        for line in chief.stdout:
            stdout += line
            if "oracle serving on" in line:
                break
        assert "oracle serving on" in stdout, stdout + (tmp_path / "chief.err").read_text()[-3000:]
        stub = protos.get_service_grpc().OracleStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        trial = stub.CreateTrial(protos.get_service().CreateTrialRequest(tuner_id="worker7"), wait_for_ready=True,
                                 timeout=120).trial
        assert trial.trial_id == "0"
        chief.wait(timeout=60)
        stdout += chief.stdout.read()
    finally:
        if chief.poll() is None:
            chief.kill()
    assert chief.returncode == search.EXIT_INCOMPLETE
    assert "worker 'worker7' has not reported on trial 0" in stdout and "presumed dead" in stdout
    assert "no worker has contacted the chief" in stdout and "0 of 2 trials finished" in stdout
    # The lost trial went back to the queue: the same command with live workers would run it again.
    assert read_json(project / "oracle.json")["ongoing_trials"] == {}
