"""The training results committed under docs/results/ (issue 21) are the ones the README and REPRODUCTION show.

A number in the README's "Results" section or in docs/REPRODUCTION.md's tables must be the committed
`summary.json`'s, and the committed `config.json` must hold the recipe the text says was run.
"""

import csv
import functools
import json
from pathlib import Path

import pytest

from conftest import REPO

RESULTS = Path(REPO) / "docs" / "results"
README = Path(REPO) / "README.md"
REPRODUCTION = Path(REPO) / "docs" / "REPRODUCTION.md"


def read(run, name):
    path = RESULTS / run / name
    return json.loads(path.read_text()) if name.endswith(".json") else list(csv.DictReader(path.open()))


def table_row(markdown_path, label):
    """The cells of the one table row of `markdown_path` whose first cell is `label`."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in markdown_path.read_text().splitlines() if line.strip().startswith("| ")]
    found = [row for row in rows if row[0] == label]
    assert len(found) == 1, f"{markdown_path.name}: {len(found)} rows labelled {label!r}"
    return found[0]


def percent(fraction):
    return f"{100 * fraction:.2f}%"


def test_the_paper_run_holds_the_papers_recipe_and_finished_it():
    config, summary = read("resnet20-paper", "config.json"), read("resnet20-paper", "summary.json")
    recipe = config["recipe_fields"]
    assert (config["model"], config["train_steps"], config["batch_size"], config["validation_split"]) == (
        "resnet20", 64_000, 128, 5000)
    assert (recipe["train_steps"], recipe["batch_size"], recipe["boundaries"], recipe["weight_decay"],
            recipe["learning_rate"], recipe["momentum"], recipe["decay_rate"]) == (
        64_000, 128, [32_000, 48_000], 1e-4, 0.1, 0.9, 0.1)
    assert summary["iterations"] == 64_000 and summary["model"] == "resnet20"
    log = read("resnet20-paper", "log.csv")
    assert [int(row["epoch"]) for row in log] == list(range(183))  # each epoch once, across every resume
    assert int(log[-1]["iteration"]) == 64_000 and float(log[-1]["test_error"]) == summary["test_error"]
    assert (RESULTS / "resnet20-paper" / "curves.png").stat().st_size > 10_000


def test_readme_and_reproduction_show_the_committed_numbers_of_the_paper_run():
    summary = read("resnet20-paper", "summary.json")
    for path in (README, REPRODUCTION):
        row = table_row(path, "ResNet-20, the paper's recipe (64,000 iterations)")
        assert row[1] == percent(summary["test_error"]), (path.name, row)
        assert row[2] == percent(summary["test_top5_error"]), (path.name, row)
        assert f"{summary['wall_time_s'] / 3600:.1f} h" in row and f"{summary['images_per_second']:.0f}" in row, row


PACKAGE_KEYS = ("test_error", "test_top5_error", "val_error", "train_error", "wall_time_s", "images_per_second")
TORCH_KEYS = ("final_test_error", "final_test_top5_error", "final_val_error", "final_train_error",
              "train_wall_time_s", "images_per_second")


@pytest.mark.parametrize("label, run, keys", [
    ("keras-resnet, 4,800 iterations", "resnet20-4800", PACKAGE_KEYS),
    ("PyTorch (akamaster's ResNet-20), 4,800 iterations", "torch-resnet20-4800", TORCH_KEYS),
], ids=["keras-resnet", "pytorch"])
def test_reproduction_shows_the_like_for_like_comparison(label, run, keys):
    """Both sides of the comparison: top-1, top-5, validation and last-epoch training error, training wall
    time and images/s, as their committed summaries say, after the same 4,800 iterations."""
    summary = read(run, "summary.json")
    row = table_row(REPRODUCTION, label)
    *errors, seconds, speed = (summary[key] for key in keys)
    assert row[1:5] == [percent(error) for error in errors], row
    assert row[5:] == [f"{seconds / 60:.0f} min", f"{speed:.0f}"], row
    iterations = summary.get("iterations", summary.get("train_steps"))
    assert iterations == 4800, summary


def soak_module():
    """`benchmarks/soak.py`, the record's reader and judge."""
    import sys

    sys.path.insert(0, str(Path(REPO) / "benchmarks"))
    import soak

    return soak


def test_the_soak_verdict_committed_is_the_records():
    soak = soak_module()
    record = RESULTS / "resnet20-paper" / "soak.csv"
    verdict = read("resnet20-paper", "soak.json")
    assert soak.judge(soak.read_record(str(record))) == verdict


def test_the_one_host_soak_record_meets_every_target_and_is_the_one_reproduction_shows():
    """Issue 21, point 2: a whole 46-epoch ResNet-20 run (Fig. 6 at 16k) in one process on one host."""
    soak = soak_module()
    rows = soak.read_record(str(FIG6 / "resnet20" / "soak.csv"))
    verdict = read("fig6-16k/resnet20", "soak.json")
    assert soak.judge(rows) == verdict
    assert verdict["memory_ok"] and verdict["cpu_ok"] and verdict["logs_ok"]
    assert (verdict["segments"], verdict["epochs_recorded"]) == (1, 46)
    log = read("fig6-16k/resnet20", "log.csv")
    assert [int(r["iteration"]) for r in rows] == [int(r["iteration"]) for r in log]  # a row per logged epoch
    text = REPRODUCTION.read_text()
    assert (f"{verdict['cpu_ratio']:.3f}x ({verdict['cpu_s_per_iteration_last_10']:.3f} against "
            f"{verdict['cpu_s_per_iteration_epochs_2_11']:.3f} s)") in text
    assert f"{verdict['memory'][0]['growth_mib']:.1f} MiB" in text


FIG6 = RESULTS / "fig6-16k"
FIG6_RUNS = sorted(path.name for path in FIG6.iterdir() if (path / "summary.json").is_file())
FIG6_LABELS = {"plain20": "plain-20", "plain56": "plain-56", "resnet20": "ResNet-20", "resnet56": "ResNet-56"}


def test_the_fig6_runs_finished_the_same_recipe_at_16000_iterations():
    """Issue 22: every committed run of the 16k Fig. 6 holds the identical recipe (the paper's, compressed to
    16,000 iterations: boundaries at 50% and 75%) and finished it, each epoch logged once across resumes."""
    assert FIG6_RUNS and set(FIG6_RUNS) <= set(FIG6_LABELS), FIG6_RUNS
    recipes = set()
    for run in FIG6_RUNS:
        config, summary = read(f"fig6-16k/{run}", "config.json"), read(f"fig6-16k/{run}", "summary.json")
        recipe = config["recipe_fields"]
        assert (config["model"], config["batch_size"], config["validation_split"]) == (run, 128, 5000), run
        assert (recipe["train_steps"], recipe["boundaries"], recipe["learning_rate"], recipe["weight_decay"],
                recipe["momentum"]) == (16_000, [8_000, 12_000], 0.1, 1e-4, 0.9), run
        recipes.add(json.dumps({key: value for key, value in config.items() if key not in ("model", "model_dir")},
                               sort_keys=True))
        log = read(f"fig6-16k/{run}", "log.csv")
        assert [int(row["epoch"]) for row in log] == list(range(46)), run
        assert int(log[-1]["iteration"]) == summary["iterations"] == 16_000, run
        assert float(log[-1]["test_error"]) == summary["test_error"], run
        # Issue 22, point 2: the cross-entropy is logged apart from the L2 term and ends well below its start.
        first, last = (float(log[i]["cross_entropy"]) for i in (0, -1))
        assert last < 0.8 * first, (run, first, last)
        assert float(log[-1]["loss"]) == pytest.approx(last + float(log[-1]["regularization"]), rel=1e-6), run
        assert (FIG6 / run / "curves.png").stat().st_size > 10_000, run
    assert len(recipes) == 1, "the runs differ in more than their model"


@pytest.mark.parametrize("run", FIG6_RUNS)
def test_the_fig6_table_shows_each_committed_run(run):
    summary = read(f"fig6-16k/{run}", "summary.json")
    row = table_row(FIG6 / "README.md", FIG6_LABELS[run])
    assert row[2] == f"{percent(summary['test_error'])} (top-5 {percent(summary['test_top5_error'])})", row
    assert row[3] == percent(summary["train_error"]), row
    assert row[4] == (f"{percent(summary['val_error'])} ({percent(summary['best_validation_error'])} at "
                      f"{summary['best_iteration']:,})"), row
    seconds = summary["wall_time_s"]
    assert row[5].startswith(f"{seconds / 60:.0f} min ({seconds:,.0f} s)"), row


FIG6_REPORT_LOSSES = "\nWhat the training loss is made of (first epochs and the last):\n\n"


@functools.cache
def fig6_results():
    """The committed runs as `keras_resnet.analysis.train_runs` returns them to the degradation trainer (read
    once: every test of the report takes the same, and none changes it)."""
    from keras_resnet import analysis

    results = {}
    for run in FIG6_RUNS:
        curves = analysis.read_log(str(FIG6 / run))
        results[run] = dict(read(f"fig6-16k/{run}", "summary.json"), curves=curves,
                            error=float(curves["error"][-1]))
    return results


def test_the_fig6_report_is_what_the_four_committed_runs_give():
    """Issue 22, point 3: `degradation.md`, as the trainer wrote it when the fourth run finished, is the report
    of the committed logs and summaries (final errors, one verdict per half of the claim, the loss's parts)."""
    from keras_resnet import analysis

    assert FIG6_RUNS == ["plain20", "plain56", "resnet20", "resnet56"]
    results = fig6_results()
    table = analysis.degradation_table(results)
    losses = analysis.loss_table({run: result["curves"] for run, result in results.items()})
    assert (FIG6 / "degradation.md").read_text() == table + FIG6_REPORT_LOSSES + losses
    assert (FIG6 / "degradation.png").stat().st_size > 20_000


@pytest.mark.parametrize("document", [FIG6 / "README.md", REPRODUCTION, README],
                         ids=lambda path: str(path.relative_to(REPO)))
def test_the_fig6_verdicts_shown_are_the_reports(document):
    """Each half of the claim is stated with the report's own sentence wherever the 16k run is shown."""
    from keras_resnet import analysis

    verdicts = [line for line in analysis.degradation_table(fig6_results()).splitlines() if line.startswith("- ")]
    assert [line.split(":")[0] for line in verdicts] == ["- Plain networks", "- ResNets"], verdicts
    text = " ".join(document.read_text().split())
    for verdict in verdicts:
        assert verdict in text, (document.name, verdict)
    assert "degradation.png)" in text, document.name


@pytest.mark.parametrize("document, suffix", [(README, ", 16k"), (REPRODUCTION, "")],
                         ids=["README.md", "REPRODUCTION.md"])
def test_the_fig6_tables_show_the_committed_runs(document, suffix):
    for run in FIG6_RUNS:
        summary = read(f"fig6-16k/{run}", "summary.json")
        row = table_row(document, f"{FIG6_LABELS[run]}{suffix}")
        assert row[1:3] == [percent(summary["train_error"]), percent(summary["test_error"])], row
