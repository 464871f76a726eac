"""`train()` on TensorFlow with host-augmented batches against the device path, alternating runs.

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
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))



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


def images_per_second(model, choice, batch, steps, windows, root):
    from benchmarks.cpu.train_worker import random_data
    from keras_resnet.training import TrainConfig, train

    clock = batch_clock()
    config = TrainConfig(model=model, data="random", model_dir=os.path.join(root, f"{choice}-{time.time_ns()}"),
                         batch_size=batch, train_steps=steps * windows, steps_per_epoch=steps * windows,
                         precision="float32", sync_every=steps, verbose=0, seed=0, eval_batch_size=batch,
                         input=choice)
    train(config, data=random_data(batch, 0), callbacks=[clock])
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
    args = parser.parse_args()
    os.environ.update(OMP_NUM_THREADS=str(args.threads), CPU_PEERS_THREADS=str(args.threads),
                      CPU_PEERS_TF_INTER_OP=str(args.threads))  # before TensorFlow starts
    from benchmarks.cpu.train_worker import set_tf_threads

    threads = set_tf_threads()
    results = {"memory": [], "device": []}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.pairs):
            for choice in results:
                results[choice].append(images_per_second(args.model, choice, args.batch, args.steps, args.windows,
                                                         root))
                print(f"{args.model} --input={choice}: {results[choice][-1]:,.0f} img/s", flush=True)
    print(f"threads {threads}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    for choice, values in results.items():
        print(f"{choice}: median {statistics.median(values):,.0f} img/s over {len(values)} runs "
              f"({', '.join(f'{v:,.0f}' for v in values)})")
    print(f"device / memory: {statistics.median(results['device']) / statistics.median(results['memory']):.2f}")


if __name__ == "__main__":
    main()
