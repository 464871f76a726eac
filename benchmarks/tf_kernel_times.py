"""Kernel time per op type from TensorFlow's profiler: what the profiling benchmarks print.

`profile_kernels(fn, calls)` runs `fn` `calls` times under `tf.profiler.experimental` and returns
`{op type: (ms per call, kernels per call)}`, summed over threads (ops that run side by side on the
inter-op pool both count, so the sum can exceed the call's wall time). Cheap ops the executor runs inline
may not be recorded.

Example:
    >>> times = profile_kernels(lambda: signature(images=batch), calls=20)  # a benchmark's own process  # doctest: +SKIP
    >>> print(table(times))  # a benchmark's own process  # doctest: +SKIP
"""

import collections
import glob
import os
import tempfile

RUNTIME_EVENTS = ("EagerLocalExecute", "KernelAndDeviceFunc", "ThreadpoolListener", "ExecutorState")
"""Profiler events named like kernels ("<what>:<detail>") that are the runtime's own, not ops."""


def kernel_times(logdir, calls):
    """`{op type: (ms per call, count per call)}` from the profiler's trace in `logdir`."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    total, count = collections.Counter(), collections.Counter()
    for plane in space.planes:
        names = {key: value.name for key, value in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                node, _, op = names.get(event.metadata_id, "").rpartition(":")
                if node and node.split(":")[0] not in RUNTIME_EVENTS and not op.startswith(" "):  # "<node>:<op>"
                    total[op] += event.duration_ps / 1e9 / calls
                    count[op] += 1 / calls
    return {op: (ms, count[op]) for op, ms in total.most_common()}


def profile_kernels(fn, calls):
    """Runs `fn()` `calls` times under TensorFlow's profiler; returns `kernel_times` of those calls."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            for _ in range(calls):
                fn()
        finally:
            tf.profiler.experimental.stop()
        return kernel_times(logdir, calls)


def table(times, unit="call"):
    """The printed lines of `kernel_times`: count and ms per `unit`, then the total."""
    lines = [f"  {op:34s} {count:7.1f} x {ms:9.3f} ms" for op, (ms, count) in times.items()]
    lines.append(f"  {'all recorded kernels, per ' + unit:34s} {sum(c for _, c in times.values()):7.1f} x "
                 f"{sum(ms for ms, _ in times.values()):9.3f} ms")
    return "\n".join(lines)
