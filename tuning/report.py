"""Results of a search, read from its project directory: CSV, Markdown, best hyperparameters and a plot.

Reads keras-tuner's `trial_*/trial.json` files only (not the oracle), so it works on any finished or
interrupted search, whichever tuner ran it:

    python -m tuning.report --project_dir=runs/tune20

writes into the project directory:

- `results.csv` and `results.md`: one row per trial, best first (completed trials by validation accuracy,
  then the others): trial id, worker, status, the hyperparameters, `val_accuracy`, `iterations`,
  `wall_time_s`. The warm-up length is blank for schedules without warm-up (conditional hyperparameter).
- `best_hyperparameters.json`: the best trial's id, hyperparameters and validation accuracy.
- `results.png`: validation accuracy per trial, grouped by shortcut option.
"""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import sys

from keras_resnet import atomic

OBJECTIVE = "val_accuracy"
HP_ORDER = ("model", "shortcut", "schedule", "warmup_steps", "learning_rate", "weight_decay",
            "zero_init_residual", "batch_size")
METRICS = (OBJECTIVE, "iterations", "wall_time_s")


def _metric(trial, name):
    if not trial.metrics.exists(name):
        return None
    value = trial.metrics.get_best_value(name) if name == OBJECTIVE else trial.metrics.get_last_value(name)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def load_trials(project_dir):
    """The trials of `project_dir` as dicts (trial, tuner, status, hyperparameters, metrics), best first."""
    from keras_tuner.engine.trial import Trial

    rows = []
    for path in glob.glob(os.path.join(project_dir, "trial_*", "trial.json")):
        trial = Trial.load(path)
        hp = trial.hyperparameters
        values = {}
        for name, value in hp.values.items():
            if name.startswith("tuner/"):
                continue
            try:
                active = hp.is_active(name)
            except (KeyError, ValueError):
                active = True
            values[name] = value if active else None
        tuner_file = os.path.join(os.path.dirname(path), "tuner_id")
        rows.append({
            "trial": trial.trial_id, "tuner": open(tuner_file).read().strip() if os.path.exists(tuner_file) else "",
            "status": str(trial.status), "hyperparameters": values,
            **{name: _metric(trial, name) for name in METRICS},
            "diverged": bool(_metric(trial, "diverged")),
        })

    def key(row):
        done = row["status"] == "COMPLETED" and row[OBJECTIVE] is not None
        return (0 if done else 1, -(row[OBJECTIVE] or 0.0), row["trial"])

    return sorted(rows, key=key)


def best_trial(project_dir):
    """The best completed trial's row, or None."""
    rows = [r for r in load_trials(project_dir) if r["status"] == "COMPLETED" and r[OBJECTIVE] is not None]
    return rows[0] if rows else None


def _hp_names(rows):
    seen = {name for row in rows for name in row["hyperparameters"]}
    return [n for n in HP_ORDER if n in seen] + sorted(seen - set(HP_ORDER))


def _fmt(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_reports(project_dir):
    """Writes results.csv, results.md, best_hyperparameters.json and results.png; returns the rows."""
    rows = load_trials(project_dir)
    names = _hp_names(rows)
    columns = ["trial", "tuner", "status", *names, *METRICS]
    flat = [{"trial": r["trial"], "tuner": r["tuner"], "status": r["status"] + (" (diverged)" if r["diverged"] else ""),
             **{n: r["hyperparameters"].get(n) for n in names}, **{m: r[m] for m in METRICS}} for r in rows]
    _atomic_write(os.path.join(project_dir, "results.csv"), lambda f: _write_csv(f, columns, flat))
    _atomic_write(os.path.join(project_dir, "results.md"), lambda f: f.write(markdown_table(columns, flat)))
    best = next((r for r in rows if r["status"] == "COMPLETED" and r[OBJECTIVE] is not None), None)
    if best is not None:
        payload = {"trial": best["trial"], OBJECTIVE: best[OBJECTIVE], "iterations": int(best["iterations"] or 0),
                   "hyperparameters": {k: v for k, v in best["hyperparameters"].items() if v is not None},
                   "model_dir": os.path.join(os.path.abspath(project_dir), f"trial_{best['trial']}", "model_dir")}
        _atomic_write(os.path.join(project_dir, "best_hyperparameters.json"),
                      lambda f: json.dump(payload, f, indent=1))
    plot(rows, os.path.join(project_dir, "results.png"))
    return rows


def _write_csv(f, columns, flat):
    writer = csv.DictWriter(f, fieldnames=columns)
    writer.writeheader()
    for row in flat:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})


def markdown_table(columns, flat):
    """A Markdown table of the rows (validation accuracy in %, wall time in s)."""
    heads = {OBJECTIVE: "val accuracy %", "wall_time_s": "wall time s"}
    lines = ["| " + " | ".join(heads.get(c, c) for c in columns) + " |",
             "| " + " | ".join("---" for _ in columns) + " |"]
    for row in flat:
        cells = []
        for c in columns:
            v = row[c]
            if c == OBJECTIVE and v is not None:
                cells.append(f"{100 * v:.2f}")
            elif c in ("iterations",) and v is not None:
                cells.append(str(int(v)))
            elif c == "wall_time_s" and v is not None:
                cells.append(f"{v:.0f}")
            else:
                cells.append(_fmt(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows, png_path):
    """Validation accuracy per trial grouped by shortcut option (left: by trial, right: by option)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r[OBJECTIVE] is not None]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    options = sorted({r["hyperparameters"].get("shortcut") or "?" for r in done}) or ["A", "B", "C"]
    for i, option in enumerate(options):
        group = sorted((r for r in done if (r["hyperparameters"].get("shortcut") or "?") == option),
                       key=lambda r: r["trial"])
        xs = [int(r["trial"]) for r in group]
        ys = [100 * r[OBJECTIVE] for r in group]
        ax1.scatter(xs, ys, color=f"C{i}", label=f"shortcut {option}")
        ax2.scatter([i + 0.08 * ((j % 5) - 2) for j in range(len(ys))], ys, color=f"C{i}")
        if ys:
            ax2.hlines(max(ys), i - 0.3, i + 0.3, color=f"C{i}")  # the best of each option
    ax1.set_xlabel("trial")
    ax1.set_ylabel("validation accuracy (%)")
    ax1.set_title("validation accuracy per trial")
    ax1.grid(alpha=0.3)
    ax1.legend()
    ax2.set_xticks(range(len(options)), [f"option {o}" for o in options])
    ax2.set_title("by shortcut option")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    try:
        with atomic.replacing(png_path, atomic.temporary_name(png_path, keep_suffix=True)) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)


def _atomic_write(path, write):
    # The fault site "tuner.results_write": the temp file is complete, `path` is still the previous one. A
    # failure removes the temp file (a full disk raises `keras_resnet.faults.StorageError` naming `path`).
    with atomic.replacing(path, moment="tuner.results_write") as tmp:
        with open(tmp, "w", newline="") as f:
            write(f)


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project_dir", required=True)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.project_dir):
        print(f"error: --project_dir {args.project_dir!r} is not a directory.", file=sys.stderr)
        return 2
    rows = write_reports(args.project_dir)
    print(f"{len(rows)} trials -> {os.path.join(args.project_dir, 'results.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
