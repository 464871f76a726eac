"""`benchmarks/soak.py`: the soak record of a long training run (issue 21) and its verdict on the targets."""

import csv
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "soak.py")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import soak  # noqa: E402

# A stand-in trainer: writes one log.csv row per "epoch", then waits until the sampler has recorded it, so the
# record holds every epoch whatever the machine's speed (no timing in the test). Everything the sampler reads
# for an epoch (the TensorBoard bytes) is written before the row it waits for, or it could read too early.
FAKE_TRAINER = r'''
import csv, os, sys, time
model_dir, record, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(os.path.join(model_dir, "logs"), exist_ok=True)
rows, hold = [], []
for epoch in range(epochs):
    hold.append(bytearray(8 << 20))  # 8 MiB more resident memory each epoch
    for i in range(0, len(hold[-1]), 4096):
        hold[-1][i] = 1
    with open(os.path.join(model_dir, "logs", "events"), "ab") as f:  # before the row the sampler waits for
        f.write(b"x" * 1000)
    rows.append({"epoch": epoch, "iteration": 10 * (epoch + 1)})
    with open(os.path.join(model_dir, "log.csv.tmp"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "iteration"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(os.path.join(model_dir, "log.csv.tmp"), os.path.join(model_dir, "log.csv"))
    for _ in range(6000):  # at most 10 minutes
        if os.path.exists(record) and sum(1 for _ in open(record)) - 1 >= epoch + 1:
            break
        time.sleep(0.1)
'''


def test_record_follows_the_trainer_epoch_by_epoch_and_report_judges_it(tmp_path):
    model_dir, record = tmp_path / "run", tmp_path / "soak.csv"
    trainer = tmp_path / "fake_trainer.py"
    trainer.write_text(FAKE_TRAINER)
    out = subprocess.run([sys.executable, SCRIPT, "record", f"--model_dir={model_dir}", f"--record={record}",
                          "--interval=0.05", "--", sys.executable, str(trainer), str(model_dir), str(record), "12"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    with open(record, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(12))
    assert [int(r["iteration"]) for r in rows] == [10 * (e + 1) for e in range(12)]
    assert len({r["segment"] for r in rows}) == 1 and len({r["pid"] for r in rows}) == 1
    memory = [float(r["vmrss_mib"]) for r in rows]
    assert memory[-1] - memory[0] > 80  # 11 x 8 MiB allocated between the first and the last epoch
    assert [int(r["tensorboard_bytes"]) for r in rows] == [1000 * (e + 1) for e in range(12)]

    report = subprocess.run([sys.executable, SCRIPT, "report", f"--record={record}", f"--output={tmp_path / 'out'}"],
                            capture_output=True, text=True, timeout=300)
    verdict = json.loads((tmp_path / "out" / "soak.json").read_text())
    assert (tmp_path / "out" / "soak.png").stat().st_size > 1000
    assert verdict["epochs_recorded"] == 12 and verdict["segments"] == 1 and verdict["logs_ok"]
    assert verdict["memory"][0]["base_epoch"] == 5 and verdict["memory"][0]["last_epoch"] == 12
    assert verdict["memory"][0]["growth_mib"] == pytest.approx(memory[-1] - memory[4])
    assert report.returncode == (0 if verdict["memory_ok"] and verdict["cpu_ok"] else 1)


def row(segment, epoch, rss, cpu, logs=1000):
    return {"segment": segment, "pid": 1.0, "epoch": float(epoch), "iteration": 100.0 * (epoch + 1), "unix_time": 0.0,
            "vmrss_mib": rss, "cpu_s": cpu, "log_csv_bytes": float(logs), "tensorboard_bytes": 0.0}


def test_judge_takes_cpu_per_iteration_within_segments_and_memory_per_segment():
    # Segment a: epochs 0-11 at 1 s per iteration, memory flat; segment b (resumed): epochs 12-23, 1.1 s per
    # iteration, 150 MiB more by its last epoch than at its first.
    rows = [row("a", e, 1000.0, 100.0 * (e + 1)) for e in range(12)]
    rows += [row("b", e, 900.0 + (150.0 if e == 23 else 0.0), 5000.0 + 110.0 * (e - 11)) for e in range(12, 24)]
    verdict = soak.judge(rows)
    assert verdict["cpu_s_per_iteration_epochs_2_11"] == pytest.approx(1.0)
    assert verdict["cpu_s_per_iteration_last_10"] == pytest.approx(1.1)  # epoch 12's first row has no previous
    assert verdict["cpu_ratio"] == pytest.approx(1.1) and not verdict["cpu_ok"]
    assert [(m["segment"], m["base_epoch"], m["growth_mib"]) for m in verdict["memory"]] == [("a", 5, 0.0),
                                                                                               ("b", 13, 150.0)]
    assert not verdict["memory_ok"] and verdict["logs_ok"]


def test_each_long_segment_gets_its_own_cpu_trend():
    # Segment a: 25 epochs at 1 s per iteration; segment b (resumed on a slower host): 22 epochs at 1.3 s,
    # rising to 1.4 s over its last 10. The run-wide ratio mixes the hosts; each segment's own trend does not.
    rows = [row("a", e, 1000.0, 100.0 * (e + 1)) for e in range(25)]
    cpu, b = 10000.0, []
    for e in range(25, 47):
        cpu += 100.0 * (1.4 if e >= 37 else 1.3)
        b.append(row("b", e, 1000.0, cpu))
    verdict = soak.judge(rows + b)
    (a_trend, b_trend) = verdict["cpu_segments"]
    assert (a_trend["segment"], a_trend["epochs"], a_trend["ratio"]) == ("a", [1, 25], pytest.approx(1.0))
    assert (b_trend["segment"], b_trend["epochs"]) == ("b", [26, 47])
    assert b_trend["first_10"] == pytest.approx(1.3) and b_trend["last_10"] == pytest.approx(1.4)
    assert verdict["cpu_ratio"] == pytest.approx(1.4)  # the run-wide ratio, as the issue states the target
    assert soak.judge(rows[:15])["cpu_segments"] == []  # too short to have a trend of its own
