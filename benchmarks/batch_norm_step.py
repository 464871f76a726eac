"""Fused against unfused batch normalisation on TensorFlow: a conv-BN-ReLU stack and a ResNet-20 train step.

Keras 3 normalises with separate ops (`tf.nn.moments`, `tf.nn.batch_normalization`);
`keras_resnet.batch_norm.BatchNormalization` runs TensorFlow's `FusedBatchNormV3`. Two measurements, each
unfused (`KERAS_RESNET_FUSED_BN=0` while tracing) against fused, timed in the same process in interleaved
windows (A, B, A, B, ...) after a warm-up, median seconds per step reported:

- `stack`: 18 x (3x3 conv, 16 -> 16 channels, no bias; BN; ReLU) on 32x32x16 inputs (ResNet-56's first
  stage), forward and backward (gradients of every weight and of the input);
- `resnet20`: one SGD step of ResNet-20 on 32x32x3 images as `train()` takes it (forward in training mode,
  sparse cross-entropy, gradients, momentum SGD update, moving statistics), on tensors already in memory.

Thread pools are TensorFlow's defaults unless `--intra_op` / `--inter_op` set them (they must be set
before TensorFlow runs anything, so compare settings across separate runs of this script).

Usage:
    python benchmarks/batch_norm_step.py [--batch_size 128] [--windows 7] [--steps_per_window 3]
        [--what stack,resnet20] [--intra_op 0] [--inter_op 0]
"""

import argparse
import os
import platform
import statistics
import time

import keras
import numpy as np

from keras_resnet.batch_norm import FUSED_ENV, BatchNormalization
from keras_resnet.cifar import cifar_resnet


def conv_bn_stack(depth=18, size=32, channels=16):
    """`depth` x (conv, BN, ReLU), built with this package's BN (its env switch picks the kernel)."""
    inputs = keras.Input((size, size, channels))
    x = inputs
    for i in range(depth):
        x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inputs, x, name="conv_bn_stack")


def stack_step(model):
    """A traced forward + backward of the stack (sum of the output as the loss)."""
    import tensorflow as tf

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(model(x, training=True))
        return tape.gradient(loss, [x] + model.trainable_variables)[0]

    return step


def train_step(model):
    """A traced SGD step shaped like `train()`'s TensorFlow step: loss, gradients, update."""
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, probs))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return loss

    return step


def traced(make_step, build_model, fused, *args):
    """`make_step(model)` traced (by a first call) with the kernel the env switch selects; a timer of it."""
    previous = os.environ.get(FUSED_ENV)
    os.environ[FUSED_ENV] = "1" if fused else "0"
    try:
        step = make_step(build_model())
        step(*args)
    finally:
        if previous is None:
            del os.environ[FUSED_ENV]
        else:
            os.environ[FUSED_ENV] = previous

    def run(steps):
        start = time.perf_counter()
        for _ in range(steps):
            out = step(*args)
        np.asarray(out)  # block on the result
        return (time.perf_counter() - start) / steps

    return run


def compare(name, runners, windows, steps, batch):
    """Interleaved windows after a warm-up; prints and returns the median seconds per step of each."""
    for run in runners.values():
        run(1)
    times = {label: [] for label in runners}
    for _ in range(windows):
        for label, run in runners.items():
            times[label].append(run(steps))
    medians = {label: statistics.median(t) for label, t in times.items()}
    for label, t in times.items():
        spread = f"{min(t) * 1e3:.0f}-{max(t) * 1e3:.0f}"
        print(f"| {name} | {label} | {medians[label] * 1e3:.1f} ({spread}) | {batch / medians[label]:.0f} |",
              flush=True)
    print(f"| {name} | speed-up | {medians['unfused'] / medians['fused']:.2f}x | |", flush=True)
    return medians


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--windows", type=int, default=7)
    parser.add_argument("--steps_per_window", type=int, default=3)
    parser.add_argument("--what", default="stack,resnet20", help="comma-separated: stack, resnet20")
    parser.add_argument("--intra_op", type=int, default=0, help="TF intra-op threads (0: TF's default)")
    parser.add_argument("--inter_op", type=int, default=0, help="TF inter-op threads (0: TF's default)")
    args = parser.parse_args()
    unknown = set(args.what.split(",")) - {"stack", "resnet20"}
    if unknown:
        parser.error(f"--what: unknown {sorted(unknown)}; accepted: stack, resnet20")
    return args


def main():
    args = parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    rng = np.random.default_rng(0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; TF {tf.__version__}, "
          f"Keras {keras.__version__}; intra_op {args.intra_op or 'default'}, inter_op {args.inter_op or 'default'}")
    print("| what | BN | ms/step median (min-max) | images/s |\n| --- | --- | --- | --- |")
    if "stack" in args.what:
        x = tf.constant(rng.normal(size=(args.batch_size, 32, 32, 16)).astype("float32"))
        runners = {label: traced(stack_step, conv_bn_stack, label == "fused", x) for label in ("unfused", "fused")}
        compare("18 x conv+BN+ReLU 32x32x16", runners, args.windows, args.steps_per_window, args.batch_size)
    if "resnet20" in args.what:
        x = tf.constant(rng.normal(size=(args.batch_size, 32, 32, 3)).astype("float32"))
        y = tf.constant(rng.integers(0, 10, args.batch_size))
        runners = {label: traced(train_step, lambda: cifar_resnet(20), label == "fused", x, y)
                   for label in ("unfused", "fused")}
        compare("ResNet-20 train step", runners, args.windows, args.steps_per_window, args.batch_size)


if __name__ == "__main__":
    main()
