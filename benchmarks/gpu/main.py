"""The run of `benchmarks/gpu_cifar.py`: blocked modules, the JAX backend, the output folder and log tee,
the environment report, each part in turn within the time budget, and the table printed last.

Example:
    >>> from benchmarks.gpu.main import main
    >>> main(["--smoke", "--part=throughput"])  # needs the JAX GPU machine  # doctest: +SKIP
    0

`main` returns 0 when every check passed, 1 when a check failed or a part raised, 2 off the JAX backend.
"""

from __future__ import annotations

import datetime
import os
import sys
import time

from benchmarks.gpu import ROOT
from benchmarks.gpu.accuracy import part_accuracy
from benchmarks.gpu.cli import parse_args
from benchmarks.gpu.data import CifarArrays
from benchmarks.gpu.environment import environment, on_gpu
from benchmarks.gpu.imagenet import part_imagenet
from benchmarks.gpu.report import Report, Tee, now
from benchmarks.gpu.throughput import part_throughput
from benchmarks.gpu.torch_cifar import part_torch


def block_modules(names):
    """Makes each module in `names` unimportable (`import tensorflow` raises ImportError), unless loaded."""
    for name in names:
        if name and name not in sys.modules:
            sys.modules[name] = None


def configure_jax_cache(cache_dir):
    """The persistent XLA compilation cache: `cache_dir`, else runs/jax_cache on a GPU; '' disables it."""
    import jax

    if cache_dir is None:
        cache_dir = os.path.join(ROOT, "runs", "jax_cache") if on_gpu() else ""
    if cache_dir:
        jax.config.update("jax_compilation_cache_dir", cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)
        print(f"  XLA compilation cache: {cache_dir}")


def run_part(part, args, report, cifar):
    """Runs one part (`throughput`, `torch`, `accuracy` use the CIFAR arrays, `imagenet` synthetic data)."""
    if part == "throughput":
        part_throughput(args, report, cifar)
    elif part == "torch":
        part_torch(args, report, cifar)
    elif part == "imagenet":
        part_imagenet(args, report)
    elif part == "accuracy":
        part_accuracy(args, report, cifar)


def write_table(report, out_dir, parts):
    """Finishes the results JSON, writes `table_<parts>.md` and prints the table (last)."""
    report.data["finished"] = now()
    report.data["wall_s"] = report.elapsed()
    table = report.table()
    report.data["table"] = table
    report.save()
    with open(os.path.join(out_dir, f"table_{'_'.join(parts)}.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table, flush=True)


def main(argv=None):
    """Runs the benchmark; returns the exit code (0 all checks passed, 1 a check failed or a part raised,
    2 a backend other than JAX; argparse exits with 2 on a bad flag)."""
    args = parse_args(argv)
    block_modules(args.block_modules)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if os.environ["KERAS_BACKEND"] != "jax":
        print(f"error: KERAS_BACKEND={os.environ['KERAS_BACKEND']}; this benchmark runs on the JAX backend.",
              file=sys.stderr)
        return 2
    out_dir = args.out or os.environ.get("OUT") or os.path.join(
        ROOT, "runs", "gpu_cifar", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    sys.stdout = Tee(sys.stdout, os.path.join(out_dir, f"log_{'_'.join(args.parts)}.txt"))
    report = Report(out_dir, args)
    print(f"== gpu_cifar.py {' '.join(sys.argv[1:])}  ({now()}) -> {out_dir}")
    env = environment(report)
    configure_jax_cache(args.jax_cache_dir)
    if args.smoke:
        print("  SMOKE MODE: tiny sizes and few steps; the numbers are not measurements.")
    if "jax" not in str(env.get("jax_devices")) and not env.get("jax_devices"):
        report.skip("all JAX parts", "JAX has no device")
    needs_cifar = any(p in args.parts for p in ("throughput", "torch", "accuracy"))
    cifar = CifarArrays(args) if needs_cifar else None
    for part in args.parts:
        if report.elapsed() > args.budget_s:
            report.skip(f"part {part}", "time budget reached")
            continue
        t = time.perf_counter()
        try:
            run_part(part, args, report, cifar)
        except Exception as e:
            report.error(f"part {part}", e)
        print(f"== {part}: {time.perf_counter() - t:.0f} s", flush=True)
    write_table(report, out_dir, args.parts)
    failed = any(not c["ok"] for c in report.data["checks"]) or report.data["errors"]
    return 1 if failed else 0
