"""Output of a run: a log tee, the JSON results written as they come (atomically), the table printed last.

Example:
    >>> import argparse, tempfile
    >>> from benchmarks.gpu.report import Report
    >>> args = argparse.Namespace(parts=["throughput"], smoke=True)
    >>> report = Report(tempfile.mkdtemp(), args)
    >>> report.check("two is even", 2 % 2 == 0, "2 % 2 == 0")
    [check] PASS two is even: 2 % 2 == 0
    >>> report.table().splitlines()[-1]
    'Checks: 1/1 passed.'
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import sys
import time
import traceback

TABLE_HEADER = ["| part | model | setup | batch | precision | result | range / notes | x torch eager | x torch best |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]


def now():
    """The current UTC time as `YYYY-MM-DD HH:MM:SS UTC`."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def summarize(times, images_per_window):
    """Images/s of timed windows: the median (`images_per_s`), min, max and the raw window times."""
    rates = [images_per_window / t for t in times]
    return {"images_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
            "windows_s": [round(t, 4) for t in times], "images_per_window": images_per_window}


class Tee:
    """A text stream that also appends everything written to it to the file `path` (line-buffered)."""

    def __init__(self, stream, path):
        self.stream, self.file = stream, open(path, "a", buffering=1)

    def write(self, text):
        self.stream.write(text)
        self.file.write(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def torch_references(rows):
    """The PyTorch rows' images/s by `(part, model, batch)`: the best setup's and the eager one's."""
    torch_best, torch_eager = {}, {}
    for r in rows:
        if r.get("framework") == "torch" and r.get("images_per_s"):
            key = (r["part"], r["model"], r["batch"])
            torch_best[key] = max(torch_best.get(key, 0), r["images_per_s"])
            if r["setup"].startswith("torch eager"):
                torch_eager[key] = r["images_per_s"]
    return torch_best, torch_eager


def table_line(r, torch_best, torch_eager):
    """One row of the markdown table (accuracy or images/s, with the ratios to the PyTorch references)."""
    ratios = ("", "")
    if r["part"] == "accuracy":
        result = f"{100 * r['test_accuracy']:.2f}% test acc"
        notes = (f"{r['iterations']} it, train {r['train_s']:.0f} s, total {r['total_s']:.0f} s, "
                 f"{r['images_per_s']:,.0f} img/s")
        if r.get("time_to_target_s") is not None:
            notes += f", {100 * r['target']:.0f}% at {r['time_to_target_s']:.0f} s"
    else:
        result = f"{r['images_per_s']:,.0f} img/s"
        notes = f"{r['min']:,.0f} - {r['max']:,.0f}; compile {r.get('compile_s', 0):.0f} s"
        if r.get("framework") == "jax":
            depth_model = r.get("torch_twin", r["model"])
            key = ("torch" if r["part"] == "throughput" else r["part"], depth_model, r["batch"])
            e, b = torch_eager.get(key), torch_best.get(key)
            ratios = (f"{r['images_per_s'] / e:.2f}x" if e else "", f"{r['images_per_s'] / b:.2f}x" if b else "")
    return (f"| {r['part']} | {r['model']} | {r['setup']} | {r['batch']} | {r['precision']} | "
            f"{result} | {notes} | {ratios[0]} | {ratios[1]} |")


class Report:
    """The results of one run (`results_<parts>.json` in `out_dir`, rewritten after every change)."""

    def __init__(self, out_dir, args):
        self.out_dir, self.t0 = out_dir, time.perf_counter()
        self.path = os.path.join(out_dir, f"results_{'_'.join(args.parts)}.json")
        self.data = {"argv": sys.argv[1:], "args": vars(args), "started": now(), "env": {}, "checks": [],
                     "rows": [], "skipped": [], "errors": []}
        self.device = "?"
        self.costs = {}

    def elapsed(self):
        return time.perf_counter() - self.t0

    def fits(self, budget_s, kind):
        """Whether a measurement of `kind` is expected to end within the budget (from the last one's cost)."""
        return self.elapsed() + 0.8 * self.costs.get(kind, 0.0) <= budget_s

    def cost(self, kind, seconds):
        self.costs[kind] = seconds

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            from keras_resnet.run_log import json_default  # KERAS_BACKEND is set by main() first

            json.dump(self.data, f, indent=1, default=json_default)
        os.replace(tmp, self.path)

    def check(self, name, ok, detail):
        print(f"[check] {'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        self.data["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
        self.save()

    def row(self, **row):
        row.setdefault("device", self.device)
        self.data["rows"].append(row)
        self.save()
        return row

    def skip(self, what, why):
        print(f"[skip] {what}: {why}", flush=True)
        self.data["skipped"].append({"what": what, "why": why})
        self.save()

    def error(self, what, exc):
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        print(f"[error] {what}: {text}", flush=True)
        traceback.print_exc()
        self.data["errors"].append({"what": what, "error": text[-2000:]})
        self.save()

    def table(self):
        """The markdown table of all rows, headed by the device and wall time, ended by the checks' line."""
        rows = self.data["rows"]
        torch_best, torch_eager = torch_references(rows)
        lines = [f"Device: {self.device}. Parts: {', '.join(self.data['args']['parts'])}. "
                 f"{'CPU SMOKE (tiny sizes, not a measurement). ' if self.data['args']['smoke'] else ''}"
                 f"Wall time {self.elapsed():.0f} s.", "", *TABLE_HEADER]
        lines += [table_line(r, torch_best, torch_eager) for r in rows]
        checks = self.data["checks"]
        failed = [c["name"] for c in checks if not c["ok"]]
        lines.append("")
        lines.append(f"Checks: {len(checks) - len(failed)}/{len(checks)} passed"
                     + (f" (FAILED: {', '.join(failed)})" if failed else "")
                     + (f"; {len(self.data['skipped'])} skipped" if self.data["skipped"] else "")
                     + (f"; {len(self.data['errors'])} errors" if self.data["errors"] else "") + ".")
        return "\n".join(lines)
