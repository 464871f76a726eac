"""One training step of keras_resnet.ResNet50() against keras.applications.ResNet50, and build times.

Both models take the same batch, loss and optimizer (SGD, momentum 0.9), are compiled the same way and are
timed in the same process in interleaved windows (A, B, A, B, ...) after a warm-up, so load on the machine
hits both alike. Reports the median seconds per step of each and the ratio (baseline / ours: > 1 means ours
is faster), then the time to build ResNet-152 and ResNet-1202.

Usage:
    python benchmarks/model_step.py [--batch_size 16] [--windows 5] [--steps_per_window 2]
"""

import argparse
import platform
import statistics
import time

import keras
import numpy as np

import keras_resnet


def step_timer(model, images, labels):
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")

    def run(steps):
        start = time.perf_counter()
        for _ in range(steps):
            loss = model.train_on_batch(images, labels)
        float(loss)  # block on the result
        return (time.perf_counter() - start) / steps

    return run


def timed_build(constructor):
    start = time.perf_counter()
    constructor()
    elapsed = time.perf_counter() - start
    keras.backend.clear_session()
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--steps_per_window", type=int, default=2)
    parser.add_argument("--skip_builds", action="store_true", help="skip the ResNet-152/1202 build timings")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    images = rng.normal(size=(args.batch_size, 224, 224, 3)).astype("float32")
    labels = rng.integers(0, 1000, size=args.batch_size)
    runners = {
        "keras_resnet.ResNet50": step_timer(keras_resnet.ResNet50(), images, labels),
        "keras.applications.ResNet50": step_timer(keras.applications.ResNet50(weights=None), images, labels),
    }
    for run in runners.values():  # warm-up: compile and first steps
        run(2)
    times = {name: [] for name in runners}
    for window in range(args.windows):
        for name, run in runners.items():
            times[name].append(run(args.steps_per_window))
        print(f"window {window + 1}/{args.windows}: " + ", ".join(f"{n} {t[-1]:.3f}s" for n, t in times.items()), flush=True)
    ours, baseline = (statistics.median(times[name]) for name in runners)

    print(f"\nmachine: {platform.processor() or platform.machine()}, backend {keras.backend.backend()}, batch {args.batch_size}")
    print("| model | median s/step | images/s |")
    print("| --- | --- | --- |")
    for name in runners:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.3f} | {args.batch_size / median:.1f} |")
    print(f"ratio (keras.applications / ours, >= 1.0 means ours is at least as fast): {baseline / ours:.3f}")

    if not args.skip_builds:
        print("\n| build | seconds (median of 3) |")
        print("| --- | --- |")
        for name, constructor in (("ResNet152()", keras_resnet.ResNet152), ("ResNet1202()", keras_resnet.ResNet1202)):
            print(f"| {name} | {statistics.median(timed_build(constructor) for _ in range(3)):.1f} |", flush=True)


if __name__ == "__main__":
    main()
