"""CPU latency and throughput of exported SavedModels, through the loaded signatures (issue 5).

Exports untrained (randomly initialised) ResNet-20/56 (CIFAR, 32x32) and ResNet-50 (ImageNet, 224x224
input) with `keras_resnet.export.export_saved_model` into a temporary directory, loads each with
`tf.saved_model.load` and times:

- `serving_default` on one uint8 image (latency, ms): median over `--runs` calls after `--warmup` calls;
- `serve_bytes` on one encoded JPEG (latency, ms), same;
- `serving_default` on a batch of `--batch` uint8 images (throughput, images/s): median over
  `--batch_runs` calls after one warm-up call.

Untrained weights cost the same as trained ones. The ImageNet export resizes the shorter side to 256 and
crops the centre 224 in the graph, so those timings include that preprocessing.

Usage:
    python benchmarks/export_latency.py [--models resnet20,resnet56,resnet50] [--runs 30] [--batch 128]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_resnet  # noqa: E402
from keras_resnet import export  # noqa: E402


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), max(times)


def cpu_model():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except Exception:  # noqa: BLE001
        return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="resnet20,resnet56,resnet50")
    parser.add_argument("--runs", type=int, default=30, help="timed single-image calls")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--batch_runs", type=int, default=5, help="timed batch calls (3 for ResNet-50)")
    args = parser.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs; TensorFlow {tf.__version__}")
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            model = keras_resnet.build(name)
            size = int(model.input_shape[1])
            imagenet = size == 224
            mean = np.full((1, 1, 3) if imagenet else (size, size, 3), 120.0, np.float32)
            start = time.perf_counter()
            path = export.export_saved_model(model, os.path.join(tmp, name), mean=mean,
                                             preprocessing="imagenet" if imagenet else "cifar")
            export_s = time.perf_counter() - start
            del model
            loaded = tf.saved_model.load(str(path))
            serve, serve_bytes = loaded.signatures["serving_default"], loaded.signatures["serve_bytes"]
            one = tf.constant(rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8))
            jpeg = tf.constant([tf.io.encode_jpeg(one[0]).numpy()])
            batch = tf.constant(rng.integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8))
            latency = timed(lambda: serve(images=one)["probabilities"].numpy(), args.runs, args.warmup)
            bytes_latency = timed(lambda: serve_bytes(images=jpeg)["probabilities"].numpy(), args.runs, args.warmup)
            batch_runs = min(args.batch_runs, 3) if imagenet else args.batch_runs
            batch_time = timed(lambda: serve(images=batch)["probabilities"].numpy(), batch_runs, 1)
            row = (name, f"{size}x{size}", export_s, latency[0] * 1e3, (latency[1] * 1e3, latency[2] * 1e3),
                   bytes_latency[0] * 1e3, args.batch / batch_time[0],
                   (args.batch / batch_time[2], args.batch / batch_time[1]))
            rows.append(row)
            print(f"{name}: export {export_s:.1f} s, serving_default 1 image {row[3]:.2f} ms "
                  f"(min {row[4][0]:.2f}, max {row[4][1]:.2f}), serve_bytes 1 JPEG {row[5]:.2f} ms, "
                  f"batch {args.batch}: {row[6]:.0f} images/s ({row[7][0]:.0f}-{row[7][1]:.0f})", flush=True)
    print()
    print(f"| model | input | export (s) | `serving_default`, 1 image (ms, median) | `serve_bytes`, 1 JPEG (ms, median) "
          f"| `serving_default`, batch {args.batch} (images/s, median) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, size, export_s, lat, (lo, hi), blat, thr, (tlo, thi) in rows:
        print(f"| {name} | {size} | {export_s:.1f} | {lat:.2f} ({lo:.2f} - {hi:.2f}) | {blat:.2f} "
              f"| {thr:.0f} ({tlo:.0f} - {thi:.0f}) |")


if __name__ == "__main__":
    main()
