"""The paper's CIFAR-10 recipe trained with PyTorch on akamaster's ResNet, on the same JPEG files as the package.

    python benchmarks/torch_cifar_recipe.py --data=../shared/datasets/cifar10-jpeg --depth=20 \\
        --train_steps=6400 --output=$HOME/keras-resnet-runs/torch-resnet20-6400

Issue 21 asks, when the package's ResNet-20 ends below the accuracy goal on the quality-75 JPEG copy of
CIFAR-10, for a like-for-like comparison: the same recipe run by another implementation on the same files.
This script is that implementation. It shares nothing with the package's training code; from the package
it takes only the definition of the 45k/5k split (`keras_resnet/data/preprocessing.py`, loaded as a file,
numpy only), so both train on the same 45,000 images. What it does (He et al. 2015, section 4.2):

- data: the JPEG files decoded with Pillow (RGB), from `<data>/<split>/<class>/<file>` folders or from the
  archives in `<data>` holding them (`[prefix/]<split>/<class>/<file>`), sorted by (class, file), class ids
  the sorted class names; `--validation_split` images held out of `train` (stratified, the package's rule);
- input: `(x - mean) / 255` with `mean` the per-pixel mean of the training images (the package's CIFAR
  normalisation); training batches padded by 4 zero pixels on each side (before normalisation), randomly
  cropped to 32x32 and flipped with probability 1/2;
- network: `benchmarks/akamaster.py` (akamaster's definition and initialisation; `--plain`: no shortcuts);
- optimisation: SGD with momentum 0.9 (PyTorch's form `v = m v + g; w -= lr v`), weight decay 1e-4 coupled
  into the gradient of the convolution and linear kernels (as the package; akamaster's own script also
  decays BN and biases), batch 128 drawn without replacement from a new permutation every epoch
  (`floor(45,000 / 128) = 351` iterations), learning rate 0.1 divided by 10 at 50% and 75% of
  `--train_steps` (the paper's 32k / 48k of 64k, compressed as `trainers.cifar --train_steps` does);
- after every epoch: training cross-entropy and error of the epoch's batches (train mode), top-1 and top-5
  error on the test split (eval mode, BN's running statistics), and on the held-out images at the end.

Writes `--output`/`log.csv` (a row per epoch) and `summary.json` (final errors, settings, wall time,
images/s, versions); each file is written to a temporary name and renamed. A run cut short starts again.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import os
import platform
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")
LOG_FIELDS = ("epoch", "iteration", "learning_rate", "cross_entropy", "error", "test_error", "test_top5_error",
              "images_per_second", "wall_time_s")


def package_split_rule():
    """`stratified_split` of `keras_resnet/data/preprocessing.py`, loaded from its file (numpy only, so this
    process imports neither TensorFlow nor Keras)."""
    path = HERE.parent / "keras_resnet" / "data" / "preprocessing.py"
    spec = importlib.util.spec_from_file_location("keras_resnet_preprocessing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.stratified_split


def image_files(data, split):
    """`[(class name, file name, bytes reader)]` of `split`, from a folder `<data>/<split>` or the archives in
    `data`; raises SystemExit naming `--data` when neither holds the split."""
    folder = Path(data) / split
    if folder.is_dir():
        return [(cls.name, f.name, f.read_bytes) for cls in sorted(folder.iterdir()) if cls.is_dir()
                for f in sorted(cls.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    found = []
    for archive in sorted(p for p in Path(data).iterdir() if p.name.endswith(ARCHIVE_SUFFIXES)):
        with tarfile.open(archive) as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) >= 3 and parts[-3] == split and \
                        parts[-1].lower().endswith(IMAGE_SUFFIXES):
                    payload = tar.extractfile(member).read()
                    found.append((parts[-2], parts[-1], lambda payload=payload: payload))
    if not found:
        raise SystemExit(f"--data={data}: no {split}/<class>/<image> files, neither in a folder {folder} nor in "
                         f"archives ({', '.join(ARCHIVE_SUFFIXES)}) inside it.")
    return sorted(found, key=lambda item: item[:2])


def read_split(data, split):
    """`(uint8 images [N, H, W, 3], int64 labels [N], class names)`: `split` decoded with Pillow (RGB)."""
    from PIL import Image

    files = image_files(data, split)
    classes = sorted({cls for cls, _, _ in files})
    images = np.stack([np.asarray(Image.open(io.BytesIO(read())).convert("RGB")) for _, _, read in files])
    labels = np.array([classes.index(cls) for cls, _, _ in files], np.int64)
    return images, labels, classes


def crop_flip(images, rng, pad=4):
    """Zero-pads `pad` pixels on each side, crops a random window of the original size, flips half."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dy, dx = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
    rows = dy[:, None] + np.arange(h)[None, :]
    cols = dx[:, None] + np.arange(w)[None, :]
    flip = rng.random(n) < 0.5
    cols = np.where(flip[:, None], cols[:, ::-1], cols)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def to_tensor(images, mean):
    """float32 NCHW tensor of `(images - mean) / 255`."""
    import torch

    x = (images.astype(np.float32) - mean) / 255.0
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def errors(net, images, labels, mean, batch_size):
    """`(top-1 error, top-5 error)` of `net` in eval mode."""
    import torch

    net.eval()
    top1 = top5 = 0
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = net(to_tensor(images[start:start + batch_size], mean))
            best = logits.topk(min(5, logits.shape[1]), dim=1).indices.numpy()
            truth = labels[start:start + batch_size]
            top1 += int((best[:, 0] != truth).sum())
            top5 += int((best != truth[:, None]).all(axis=1).sum())
    return top1 / len(images), top5 / len(images)


def learning_rate(args, iteration):
    """0.1 divided by 10 at 50% and 75% of the iterations (32k / 48k of the paper's 64k)."""
    drops = sum(iteration >= round(args.train_steps * f) for f in (0.5, 0.75))
    return args.learning_rate * 0.1 ** drops


def write_atomically(path, text):
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="CIFAR-10 as image folders or archives of them")
    parser.add_argument("--output", required=True, help="folder for log.csv and summary.json (created)")
    parser.add_argument("--depth", type=int, default=20, help="6n + 2: 20, 32, 44, 56, 110 (default 20)")
    parser.add_argument("--plain", action="store_true", help="the plain network (no shortcut additions)")
    parser.add_argument("--train_steps", type=int, default=64_000, help="iterations (default the paper's 64,000)")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--learning_rate", type=float, default=0.1)
    parser.add_argument("--weight_decay", type=float, default=1e-4)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--validation_split", type=int, default=5000, help="training images held out (count)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="PyTorch threads (default: all cores)")
    parser.add_argument("--eval_batch_size", type=int, default=500)
    args = parser.parse_args(argv)
    for name in ("train_steps", "batch_size", "threads", "eval_batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)}: must be a positive integer")
    if (args.depth - 2) % 6 or args.depth < 8:
        parser.error(f"--depth={args.depth}: a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110, ...)")
    if not Path(args.data).is_dir():
        parser.error(f"--data={args.data}: not a folder")
    return args


def read_data(args):
    """`(train images, train labels, held-out images, held-out labels, test images, test labels, mean, classes)`."""
    started = time.perf_counter()
    images, labels, classes = read_split(args.data, "train")
    test_images, test_labels, test_classes = read_split(args.data, "test")
    if test_classes != classes:
        raise SystemExit(f"--data={args.data}: the train and test splits have different classes")
    if not 0 <= args.validation_split < len(labels):
        raise SystemExit(f"--validation_split={args.validation_split}: accepted 0 to {len(labels) - 1} "
                         f"(the training split has {len(labels)} images)")
    train_idx, val_idx = package_split_rule()(labels, args.validation_split)
    mean = images[train_idx].astype(np.float64).mean(axis=0).astype(np.float32)
    print(f"{len(train_idx)} training, {len(val_idx)} held-out and {len(test_images)} test images of "
          f"{args.data} read in {time.perf_counter() - started:.1f} s", flush=True)
    return (images[train_idx], labels[train_idx], images[val_idx], labels[val_idx], test_images, test_labels,
            mean, classes)


def paper_sgd(net, args):
    """SGD with momentum, weight decay coupled into the convolution and linear kernels only (as the package)."""
    import torch

    decayed = [name.endswith("weight") and p.dim() > 1 for name, p in net.named_parameters()]
    params = [p for _, p in net.named_parameters()]
    return torch.optim.SGD([{"params": [p for p, d in zip(params, decayed) if d], "weight_decay": args.weight_decay},
                            {"params": [p for p, d in zip(params, decayed) if not d], "weight_decay": 0.0}],
                           lr=args.learning_rate, momentum=args.momentum)


def train_epoch(net, optimizer, args, images, labels, mean, rng, iteration):
    """One epoch (or what is left of `--train_steps`); returns `(iteration, cross-entropy, error, seconds)`."""
    import torch

    net.train()
    order = rng.permutation(len(images))
    ce_sum = wrong = seen = 0
    start = time.perf_counter()
    for b in range(min(len(images) // args.batch_size, args.train_steps - iteration)):
        idx = order[b * args.batch_size:(b + 1) * args.batch_size]
        x, y = to_tensor(crop_flip(images[idx], rng), mean), torch.from_numpy(labels[idx])
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(args, iteration)
        logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        iteration += 1
        ce_sum += float(loss.detach()) * len(idx)
        wrong += int((logits.detach().argmax(1) != y).sum())
        seen += len(idx)
    return iteration, ce_sum / seen, wrong / seen, time.perf_counter() - start


def write_log(output, rows):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(output / "log.csv", buffer.getvalue())


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    import torch

    sys.path.insert(0, str(HERE))
    from akamaster import akamaster_classes

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train_images, train_labels, val_images, val_labels, test_images, test_labels, mean, classes = read_data(args)
    net = akamaster_classes()[1](args.depth, classes=len(classes), residual=not args.plain)
    optimizer = paper_sgd(net, args)
    per_epoch = len(train_images) // args.batch_size
    epochs = -(-args.train_steps // per_epoch)
    name = f"{'plain' if args.plain else 'resnet'}{args.depth}"
    print(f"{name} (akamaster, PyTorch {torch.__version__}, {args.threads} threads): {args.train_steps} iterations "
          f"of batch {args.batch_size}, {per_epoch} per epoch, {epochs} epochs", flush=True)
    rows, iteration, train_seconds = [], 0, 0.0
    for epoch in range(epochs):
        iteration, ce, error, seconds = train_epoch(net, optimizer, args, train_images, train_labels, mean, rng,
                                                    iteration)
        train_seconds += seconds
        test_error, test_top5 = errors(net, test_images, test_labels, mean, args.eval_batch_size)
        done = (iteration - 1) % per_epoch + 1
        rows.append({"epoch": epoch, "iteration": iteration, "learning_rate": learning_rate(args, iteration - 1),
                     "cross_entropy": ce, "error": error, "test_error": test_error, "test_top5_error": test_top5,
                     "images_per_second": done * args.batch_size / seconds,
                     "wall_time_s": time.perf_counter() - started})
        write_log(output, rows)
        print(f"epoch {epoch + 1}/{epochs} - iteration {iteration} - cross-entropy {ce:.4f} - error "
              f"{100 * error:.2f}% - test_error {100 * test_error:.2f}% (top-5 {100 * test_top5:.2f}%) - "
              f"{rows[-1]['images_per_second']:.0f} images/s", flush=True)
    val_error = errors(net, val_images, val_labels, mean, args.eval_batch_size) if len(val_labels) else None
    last = rows[-1]
    summary = {
        "model": f"akamaster {name} (PyTorch)", "data": str(args.data), "train_steps": args.train_steps,
        "epochs": epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "boundaries": [round(args.train_steps * 0.5), round(args.train_steps * 0.75)],
        "weight_decay": args.weight_decay, "momentum": args.momentum, "validation_split": args.validation_split,
        "train_images": len(train_images), "seed": args.seed, "threads": args.threads,
        "final_test_error": last["test_error"], "final_test_top5_error": last["test_top5_error"],
        "final_val_error": None if val_error is None else val_error[0],
        "final_train_error": last["error"], "final_train_cross_entropy": last["cross_entropy"],
        "best_test_error": min(r["test_error"] for r in rows),
        "train_wall_time_s": train_seconds, "wall_time_s": time.perf_counter() - started,
        "images_per_second": iteration * args.batch_size / train_seconds,
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    write_atomically(output / "summary.json", json.dumps(summary, indent=1) + "\n")
    print(f"final test error {100 * last['test_error']:.2f}% (top-5 {100 * last['test_top5_error']:.2f}%); "
          f"{output / 'summary.json'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
