"""Input-pipeline throughput vs. what a ResNet-20 training step consumes (issue 3, Performance).

    python benchmarks/data_pipeline.py [--cifar=../shared/datasets/cifar10-jpeg] [--windows=5]

Measures, on this machine:
1. the CIFAR-10 training pipeline from the real JPEG archive (decoded once, then shuffle + pad-4/crop/flip
   augmentation + normalisation + batch 128 + prefetch): images/s, median of timed windows after warm-up;
2. the ImageNet-style training pipeline (random shorter side in [256, 480], 224 crop, flip) from TFRecord
   shards of generated 500x375 JPEGs;
3. the images/s a ResNet-20 `train_on_batch` step (SGD, batch 128) consumes (median of steps after warm-up).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def windows(iterator, batch_images, steps, n_windows, warmup):
    for _ in range(warmup):
        next(iterator)
    rates = []
    for _ in range(n_windows):
        t = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        rates.append(steps * batch_images / (time.perf_counter() - t))
    return statistics.median(rates), rates


def bench_cifar(path, n_windows):
    from keras_resnet.data import load

    t = time.perf_counter()
    ds, info = load(path, "train", 128, seed=0)
    setup = time.perf_counter() - t
    it = iter(ds.repeat())
    rate, rates = windows(it, 128, 50, n_windows, warmup=20)
    return setup, rate, rates


def bench_imagenet(n_windows, n_images=256):
    from PIL import Image

    from keras_resnet.data import load
    from keras_resnet.data.convert import convert

    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for c in range(4):
            d = Path(tmp, "imgs", "train", f"class{c}")
            d.mkdir(parents=True)
            for i in range(n_images // 4):
                # smooth random images compress like photos (pure noise would be unrealistically large)
                small = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
                img = Image.fromarray(small).resize((500, 375), Image.BILINEAR)
                img.save(d / f"{i}.jpg", quality=90)
        convert(Path(tmp, "imgs"), Path(tmp, "shards"), shards=8, progress=False)
        ds, info = load(Path(tmp, "shards"), "train", 32, seed=0, mean_samples=64)
        it = iter(ds.repeat())
        return windows(it, 32, 4, n_windows, warmup=2)


def bench_resnet20(n_windows):
    import keras

    import keras_resnet

    model = keras_resnet.ResNet20()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False))
    x = np.random.default_rng(0).normal(size=(128, 32, 32, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 10, 128).astype("int32")
    for _ in range(3):
        model.train_on_batch(x, y)
    times = []
    for _ in range(n_windows * 2):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    return 128 / statistics.median(times), [128 / s for s in times]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cifar", default=str(REPO.parent / "shared" / "datasets" / "cifar10-jpeg"))
    parser.add_argument("--windows", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_RESNET_CACHE_DIR", tempfile.mkdtemp(prefix="kr-bench-cache-"))
    import keras

    print(f"keras {keras.__version__} backend {keras.backend.backend()}")
    setup, cifar_rate, cifar_rates = bench_cifar(args.cifar, args.windows)
    print(f"cifar pipeline: setup (read + decode 50k + mean) {setup:.1f} s; "
          f"{cifar_rate:,.0f} images/s (windows: {[round(r) for r in cifar_rates]})")
    inet_rate, inet_rates = bench_imagenet(args.windows)
    print(f"imagenet-style pipeline (500x375 JPEG TFRecords): {inet_rate:,.0f} images/s "
          f"(windows: {[round(r) for r in inet_rates]})")
    step_rate, _ = bench_resnet20(args.windows)
    print(f"resnet20 train_on_batch (batch 128): {step_rate:,.0f} images/s")
    print(f"cifar pipeline / training step: {cifar_rate / step_rate:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
