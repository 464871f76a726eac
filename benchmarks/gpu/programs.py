"""JAX programs: the package's model, recipe and jitted step as `train()` makes them, the multi-iteration
programs around that step (device augmentation, host batches, compute only), and timed windows.

Example (JAX backend):
    >>> import argparse
    >>> from benchmarks.gpu.programs import build_package_model, make_scan_program, copy_state
    >>> model, recipe, stepper = build_package_model("resnet8", 16, "fp32", 512, argparse.Namespace(seed=0))
    >>> program = make_scan_program(stepper, batch=16, k=2, pad=4, mean=mean, mode="fused")  # doctest: +SKIP
    >>> state, loss_sum, correct_sum, last_loss = program(copy_state(stepper.state), images, labels, idx,
    ...                                                   np.uint32(0))  # doctest: +SKIP
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
    """Model, recipe and `_StatelessStepper` exactly as `keras_resnet.training.train` makes them."""
    import keras

    from keras_resnet import training
    from keras_resnet.registry import build, family_of

    keras.backend.clear_session()
    gc.collect()
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])
    keras.utils.set_random_seed(args.seed)
    family = family_of(model_name)[0]
    config = training.TrainConfig(model=model_name, data="unused", model_dir="unused", batch_size=batch,
                                  train_steps=train_steps, seed=args.seed, precision=PRECISIONS[precision],
                                  verbose=0)
    recipe = training.resolve_recipe(config, num_train, batch)
    kwargs = dict(kernel_regularizer=recipe.regularizer(), **build_kwargs)
    if family == "cifar":
        kwargs.update(classes=10, input_shape=(32, 32, 3))
    model = build(model_name, **kwargs)
    model.compile(optimizer=recipe.optimizer(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.optimizer.build(model.trainable_variables)
    stepper = training._StatelessStepper(model, training.Runtime("jax"))
    return model, recipe, stepper


def make_scan_program(stepper, batch, k, pad, mean, mode, unroll=1):
    """One jitted call = `k` iterations of the package's step (`stepper._step`) in a `lax.scan`.

    mode "fused": `(state, images_u8, labels, idx[k, B], counter)`: gather + device augmentation + step.
    mode "host": `(state, x[k, B, H, W, C], y[k, B])`: batches augmented on the host.
    mode "compute": `(state, x[B, H, W, C], y[B])`: the same batch k times (no input work).
    Returns `(state, loss_sum, correct_sum, last_loss)`; the state is donated. `k == 1`: no loop; `unroll`
    is passed to `lax.scan` (XLA:CPU runs while-loop bodies far slower than straight-line code; GPUs do not
    have that problem as far as is known, which the `fused@1` variant checks).
    """
    import jax
    import jax.numpy as jnp

    from keras_resnet.data.device_augment import augment_normalize, jax_crop_flip_params

    inner = stepper._step  # the package's jitted step: (state, x, y) -> (state, loss, correct)
    mean = None if mean is None else jnp.asarray(mean, jnp.float32)
    base_key = jax.random.PRNGKey(1234)

    def run(state, xs, body, length=None):
        init = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        if k == 1:  # no loop at all: one iteration per call
            (state, loss_sum, correct_sum), loss = body(init, jax.tree_util.tree_map(lambda a: a[0], xs))
            return state, loss_sum, correct_sum, loss
        (state, loss_sum, correct_sum), losses = jax.lax.scan(body, init, xs, length=length, unroll=unroll)
        return state, loss_sum, correct_sum, losses[-1]

    if mode == "fused":
        def program(state, images, labels, idx, counter):
            keys = jax.random.split(jax.random.fold_in(base_key, counter), k)

            def body(carry, inp):
                state, loss_sum, correct_sum = carry
                i, key = inp
                oy, ox, flip = jax_crop_flip_params(key, batch, pad)
                x = augment_normalize(jnp.take(images, i, axis=0), mean, oy, ox, flip, pad)
                state, loss, correct = inner(state, x, jnp.take(labels, i, axis=0))
                return (state, loss_sum + loss, correct_sum + correct), loss

            return run(state, (idx, keys), body)
    elif mode == "host":
        def program(state, xs, ys):
            def body(carry, inp):
                state, loss_sum, correct_sum = carry
                state, loss, correct = inner(state, *inp)
                return (state, loss_sum + loss, correct_sum + correct), loss

            return run(state, (xs, ys), body)
    elif mode == "compute":
        def program(state, x, y):
            def body(carry, _):
                state, loss_sum, correct_sum = carry
                state, loss, correct = inner(state, x, y)
                return (state, loss_sum + loss, correct_sum + correct), loss

            return run(state, None, body, length=k)
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
