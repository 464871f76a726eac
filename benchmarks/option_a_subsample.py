"""The option-A shortcut's subsampling on TensorFlow's CPU kernels: a strided slice against the package's
reshape + plain slice (`keras_resnet.blocks.subsample`).

Two measurements, each the median of `--windows` windows, the two implementations alternating window by
window in one process:

- the op alone, forward and forward + backward, on the shapes of a CIFAR ResNet's two option-A shortcuts
  (`[batch, 32, 32, 16]` and `[batch, 16, 16, 32]`, subsampled by 2);
- the whole BN-folded ResNet-20 (`keras_resnet.inference.fold_batch_norms`) in inference, in a
  `tf.function`, with the shortcut traced once with each implementation.

Both implementations are checked equal (values and gradients) before timing.

Usage:
    OMP_NUM_THREADS=2 python benchmarks/option_a_subsample.py [--batch 128] [--windows 7] [--threads 2]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def strided(x, strides):
    """The baseline: `x[:, ::s, ::s, :]`, TensorFlow's StridedSlice (and StridedSliceGrad)."""
    return x if strides == 1 else x[:, ::strides, ::strides, :]


def alternating(functions, windows, calls):
    """`{name: median ms per call}`, the functions taking turns window by window."""
    times = {name: [] for name in functions}
    for fn in functions.values():
        fn()
    for _ in range(windows):
        for name, fn in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def op_functions(tf, subsample, shape):
    """`{label: zero-argument timed function}` of both implementations, forward and forward + backward."""
    import numpy as np

    x = tf.constant(np.random.default_rng(0).standard_normal(shape).astype("float32"))
    weights = tf.constant(np.random.default_rng(1).standard_normal(strided(x, 2).shape).astype("float32"))
    out = {}
    for name, fn in (("strided slice", strided), ("reshape + slice", subsample)):
        forward = tf.function(lambda fn=fn: tf.reduce_sum(fn(x, 2)))

        @tf.function
        def backward(fn=fn):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(fn(x, 2) * weights)
            return loss, tape.gradient(loss, x)  # the loss too, so the forward slice is not pruned

        out[f"{name}, forward"] = lambda f=forward: f().numpy()
        out[f"{name}, forward+backward"] = lambda f=backward: [t.numpy() for t in f()]
    first, second = (out[f"{n}, forward+backward"]() for n in ("strided slice", "reshape + slice"))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    return out


def network_functions(tf, blocks, batch):
    """The folded ResNet-20 at `batch`, traced with each implementation of the shortcut's subsampling."""
    import numpy as np

    import keras_resnet
    from keras_resnet.inference import fold_batch_norms

    model, _ = fold_batch_norms(keras_resnet.ResNet20())
    x = tf.constant(np.random.default_rng(2).standard_normal((batch, 32, 32, 3)).astype("float32"))
    packaged, out, results = blocks.subsample, {}, []
    for name, fn in (("strided slice", strided), ("reshape + slice", packaged)):
        blocks.subsample = fn  # looked up when ZeroPadShortcut.call is traced
        try:
            traced = tf.function(lambda: model(x, training=False)).get_concrete_function()
        finally:
            blocks.subsample = packaged
        results.append(traced().numpy())
        out[f"ResNet-20 folded inference, {name}"] = lambda f=traced: f().numpy()
    np.testing.assert_array_equal(results[0], results[1])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--windows", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import tensorflow as tf

    from keras_resnet import blocks

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    print(f"batch {args.batch}, TensorFlow {tf.__version__}, {args.threads} threads, median of {args.windows} windows")
    for shape in ((args.batch, 32, 32, 16), (args.batch, 16, 16, 32)):
        for label, ms in alternating(op_functions(tf, blocks.subsample, shape), args.windows, 20).items():
            print(f"{list(shape)} {label}: {ms:.3f} ms", flush=True)
    for label, ms in alternating(network_functions(tf, blocks, args.batch), args.windows, 10).items():
        print(f"{label}: {ms:.2f} ms ({args.batch / ms * 1000:,.0f} images/s)", flush=True)


if __name__ == "__main__":
    main()
