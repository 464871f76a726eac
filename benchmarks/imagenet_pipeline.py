"""ImageNet-style folder input against what a ResNet-50 training step consumes (issue 14).

    python benchmarks/imagenet_pipeline.py [--images=512] [--runs=5] [--batch_size=32] [--crop_size=224]
                                           [--model_batch=16] [--steps=4] [--json=PATH]

Measures, on this machine and in one process:

1. the streamed input pipeline of `keras_resnet.data.load(folder, "train", ...)` from a folder
   `train/<class>/<image>.jpg` of `--images` generated JPEGs of about 500x375 (ImageNet's typical size; a
   mix of 500x375, 500x333, 375x500, 500x400 and 400x500 at quality 90, about 100 KiB each as ImageNet's
   files are, one grayscale and one CMYK JPEG per 256 images as in ImageNet's photo mix): per-element decode (exactly as
   Pillow), shorter side random in [256, 480] (times `crop_size / 224`), random crop, flip, normalise,
   batch, prefetch. Each run is a fresh `load` with an empty mean cache, timed over its first epoch
   (nothing cached: the folder is re-listed, the mean recomputed, every image decoded). Reported: the
   first epoch's images/s (median over `--runs`), and the setup (`load` itself: listing and the training
   mean over the first 10,000 images) separately. The JPEGs were just written, so they are in the OS page
   cache: this measures decoding and augmentation, not the disk.
2. the images/s that `keras_resnet.ResNet50()` `train_on_batch` (SGD momentum 0.9, batch `--model_batch`,
   random `crop_size` x `crop_size` images) consumes: median of `--steps` steps after 2 warm-up steps.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 3.4 (the ImageNet augmentation and the ResNet-50 of Table 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = ((375, 500), (333, 500), (500, 375), (400, 500), (500, 400))
"""(height, width) of the generated JPEGs, in turn."""
CLASSES = 8
NOISE_STD = 16


def make_folder(root, n_images, seed=0):
    """`root/train/c<k>/<i>.jpg`: `n_images` JPEGs of about 500x375; one grayscale and one CMYK per 256.

    Content: smooth random colours plus per-pixel noise (std `NOISE_STD`), which makes files of about
    100 KiB at quality 90, as ImageNet's (1.28M training JPEGs in about 140 GB): the entropy decoding cost of
    a JPEG grows with its compressed size, so smooth images alone would decode unrealistically fast.
    Returns `(root, mean file size in bytes)`.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    total = 0
    for i in range(n_images):
        h, w = SIZES[i % len(SIZES)]
        mode = "L" if i % 256 == 100 else "CMYK" if i % 256 == 200 else "RGB"
        channels = {"L": 1, "CMYK": 4, "RGB": 3}[mode]
        small = rng.integers(0, 255, (h // 16, w // 16, channels), dtype=np.uint8)
        base = np.asarray(Image.fromarray(small[..., 0] if channels == 1 else small, mode)
                          .resize((w, h), Image.BILINEAR), np.float32)
        pixels = np.clip(base + rng.normal(0, NOISE_STD, base.shape), 0, 255).astype(np.uint8)
        d = Path(root, "train", f"c{i % CLASSES}")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode).save(d / f"{i:05d}.jpg", quality=90)
        total += (d / f"{i:05d}.jpg").stat().st_size
    return Path(root), total / max(n_images, 1)


def time_first_epoch(folder, batch_size, crop_size, seed):
    """`(setup seconds, first-epoch images/s, images)` of a fresh `load` with an empty mean cache."""
    from keras_resnet.data import load

    os.environ["KERAS_RESNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="kr-inet-cache-")
    t = time.perf_counter()
    ds, _ = load(folder, "train", batch_size, seed=seed, crop_size=crop_size)
    setup = time.perf_counter() - t
    images = 0
    t = time.perf_counter()
    for x, _ in ds:
        images += int(x.shape[0])
    return setup, images / (time.perf_counter() - t), images


def resnet50_rate(batch, crop_size, steps):
    """Median images/s of `ResNet50().train_on_batch` over `steps` steps after 2 warm-up steps."""
    import keras

    import keras_resnet

    model = keras_resnet.ResNet50(input_shape=(crop_size, crop_size, 3))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False))
    x = np.random.default_rng(0).normal(size=(batch, crop_size, crop_size, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 1000, batch).astype("int32")
    for _ in range(2):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - t)
    return batch / statistics.median(times), [batch / s for s in times]


def machine():
    """The CPU model and core count (`lscpu`), load average and library versions."""
    import keras
    import PIL
    import tensorflow as tf

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                     platform.processor())
    except (OSError, subprocess.SubprocessError):
        model = platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "tensorflow": tf.__version__, "keras": keras.__version__, "pillow": PIL.__version__,
            "gpus": len(tf.config.list_physical_devices("GPU"))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--crop_size", type=int, default=224)
    parser.add_argument("--model_batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    result = {"args": vars(args), "machine": machine(), "date": time.strftime("%a %b %d %H:%M UTC %Y", time.gmtime())}
    print(json.dumps(result["machine"]))
    with tempfile.TemporaryDirectory(prefix="kr-inet-") as tmp:
        t = time.perf_counter()
        folder, mean_size = make_folder(Path(tmp) / "photos", args.images)
        result["mean_file_kib"] = round(mean_size / 1024, 1)
        print(f"generated {args.images} JPEGs (mean {mean_size / 1024:.1f} KiB) in {time.perf_counter() - t:.1f} s")
        runs = []
        for run in range(args.runs):
            setup, rate, images = time_first_epoch(folder, args.batch_size, args.crop_size, seed=run)
            runs.append({"setup_s": round(setup, 2), "images_per_s": round(rate, 1), "images": images})
            print(f"run {run}: setup {setup:.2f} s, first epoch {images} images at {rate:,.1f} images/s")
    step_rate, step_rates = resnet50_rate(args.model_batch, args.crop_size, args.steps)
    pipeline = statistics.median(r["images_per_s"] for r in runs)
    result.update(runs=runs, pipeline_images_per_s=round(pipeline, 1),
                  setup_s=statistics.median(r["setup_s"] for r in runs),
                  resnet50_images_per_s=round(step_rate, 2), resnet50_step_rates=[round(r, 2) for r in step_rates],
                  ratio=round(pipeline / step_rate, 2))
    result["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    print(f"input pipeline (first epoch, median of {args.runs}): {pipeline:,.1f} images/s; ResNet-50 "
          f"train_on_batch (batch {args.model_batch}): {step_rate:,.2f} images/s; ratio {pipeline / step_rate:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
