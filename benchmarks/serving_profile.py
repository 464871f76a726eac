"""Where a SavedModel's `serving_default` spends its time on a CPU: kernel time per op type.

Exports a network with non-trivial BN statistics (`keras_resnet.export.export_saved_model`, BN folded) to a
temporary directory, or takes `--saved-model`, loads it with `tf.saved_model.load`, times `--calls` calls
of `serving_default` on a random uint8 batch (median of `--windows` windows), then records `--profiled`
calls with TensorFlow's profiler and prints the kernel time per op type per call, summed over threads (ops
that run side by side on the inter-op pool both count, so the sum can exceed the call;
`benchmarks/tf_kernel_times.py`).

Usage:
    OMP_NUM_THREADS=2 python benchmarks/serving_profile.py --model resnet20 --batch 1 --threads 1
    OMP_NUM_THREADS=2 python benchmarks/serving_profile.py --saved-model saved_models/resnet20/1 --batch 128
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.cpu.timing import Timer, summarize  # noqa: E402
from benchmarks.tf_kernel_times import profile_kernels, table  # noqa: E402


def export(model_name, root):
    """Our `model_name` with randomised BN statistics, exported to `root`; returns the version path."""
    import numpy as np

    from benchmarks.cpu.prepare import keras_network, mean_image, randomise_batch_norms
    from keras_resnet.export import export_saved_model

    rng = np.random.default_rng(0)
    model = keras_network(model_name)
    randomise_batch_norms(model, rng)
    return export_saved_model(model, root, mean=mean_image(model_name, rng), version=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20", help="resnet20, resnet56 or resnet50 (when exporting)")
    parser.add_argument("--saved-model", default=None, help="a SavedModel version directory instead")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op and inter-op threads")
    parser.add_argument("--calls", type=int, default=0, help="calls per window (0: about 0.5 s worth)")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--profiled", type=int, default=20, help="calls recorded by the profiler")
    args = parser.parse_args()
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    with tempfile.TemporaryDirectory() as root:
        path = args.saved_model or export(args.model, os.path.join(root, "export"))
        signature = tf.saved_model.load(path).signatures["serving_default"]
        size = signature.structured_input_signature[1]["images"].shape[1] or 224
        images = tf.constant(np.random.default_rng(1).integers(0, 256, (args.batch, size, size, 3), np.uint8))
        call = lambda: signature(images=images)["probabilities"].numpy()  # noqa: E731
        timer = Timer()
        timer.add("serving_default", call, items=args.batch)
        calls = timer.calibrate("serving_default", window_seconds=0.5, calls=args.calls or None,
                                warmup_calls=10)["calls"]  # the first calls trace and warm up
        windows = [timer.window("serving_default") for _ in range(args.windows)]
        times = profile_kernels(call, args.profiled)
    print(f"{path if args.saved_model else args.model}: batch {args.batch}, {args.threads} thread(s), "
          f"serving_default {summarize(windows, 'latency')['median']:.3f} ms per call (median of {args.windows} "
          f"windows of {calls} calls); kernel time per call by op type ({args.profiled} profiled calls):")
    print(table(times))


if __name__ == "__main__":
    main()
