"""Soak record of a long training run: memory, CPU time per iteration and log sizes, once per epoch.

    python benchmarks/soak.py record --model_dir=RUN --record=RUN/soak.csv -- python -m trainers.cifar ... --model_dir=RUN
    python benchmarks/soak.py report --record=RUN/soak.csv --output=docs/results/resnet20-paper

`record` starts the trainer command as its child (same stdout and stderr; SIGTERM and SIGINT are passed on)
and, each time the run's `log.csv` gains a row (the end of an epoch: evaluation and checkpoints done),
appends one row to the record: the trainer's resident memory (`VmRSS` of /proc/PID/status), its CPU
seconds so far (user + system of /proc/PID/stat; CPU time, not wall time, which other jobs on the machine
skew) and the sizes of `log.csv` and of the TensorBoard files under `logs/`. A run that is cut short and
continued by the same command gets a new `segment` (its own process): CPU seconds per iteration are only
taken between rows of one segment, and the memory target is judged per segment.

`report` checks the targets of a soak test (issue 21) and draws `soak.png`:

- memory at the last epoch at most 100 MiB above epoch 5's (per segment that holds both; a segment that
  starts after epoch 5 is compared with its own first epoch);
- CPU seconds per iteration over the last 10 epochs at most 1.05x those of epochs 2-11;
- the run's logs (log.csv + TensorBoard) under 20 MiB.

The sampler reads only /proc and file sizes; it costs the run nothing measurable (one `stat` every 2 s).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time

FIELDS = ("segment", "pid", "epoch", "iteration", "unix_time", "vmrss_mib", "cpu_s", "log_csv_bytes",
          "tensorboard_bytes")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def vmrss_mib(pid):
    """Resident memory of process `pid` in MiB (`VmRSS`)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def cpu_seconds(pid):
    """User + system CPU seconds of process `pid` (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)


def tree_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def log_rows(model_dir):
    """The `(epoch, iteration)` of each row of `model_dir/log.csv` ([] while there is none)."""
    path = os.path.join(model_dir, "log.csv")
    try:
        with open(path, newline="") as f:
            return [(int(r["epoch"]), int(r["iteration"])) for r in csv.DictReader(f)]
    except (OSError, ValueError, KeyError):
        return []


def append_row(record, row):
    new = not os.path.exists(record)
    with open(record, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def record(args):
    if not args.command:
        sys.exit("error: give the trainer command after `--`.")
    os.makedirs(os.path.dirname(os.path.abspath(args.record)), exist_ok=True)
    child = subprocess.Popen(args.command)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _frame: child.send_signal(s))
    segment = time.strftime("%Y-%m-%dT%H:%M:%S")
    seen = len(log_rows(args.model_dir))
    while child.poll() is None:
        time.sleep(args.interval)
        rows = log_rows(args.model_dir)
        if len(rows) < seen:  # the resumed trainer cut log.csv back to its backup
            seen = len(rows)
        if len(rows) > seen and child.poll() is None:
            try:
                rss, cpu = vmrss_mib(child.pid), cpu_seconds(child.pid)
            except (OSError, RuntimeError):
                break
            epoch, iteration = rows[-1]
            append_row(args.record, {
                "segment": segment, "pid": child.pid, "epoch": epoch, "iteration": iteration,
                "unix_time": round(time.time(), 1), "vmrss_mib": round(rss, 1), "cpu_s": round(cpu, 2),
                "log_csv_bytes": os.path.getsize(os.path.join(args.model_dir, "log.csv")),
                "tensorboard_bytes": tree_bytes(os.path.join(args.model_dir, "logs"))})
            seen = len(rows)
    return child.wait()


def read_record(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key in FIELDS[1:]:
            r[key] = float(r[key])
    return rows


def per_iteration_cpu(rows):
    """`{epoch: CPU seconds per iteration}` from consecutive rows of the same segment."""
    out = {}
    for previous, row in zip(rows, rows[1:]):
        if row["segment"] == previous["segment"] and row["iteration"] > previous["iteration"]:
            out[int(row["epoch"])] = (row["cpu_s"] - previous["cpu_s"]) / (row["iteration"] - previous["iteration"])
    return out


def judge(rows):
    """The soak targets of `rows` (a record): a dict of measured values and pass/fail per target."""
    epochs = sorted({int(r["epoch"]) for r in rows})
    cpu = per_iteration_cpu(rows)
    last_epoch = epochs[-1]
    early = [cpu[e] for e in range(1, 11) if e in cpu]  # epochs 2-11 (0-based 1..10)
    late = [cpu[e] for e in range(last_epoch - 9, last_epoch + 1) if e in cpu]
    cpu_ratio = (sum(late) / len(late)) / (sum(early) / len(early)) if early and late else None
    memory = []
    for segment in dict.fromkeys(r["segment"] for r in rows):
        seg = [r for r in rows if r["segment"] == segment]
        base = next((r for r in seg if int(r["epoch"]) == 4), seg[0])  # epoch 5, or the segment's first
        memory.append({"segment": segment, "base_epoch": int(base["epoch"]) + 1, "base_mib": base["vmrss_mib"],
                       "last_epoch": int(seg[-1]["epoch"]) + 1, "last_mib": seg[-1]["vmrss_mib"],
                       "growth_mib": seg[-1]["vmrss_mib"] - base["vmrss_mib"]})
    logs_mib = (rows[-1]["log_csv_bytes"] + rows[-1]["tensorboard_bytes"]) / 2**20
    return {"cpu_segments": segment_cpu(rows, cpu), **{
        "epochs_recorded": len(epochs), "last_epoch": last_epoch + 1, "segments": len(memory),
        "memory": memory, "memory_ok": all(m["growth_mib"] <= 100 for m in memory),
        "cpu_s_per_iteration_epochs_2_11": sum(early) / len(early) if early else None,
        "cpu_s_per_iteration_last_10": sum(late) / len(late) if late else None,
        "cpu_ratio": cpu_ratio, "cpu_ok": cpu_ratio is not None and cpu_ratio <= 1.05,
        "logs_mib": logs_mib, "logs_ok": logs_mib < 20}}


def segment_cpu(rows, cpu, window=10):
    """Per segment of at least `2 * window` timed epochs: CPU seconds per iteration over its first `window`
    timed epochs and its last `window`, and their ratio.

    One process's own trend: a leak or a slowdown of the trainer shows there whatever the machine does
    between segments (a resumed segment may run on a busier or slower host than the first, which the
    run-wide ratio of `judge` cannot tell from a slowdown of the trainer).
    """
    out = []
    for segment in dict.fromkeys(r["segment"] for r in rows):
        timed = [cpu[int(r["epoch"])] for r in rows if r["segment"] == segment and int(r["epoch"]) in cpu]
        if len(timed) < 2 * window:
            continue
        first, last = sum(timed[:window]) / window, sum(timed[-window:]) / window
        epochs = [int(r["epoch"]) + 1 for r in rows if r["segment"] == segment]
        out.append({"segment": segment, "epochs": [epochs[0], epochs[-1]], "first_10": first, "last_10": last,
                    "ratio": last / first})
    return out


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cpu = per_iteration_cpu(rows)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(14, 4))
    for segment in dict.fromkeys(r["segment"] for r in rows):
        seg = [r for r in rows if r["segment"] == segment]
        a.plot([r["epoch"] + 1 for r in seg], [r["vmrss_mib"] for r in seg], ".-", label=f"segment {segment}")
    a.set(xlabel="epoch", ylabel="VmRSS (MiB)", title="trainer resident memory")
    a.legend(fontsize=7)
    b.plot([e + 1 for e in sorted(cpu)], [cpu[e] * 1000 for e in sorted(cpu)], ".")
    b.set(xlabel="epoch", ylabel="CPU ms per iteration", title="CPU time per iteration (eval included)")
    c.plot([r["epoch"] + 1 for r in rows], [(r["log_csv_bytes"] + r["tensorboard_bytes"]) / 2**20 for r in rows])
    c.set(xlabel="epoch", ylabel="MiB", title="log.csv + TensorBoard files")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def report(args):
    rows = read_record(args.record)
    result = judge(rows)
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "soak.json"), "w") as f:
        json.dump(result, f, indent=1)
    plot(rows, os.path.join(args.output, "soak.png"))
    print(json.dumps(result, indent=1))
    return 0 if result["memory_ok"] and result["cpu_ok"] and result["logs_ok"] else 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    rec = sub.add_parser("record", help="run a trainer command and record it once per epoch")
    rec.add_argument("--model_dir", required=True, help="the trainer's --model_dir")
    rec.add_argument("--record", required=True, help="CSV the samples are appended to")
    rec.add_argument("--interval", type=float, default=2.0, help="seconds between looks at log.csv")
    rec.add_argument("command", nargs=argparse.REMAINDER, help="-- the trainer command")
    rep = sub.add_parser("report", help="judge the soak targets, write soak.json and soak.png")
    rep.add_argument("--record", required=True)
    rep.add_argument("--output", required=True, help="directory for soak.json and soak.png")
    args = parser.parse_args(argv)
    if args.mode == "record":
        args.command = args.command[1:] if args.command[:1] == ["--"] else args.command
        return record(args)
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
