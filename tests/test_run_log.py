"""What a run writes as it goes: atomic CSV/JSON, TensorBoard scalars cut back on resume, the curves plot."""

import glob
import json
import os
import sys

import numpy as np
import pytest

from keras_resnet import run_log

from conftest import scalar_steps


def row(iteration):
    return {"epoch": iteration // 2 - 1, "iteration": iteration, "error": 0.5, "test_error": 0.6,
            "wall_time_s": iteration}


def test_csv_and_json_round_trip_atomically(tmp_path):
    path = tmp_path / "log.csv"
    assert run_log.read_csv(path) == []
    run_log.rewrite_csv(path, [row(2), row(4)])
    rows = run_log.read_csv(path)
    assert [r["iteration"] for r in rows] == ["2", "4"] and list(rows[0]) == list(run_log.CSV_FIELDS)
    run_log.write_json(tmp_path / "a.json", {"n": np.int64(3), "x": np.float32(0.5), "m": np.zeros(2)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"n": 3, "x": 0.5, "m": [0.0, 0.0]}
    assert sorted(os.listdir(tmp_path)) == ["a.json", "log.csv"]  # no temporary file left behind


def test_resume_cuts_csv_and_tensorboard_back_to_the_backup(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tensorboard")
    run_log.rewrite_csv(tmp_path / "log.csv", [row(i) for i in (2, 4, 6, 8)])
    first = run_log.TensorBoard(tmp_path / "logs", enabled=True)
    for step in range(1, 9):  # the killed process got to iteration 8, its last backup was at 4
        first.scalars("train", step, {"loss": 10.0 + step})
    first.scalars("test", 8, {"error": 0.9})
    first.flush()
    del first

    kept = run_log.truncate_history(tmp_path, 4)
    assert [int(r["iteration"]) for r in kept] == [2, 4]
    assert [int(r["iteration"]) for r in run_log.read_csv(tmp_path / "log.csv")] == [2, 4]
    assert scalar_steps(tmp_path / "logs" / "train", "loss") == [(s, 10.0 + s) for s in range(1, 5)]
    assert scalar_steps(tmp_path / "logs" / "test", "error") == []

    second = run_log.TensorBoard(tmp_path / "logs", enabled=True)  # the restarted process
    for step in range(5, 9):
        second.scalars("train", step, {"loss": 20.0 + step})
    second.flush()
    steps = scalar_steps(tmp_path / "logs" / "train", "loss")
    assert [s for s, _ in steps] == list(range(1, 9))  # continuous: no gap, no repeated step
    assert [v for _, v in steps] == [11.0, 12.0, 13.0, 14.0, 25.0, 26.0, 27.0, 28.0]
    assert not glob.glob(str(tmp_path / "logs" / "**" / "*.tmp*"), recursive=True)


def test_truncating_at_the_last_step_changes_nothing(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("tensorboard")
    writer = run_log.TensorBoard(tmp_path / "logs", enabled=True)
    writer.scalars("train", 3, {"loss": 1.0})
    writer.flush()
    files = sorted(glob.glob(str(tmp_path / "logs" / "**" / "events.*"), recursive=True))
    before = [os.stat(f).st_mtime_ns for f in files]
    assert run_log.truncate_event_files(tmp_path / "logs", 3) == 0
    assert [os.stat(f).st_mtime_ns for f in files] == before
    assert run_log.truncate_event_files(tmp_path / "logs", 2) == 1
    assert scalar_steps(tmp_path / "logs" / "train", "loss") == []


def test_plot_curves_writes_a_png_and_skips_without_matplotlib(tmp_path, monkeypatch, caplog):
    pytest.importorskip("matplotlib")
    run_log.rewrite_csv(tmp_path / "log.csv", [row(i) for i in (2, 4, 6)])
    png = tmp_path / "curves.png"
    assert run_log.plot_curves(tmp_path / "log.csv", str(png), title="resnet8") == str(png)
    from PIL import Image

    assert Image.open(png).size == (600, 400)
    png.unlink()
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what a machine without matplotlib sees
    assert run_log.plot_curves(tmp_path / "log.csv", str(png)) is None
    assert not png.exists() and "matplotlib is not installed" in caplog.text
