"""Where a TensorFlow training step of a CIFAR ResNet spends its time, part by part, on a CPU.

Each part is one `tf.function` running `--steps` iterations on a fixed random float32 batch (no input
pipeline), timed over `--windows` windows after two warm-up calls, median reported in images/s and ms per
iteration:

- `forward`: the model in training mode and the loss;
- `forward+backward`: and the gradients (no update);
- `step`: the whole step of `train()` (loss with weight decay, gradients, SGD momentum 0.9);
- `step+augment`: the step on a batch gathered, cropped, flipped and normalised in the graph from a
  uint8 training set, as the device input does (`keras_resnet.data.device_augment.augment_normalize`);

and the crop/flip alone on a uint8 batch: the TensorFlow fast path (`tf_crop_flip`) and the generic
`keras.ops` one (`ops_crop_flip`). Every part runs in this one process, one after the other.

With `--ops`, the `step+augment` loop (the step as `train()` runs it with the device input) is then
profiled once and its kernel time per op type per iteration printed (`benchmarks/tf_kernel_times.py`).

Usage:
    python benchmarks/tf_step_profile.py [--model resnet20] [--batch 128] [--steps 8] [--windows 5] [--threads 2]
    python benchmarks/tf_step_profile.py --ops
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(fn, windows):
    fn(), fn()
    times = []
    for _ in range(windows):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_parts(model_name, batch):
    """`{part: a function of (x, y) returning a scalar}` for one model, as `train()` computes it."""
    import keras
    import tensorflow as tf

    import keras_resnet
    from keras_resnet.training.steppers import sparse_ce

    model = keras_resnet.build(model_name)
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)

    def loss_of(x, y):
        probs = model(x, training=True)
        return sparse_ce(y, probs) + (keras.ops.sum(keras.ops.stack(model.losses)) if model.losses else 0.0)

    def forward(x, y):
        return loss_of(x, y)

    def gradients(x, y):
        with tf.GradientTape() as tape:
            loss = loss_of(x, y)
        grads = tape.gradient(loss, model.trainable_variables)
        return loss + 0.0 * tf.add_n([tf.reduce_sum(g) for g in grads])

    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_of(x, y)
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    return {"forward": forward, "forward+backward": gradients, "step": step}, model.input_shape[1:]


def augmented(step, shape, batch, train_size=50_000):
    """`step` on batches gathered and augmented in the graph from a random uint8 training set."""
    import numpy as np
    import tensorflow as tf

    from keras_resnet.data.device_augment import augment_normalize

    rng = np.random.default_rng(2)
    images = tf.constant(rng.integers(0, 256, (train_size, *shape), dtype=np.uint8))
    labels = tf.constant(rng.integers(0, 10, train_size).astype(np.int32))
    mean = tf.constant(np.full(shape, 120.0, np.float32))

    def run(x, y):
        indices = tf.random.uniform([batch], 0, train_size, tf.int32)
        offset_y, offset_x = (tf.random.uniform([batch], 0, 9, tf.int32) for _ in range(2))
        flip = tf.random.uniform([batch]) < 0.5
        x = augment_normalize(tf.gather(images, indices), mean, offset_y, offset_x, flip)
        return step(x, tf.gather(labels, indices))

    return run


def crop_flip_parts(shape, batch):
    import numpy as np
    import tensorflow as tf

    from keras_resnet.data.device_augment import ops_crop_flip, tf_crop_flip

    images = tf.constant(np.random.default_rng(3).integers(0, 256, (batch, *shape), dtype=np.uint8))
    offsets = tf.constant(np.random.default_rng(4).integers(0, 9, (2, batch)), tf.int32)
    flip = tf.constant(np.random.default_rng(5).random(batch) < 0.5)
    return {name: tf.function(lambda fn=fn: tf.reduce_sum(tf.cast(fn(images, offsets[0], offsets[1], flip),
                                                                   tf.int32)))
            for name, fn in (("crop/flip tf_crop_flip", tf_crop_flip), ("crop/flip ops_crop_flip", ops_crop_flip))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ops", action="store_true", help="profile the step+augment loop's kernels by op type")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    parts, shape = step_parts(args.model, args.batch)
    parts["step+augment"] = augmented(parts["step"], shape, args.batch)
    x = tf.constant(np.random.default_rng(0).standard_normal((args.batch, *shape)).astype("float32"))
    y = tf.constant(np.random.default_rng(1).integers(0, 10, args.batch))
    print(f"{args.model}, batch {args.batch}, {args.threads} threads, median of {args.windows} windows")
    loops = {}
    for name, part in parts.items():
        @tf.function
        def loop(part=part):
            total = tf.constant(0.0)
            for _ in tf.range(args.steps):
                total += tf.cast(part(x, y), tf.float32)
            return total

        loops[name] = loop
        seconds = timed(lambda: loop().numpy(), args.windows) / args.steps
        print(f"{name}: {args.batch / seconds:,.0f} images/s, {seconds * 1000:.1f} ms per iteration", flush=True)
    for name, fn in crop_flip_parts(shape, args.batch).items():
        calls = 50
        seconds = timed(lambda fn=fn: [fn().numpy() for _ in range(calls)], args.windows) / calls
        print(f"{name} (batch {args.batch}): {seconds * 1000:.2f} ms", flush=True)
    if args.ops:
        from benchmarks.tf_kernel_times import profile_kernels, table

        times = profile_kernels(lambda: loops["step+augment"]().numpy(), calls=1)
        per_step = {op: (ms / args.steps, count / args.steps) for op, (ms, count) in times.items()}
        print(f"step+augment, kernel time per iteration by op type ({args.steps} profiled iterations):")
        print(table(per_step, unit="iteration"))


if __name__ == "__main__":
    main()
