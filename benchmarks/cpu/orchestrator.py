"""Runs the table: prepares the networks, starts one worker per engine, checks, then times row by row.

For every inference row each column is set up (its network loaded, a fixed input batch made), checked
once per network against our Keras logits (`benchmarks.cpu.checks`; a column that fails is not timed),
calibrated (untimed calls, then the calls per window fixed for about `--window-seconds`), and then the
columns take turns window by window, the starting column rotating, until each has `--windows` windows.
Training rows do the same with our `train()` worker (its first `--warmup-windows` windows, which trace
and compile, are dropped) and PyTorch's steps (`--train-steps` per window after two warm-up steps).

Example:
    >>> from benchmarks.cpu.settings import parse_args
    >>> results = run(parse_args(["--rows=latency20", "--windows=1"]))  # a benchmark's own process  # doctest: +SKIP
    >>> results["rows"]["latency20"]["cells"]["ours"]["median"]  # a benchmark's own process  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

from benchmarks.cpu import report
from benchmarks.cpu.channel import Worker, WorkerError
from benchmarks.cpu.settings import (LOW_PRECISION_COLUMNS, LOW_PRECISION_TOLERANCE, row_columns, selected_rows,
                                     worker_env)
from benchmarks.cpu.timing import summarize

WORKER_MODULES = {
    "prepare": "benchmarks.cpu.prepare",
    "torch": "benchmarks.cpu.torch_worker",
    "ort": "benchmarks.cpu.ort_worker",
    "serving": "benchmarks.cpu.serving_worker",
    "ort_lt": "benchmarks.cpu.ort_worker",
    "serving_lt": "benchmarks.cpu.serving_worker",
    "runtimes": "benchmarks.cpu.runtime_worker",
}
LATENCY_THREAD_WORKERS = ("ort_lt", "serving_lt")
"""Workers started with `--latency-threads` threads instead of `--threads`."""
TORCH_LAYOUTS = {"torch_nchw": "nchw", "torch_cl": "channels_last"}
RUNTIME_COLUMNS = {  # column: (engine, manifest path, input kind, precision)
    "ov_torch": ("openvino", "onnx_torch", "torch", "default"),
    "ov_torch_f32": ("openvino", "onnx_torch", "torch", "f32"),
    "ov_ours": ("openvino", "ov_ours", "ours", "default"),
    "ov_ours_f32": ("openvino", "ov_ours", "ours", "f32"),
    "litert_ours": ("litert", "litert_ours", "ours", "default"),
    "ov_ours_int8": ("openvino", "ov_ours_int8", "ours", "f32"),  # as the export gate ran it (int8 convolutions)
}
TOP1_BATCH = 100


class Engines:
    """The worker processes, started on first use and closed at the end."""

    def __init__(self, args, work_dir):
        self.args, self.work_dir, self.workers, self.versions = args, work_dir, {}, {}

    def start(self, name, module, backend="tensorflow"):
        log = os.path.join(self.work_dir, f"{name}.log")
        threads = self.args.latency_threads if name in LATENCY_THREAD_WORKERS else None
        return Worker(module, worker_env(self.args, backend, threads), log, name)

    def get(self, name):
        if name not in self.workers:
            worker = self.workers[name] = self.start(name, WORKER_MODULES[name])
            if name != "prepare":
                self.versions[name] = worker.call("versions")
        return self.workers[name]

    def close(self, name):
        worker = self.workers.pop(name, None)
        if worker is not None:
            worker.close()

    def close_all(self):
        for name in list(self.workers):
            self.close(name)


def prepare_models(engines, rows, args, errors):
    """`{model: manifest}` of every network an inference row needs (`benchmarks.cpu.prepare`); a model
    that fails is recorded in `errors` and left out."""
    manifests = {}
    for model in dict.fromkeys(row.model for row in rows if row.task != "train"):
        start = time.perf_counter()
        print(f"[cpu_peers] preparing {model} (SavedModel, ONNX graphs, PyTorch copy, reference) ...", flush=True)
        try:
            manifests[model] = engines.get("prepare").call(
                "prepare_model", model=model, work_dir=engines.work_dir, seed=args.seed, r50_serving=args.r50_serving,
                weights=None if args.weights == "random" or model == "resnet50" else args.weights, data=args.data,
                runtimes=bool(set(args.columns) & (set(RUNTIME_COLUMNS) | {"ort_ours_int8", "ort_keras"})))
        except WorkerError as error:
            errors.append({"model": model, "error": str(error)})
            print(f"[cpu_peers] preparing {model} FAILED: {error}", flush=True)
            engines.close("prepare")
            continue
        manifests[model]["prepare_s"] = time.perf_counter() - start
    engines.close("prepare")  # frees its memory before anything is timed
    return manifests


def setup_inference(engines, row, column, manifest, args, key):
    """Sets up one inference column; returns `(worker, setup reply, check arguments)`."""
    common = dict(key=key, batch=row.batch, size=row.size, seed=args.seed)
    if column in ("ours", "ours_lt"):
        worker = engines.get("serving" if column == "ours" else "serving_lt")
        return worker, worker.call("setup", path=manifest["saved_model"], **common), {
            "fixed_size": manifest["serving_kind"] == "cifar"}
    if column in TORCH_LAYOUTS:
        worker = engines.get("torch")
        return worker, worker.call("setup_infer", model=row.model, weights=manifest["torch_weights"],
                                   layout=TORCH_LAYOUTS[column], **common), {}
    tolerance = {"tolerance": LOW_PRECISION_TOLERANCE} if column in LOW_PRECISION_COLUMNS else {}
    if column in RUNTIME_COLUMNS:
        engine, path, kind, precision = RUNTIME_COLUMNS[column]
        worker = engines.get("runtimes")
        return worker, worker.call("setup", engine=engine, path=manifest[path], kind=kind, precision=precision,
                                   **common), tolerance
    worker = engines.get("ort_lt" if column == "ort_torch_lt" else "ort")
    path, kind = {"ort_ours": ("onnx_ours", "ours"), "ort_ours_int8": ("onnx_ours_int8", "ours"),
                  "ort_keras": ("onnx_keras", "keras")}.get(column, ("onnx_torch", "torch"))
    return worker, worker.call("setup", path=manifest[path], kind=kind, **common), tolerance


def interleave(cells, windows, pause=0.0):
    """`{column: [window, ...]}`: `windows` rounds, each column once per round, the first rotating.

    `pause` seconds pass between two windows, so that the spinning threads of the engine that just ran
    (OpenMP, ONNX Runtime's pool) have gone to sleep before the next one is timed.
    """
    columns = list(cells)
    out = {column: [] for column in columns}
    for index in range(windows):
        shift = index % len(columns)
        for column in columns[shift:] + columns[:shift]:
            time.sleep(pause)
            out[column].append(cells[column]())
    return out


def top1_of(worker, key, top1_set):
    """The column's top-1 on the saved test images (`prepare.pretrained_network`), in batches of `TOP1_BATCH`."""
    import numpy as np

    predicted = worker.call("predict", key=key, images=top1_set["images"], pixels=top1_set["pixels"],
                            batch=TOP1_BATCH)
    labels = np.load(top1_set["labels"])
    return {"top1": float(np.mean(np.asarray(predicted) == labels)), "images": int(len(labels))}


def measure_inference(engines, row, manifest, args, checks, top1=None):
    """One inference or latency row: `{column: cell}` (`top1`: the columns' top-1 measured so far)."""
    top1 = {} if top1 is None else top1
    cells, timed, workers = {}, {}, {}
    for column in row_columns(row, args):
        key = f"{row.name}/{column}"
        worker, setup, check_args = setup_inference(engines, row, column, manifest, args, key)
        if (row.model, column) not in checks:
            checks[(row.model, column)] = worker.call("check", key=key, reference=manifest["reference"], **check_args)
        check = checks[(row.model, column)]
        cells[column] = {"setup": setup, "check_ok": bool(check["ok"])}
        if check["ok"] and "top1_set" in manifest and (row.model, column) not in top1:
            top1[(row.model, column)] = top1_of(worker, key, manifest["top1_set"])
        if (row.model, column) in top1:
            cells[column]["top1"] = top1[(row.model, column)]
        if not check["ok"]:
            cells[column]["skipped"] = f"output check failed: {check}"
            worker.call("drop", key=key)
            continue
        cells[column]["calibration"] = worker.call("calibrate", key=key, window_seconds=args.window_seconds)
        workers[column] = (worker, key)
        timed[column] = lambda worker=worker, key=key: worker.call("window", key=key)
    for column, windows in interleave(timed, args.windows, args.pause).items():
        cells[column].update(summarize(windows, row.task), windows=windows)
    for worker, key in workers.values():
        worker.call("drop", key=key)
    return cells


def start_training(engines, row, column, args):
    """Starts our `train()` worker for `column` ("ours": TensorFlow, "ours_jax": JAX); returns it, ready."""
    backend = "jax" if column == "ours_jax" else "tensorflow"
    worker = engines.start(f"train-{row.name}-{backend}", "benchmarks.cpu.train_worker", backend)
    model_dir = os.path.join(engines.work_dir, f"train-{row.name}-{backend}")
    shutil.rmtree(model_dir, ignore_errors=True)  # ours, from an earlier run with the same --work-dir
    worker.call("start", model=row.model, batch=row.batch, steps=args.train_steps,
                windows=args.warmup_windows + args.windows, model_dir=model_dir, seed=args.seed)
    return worker


def measure_training(engines, row, args):
    """One training row: `{column: cell}`; our `train()` windows interleaved with PyTorch's steps."""
    cells, timed, ours = {}, {}, {}
    try:
        for column in row_columns(row, args):
            if column in TORCH_LAYOUTS:
                key = f"{row.name}/{column}"
                worker = engines.get("torch")
                setup = worker.call("setup_train", key=key, model=row.model, layout=TORCH_LAYOUTS[column],
                                    batch=row.batch, size=row.size, seed=args.seed)
                cells[column] = {"setup": setup, "calibration": worker.call(
                    "calibrate", key=key, calls=args.train_steps, warmup_calls=2)}
                timed[column] = lambda worker=worker, key=key: worker.call("window", key=key)
                continue
            worker = ours[column] = start_training(engines, row, column, args)
            warmup = [worker.call("window") for _ in range(args.warmup_windows)]
            cells[column] = {"warmup_windows": warmup}
            timed[column] = lambda worker=worker: worker.call("window")
        for column, windows in interleave(timed, args.windows, args.pause).items():
            cells[column].update(summarize(windows, row.task), windows=windows)
        for column, worker in ours.items():
            cells[column]["train"] = worker.call("finish")
        for column in TORCH_LAYOUTS:
            if column in cells:
                engines.get("torch").call("drop", key=f"{row.name}/{column}")
    finally:
        for worker in ours.values():
            worker.close()
    return cells


def measure_row(engines, row, args, manifests, checks, top1):
    """One row's result; a failed worker is recorded as the row's error (and every worker restarted)."""
    print(f"[cpu_peers] {row.label} ...", flush=True)
    load = os.getloadavg()
    try:
        if row.task == "train":
            cells = measure_training(engines, row, args)
        elif row.model not in manifests:
            raise WorkerError(f"{row.model} was not prepared (see the errors)")
        else:
            cells = measure_inference(engines, row, manifests[row.model], args, checks, top1)
    except WorkerError as error:
        print(f"[cpu_peers] {row.label} FAILED: {error}", flush=True)
        engines.close_all()
        return None, {"row": row.name, "error": str(error)}
    result = report.row_result(row, cells, load, os.getloadavg())
    print(report.row_line(result), flush=True)
    return result, None


def run(args):
    """Measures every selected row; returns the results dict (also printed and written by the caller)."""
    missing = report.missing_packages()
    if missing:
        print(f"benchmarks/cpu_peers.py needs {', '.join(missing)} (pip install {' '.join(missing)}).", file=sys.stderr)
        raise SystemExit(2)
    rows = selected_rows(args)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="cpu_peers-")
    os.makedirs(work_dir, exist_ok=True)
    results = report.new_results(args, rows, work_dir)
    engines = Engines(args, work_dir)
    checks, top1, errors = {}, {}, results["errors"]
    try:
        manifests = results["prepared"] = prepare_models(engines, rows, args, errors)
        for row in rows:
            result, error = measure_row(engines, row, args, manifests, checks, top1)
            if error:
                errors.append(error)
            else:
                results["rows"][row.name] = result
        results["engines"] = dict(engines.versions)
    finally:
        engines.close_all()
    results["checks"] = [{"model": model, "column": column, **check} for (model, column), check in checks.items()]
    results["top1"] = [{"model": model, "column": column, **value} for (model, column), value in top1.items()]
    return report.finish(results)
