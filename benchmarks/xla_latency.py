"""Inference of the BN-folded network as a `tf.function`, with and without XLA, at one batch size.

The experiment behind the export's rule of no XLA-compiled signature (benchmarks/BENCHMARKS.md, issue 15):
the same folded Keras model (`keras_resnet.inference.fold_batch_norms`) called in a `tf.function`, plain
and with `jit_compile=True`, on a fixed random float32 batch; median of `--windows` windows (milliseconds
per call) after warm-up calls.

Usage:
    OMP_NUM_THREADS=2 python benchmarks/xla_latency.py --model resnet20 --batch 1
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_resnet  # noqa: E402
from keras_resnet.inference import fold_batch_norms  # noqa: E402


def milliseconds(fn, x, calls, windows):
    for _ in range(5):
        fn(x).numpy()
    times = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(calls):
            fn(x).numpy()
        times.append((time.perf_counter() - start) / calls * 1000)
    return statistics.median(times), times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--calls", type=int, default=0, help="calls per window (0: 200 at batch 1, else 10)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    model, _ = fold_batch_norms(keras_resnet.build(args.model))
    side = 224 if model.input_shape[1] in (None, 224) else model.input_shape[1]
    x = tf.constant(np.random.default_rng(0).standard_normal((args.batch, side, side, 3)).astype("float32"))
    calls = args.calls or (200 if args.batch == 1 and side == 32 else 10)
    for jit in (False, True):
        fn = tf.function(lambda images: model(images, training=False), jit_compile=jit)
        median, times = milliseconds(fn, x, calls, args.windows)
        print(f"{args.model} batch {args.batch} {'XLA' if jit else 'TF '}: median {median:.3f} ms "
              f"(windows {', '.join(f'{t:.3f}' for t in times)})", flush=True)


if __name__ == "__main__":
    main()
