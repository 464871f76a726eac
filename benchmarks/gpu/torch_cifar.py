"""The `torch` part: training images/s of the PyTorch CIFAR ResNet (`torch_reference`), data resident on the
device and augmented there (pad 4, random crop, flip, normalise), in the `eager` and `compiled` setups.

Example:
    >>> from benchmarks.gpu.torch_cifar import part_torch
    >>> part_torch(args, report, cifar)  # the check and the rows go to the report  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import time

import numpy as np

from benchmarks.gpu.torch_reference import (check_torch_matches_keras, torch_available, torch_cifar_resnet,
                                            torch_train_throughput)


def device_batches(images, labels, mean, batch):
    """`make_batch()` for `torch_train_throughput`: the next batch of a per-epoch permutation of the uint8
    images `[N, 32, 32, 3]` on the device, augmented there; returns `(x NCHW view of NHWC memory, y)`."""
    import torch

    device = images.device
    n = len(labels)
    arange = torch.arange(32, device=device)
    bidx = torch.arange(batch, device=device)
    steps_per_epoch = n // batch
    state = {"perm": None, "pos": 0}

    def make_batch():
        if state["perm"] is None or state["pos"] == steps_per_epoch:
            state["perm"], state["pos"] = torch.randperm(n, device=device), 0
        idx = state["perm"][state["pos"] * batch:(state["pos"] + 1) * batch]
        state["pos"] += 1
        padded = torch.nn.functional.pad(images[idx], (0, 0, 4, 4, 4, 4))  # [B, 40, 40, 3]
        oy = torch.randint(0, 9, (batch,), device=device)
        ox = torch.randint(0, 9, (batch,), device=device)
        flip = torch.rand(batch, device=device) < 0.5
        rows = oy[:, None] + arange[None]
        cols = ox[:, None] + torch.where(flip[:, None], 31 - arange[None], arange[None])
        x = padded[bidx[:, None, None], rows[:, :, None], cols[:, None, :]]  # [B, 32, 32, 3]
        x = (x.float() - mean) * (1.0 / 255.0)
        return x.permute(0, 3, 1, 2), labels[idx]  # NCHW view of NHWC memory: channels-last

    return make_batch


def part_torch(args, report, cifar):
    """The part: the PyTorch-vs-Keras check, then every batch size x setup within the budget."""
    print(f"== torch: PyTorch reference ResNet-{args.torch_depth} (option A), AMP {args.torch_precision}, "
          "channels-last, data resident on the device and augmented there")
    if not torch_available(report, "torch part"):
        return
    import torch

    try:
        check_torch_matches_keras(args.torch_depth, report)
    except Exception as e:
        report.error("torch vs keras check", e)
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        report.skip("torch part", "CUDA is not available (use --smoke for a CPU run)")
        return
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
    images = torch.from_numpy(cifar.train_x).to(device)  # [N, 32, 32, 3] uint8
    labels = torch.from_numpy(cifar.train_y.astype(np.int64)).to(device)
    mean = torch.from_numpy(cifar.mean).to(device)
    model_name = f"resnet{args.torch_depth}"
    for batch in args.batch_sizes:
        make_batch = device_batches(images, labels, mean, batch)
        for setup in args.torch_setups:
            label = f"torch {model_name} b{batch} {setup}"
            if not report.fits(args.budget_s, f"torch {setup}"):
                report.skip(label, f"time budget {args.budget_s:.0f} s would be exceeded")
                continue
            t = time.perf_counter()
            try:
                torch.manual_seed(args.seed)
                torch_train_throughput(label, torch_cifar_resnet(args.torch_depth), make_batch, batch, setup, args,
                                       report, "torch", model_name, args.torch_compile_mode, 10,
                                       lr=0.1 * batch / 128)
            except Exception as e:
                report.error(label, e)
            report.cost(f"torch {setup}", time.perf_counter() - t)
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
    del images, labels
