"""The `throughput` part: end-to-end training images/s of the package's step on Keras' JAX backend, in the
variants `fused` (device-resident data, device augmentation, several iterations per call), `host` (batches
augmented on the host), `compute` (one fixed batch) and `package` (`training.train()` itself).

Example:
    >>> from benchmarks.gpu.throughput import part_throughput
    >>> part_throughput(args, report, cifar)  # rows and checks go to the report  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import gc
import os
import statistics
import tempfile
import time

import numpy as np

from benchmarks.gpu.cli import PRECISIONS
from benchmarks.gpu.data import IndexStream
from benchmarks.gpu.environment import on_gpu
from benchmarks.gpu.programs import (block, build_package_model, copy_state, make_scan_program,
                                     steps_for_window, timed_windows)
from benchmarks.gpu.report import summarize


def fused_advance(program, holder, cifar, batch, k, seed):
    """`advance(n)` for the fused program: uint8 training set on the device, only indices sent per call.
    Returns `(advance, seconds to put the training set on the device)`."""
    import jax

    t = time.perf_counter()
    images, labels = jax.device_put(cifar.train_x), jax.device_put(cifar.train_y)
    block((images, labels))
    put_s = time.perf_counter() - t
    stream = IndexStream(len(cifar.train_y), batch, k, seed)

    def advance(n):
        for _ in range(n):
            holder["state"], ls, cs, last = program(holder["state"], images, labels, stream.next(),
                                                    np.uint32(holder["counter"]))
            holder["counter"] += 1
        return float(block(ls)) / k

    return advance, put_s


def host_advance(program, holder, cifar, batch, k, seed):
    """`advance(n)` for the host program: batches augmented by the numpy `ArrayIterator`, sent every call."""
    import jax.numpy as jnp

    from keras_resnet.data.in_memory import ArrayIterator

    it = ArrayIterator(cifar.train_x, cifar.train_y, batch, training=True, mean=cifar.mean, seed=seed)

    def batches():
        while True:
            yield from it

    gen = batches()

    def advance(n):
        for _ in range(n):
            xs, ys = zip(*(next(gen) for _ in range(k)))
            holder["state"], ls, cs, last = program(holder["state"], jnp.asarray(np.stack(xs)),
                                                    jnp.asarray(np.stack(ys)))
        return float(block(ls)) / k

    return advance, 0.0


def compute_advance(program, holder, cifar, batch, k):
    """`advance(n)` for the compute program: one normalised batch on the device, reused by every call."""
    import jax

    from keras_resnet.data.preprocessing import normalize

    x = jax.device_put(normalize(cifar.train_x[:batch], cifar.mean))
    y = jax.device_put(cifar.train_y[:batch])

    def advance(n):
        for _ in range(n):
            holder["state"], ls, cs, last = program(holder["state"], x, y)
        return float(block(ls)) / k

    return advance, 0.0


def jax_throughput_config(model_name, batch, precision, variant, cifar, args, report):
    """Images/s of one configuration; `variant` is `fused`, `host`, `compute` or `package`, optionally
    `NAME@K` (K iterations per call instead of `--steps_per_call`). Returns the report row, or None."""
    variant, _, k = variant.partition("@")
    k = int(k) if k else args.steps_per_call
    setup = f"jax {variant} (k={k})"
    if variant == "package":
        return package_throughput(model_name, batch, precision, cifar, args, report)
    t_build = time.perf_counter()
    model, recipe, stepper = build_package_model(model_name, batch, precision, len(cifar.train_y), args)
    build_s = time.perf_counter() - t_build
    program = make_scan_program(stepper, batch, k, 4, cifar.mean, variant, args.scan_unroll)
    holder = {"state": copy_state(stepper.state), "counter": 0}
    calls = steps_for_window(args, batch, k)
    if variant == "fused":
        advance, put_s = fused_advance(program, holder, cifar, batch, k, args.seed)
    elif variant == "host":
        advance, put_s = host_advance(program, holder, cifar, batch, k, args.seed)
    else:  # compute
        advance, put_s = compute_advance(program, holder, cifar, batch, k)
    times, compile_s, losses = timed_windows(advance, calls, args.windows, args.warmup_calls, report,
                                             f"{model_name} b{batch} {precision} {variant}", args.budget_s)
    del holder, program
    if not times:
        report.skip(f"throughput {model_name} b{batch} {precision} {variant}", "budget reached before timing")
        return None
    row = report.row(part="throughput", framework="jax", model=model_name, setup=setup, batch=batch,
                     precision=precision, steps_per_call=k, compile_s=compile_s, build_s=build_s,
                     dataset_to_device_s=put_s, losses=losses, **summarize(times, calls * k * batch))
    print(f"  {model_name} b{batch} {precision} {setup}: {row['images_per_s']:,.0f} img/s "
          f"(windows {row['min']:,.0f}-{row['max']:,.0f}, compile {compile_s:.1f} s, loss {losses[0]:.3f} -> "
          f"{losses[-1]:.3f})", flush=True)
    return row


def package_throughput(model_name, batch, precision, cifar, args, report):
    """`training.train()` itself: epochs of `window` iterations, images/s per epoch from log.csv."""
    from keras_resnet import training

    steps = max(2, int(round(args.window_steps * 128 / batch)))
    windows = args.windows
    test_n = min(len(cifar.test_y), 2 * batch)  # evaluation between epochs is not what is measured
    data = training.ArrayData(cifar.data.info, cifar.data.train, (cifar.test_x[:test_n], cifar.test_y[:test_n]))
    with tempfile.TemporaryDirectory() as model_dir:
        config = training.TrainConfig(model=model_name, data="in-memory", model_dir=model_dir, batch_size=batch,
                                      train_steps=steps * (windows + 1), steps_per_epoch=steps,
                                      precision=PRECISIONS[precision], seed=args.seed, verbose=0, input="auto",
                                      distribution="none")
        t0 = time.perf_counter()
        summary = training.train(config, data=data)
        total = time.perf_counter() - t0
        with open(os.path.join(model_dir, "log.csv")) as f:
            rows = list(csv.DictReader(f))
    rates = [float(r["images_per_second"]) for r in rows[1:]]  # epoch 1 includes compilation
    if not rates:
        report.skip(f"throughput {model_name} b{batch} {precision} package", "no timed epoch")
        return None
    row = report.row(part="throughput", framework="jax", model=model_name, setup="jax package train()",
                     batch=batch, precision=precision, images_per_s=statistics.median(rates), min=min(rates),
                     max=max(rates), compile_s=steps * batch / float(rows[0]["images_per_second"]),
                     total_s=total, epoch_rates=rates, losses=[float(r["loss"]) for r in rows],
                     final_test_error=summary["test_error"], images_per_window=steps * batch)
    print(f"  {model_name} b{batch} {precision} package train(): {row['images_per_s']:,.0f} img/s "
          f"(epochs {row['min']:,.0f}-{row['max']:,.0f}, first epoch incl. compile {row['compile_s']:.1f} s, "
          f"{total:.0f} s in all)", flush=True)
    return row


def numpy_augment(xb, oy, ox, flip, pad=4):
    """Pad, crop at `(oy, ox)` and flip where `flip`, in numpy (the reference for the device augmentation)."""
    batch, size = len(xb), xb.shape[1]
    padded = np.pad(xb, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    cols = np.where(flip[:, None], size - 1 - np.arange(size)[None], np.arange(size)[None]) + ox[:, None]
    rows = oy[:, None] + np.arange(size)[None]
    return padded[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]


def check_fused_matches_package(cifar, args, report):
    """The fused program (device augmentation + the package's `multi_step_fn`) computes what the package's
    `step_fn` computes: same augmentation as the numpy path for the same crop/flip parameters, same losses
    and weights after 2 iterations."""
    import jax
    import jax.numpy as jnp
    import keras

    from keras_resnet.data import device_augment
    from keras_resnet.data.in_memory import random_crop_flip
    from keras_resnet.data.preprocessing import normalize

    x = cifar.train_x[:64]
    ref, (oy, ox, flip) = random_crop_flip(x, np.random.default_rng(0), return_params=True)
    dev = np.asarray(jax.jit(device_augment.crop_flip)(jnp.asarray(x), oy, ox, flip))
    report.check("device augmentation == numpy ArrayIterator augmentation (same crop/flip parameters)",
                 bool((dev == ref).all()), f"{int((dev != ref).sum())} differing values of {ref.size}")

    batch, k = 16, 2
    with jax.default_matmul_precision("highest"):
        model, recipe, stepper = build_package_model("resnet8", batch, "fp32", len(cifar.train_y), args)
        program = make_scan_program(stepper, batch, k, 4, cifar.mean, "fused")
        images, labels = jnp.asarray(cifar.train_x), jnp.asarray(cifar.train_y)
        idx = IndexStream(len(cifar.train_y), batch, k, 0).next()
        state0 = copy_state(stepper.state)
        state, loss_sum, _, _ = program(copy_state(state0), images, labels, idx, np.uint32(7))
        # The same two steps through the package's step, with the parameters the fused program drew.
        keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(1234), np.uint32(7)), k)
        ref_state, ref_losses = state0, []
        for i in range(k):
            oy, ox, flip = (np.asarray(a) for a in device_augment.jax_crop_flip_params(keys[i], batch))
            xa = numpy_augment(cifar.train_x[idx[i]], oy, ox, flip)
            ref_state, ce, reg, _ = stepper.step_fn(ref_state, normalize(xa, cifar.mean), cifar.train_y[idx[i]])
            ref_losses.append(float(ce + reg))
    tol = 2e-3 if on_gpu() else 1e-4  # GPU: the two programs may pick different cuDNN algorithms
    flat = jax.tree_util.tree_leaves(state[0])
    flat_ref = jax.tree_util.tree_leaves(ref_state[0])
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(flat, flat_ref))
    loss_diff = abs(float(loss_sum) - sum(ref_losses))
    report.check("fused program (device augmentation + JaxStepper.multi_step_fn(2)) == 2 x JaxStepper.step_fn "
                 "(resnet8, fp32, weights and losses)",
                 diff < tol and loss_diff < tol * k,
                 f"max |weight diff| {diff:.2e}, |loss sum diff| {loss_diff:.2e}, losses {ref_losses}")
    keras.mixed_precision.set_global_policy("float32")


def part_throughput(args, report, cifar):
    """The part: the fused-vs-package check, then every model x precision x batch x variant in the budget."""
    print("== throughput (JAX backend, end to end: data resident on the device, augmentation included)")
    try:
        check_fused_matches_package(cifar, args, report)
    except Exception as e:
        report.error("fused vs package check", e)
    for model_name in args.models:
        for precision in args.precisions:
            for batch in args.batch_sizes:
                for variant in args.variants:
                    what = f"throughput {model_name} b{batch} {precision} {variant}"
                    kind = f"jax {model_name} {variant}"
                    if not report.fits(args.budget_s, kind):
                        report.skip(what, f"time budget {args.budget_s:.0f} s would be exceeded")
                        continue
                    t = time.perf_counter()
                    try:
                        jax_throughput_config(model_name, batch, precision, variant, cifar, args, report)
                    except Exception as e:
                        report.error(what, e)
                    report.cost(kind, time.perf_counter() - t)
                    gc.collect()
