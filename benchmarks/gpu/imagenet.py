"""The `imagenet` part: training images/s of `keras_resnet` ResNet-50 (v1.5 by default: torchvision's FLOPs)
at 224x224, synthetic data, bf16, against `torchvision.models.resnet50` (AMP bf16, channels-last).

Example:
    >>> from benchmarks.gpu.imagenet import part_imagenet
    >>> part_imagenet(args, report)  # the rows go to the report  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import importlib.util

import numpy as np

from benchmarks.gpu.programs import block, build_package_model, copy_state, timed_windows
from benchmarks.gpu.report import summarize
from benchmarks.gpu.torch_reference import torch_available, torch_train_throughput

IMAGENET_TRAIN_SIZE = 1_281_167


def is_out_of_memory(exc):
    """Whether `exc` is an accelerator out-of-memory error (XLA's RESOURCE_EXHAUSTED or CUDA's)."""
    text = str(exc).lower()
    return "resource_exhausted" in text or "out of memory" in text or "outofmemory" in text


def jax_imagenet_row(model_name, variant, batch, args, report, what):
    """Images/s of the package's jitted step at ImageNet scale, one synthetic batch; the row, or None."""
    import jax

    size = args.imagenet_size
    model, recipe, stepper = build_package_model(model_name, batch, "bf16", IMAGENET_TRAIN_SIZE, args,
                                                 stride_in_3x3=bool(args.imagenet_stride_in_3x3),
                                                 input_shape=(size, size, 3))
    step = jax.jit(stepper.step_fn, donate_argnums=(0,))  # the package's step, state donated
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.normal(size=(batch, size, size, 3)).astype(np.float32))
    y = jax.device_put(rng.integers(0, 1000, batch).astype(np.int32))
    holder = {"state": copy_state(stepper.state)}

    def advance(n):
        for _ in range(n):
            holder["state"], ce, reg, _ = step(holder["state"], x, y)
        return float(block(ce + reg))

    times, compile_s, losses = timed_windows(advance, args.imagenet_steps, args.windows, 2, report, what,
                                             args.budget_s)
    del holder
    if not times:
        return None
    row = report.row(part="imagenet", framework="jax", model=f"{model_name} {variant}", torch_twin=model_name,
                     setup="jax package step", batch=batch, precision="bf16", compile_s=compile_s, losses=losses,
                     **summarize(times, args.imagenet_steps * batch))
    print(f"  {what}: {row['images_per_s']:,.0f} img/s (windows {row['min']:,.0f}-"
          f"{row['max']:,.0f}, compile {compile_s:.1f} s)", flush=True)
    return row


def jax_imagenet(args, report, variant):
    """The JAX measurement, the batch halved on out-of-memory; returns `(row or None, last batch tried)`."""
    import keras

    model_name, batch, jax_row = args.imagenet_model, args.imagenet_batch, None
    while batch >= 1:
        what = f"imagenet jax {model_name} b{batch}"
        if report.elapsed() > args.budget_s:
            report.skip(what, "time budget reached")
            break
        try:
            jax_row = jax_imagenet_row(model_name, variant, batch, args, report, what)
            break
        except Exception as e:
            if is_out_of_memory(e) and batch > 1:
                print(f"  {what}: out of memory; halving the batch", flush=True)
                batch //= 2
                keras.backend.clear_session()
                gc.collect()
                continue
            report.error(what, e)
            break
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    gc.collect()
    return jax_row, batch


def torchvision_imagenet(args, report, batch):
    """torchvision's model of the same name, trained on one synthetic batch, in each `--torch_setups`."""
    import torch
    import torchvision

    model_name, size = args.imagenet_model, args.imagenet_size
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        report.skip("imagenet torchvision", "CUDA is not available")
        return
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), generator=g).to(device)
    for setup in args.torch_setups:
        label = f"imagenet torchvision {model_name} b{batch} {setup}"
        if report.elapsed() > args.budget_s:
            report.skip(label, "time budget reached")
            continue
        try:
            net = getattr(torchvision.models, model_name)(weights=None)
            torch_train_throughput(label, net, lambda: (x, y), batch, setup, args, report, "imagenet", model_name,
                                   args.imagenet_compile_mode, 1000, lr=0.1 * batch / 256)
        except Exception as e:
            report.error(label, e)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()


def part_imagenet(args, report):
    """The part: the JAX row first, then torchvision at the batch that fitted."""
    size, model_name = args.imagenet_size, args.imagenet_model
    args.imagenet_steps = 3 if args.smoke else 20
    variant = "v1.5" if args.imagenet_stride_in_3x3 else "v1"
    print(f"== imagenet: keras_resnet {model_name} ({variant}) vs torchvision, {size}x{size} synthetic, bf16")
    jax_row, batch = jax_imagenet(args, report, variant)
    if not torch_available(report, "imagenet torchvision"):
        return
    if importlib.util.find_spec("torchvision") is None:
        report.skip("imagenet torchvision", "torchvision is not installed")
        return
    torchvision_imagenet(args, report, jax_row["batch"] if jax_row else batch)
