"""Where a run executes: backend, `tf.distribute` strategy (or JAX data parallelism), precision, seeding.

Reference: Micikevicius et al., "Mixed Precision Training", ICLR 2018 (the float16 loss scaling that
`mixed_float16` uses); Goyal et al., "Accurate, Large Minibatch SGD", 2017 (one global batch over replicas).

`make_runtime(distribution)` must run first in a process: `MultiWorkerMirroredStrategy` has to exist before
any other TensorFlow op. `prepare_backend(config, runtime)` then seeds, turns on TensorFlow op determinism
when asked and sets the global dtype policy, in that order (the order `train()` has always used).

Example:
    >>> from keras_resnet.training import runtime
    >>> rt = runtime.make_runtime("none")  # sets up the process's strategy  # doctest: +SKIP
    >>> rt.replicas, rt.is_chief  # sets up the process's strategy  # doctest: +SKIP
    (1, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import sys

import keras

from keras_resnet.training.config import DISTRIBUTIONS, PRECISIONS, ConfigError
from keras_resnet.training.run_parts import runtime_part

logger = logging.getLogger("keras_resnet.training")


def has_tensorflow():
    """True when TensorFlow can be imported (it is optional on non-TensorFlow backends)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"] is not None
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def gpu_compute_capability():
    """(major, minor) of the first GPU of the current backend, or None (no GPU, or the query failed)."""
    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                return tuple(tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0)))
        elif backend == "jax":
            import jax

            devices = [d for d in jax.devices() if d.platform == "gpu"]
            if devices:
                cc = getattr(devices[0], "compute_capability", "7.0")
                return tuple(int(p) for p in str(cc).split(".")[:2])
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.get_device_capability(0)
    except Exception:  # pragma: no cover - device queries are best effort
        return None
    return None


def select_precision(precision="auto"):
    """Resolves `--precision`: "auto" is mixed_bfloat16 on GPUs of compute capability >= 8.0 (Ampere and
    later), mixed_float16 on 7.x (tensor cores, loss scaling), float32 otherwise (CPU)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {list(PRECISIONS)}; received {precision!r}.")
    if precision != "auto":
        return precision
    cc = gpu_compute_capability()
    if cc is None or cc < (7, 0):
        return "float32"
    return "mixed_bfloat16" if cc >= (8, 0) else "mixed_float16"


def set_precision(precision):
    """Sets the global Keras dtype policy (before building the model) and returns the resolved name."""
    resolved = select_precision(precision)
    keras.mixed_precision.set_global_policy(resolved)
    return resolved


@dataclasses.dataclass
class Runtime:
    """Where the run executes: backend, strategy (TensorFlow), replicas and this worker's role."""

    backend: str
    strategy: object = None
    distribution: str = "none"
    replicas: int = 1
    num_workers: int = 1
    worker_index: int = 0
    jax_distribution: object = None

    @property
    def is_chief(self):
        """Whether this worker writes the run's files (worker 0)."""
        return self.worker_index == 0

    def any_worker(self, flag):
        """Whether `flag` holds on any worker: one small all-reduce that every worker calls at the same point
        of the loop (the same iteration), so all of them take the same decision there; `flag` itself with
        one worker."""
        if self.num_workers <= 1:
            return bool(flag)
        import tensorflow as tf

        return float(workers_sum(self.strategy)(tf.constant(1.0 if flag else 0.0))) > 0

    def scope(self):
        """The strategy's scope (variables created inside are mirrored), or a no-op context."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


@functools.lru_cache(maxsize=None)
def workers_sum(strategy):
    """A compiled sum over every replica of `strategy` of a scalar each contributes (`Runtime.any_worker`);
    compiled once per strategy, as a collective run eagerly is slow and warns at every call."""
    import tensorflow as tf

    @tf.function
    def total(value):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(value)), axis=None)

    return total


def tf_config_role():
    """(task_type, rank, num_workers) from the `TF_CONFIG` environment variable, or None."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    cfg = json.loads(raw)
    cluster, task = cfg.get("cluster", {}), cfg.get("task", {})
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    task_type, index = task.get("type", "worker"), int(task.get("index", 0))
    rank = index if task_type == "chief" or not cluster.get("chief") else index + 1
    if task_type not in ("chief", "worker"):
        rank = -1
    return task_type, rank, workers


def _tensorflow_runtime(distribution):
    import tensorflow as tf

    backend = "tensorflow"
    if distribution == "multi_worker":
        role = tf_config_role()
        if role is None:
            raise ConfigError("--distribution=multi_worker needs the TF_CONFIG environment variable.")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        resolver = strategy.cluster_resolver
        workers, rank = role[2], role[1]
        if resolver is not None and resolver.task_type in ("chief", "worker"):
            has_chief = "chief" in resolver.cluster_spec().as_dict()
            rank = resolver.task_id + (1 if has_chief and resolver.task_type == "worker" else 0)
        return Runtime(backend, strategy, "multi_worker", strategy.num_replicas_in_sync, workers, rank)
    gpus = tf.config.list_logical_devices("GPU")
    if distribution == "mirrored" or (distribution == "auto" and len(gpus) > 1):
        strategy = tf.distribute.MirroredStrategy()
        return Runtime(backend, strategy, "mirrored", strategy.num_replicas_in_sync)
    return Runtime(backend, tf.distribute.get_strategy(), "none", 1)


def make_runtime(distribution="auto"):
    """Creates the strategy for `--distribution` (call first: `MultiWorkerMirroredStrategy` must exist before
    any other TensorFlow op).

    "auto": `MirroredStrategy` over all local GPUs when there are several, else no strategy; "mirrored":
    `MirroredStrategy` over all local devices; "multi_worker": `MultiWorkerMirroredStrategy` from
    `TF_CONFIG`. On JAX, several local devices use `keras.distribution.DataParallel`.
    """
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"--distribution must be one of {list(DISTRIBUTIONS)}; received {distribution!r}.")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_runtime(distribution)
    if distribution == "multi_worker":
        raise ConfigError(f"--distribution=multi_worker needs the TensorFlow backend; the backend is {backend}.")
    if backend == "jax" and distribution != "none":
        import jax

        devices = jax.local_devices()
        if len(devices) > 1:
            dist = keras.distribution.DataParallel(devices=devices)
            keras.distribution.set_distribution(dist)
            return Runtime(backend, None, "data_parallel", len(devices), jax_distribution=dist)
    if distribution == "mirrored":
        logger.warning("--distribution=mirrored is a tf.distribute strategy; skipped on the %s backend.", backend)
    return Runtime(backend, None, "none", 1)


def prepare_backend(config, runtime):
    """Seeds (`--seed`), turns on TensorFlow op determinism (`--deterministic`) and sets the precision.

    Args:
        config: the run's `RuntimePart` (or its `TrainConfig`).
        runtime: the `Runtime` of `make_runtime`.

    Returns:
        The resolved precision name ("float32", "mixed_float16" or "mixed_bfloat16").
    """
    part = runtime_part(config)
    if part.seed is not None:
        keras.utils.set_random_seed(int(part.seed))
    if part.deterministic and runtime.backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    return set_precision(part.precision)
