"""The training results committed under docs/results/ (issue 21) are the ones the README and REPRODUCTION show.

A number in the README's "Results" section or in docs/REPRODUCTION.md's tables must be the committed
`summary.json`'s, and the committed `config.json` must hold the recipe the text says was run.
"""

import csv
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


def test_the_soak_verdict_committed_is_the_records():
    import sys

    sys.path.insert(0, str(Path(REPO) / "benchmarks"))
    import soak

    record = RESULTS / "resnet20-paper" / "soak.csv"
    verdict = read("resnet20-paper", "soak.json")
    assert soak.judge(soak.read_record(str(record))) == verdict
