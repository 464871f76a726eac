"""The results of a run: settings and environment, cells, ratios against the issue's targets, table and JSON.

A ratio is always "ours as fast as the peer = 1.0, faster > 1": `ours / peer` for images/s,
`peer / ours` for latency in ms. Targets (issue 15): `train()` >= 1.0x PyTorch channels_last; serving at
batch 128 (32 for ResNet-50) >= 1.0x ONNX Runtime on the PyTorch model; batch-1 latency within 2x of it
(ratio >= 0.5); our ONNX graph in ONNX Runtime >= 1.0x the PyTorch model's ONNX export. With
`--latency-threads`, the batch-1 rows also report our SavedModel at that thread count against ONNX Runtime
at `--threads` (`ours_lt/ort_torch`) and at that thread count (`ours_lt/ort_torch_lt`).

Example:
    >>> speed_ratio({"median": 200.0}, {"median": 100.0}, "train")
    2.0
    >>> speed_ratio({"median": 2.0}, {"median": 1.0}, "latency")
    0.5
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys

from benchmarks.cpu.settings import COLUMN_TITLES, thread_settings

PACKAGES = ("tensorflow", "keras", "torch", "onnxruntime", "onnx", "jax", "numpy")
REQUIRED = ("torch", "onnxruntime", "onnx", "openvino", "ai_edge_litert")
RATIOS = (("ours", "torch_nchw"), ("ours", "torch_cl"), ("ours", "ort_torch"), ("ours", "ort_ours"),
          ("ort_ours", "ort_torch"), ("ort_ours", "ort_keras"), ("ours_jax", "torch_cl"), ("ours_lt", "ort_torch"),
          ("ours_lt", "ort_torch_lt"), ("ov_ours", "ov_torch"), ("ov_ours_f32", "ov_torch_f32"),
          ("ort_ours_int8", "ort_torch"), ("ort_ours_int8", "ov_torch"), ("ov_ours_int8", "ov_torch"),
          ("litert_ours", "ort_torch"))
OUR_COLUMNS = ("ours", "ort_ours", "ov_ours", "ov_ours_f32", "litert_ours", "ort_ours_int8", "ov_ours_int8")
"""Our exports in every runtime: the fastest of them is compared with OpenVINO on PyTorch's export (issue 27)."""


def missing_packages():
    """The required packages (PyTorch, ONNX Runtime, onnx, OpenVINO, LiteRT) that are not installed."""
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def cpu_model():
    """`lscpu`'s model name (or the platform's processor)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        return platform.processor() or "unknown"


def versions():
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def new_results(args, rows, work_dir):
    """The results skeleton: command, settings, environment."""
    settings = {key: value for key, value in vars(args).items()}
    settings["row_batches"] = {row.name: row.batch for row in rows}
    settings["threads_per_engine"] = thread_settings(args)
    settings["inputs"] = ("ours (SavedModel serving_default, our ONNX): uint8 NHWC pixels, preprocessing in the "
                          "graph; PyTorch and PyTorch's ONNX: float32 NCHW preprocessed pixels; PyTorch training: "
                          "fixed random tensors, no input pipeline; train(): in-memory random uint8 images, "
                          "--input=auto (TensorFlow and JAX: crop, flip and normalisation inside the compiled "
                          "step)")
    return {
        "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]) if sys.argv else "",
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
        "environment": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(), "versions": versions(),
                        "loadavg_start": list(os.getloadavg())},
        "work_dir": work_dir,
        "rows": {},
        "errors": [],
    }


def row_result(row, cells, load_before, load_after):
    """A row's entry in the results: its cells, unit and the load average around it."""
    return {"name": row.name, "title": row.label, "model": row.model, "task": row.task, "batch": row.batch,
            "unit": row.unit, "cells": cells, "loadavg_before": list(load_before), "loadavg_after": list(load_after)}


def speed_ratio(ours, peer, task):
    """How many times faster `ours` is than `peer` (None when either is missing)."""
    if not ours or not peer or ours.get("median") is None or peer.get("median") is None:
        return None
    if task == "latency":
        return peer["median"] / ours["median"]
    return ours["median"] / peer["median"]


def row_ratios(row):
    """`{"ours/torch_cl": ratio, ...}` of one row."""
    cells = row["cells"]
    out = {}
    for mine, peer in RATIOS:
        ratio = speed_ratio(cells.get(mine), cells.get(peer), row["task"])
        if ratio is not None:
            out[f"{mine}/{peer}"] = ratio
    fastest = [r for r in (speed_ratio(cells.get(c), cells.get("ov_torch"), row["task"]) for c in OUR_COLUMNS) if r]
    if fastest:
        out["fastest_ours/ov_torch"] = max(fastest)
    return out


def targets(rows):
    """The issue's targets met or missed, one dict per applicable target."""
    out = []
    for row in rows.values():
        ratios = row["ratios"]
        wanted = {"train": (("ours/torch_cl", 1.0),),
                  "infer": (("ours/ort_torch", 1.0), ("ort_ours/ort_torch", 1.0), ("fastest_ours/ov_torch", 2.0)),
                  "latency": (("ours/ort_torch", 0.5), ("ort_ours/ort_torch", 1.0), ("ours_lt/ort_torch", 0.5),
                              ("ours_lt/ort_torch_lt", 0.5), ("fastest_ours/ov_torch", 1.0))}[row["task"]]
        for name, threshold in wanted:
            if name in ratios:
                out.append({"row": row["name"], "ratio": name, "value": ratios[name], "target": threshold,
                            "met": ratios[name] >= threshold})
    return out


def finish(results):
    """Adds ratios, targets, the overall check status and the end load average."""
    for row in results["rows"].values():
        row["ratios"] = row_ratios(row)
    results["targets"] = targets(results["rows"])
    results["checks_ok"] = all(check.get("ok") for check in results.get("checks", [])) and not results["errors"]
    results["environment"]["loadavg_end"] = list(os.getloadavg())
    return results


def cell_text(cell, unit):
    if not cell:
        return "-"
    if cell.get("median") is None:
        return "not timed" if cell.get("skipped") else "-"
    digits = 2 if unit == "ms" else 0
    return f"{cell['median']:,.{digits}f} ({cell['min']:,.{digits}f}-{cell['max']:,.{digits}f})"


def row_line(row):
    """One progress line: the row's medians."""
    parts = [f"{COLUMN_TITLES[c]} {cell_text(cell, row['unit'])}" for c, cell in row["cells"].items()]
    return f"  {row['title']}: " + "; ".join(parts)


def table(results):
    """The markdown table of medians (min-max of the windows) and a table of ratios."""
    columns = [c for c in COLUMN_TITLES if any(c in row["cells"] for row in results["rows"].values())]
    lines = ["| what | " + " | ".join(COLUMN_TITLES[c] for c in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for row in results["rows"].values():
        lines.append(f"| {row['title']} | " + " | ".join(cell_text(row["cells"].get(c), row["unit"]) for c in columns)
                     + " |")
    present = set().union(*(row.get("ratios", {}) for row in results["rows"].values()))
    names = [f"{a}/{b}" for a, b in RATIOS if f"{a}/{b}" in present]
    names += ["fastest_ours/ov_torch"] if "fastest_ours/ov_torch" in present else []
    lines += ["", "Speed ratios (> 1: the first is faster):", "",
              "| what | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for row in results["rows"].values():
        lines.append(f"| {row['title']} | " + " | ".join(
            f"{row['ratios'][n]:.2f}" if n in row.get("ratios", {}) else "-" for n in names) + " |")
    return "\n".join(lines)


def summary_text(results):
    """Settings, table, checks and targets as printed at the end of a run."""
    settings = results["settings"]
    env = results["environment"]
    lines = [f"CPU peers: {env['cpu']} ({env['cpu_count']} CPUs), {results['date_utc']}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
             "threads: " + "; ".join(f"{k}: {v}" for k, v in settings["threads_per_engine"].items()),
             f"windows: median of {settings['windows']}, {settings['pause']} s apart (inference "
             f"~{settings['window_seconds']} s each, training {settings['train_steps']} steps each after "
             f"{settings['warmup_windows']} warm-up window(s))",
             f"inputs: {settings['inputs']}",
             f"load average: start {env['loadavg_start']}, end {env['loadavg_end']}", "", table(results), ""]
    for check in results.get("checks", []):
        lines.append(f"check {check['model']} {check['column']}: {'ok' if check['ok'] else 'FAILED'} "
                     f"(relative {check.get('relative', float('nan')):.2e})")
    for value in results.get("top1", []):
        lines.append(f"top-1 {value['model']} {COLUMN_TITLES[value['column']]}: {100 * value['top1']:.2f}% "
                     f"of {value['images']:,} test images")
    for target in results["targets"]:
        lines.append(f"target {target['row']} {target['ratio']} >= {target['target']}: {target['value']:.2f} "
                     f"{'met' if target['met'] else 'missed'}")
    for error in results["errors"]:
        lines.append(f"ERROR {error.get('row') or error.get('model')}: {error['error'][-400:]}")
    lines.append(f"Checks: {'all passed' if results['checks_ok'] else 'FAILED'}")
    return "\n".join(lines)


def write_json(path, results):
    """Writes `results` to `path` atomically (temporary file + `os.replace`)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, default=str)
    os.replace(temporary, path)
    return path
