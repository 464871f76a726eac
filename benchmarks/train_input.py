"""`train()` on TensorFlow with host-augmented batches against the device path, alternating runs.

Variants (`--variants`, a comma list, run in turn): `memory` (host batches), `device` (the device path as
the package feeds it: batch plans stacked 64 at a time, `MemoryInput.tf_distributed_plans`), and
`device-per-batch` (the device path fed by a Python generator called once per batch, as before
2026-12-01; defined here as the baseline of that change).

The in-memory CIFAR input can augment on the host (numpy pad-4 crop + flip + normalisation, fed through
`tf.data.Dataset.from_generator`: `--input=memory`) or inside the compiled step from the plans of the same
batches (`--input=device`, the default `auto` on one device; bitwise the same batches, see
`tests/test_training.py`). Each run is one `train()` of `--windows` windows of `--steps` iterations on
random uint8 32x32 images (`sync_every=steps`); the first window (tracing) is dropped and the median of
the others reported. Runs alternate memory, device, memory, ... so load on the machine hits both alike.

Threads: `--threads` (default 2) sets TensorFlow's intra- and inter-op pools and `OMP_NUM_THREADS`, as
`benchmarks/cpu_peers.py` does (with 1 thread the two paths measured alike: the host thread then does not
compete with the step's pool).

Usage:
    python benchmarks/train_input.py [--model resnet20] [--pairs 2] [--windows 6] [--steps 8] [--threads 2]
    python benchmarks/train_input.py --variants=device-per-batch,device --pairs 4 --windows 8
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



VARIANTS = ("memory", "device", "device-per-batch")


def batch_clock():
    """A callback recording the time of every batch end `train()` reports (once per `sync_every` steps)."""
    import keras

    class BatchClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.stamps = []

        def on_train_batch_end(self, index, logs=None):
            self.stamps.append(time.perf_counter())

    return BatchClock()


def per_batch_plans(self, runtime, epoch, skip, steps):
    """The device path's plan iterator with one generator call per batch (the baseline variant)."""
    import numpy as np
    import tensorflow as tf

    def gen():
        for indices, (offset_y, offset_x, flip) in self.epoch_plans(epoch, skip):
            yield (indices.astype(np.int32), offset_y.astype(np.int32), offset_x.astype(np.int32),
                   np.asarray(flip, bool))

    ints = tf.TensorSpec((self.global_batch,), tf.int32)
    spec = (ints, ints, ints, tf.TensorSpec((self.global_batch,), tf.bool))

    def dataset_fn(ctx):
        return tf.data.Dataset.from_generator(gen, output_signature=spec).take(steps).prefetch(2)

    return iter(runtime.strategy.distribute_datasets_from_function(dataset_fn))


def images_per_second(model, variant, batch, steps, windows, root):
    from benchmarks.cpu.train_worker import random_data
    from keras_resnet.training import TrainConfig, inputs, train

    choice = "device" if variant.startswith("device") else variant
    packaged = inputs.MemoryInput.tf_distributed_plans
    if variant == "device-per-batch":
        inputs.MemoryInput.tf_distributed_plans = per_batch_plans

    clock = batch_clock()
    config = TrainConfig(model=model, data="random", model_dir=os.path.join(root, f"{choice}-{time.time_ns()}"),
                         batch_size=batch, train_steps=steps * windows, steps_per_epoch=steps * windows,
                         precision="float32", sync_every=steps, verbose=0, seed=0, eval_batch_size=batch,
                         input=choice)
    try:
        train(config, data=random_data(batch, 0), callbacks=[clock])
    finally:
        inputs.MemoryInput.tf_distributed_plans = packaged
    ends = clock.stamps[steps - 1::steps]
    return statistics.median(batch * steps / (b - a) for a, b in zip(ends, ends[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="memory,device",
                        help="comma list of: " + ", ".join(VARIANTS))
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if not variants or any(v not in VARIANTS for v in variants):
        parser.error(f"--variants: received {args.variants!r}; accepted: a comma list of {', '.join(VARIANTS)}")
    os.environ.update(OMP_NUM_THREADS=str(args.threads), CPU_PEERS_THREADS=str(args.threads),
                      CPU_PEERS_TF_INTER_OP=str(args.threads))  # before TensorFlow starts
    from benchmarks.cpu.train_worker import set_tf_threads

    threads = set_tf_threads()
    results = {variant: [] for variant in variants}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.pairs):
            for choice in results:
                results[choice].append(images_per_second(args.model, choice, args.batch, args.steps, args.windows,
                                                         root))
                print(f"{args.model} {choice}: {results[choice][-1]:,.0f} img/s", flush=True)
    print(f"threads {threads}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    for choice, values in results.items():
        print(f"{choice}: median {statistics.median(values):,.0f} img/s over {len(values)} runs "
              f"({', '.join(f'{v:,.0f}' for v in values)})")
    first = variants[0]
    for variant in variants[1:]:
        print(f"{variant} / {first}: {statistics.median(results[variant]) / statistics.median(results[first]):.2f}")


if __name__ == "__main__":
    main()
