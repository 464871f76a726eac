"""JAX programs: the package's model, recipe and `JaxStepper` as `train()` makes them, the multi-iteration
programs around its steps (`step_fn`, `multi_step_fn(k)`: device augmentation, host batches, compute
only), and timed windows.

Example (JAX backend):
    >>> import argparse
    >>> from benchmarks.gpu.programs import build_package_model, make_scan_program, copy_state
    >>> model, recipe, stepper = build_package_model("resnet8", 16, "fp32", 512, argparse.Namespace(seed=0))
    >>> program = make_scan_program(stepper, batch=16, k=2, pad=4, mean=mean, mode="fused")  # a benchmark's own process  # doctest: +SKIP
    >>> state, loss_sum, correct_sum, last_loss = program(copy_state(stepper.state), images, labels, idx,
    ...                                                   np.uint32(0))  # a benchmark's own process  # doctest: +SKIP
"""

from __future__ import annotations

import gc
import math
import time

from benchmarks.gpu.cli import PRECISIONS


def block(tree):
    """Waits for every array in `tree` (JAX dispatch is asynchronous); returns `tree`."""
    import jax

    return jax.block_until_ready(tree)


def copy_state(state):
    """A copy of a stepper state on the device (the programs donate their state argument)."""
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), state)


def divisor_at_most(n, k):
    """The largest divisor of `n` that is at most `k` (iterations per call that end exactly at `n`)."""
    for d in range(min(k, n), 0, -1):
        if n % d == 0:
            return d
    return 1


def build_package_model(model_name, batch, precision, num_train, args, train_steps=None, **build_kwargs):
    """Model, recipe and `JaxStepper` as `keras_resnet.training.train` makes them on one JAX device.

    `keras_resnet.training.build_model` builds and compiles the model with the recipe's optimizer (built,
    so that the stepper takes its state at once); CIFAR models get 10 classes and 32x32x3 inputs, others the
    builder's defaults unless `build_kwargs` says (`input_shape`, `stride_in_3x3`, ...).
    """
    import keras

    from keras_resnet import training
    from keras_resnet.registry import model_spec
    from keras_resnet.training.steppers import JaxStepper

    keras.backend.clear_session()
    gc.collect()
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])
    keras.utils.set_random_seed(args.seed)
    config = training.TrainConfig(model=model_name, data="unused", model_dir="unused", batch_size=batch,
                                  train_steps=train_steps, seed=args.seed, precision=PRECISIONS[precision],
                                  verbose=0)
    recipe = training.resolve_recipe(config, num_train, batch)
    if model_spec(model_name).family == "cifar":
        build_kwargs = dict(classes=10, input_shape=(32, 32, 3), **build_kwargs)
    model = training.build_model(config, recipe, **build_kwargs)
    return model, recipe, JaxStepper(model)


def multi_step(stepper, k, unroll=1):
    """`(state, xs[k, B, H, W, C], ys[k, B]) -> (state, losses[k], corrects[k])`: `k` iterations of the
    package's step, for use inside a jitted program (each loss the cross-entropy plus the L2 term).

    The package's `JaxStepper.multi_step_fn(k)` (a `lax.scan` of `step_fn`); `k == 1`: `step_fn` alone, no
    loop (XLA:CPU runs while-loop bodies far slower than straight-line code); `unroll > 1`: the same scan of
    `step_fn` with `lax.scan(unroll=...)`, which `multi_step_fn` does not take.
    """
    import jax

    if k == 1:
        def one_step(state, xs, ys):
            state, ce, reg, correct = stepper.step_fn(state, xs[0], ys[0])
            return state, (ce + reg)[None], correct[None]

        return one_step
    if unroll == 1:
        def scanned(state, xs, ys):
            state, ces, regs, corrects = stepper.multi_step_fn(k)(state, xs, ys)
            return state, ces + regs, corrects

        return scanned

    def unrolled(state, xs, ys):
        def body(state, batch):
            state, ce, reg, correct = stepper.step_fn(state, *batch)
            return state, (ce + reg, correct)

        state, (losses, corrects) = jax.lax.scan(body, state, (xs, ys), length=k, unroll=unroll)
        return state, losses, corrects

    return unrolled


def make_scan_program(stepper, batch, k, pad, mean, mode, unroll=1):
    """One jitted call = `k` iterations of the package's step (`multi_step`: `JaxStepper.multi_step_fn(k)`).

    mode "fused": `(state, images_u8, labels, idx[k, B], counter)`: gather + device augmentation of the `k`
    batches (crop/flip parameters from `fold_in(PRNGKey(1234), counter)`, split in `k`) + the `k` steps.
    mode "host": `(state, x[k, B, H, W, C], y[k, B])`: batches augmented on the host.
    mode "compute": `(state, x[B, H, W, C], y[B])`: the same batch k times (no input work).
    Returns `(state, loss_sum, correct_sum, last_loss)`; the state is donated. `k == 1`: no loop; `unroll`
    is passed to `lax.scan` (GPUs do not have XLA:CPU's slow loops as far as is known, which the `fused@1`
    variant checks).
    """
    import jax
    import jax.numpy as jnp

    from keras_resnet.data.device_augment import augment_normalize, jax_crop_flip_params

    steps = multi_step(stepper, k, unroll)
    mean = None if mean is None else jnp.asarray(mean, jnp.float32)
    base_key = jax.random.PRNGKey(1234)

    def run(state, xs, ys):
        state, losses, corrects = steps(state, xs, ys)
        return state, jnp.sum(losses), jnp.sum(corrects), losses[-1]

    if mode == "fused":
        def program(state, images, labels, idx, counter):
            keys = jax.random.split(jax.random.fold_in(base_key, counter), k)
            xs = []
            for i in range(k):
                oy, ox, flip = jax_crop_flip_params(keys[i], batch, pad)
                xs.append(augment_normalize(jnp.take(images, idx[i], axis=0), mean, oy, ox, flip, pad))
            return run(state, jnp.stack(xs), jnp.take(labels, idx, axis=0))
    elif mode == "host":
        def program(state, xs, ys):
            return run(state, xs, ys)
    elif mode == "compute":
        def program(state, x, y):
            return run(state, jnp.broadcast_to(x, (k, *x.shape)), jnp.broadcast_to(y, (k, *y.shape)))
    else:
        raise ValueError(mode)
    return jax.jit(program, donate_argnums=(0,))


def timed_windows(advance, calls_per_window, windows, warmup_calls, report, what, budget_s):
    """Warm-up (compilation + `warmup_calls`), then `windows` timed windows; `advance(n)` dispatches n calls
    and blocks on the last result, returning its loss. Returns (times, compile_s, losses)."""
    t0 = time.perf_counter()
    losses = [advance(1)]
    compile_s = time.perf_counter() - t0
    if warmup_calls:
        losses.append(advance(warmup_calls))
    times = []
    for w in range(windows):
        if report.elapsed() > budget_s:
            print(f"  {what}: budget reached after {w} windows", flush=True)
            break
        t = time.perf_counter()
        losses.append(advance(calls_per_window))
        times.append(time.perf_counter() - t)
    return times, compile_s, losses


def steps_for_window(args, batch, k):
    """Calls per timed window: `--window_steps` scaled by 128 / batch, at least 2 calls and 2k iterations."""
    steps = max(2 * k, int(round(args.window_steps * 128 / batch)))
    return max(2, math.ceil(steps / k))  # calls per window
