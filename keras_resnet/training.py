"""The library side of a trainer: strategy, precision, the training loop, resume and what a run leaves behind.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the recipes of
`keras_resnet.recipes`).

`train(config)` runs one training job described by a `TrainConfig` and returns its summary. The loop is a
custom distributed loop (one compiled step per iteration: `strategy.run` + all-reduce on TensorFlow, a
jitted stateless step on JAX) rather than `model.fit`, because Keras 3.15's `fit` fails under
`MultiWorkerMirroredStrategy` (tensorflow/tensorflow#72388, keras-team/keras#20329) and because the loop
must make the data of epoch `e` a function of `(seed, e)` only, so that a run killed and resumed at an epoch
boundary reaches the same weights as an uninterrupted one.

`model_dir` (see docs/CONTRACTS.md):

    config.json, dataset.json, mean_image.npy, checkpoints/latest.keras, checkpoints/best.keras,
    checkpoints/best.json, summary.json, log.csv, logs/ (TensorBoard), backup/ (BackupAndRestore), curves.png

Backends: everything here runs on TensorFlow and JAX. TensorFlow-only pieces (tf.data input,
TensorBoard, `tf.distribute`) are skipped on other backends with a log line; on JAX several local devices
are used through `keras.distribution.DataParallel`.

Example:
    >>> from keras_resnet import training
    >>> config = training.TrainConfig(model="resnet8", data="/data/tiny", model_dir="/tmp/run",
    ...                               batch_size=32, train_steps=40)  # doctest: +SKIP
    >>> training.train(config)["test_error"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import sys
import time

import numpy as np

import keras
from keras import ops

from keras_resnet import recipes as recipes_lib
from keras_resnet import run_log
from keras_resnet.run_log import read_csv, rewrite_csv, write_json
from keras_resnet.registry import build, family_of

logger = logging.getLogger("keras_resnet.training")

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("auto", "none", "mirrored", "multi_worker")
INPUTS = ("auto", "memory", "device", "tfdata")
RECIPES = ("auto", "cifar", "imagenet")

# Fields that may change between a run and its resumption (they do not change what is computed).
VOLATILE_FIELDS = ("model_dir", "data_dir", "download", "distribution", "verbose", "export", "export_dir",
                   "log_every", "sync_every", "input")


class ConfigError(ValueError):
    """A bad flag or configuration value; the message names the flag (`--name`)."""


class NaNLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. Unset (None) fields come from the recipe.

    Attributes:
        model: a name accepted by `keras_resnet.build` ("resnet110", "plain20", "resnet50", "resnet8", ...).
        data: a TFDS name, an image-folder directory or archive, or a directory of TFRecord shards.
        model_dir: where the run writes everything (see the module docstring).
        data_dir: TFDS data directory.
        download: let TFDS download the dataset.
        recipe: "auto" (from the model family), "cifar" or "imagenet".
        batch_size: global batch size (summed over replicas); the recipe's by default.
        train_steps: iterations to train for; the recipe's by default.
        learning_rate: base learning rate; by default the recipe's, scaled linearly with `batch_size`.
        schedule: one of `keras_resnet.recipes.SCHEDULES`.
        warmup_steps: length of the warm-up of the schedule, in iterations.
        boundaries: iterations where the step schedule divides the learning rate by 10.
        weight_decay: coupled L2 weight decay on kernels.
        momentum: SGD momentum.
        shortcut: "A", "B" or "C" (None: the builder's default; plain networks have none).
        zero_init_residual: start the last BN scale of every residual branch at zero.
        validation_split: images of the training split held out for validation: a fraction in (0, 1) or a
            count >= 1 (the paper: 5000 of 50k).
        steps_per_epoch: iterations between evaluations and backups; by default one pass over the data.
        precision: one of `PRECISIONS`.
        distribution: one of `DISTRIBUTIONS`.
        sync_batch_norm: synchronise BN statistics across replicas (TensorFlow), so that N replicas compute
            what one device does with the same global batch.
        input: "auto" (in memory on non-TensorFlow backends and for image folders, tf.data otherwise; on
            JAX with CIFAR-style data on one device, "device"), "memory" (numpy batches augmented on the
            host), "device" (JAX: the uint8 training images live on the accelerator and the compiled step
            gathers and augments its batch there; only indices and crop offsets cross per step, and the
            batches are exactly those of "memory") or "tfdata".
        seed: seeds initialisation, shuffling and augmentation (None: not seeded).
        deterministic: TensorFlow op determinism (slower; for exact reproducibility tests).
        eval_batch_size: batch size of evaluation; `batch_size` by default.
        log_every: iterations between TensorBoard scalar writes.
        sync_every: iterations dispatched between reads of the loss on the host (progress bar, NaN check,
            batch callbacks). The step never waits for the host in between, so an accelerator stays busy;
            1 reads every iteration. A NaN is still reported with the iteration where it first appeared.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        export: export the trained model for serving at the end (`keras_resnet.export`).
        export_dir: where to export; the export module's default if None.
    """

    model: str = "resnet20"
    data: str = "cifar10"
    model_dir: str = "model_dir"
    data_dir: str | None = None
    download: bool = False
    recipe: str = "auto"
    batch_size: int | None = None
    train_steps: int | None = None
    learning_rate: float | None = None
    schedule: str = "step"
    warmup_steps: int | None = None
    boundaries: tuple | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    shortcut: str | None = None
    zero_init_residual: bool = False
    validation_split: float = 0.0
    steps_per_epoch: int | None = None
    precision: str = "auto"
    distribution: str = "auto"
    sync_batch_norm: bool = False
    input: str = "auto"
    seed: int | None = 0
    deterministic: bool = False
    eval_batch_size: int | None = None
    log_every: int = 50
    sync_every: int = 20
    verbose: int = 1
    export: bool = False
    export_dir: str | None = None

    def __post_init__(self):
        if self.boundaries is not None:
            object.__setattr__(self, "boundaries", tuple(int(b) for b in self.boundaries))
        self.validate()

    def validate(self):
        """Raises `ConfigError` naming the flag of the first bad value; cheap, runs before any work."""
        try:
            family_of(self.model)
        except ValueError as e:
            raise ConfigError(f"--model: {e}") from None
        if not self.model_dir:
            raise ConfigError("--model_dir must be set.")
        if not self.data:
            raise ConfigError("--data must be set.")
        for name in ("batch_size", "train_steps", "steps_per_epoch", "eval_batch_size", "log_every",
                     "sync_every"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value <= 0):
                raise ConfigError(f"--{name} must be a positive integer; received {value!r}.")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"--warmup_steps must be >= 0; received {self.warmup_steps!r}.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"--learning_rate must be positive; received {self.learning_rate!r}.")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"--weight_decay must be >= 0; received {self.weight_decay!r}.")
        if self.momentum is not None and not 0 <= self.momentum < 1:
            raise ConfigError(f"--momentum must be in [0, 1); received {self.momentum!r}.")
        if not self.validation_split >= 0 or (self.validation_split >= 1 and self.validation_split % 1):
            raise ConfigError("--validation_split must be a fraction in [0, 1) or a whole number of images; "
                              f"received {self.validation_split!r}.")
        if self.shortcut is not None and str(self.shortcut).upper() not in ("A", "B", "C"):
            raise ConfigError(f"--shortcut must be A, B or C; received {self.shortcut!r}.")
        if self.shortcut is not None and family_of(self.model)[2]:
            raise ConfigError(f"--shortcut: {self.model!r} is a plain network and has no shortcuts.")
        choices = (("recipe", RECIPES), ("schedule", recipes_lib.SCHEDULES), ("precision", PRECISIONS),
                   ("distribution", DISTRIBUTIONS), ("input", INPUTS))
        for name, accepted in choices:
            if getattr(self, name) not in accepted:
                raise ConfigError(f"--{name} must be one of {list(accepted)}; received {getattr(self, name)!r}.")
        if self.boundaries is not None and (list(self.boundaries) != sorted(set(self.boundaries))
                                            or any(b <= 0 for b in self.boundaries)):
            raise ConfigError(f"--boundaries must be increasing positive iterations; received {self.boundaries}.")

    def replace(self, **changes):
        """Returns a copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        out = dataclasses.asdict(self)
        if out["boundaries"] is not None:
            out["boundaries"] = list(out["boundaries"])
        return out


# ----------------------------------------------------------------------------------------------------------
# Backend, precision and distribution.


def has_tensorflow():
    """True when TensorFlow can be imported (it is optional on non-TensorFlow backends)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"] is not None
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return False
    return True


def _gpu_compute_capability():
    """(major, minor) of the first GPU, or None."""
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
    cc = _gpu_compute_capability()
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
        return self.worker_index == 0

    def scope(self):
        import contextlib

        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()


def _tf_config_role():
    """(task_type, task_index, num_workers) from TF_CONFIG, or None."""
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
        import tensorflow as tf

        if distribution == "multi_worker":
            role = _tf_config_role()
            if role is None:
                raise ConfigError("--distribution=multi_worker needs the TF_CONFIG environment variable.")
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            resolver = strategy.cluster_resolver
            workers = role[2]
            rank = role[1]
            if resolver is not None and resolver.task_type in ("chief", "worker"):
                has_chief = "chief" in resolver.cluster_spec().as_dict()
                rank = resolver.task_id + (1 if has_chief and resolver.task_type == "worker" else 0)
            return Runtime(backend, strategy, "multi_worker", strategy.num_replicas_in_sync, workers, rank)
        gpus = tf.config.list_logical_devices("GPU")
        if distribution == "mirrored" or (distribution == "auto" and len(gpus) > 1):
            strategy = tf.distribute.MirroredStrategy()
            return Runtime(backend, strategy, "mirrored", strategy.num_replicas_in_sync)
        return Runtime(backend, tf.distribute.get_strategy(), "none", 1)
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


# ----------------------------------------------------------------------------------------------------------
# Input: the data of epoch `e` depends only on (seed, e).


@dataclasses.dataclass
class ArrayData:
    """In-memory data for `train`: uint8 images `[N, H, W, C]` and int labels per split.

    Attributes:
        info: a `keras_resnet.data.DatasetInfo` (class names, image shape, mean, preprocessing).
        train: (images, labels) actually trained on.
        test: (images, labels).
        validation: optional (images, labels).
    """

    info: object
    train: tuple
    test: tuple
    validation: tuple | None = None

    @property
    def num_train(self):
        return len(self.train[1])


def _validation_size(split, num_train):
    if not split:
        return 0
    return int(round(split * num_train)) if split < 1 else int(split)


def _load_arrays_fn():
    try:
        from keras_resnet.data import load_arrays
    except ImportError:
        from keras_resnet.data.arrays import load_arrays
    return load_arrays


def load_array_data(source, validation_split=0.0, data_dir=None, download=False):
    """Loads a small dataset into memory with `keras_resnet.data.load_arrays` (image folders and archives
    need no TensorFlow), holding out `validation_split` (fraction or count) of the training split."""
    load_arrays = _load_arrays_fn()
    kwargs = {k: v for k, v in (("data_dir", data_dir), ("download", download)) if v}
    train_x, train_y, info = load_arrays(source, "train", **kwargs)
    size = _validation_size(validation_split, len(train_y))
    validation = None
    if size:
        train_x, train_y, info = load_arrays(source, "train", validation_size=size, **kwargs)
        val_x, val_y, _ = load_arrays(source, "validation", validation_size=size, **kwargs)
        validation = (val_x, val_y)
    test_x, test_y, _ = load_arrays(source, "test", **kwargs)
    return ArrayData(info, (train_x, train_y), (test_x, test_y), validation)


class _MemoryInput:
    """Epochs of global batches from in-memory arrays (`keras_resnet.data.memory.ArrayIterator`)."""

    def __init__(self, data, global_batch, eval_batch, seed):
        self.data, self.global_batch, self.eval_batch, self.seed = data, global_batch, eval_batch, seed
        self.info = data.info
        self.num_train = data.num_train
        self.has_validation = data.validation is not None

    def _iterator(self, images, labels, batch, training, epoch=0):
        from keras_resnet.data.memory import ArrayIterator

        it = ArrayIterator(images, labels, batch, training=training, mean=self.info.mean,
                           seed=self.seed if self.seed is not None else None, augment=self.augments)
        it.epoch = epoch
        return it

    def epoch_batches(self, epoch, skip=0):
        """Numpy global batches of epoch `epoch` (seeded by `(seed, epoch)`), skipping the first `skip`."""
        images, labels = self.data.train
        i = 0
        for data_pass in range(1_000_000):  # an epoch longer than the data cycles through fresh passes
            for batch in self._iterator(images, labels, self.global_batch, True, epoch * 1_000_000 + data_pass):
                if i >= skip:
                    yield batch
                i += 1

    def epoch_plans(self, epoch, skip=0):
        """The plans of `epoch_batches(epoch, skip)`: `(indices, (offset_y, offset_x, flip))` per global batch.

        Applying them to the uint8 training images (`keras_resnet.data.device_augment.augment_normalize`)
        gives exactly the batches `epoch_batches` yields; the device input path uses them.
        """
        images, labels = self.data.train
        i = 0
        for data_pass in range(1_000_000):
            for plan in self._iterator(images, labels, self.global_batch, True, epoch * 1_000_000 + data_pass).plans():
                if i >= skip:
                    yield plan
                i += 1

    @property
    def augments(self):
        """Whether training batches get the CIFAR crop/flip (small images); otherwise only shuffled."""
        return getattr(self.info, "preprocessing", "cifar") == "cifar"

    def eval_batches(self, split):
        images, labels = self.data.validation if split == "validation" else self.data.test
        return iter(self._iterator(images, labels, self.eval_batch, False))

    def tf_distributed_epoch(self, runtime, epoch, skip, steps):
        """A `tf.distribute` iterator of epoch `epoch`: replica r of global batch b gets slice r of b."""
        import tensorflow as tf

        per_replica = self.global_batch // runtime.replicas
        shape = tuple(self.info.image_shape)

        def dataset_fn(ctx):
            first = ctx.input_pipeline_id * (runtime.replicas // ctx.num_input_pipelines)
            local = runtime.replicas // ctx.num_input_pipelines

            def gen():
                for x, y in self.epoch_batches(epoch, skip):
                    for r in range(first, first + local):
                        yield x[r * per_replica:(r + 1) * per_replica], y[r * per_replica:(r + 1) * per_replica]

            spec = (tf.TensorSpec((per_replica,) + shape, tf.float32), tf.TensorSpec((per_replica,), tf.int32))
            ds = tf.data.Dataset.from_generator(gen, output_signature=spec).take(steps * local)
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            return ds.with_options(options).prefetch(2)

        return iter(runtime.strategy.distribute_datasets_from_function(dataset_fn))


class _TFDataInput:
    """Epochs from `keras_resnet.data.load` (tf.data), sharded with `tf.distribute.InputContext`."""

    def __init__(self, config, global_batch, eval_batch, validation_size):
        from keras_resnet import data as data_lib

        self.data_lib, self.config = data_lib, config
        self.global_batch, self.eval_batch, self.validation_size = global_batch, eval_batch, validation_size
        self.kwargs = dict(data_dir=config.data_dir, download=config.download, validation_size=validation_size)
        _, self.info = data_lib.load(config.data, "train", global_batch, training=True, seed=config.seed,
                                     **self.kwargs)
        self.num_train = int(self.info.num_examples["train"])
        self.has_validation = validation_size > 0

    def _seed(self, epoch):
        return None if self.config.seed is None else int(self.config.seed) * 100_003 + int(epoch)

    def tf_distributed_epoch(self, runtime, epoch, skip, steps):
        def dataset_fn(ctx):
            ds, _ = self.data_lib.load(self.config.data, "train", self.global_batch, training=True,
                                       seed=self._seed(epoch), input_context=ctx, **self.kwargs)
            return ds.repeat().skip(skip).take(steps)

        return iter(runtime.strategy.distribute_datasets_from_function(dataset_fn))

    def epoch_batches(self, epoch, skip=0):
        ds, _ = self.data_lib.load(self.config.data, "train", self.global_batch, training=True,
                                   seed=self._seed(epoch), **self.kwargs)
        return ds.repeat().skip(skip).as_numpy_iterator()

    def eval_batches(self, split):
        ds, _ = self.data_lib.load(self.config.data, split, self.eval_batch, training=False, **self.kwargs)
        return ds.as_numpy_iterator()


# ----------------------------------------------------------------------------------------------------------
# Compiled steps.


def _sparse_ce(labels, probs):
    return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, probs))


class _TFStepper:
    """`strategy.run` of one SGD step on every replica; gradients all-reduced (summed) by the optimizer."""

    def __init__(self, model, runtime):
        import tensorflow as tf

        self.model, self.runtime, self.tf = model, runtime, tf
        strategy, optimizer = runtime.strategy, model.optimizer
        replicas = float(runtime.replicas)

        def replica_step(x, y):
            with tf.GradientTape() as tape:
                probs = model(x, training=True)
                ce = _sparse_ce(y, probs)
                loss = ce + (ops.sum(ops.stack(model.losses)) if model.losses else 0.0)
                scaled = optimizer.scale_loss(loss / replicas)
            grads = tape.gradient(scaled, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            correct = ops.sum(ops.cast(ops.equal(ops.argmax(probs, -1), ops.cast(y, "int64")), "float32"))
            return loss, correct

        @tf.function
        def step(iterator):
            loss, correct = strategy.run(replica_step, args=next(iterator))
            return (strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None),
                    strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None))

        @tf.function(reduce_retracing=True)
        def predict(x):
            return model(x, training=False)

        @tf.function
        def average_non_trainable():
            variables = model.non_trainable_variables

            def replica_fn():
                ctx = tf.distribute.get_replica_context()
                return [ctx.all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(v.value)) for v in variables]

            values = strategy.run(replica_fn)
            for variable, value in zip(variables, values):
                variable.assign(strategy.experimental_local_results(value)[0])

        self._step, self._predict, self._average = step, predict, average_non_trainable

    def start_epoch(self, data_input, epoch, skip, steps):
        self._iterator = data_input.tf_distributed_epoch(self.runtime, epoch, skip, steps)

    def step(self):
        """One iteration; returns the loss and the number of correct predictions as (unread) tensors."""
        return self._step(self._iterator)

    def predict(self, x):
        return np.asarray(self._predict(x))

    def sync(self):
        # BN moving statistics are updated per replica; average them so every replica and worker holds the
        # same model (what the chief saves is what the others have).
        if self.runtime.replicas > 1 and self.model.non_trainable_variables:
            self._average()


class _StatelessStepper:
    """A jitted stateless step (JAX): `model.stateless_call` + `optimizer.stateless_apply`.

    The state lives in device arrays during an epoch; `sync()` writes it back into the Keras variables before
    anything reads them (checkpoints, evaluation).
    """

    def __init__(self, model, runtime, device_data=None):
        import jax

        self.model, self.runtime = model, runtime
        self.on_device = device_data is not None
        optimizer = model.optimizer

        def loss_fn(trainable, non_trainable, optimizer_vars, x, y):
            probs, non_trainable, losses = model.stateless_call(trainable, non_trainable, x, training=True,
                                                                return_losses=True)
            loss = _sparse_ce(y, probs) + (ops.sum(ops.stack(losses)) if losses else 0.0)
            with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, optimizer_vars))):
                scaled = optimizer.scale_loss(loss)
            return scaled, (loss, probs, non_trainable)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def step(state, x, y):
            trainable, non_trainable, optimizer_vars = state
            (_, (loss, probs, non_trainable)), grads = grad_fn(trainable, non_trainable, optimizer_vars, x, y)
            trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
            correct = ops.sum(ops.cast(ops.equal(ops.argmax(probs, -1), ops.cast(y, "int32")), "float32"))
            return (trainable, non_trainable, optimizer_vars), loss, correct

        def predict(trainable, non_trainable, x):
            return model.stateless_call(trainable, non_trainable, x, training=False)[0]

        self._step, self._predict = jax.jit(step), jax.jit(predict)
        if self.on_device:
            from keras_resnet.data.device_augment import augment_normalize

            images, labels, mean = device_data
            self._images, self._labels = jax.device_put(images), jax.device_put(labels.astype(np.int32))
            self._mean = None if mean is None else jax.device_put(np.asarray(mean, np.float32))

            def device_step(state, images, labels, mean, idx, offset_y, offset_x, flip):
                x = augment_normalize(ops.take(images, idx, axis=0), mean, offset_y, offset_x, flip)
                return step(state, x, ops.take(labels, idx, axis=0))

            self._device_step = jax.jit(device_step)
        self._load_state()

    def _load_state(self):
        m = self.model
        self.state = ([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables],
                      [v.value for v in m.optimizer.variables])

    def _put(self, array):
        dist = self.runtime.jax_distribution
        if dist is None:
            return array
        return keras.distribution.distribute_tensor(array, dist.get_data_layout(array.shape))

    def start_epoch(self, data_input, epoch, skip, steps):
        self._load_state()
        if self.on_device:
            self._plans = data_input.epoch_plans(epoch, skip)
        else:
            self._batches = data_input.epoch_batches(epoch, skip)

    def step(self):
        """One iteration, dispatched asynchronously; returns the loss and correct count as device arrays."""
        if self.on_device:
            idx, (offset_y, offset_x, flip) = next(self._plans)
            self.state, loss, correct = self._device_step(
                self.state, self._images, self._labels, self._mean, idx.astype(np.int32),
                offset_y.astype(np.int32), offset_x.astype(np.int32), flip)
            return loss, correct
        x, y = next(self._batches)
        self.state, loss, correct = self._step(self.state, self._put(x), self._put(y))
        return loss, correct

    def predict(self, x):
        return np.asarray(self._predict(self.state[0], self.state[1], x))

    def sync(self):
        m = self.model
        for variables, values in zip((m.trainable_variables, m.non_trainable_variables, m.optimizer.variables),
                                     self.state):
            for variable, value in zip(variables, values):
                variable.assign(value)


# ----------------------------------------------------------------------------------------------------------
# Callbacks and files.


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose weights file (model + optimizer state, hence the iteration count) is written to
    a temporary name and renamed into place, so a SIGKILL at any moment leaves a consistent backup.

    The resume point is the optimizer's iteration count stored inside the weights file, so the weights and
    the point to resume from can never disagree. Workers other than the chief read the chief's backup and
    write to `write_dir`.
    """

    def __init__(self, backup_dir, write_dir=None):
        super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=False, double_checkpoint=True)
        self.write_dir = write_dir or backup_dir

    def _save_model(self):
        os.makedirs(self.write_dir, exist_ok=True)
        final = os.path.join(self.write_dir, os.path.basename(self._weights_path))
        tmp = os.path.join(self.write_dir, "tmp.weights.h5")
        self.model.save_weights(tmp, overwrite=True)
        if os.path.exists(final):
            os.replace(final, os.path.join(self.write_dir, os.path.basename(self._prev_weights_path)))
        os.replace(tmp, final)
        write_json(os.path.join(self.write_dir, os.path.basename(self._training_metadata_path)),
                    {"epoch": self._current_epoch, "batch": self._last_batch_seen,
                     "iteration": _variable_int(self.model.optimizer.iterations)})


def _variable_int(variable):
    """int() of a scalar variable, also a `tf.distribute` mirrored one."""
    return int(np.asarray(keras.ops.convert_to_numpy(variable)))


def _save_model_atomic(model, path):
    tmp = os.path.join(os.path.dirname(path), f".tmp-{os.path.basename(path)}")
    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)
           and layer.synchronized]
    for layer in bns:  # `synchronized=True` cannot be loaded on other backends
        layer.synchronized = False
    try:
        model.save(tmp)
    finally:
        for layer in bns:
            layer.synchronized = True
    os.replace(tmp, path)


def resolve_recipe(config, num_train, global_batch=None):
    """The recipe of `config`: the family's recipe with the flags applied on top.

    The learning rate follows the global batch linearly when `--batch_size` differs from the recipe's and
    `--learning_rate` is not given. A `--train_steps` without `--boundaries` moves the step boundaries with
    it, keeping the recipe's proportions (the CIFAR recipe's 32k/48k of 64k become 50% and 75%); the
    ResNet-110 warm-up keeps its 400 iterations.
    """
    family, depth, _ = family_of(config.model)
    kind = family if config.recipe == "auto" else config.recipe
    if kind == "cifar":
        recipe = recipes_lib.cifar_recipe(depth)
    else:
        recipe = recipes_lib.imagenet_recipe(train_examples=num_train)
    batch = global_batch or config.batch_size or recipe.batch_size
    if batch != recipe.batch_size:
        recipe = recipe.scaled_to_batch(batch)
    changes = {}
    if config.learning_rate is not None:
        factor = config.learning_rate / recipe.learning_rate
        changes.update(learning_rate=config.learning_rate,
                       warmup_learning_rate=recipe.warmup_learning_rate * factor)
    for name in ("train_steps", "boundaries", "weight_decay", "momentum"):
        if getattr(config, name) is not None:
            changes[name] = getattr(config, name)
    if config.train_steps is not None and config.boundaries is None and recipe.boundaries:
        # A shortened (or lengthened) run keeps the recipe's proportions: 32k/48k of 64k -> 50% / 75%.
        scale = config.train_steps / recipe.train_steps
        changes["boundaries"] = tuple(max(1, round(b * scale)) for b in recipe.boundaries)
    if changes:
        recipe = recipe.replace(**changes)
    recipe = recipe.with_schedule(config.schedule, config.warmup_steps)
    if recipe.warmup != "none" and recipe.warmup_steps == 0:
        recipe = recipe.replace(warmup="none")
    return recipe


def check_model_dir(model_dir, resolved):
    """Raises `ConfigError` if `model_dir/config.json` holds a run with a different configuration."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    diffs = [k for k in sorted(set(old) | set(resolved))
             if k not in VOLATILE_FIELDS and k not in ("started", "replicas", "backend", "keras_version")
             and old.get(k) != resolved.get(k)]
    if diffs:
        details = "; ".join(f"--{k}: {old.get(k)!r} there, {resolved.get(k)!r} now" for k in diffs[:6])
        raise ConfigError(f"--model_dir={model_dir} holds a run with a different configuration ({details}). "
                          "Use a new --model_dir, or the same flags to resume it.")


def _device_input(choice, backend, runtime, data_input):
    """Whether the JAX step gathers and augments its batches on the device (`--input=device`, or `auto`)."""
    reasons = []
    if backend != "jax":
        reasons.append(f"the backend is {backend} (device input is the JAX path)")
    if not isinstance(data_input, _MemoryInput):
        reasons.append("the data is not in memory")
    elif not data_input.augments:
        reasons.append("the images are not CIFAR-style (no on-device augmentation for them)")
    if runtime.jax_distribution is not None:
        reasons.append("several devices are in use (device input is single-device)")
    if choice == "device" and reasons:
        raise ConfigError(f"--input=device is not possible here: {'; '.join(reasons)}. Use --input=memory.")
    return choice in ("device", "auto") and not reasons


def _input_description(use_memory, device_input):
    if device_input:
        return ("uint8 training images on the device, batches gathered and augmented inside the compiled step "
                "(pad-4 crop + flip, mean subtraction)")
    if use_memory:
        return "in-memory arrays, batches augmented on the host (numpy)"
    return "tf.data"


def _progress(bar, current, iteration, total, lr, metrics):
    """Keras progress bar with the iteration count (as `12/64000`) and the learning rate."""
    for key, text in (("iteration", f"{iteration}/{total}"), ("lr", f"{lr:.4g}")):
        if key not in bar._values_order:
            bar._values_order.append(key)
        bar._values[key] = text
    bar.update(current, list(metrics.items()))


def _log(verbose, message):
    if verbose:
        print(message, flush=True)


def train(config, data=None, callbacks=None):
    """Trains `config.model` following its recipe and writes everything into `config.model_dir`.

    Args:
        config: a `TrainConfig`.
        data: optional `ArrayData` to train on in memory instead of loading `config.data`.
        callbacks: optional list of `keras.callbacks.Callback`, called at train/epoch/batch boundaries.

    Returns:
        The summary dict also written to `summary.json`.

    Raises:
        ConfigError: bad configuration (names the flag), including a `model_dir` holding another run.
        NaNLossError: the loss became NaN or infinite; the last good checkpoint and backup are kept.
    """
    config.validate()
    runtime = make_runtime(config.distribution)  # first: multi-worker collectives
    backend = runtime.backend
    tf_ok = backend == "tensorflow"
    verbose = config.verbose if runtime.is_chief else 0
    if config.seed is not None:
        keras.utils.set_random_seed(int(config.seed))
    if config.deterministic and tf_ok:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    precision = set_precision(config.precision)

    global_batch = config.batch_size
    # --- data
    use_memory = data is not None or config.input in ("memory", "device") or (
        config.input == "auto" and (not tf_ok or os.path.isdir(config.data) or os.path.isfile(config.data)))
    if use_memory:
        if data is None:
            data = load_array_data(config.data, config.validation_split, config.data_dir, config.download)
        num_train = data.num_train
    else:
        if not tf_ok:
            raise ConfigError(f"--input=tfdata needs TensorFlow; the backend is {backend}.")
        data_input = None
    family = family_of(config.model)[0]
    default_batch = (recipes_lib.cifar_recipe() if (config.recipe == "cifar" or
                     (config.recipe == "auto" and family == "cifar")) else recipes_lib.imagenet_recipe()).batch_size
    global_batch = global_batch or default_batch
    if global_batch % runtime.replicas:
        raise ConfigError(f"--batch_size={global_batch} must be divisible by the {runtime.replicas} replicas.")
    eval_batch = config.eval_batch_size or global_batch
    if use_memory:
        data_input = _MemoryInput(data, global_batch, eval_batch, config.seed)
    else:
        data_input = _TFDataInput(config, global_batch, eval_batch, 0)
        num_train = data_input.num_train
        size = _validation_size(config.validation_split, num_train)
        if size:
            data_input = _TFDataInput(config, global_batch, eval_batch, size)
            num_train = data_input.num_train
    info = data_input.info
    device_input = _device_input(config.input, backend, runtime, data_input)
    if num_train < global_batch:
        raise ConfigError(f"--batch_size={global_batch} is larger than the {num_train} training images.")
    recipe = resolve_recipe(config, num_train, global_batch)
    steps_per_epoch = min(config.steps_per_epoch or num_train // global_batch, recipe.train_steps)
    epochs = math.ceil(recipe.train_steps / steps_per_epoch)

    # --- model_dir and config.json
    model_dir = config.model_dir
    resolved = {**config.to_dict(), "batch_size": global_batch, "precision": precision,
                "recipe_fields": recipe.to_dict(), "steps_per_epoch": steps_per_epoch, "epochs": epochs,
                "classes": info.num_classes, "image_shape": list(info.image_shape),
                "replicas": runtime.replicas, "backend": backend, "keras_version": keras.__version__}
    resolved["train_steps"] = recipe.train_steps
    check_model_dir(model_dir, resolved)
    chief = runtime.is_chief
    if chief:
        os.makedirs(os.path.join(model_dir, "checkpoints"), exist_ok=True)
        write_json(os.path.join(model_dir, "config.json"), resolved)
        with open(os.path.join(model_dir, "dataset.json.tmp"), "w") as f:
            f.write(info.to_json())
        os.replace(os.path.join(model_dir, "dataset.json.tmp"), os.path.join(model_dir, "dataset.json"))
        if info.mean is not None:
            np.save(os.path.join(model_dir, "mean_image.npy"), np.asarray(info.mean, np.float32))

    # --- model and optimizer
    kwargs = dict(classes=info.num_classes, input_shape=tuple(info.image_shape),
                  zero_init_residual=config.zero_init_residual, kernel_regularizer=recipe.regularizer())
    if config.shortcut is not None:
        kwargs["shortcut"] = config.shortcut.upper()
    with runtime.scope():
        model = build(config.model, **kwargs)
        model.compile(optimizer=recipe.optimizer(), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])  # attaches the (loss-scaled under float16) optimizer
        model.optimizer.build(model.trainable_variables)
    if config.sync_batch_norm and runtime.replicas > 1 and tf_ok:
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True

    # --- resume
    write_dir = os.path.join(model_dir, "backup") if chief else os.path.join(
        model_dir, ".workers", str(runtime.worker_index), "backup")
    backup = AtomicBackupAndRestore(os.path.join(model_dir, "backup"), write_dir)
    user_callbacks = keras.callbacks.CallbackList(callbacks or [], model=model)
    backup.set_model(model)
    backup.on_train_begin()
    start = _variable_int(model.optimizer.iterations)
    initial_epoch, skip = divmod(start, steps_per_epoch)
    csv_path = os.path.join(model_dir, "log.csv")
    # What the killed process wrote after its last backup is dropped: one continuous CSV and TensorBoard history.
    if chief:
        rows = run_log.truncate_history(model_dir, start, tensorboard=tf_ok)
    else:
        rows = [r for r in read_csv(csv_path) if int(r["iteration"]) <= start]
    previous_wall = float(rows[-1]["wall_time_s"]) if rows else 0.0
    tensorboard = run_log.TensorBoard(os.path.join(model_dir, "logs"), enabled=tf_ok and chief)
    if not tf_ok:
        logger.warning("TensorBoard logs skipped: the %s backend runs without TensorFlow.", backend)
        _log(verbose, f"[keras_resnet] {backend} backend: TensorBoard, tf.data and tf.distribute skipped; "
                      "in-memory input.")
    if tf_ok:
        stepper = _TFStepper(model, runtime)
    else:
        stepper = _StatelessStepper(model, runtime, device_data=(
            data.train[0], data.train[1], info.mean) if device_input else None)
    _log(verbose, f"[keras_resnet] input: {_input_description(use_memory, device_input)}.")
    best_path = os.path.join(model_dir, "checkpoints", "best.json")
    best = json.load(open(best_path)) if os.path.exists(best_path) else {"error": None}
    if (best.get("iteration") or 0) > start:  # chosen among epochs the restart runs again
        best = {"error": None}
    if start:
        _log(verbose, f"Resuming {config.model} from {os.path.join(model_dir, 'backup')} at iteration {start} "
                      f"(epoch {initial_epoch}).")
    _log(verbose, f"{config.model}: {recipe.train_steps} iterations, global batch {global_batch} on "
                  f"{runtime.replicas} replica(s) ({runtime.distribution}), {precision}, "
                  f"lr {recipe.learning_rate:g} ({recipe.schedule}, warm-up {recipe.warmup}), "
                  f"{num_train} training images, {steps_per_epoch} iterations per epoch.")

    def evaluate(split):
        total_loss, correct, count = 0.0, 0.0, 0
        for x, y in data_input.eval_batches(split):
            probs = stepper.predict(x)
            y = np.asarray(y).astype(np.int64)
            p = np.clip(probs[np.arange(len(y)), y].astype(np.float64), 1e-7, 1.0)
            total_loss += float(-np.log(p).sum())
            correct += float((probs.argmax(-1) == y).sum())
            count += len(y)
        return total_loss / max(count, 1), 1.0 - correct / max(count, 1)

    # --- the loop
    schedule = recipe.learning_rate_schedule()
    user_callbacks.on_train_begin()
    iteration, trained_images, train_time = start, 0, 0.0
    last = {}
    for epoch in range(initial_epoch, epochs):
        steps = min(steps_per_epoch, recipe.train_steps - epoch * steps_per_epoch) - (skip if epoch == initial_epoch else 0)
        stepper.start_epoch(data_input, epoch, skip if epoch == initial_epoch else 0, steps)
        user_callbacks.on_epoch_begin(epoch)
        _log(verbose, f"Epoch {epoch + 1}/{epochs}")
        bar = keras.utils.Progbar(steps, verbose=verbose if verbose == 1 else 0,
                                  stateful_metrics=["loss", "error"])
        loss_sum, correct_sum, seen, t0 = 0.0, 0.0, 0, time.perf_counter()
        pending = []  # iterations dispatched whose loss the host has not read yet
        for batch in range(steps):
            user_callbacks.on_train_batch_begin(batch)
            pending.append((batch, *stepper.step()))
            if len(pending) < config.sync_every and batch < steps - 1:
                continue
            # One read of the host per `sync_every` iterations: the device runs ahead in between.
            values = [(b, float(loss), float(correct)) for b, loss, correct in pending]
            images_per_second = (seen + len(pending) * global_batch) / max(time.perf_counter() - t0, 1e-9)
            lrs = keras.ops.convert_to_numpy(schedule(np.arange(iteration, iteration + len(pending))))
            for (b, loss, correct), lr in zip(values, np.atleast_1d(lrs).astype(np.float64).tolist()):
                iteration += 1
                if not math.isfinite(loss):
                    tensorboard.flush()
                    raise NaNLossError(
                        f"NaN/inf training loss ({loss}) at iteration {iteration} (epoch {epoch + 1}, learning "
                        f"rate {lr:g}): stopping. The last good checkpoint "
                        f"{os.path.join(model_dir, 'checkpoints', 'latest.keras')} and the backup in "
                        f"{os.path.join(model_dir, 'backup')} (iteration {epoch * steps_per_epoch}) are kept.")
                loss_sum, correct_sum, seen = loss_sum + loss, correct_sum + correct, seen + global_batch
                _progress(bar, b + 1, iteration, recipe.train_steps, lr,
                          {"loss": loss_sum / (b + 1), "error": 1 - correct_sum / seen})
                user_callbacks.on_train_batch_end(b, {"loss": loss, "learning_rate": lr, "iteration": iteration})
                if iteration % config.log_every == 0:
                    tensorboard.scalars("train", iteration, {"loss": loss, "learning_rate": lr,
                                                             "images_per_second": images_per_second})
            pending = []
        epoch_time = time.perf_counter() - t0
        trained_images += seen
        train_time += epoch_time
        stepper.sync()
        epoch_loss, epoch_error = loss_sum / max(steps, 1), 1 - correct_sum / max(seen, 1)
        if not math.isfinite(epoch_loss):  # pragma: no cover - caught per step
            raise NaNLossError(f"NaN training loss in epoch {epoch + 1}.")
        val_loss, val_error = evaluate("validation") if data_input.has_validation else (None, None)
        test_loss, test_error = evaluate("test")
        ips = seen / max(epoch_time, 1e-9)
        lr = float(keras.ops.convert_to_numpy(schedule(iteration)))
        last = {"epoch": epoch, "iteration": iteration, "learning_rate": lr, "loss": epoch_loss,
                "accuracy": 1 - epoch_error, "error": epoch_error, "val_loss": val_loss, "val_error": val_error,
                "test_loss": test_loss, "test_error": test_error, "images_per_second": ips,
                "wall_time_s": previous_wall + train_time}
        monitor = val_error if val_error is not None else test_error
        if chief:
            ckpt = os.path.join(model_dir, "checkpoints")
            _save_model_atomic(model, os.path.join(ckpt, "latest.keras"))
            if best["error"] is None or monitor < best["error"]:
                _save_model_atomic(model, os.path.join(ckpt, "best.keras"))
                best = {"error": monitor, "iteration": iteration, "epoch": epoch,
                        "monitor": "val_error" if val_error is not None else "test_error"}
                write_json(best_path, best)
            rows.append({k: ("" if v is None else v) for k, v in last.items()})
            rewrite_csv(csv_path, rows)
            tensorboard.scalars("train", iteration, {"loss": epoch_loss, "accuracy": 1 - epoch_error,
                                                     "error": epoch_error, "learning_rate": lr,
                                                     "images_per_second": ips})
            if val_error is not None:
                tensorboard.scalars("validation", iteration, {"loss": val_loss, "error": val_error,
                                                              "accuracy": 1 - val_error})
            tensorboard.scalars("test", iteration, {"loss": test_loss, "error": test_error,
                                                    "accuracy": 1 - test_error})
            tensorboard.flush()
        backup.on_epoch_end(epoch)  # after the checkpoints: a backup never runs ahead of log.csv
        user_callbacks.on_epoch_end(epoch, dict(last))
        if verbose:
            val = f" - val_error {100 * val_error:.2f}%" if val_error is not None else ""
            print(f"iteration {iteration} - loss {epoch_loss:.4f} - error {100 * epoch_error:.2f}%{val} - "
                  f"test_error {100 * test_error:.2f}% - {ips:.0f} images/s", flush=True)
        if model.stop_training:
            break
    user_callbacks.on_train_end(dict(last))

    # --- the end
    if not last:  # already finished before this start: evaluate the restored model
        stepper.sync()
        test_loss, test_error = evaluate("test")
        last = {"test_loss": test_loss, "test_error": test_error}
    all_rows = read_csv(csv_path) if chief else rows
    wall = previous_wall + train_time if train_time else (float(all_rows[-1]["wall_time_s"]) if all_rows else 0.0)
    ips_all = (iteration * global_batch / wall) if wall else 0.0
    summary = {"model": config.model, "test_error": last["test_error"], "test_accuracy": 1 - last["test_error"],
               "test_loss": last["test_loss"], "best_validation_error": best["error"] if best.get(
                   "monitor") == "val_error" else None, "best_iteration": best.get("iteration"),
               "iterations": iteration, "epochs": epochs, "wall_time_s": wall, "images_per_second": ips_all,
               "precision": precision, "replicas": runtime.replicas, "backend": backend}
    if chief:
        write_json(os.path.join(model_dir, "summary.json"), summary)
        run_log.plot_curves(csv_path, os.path.join(model_dir, "curves.png"), title=config.model)
        if config.export:
            export_run(model_dir, config.export_dir, verbose)
    _log(verbose or (config.verbose and chief), (
        f"{config.model}: test error {100 * summary['test_error']:.2f}% after {iteration} iterations "
        f"({wall:.0f} s, {ips_all:.0f} images/s) -> {model_dir}"))
    return summary


def export_run(model_dir, export_dir=None, verbose=1):
    """Exports the run in `model_dir` with `keras_resnet.export` (TensorFlow only; skipped otherwise)."""
    if keras.backend.backend() != "tensorflow":
        _log(verbose, "[keras_resnet] export skipped: SavedModel export needs the TensorFlow backend.")
        return None
    try:
        from keras_resnet import export as export_lib
    except ImportError as e:
        _log(verbose, f"[keras_resnet] export skipped: keras_resnet.export is not available ({e}).")
        return None
    path = export_lib.export_from_model_dir(model_dir, export_dir or "saved_models")
    _log(verbose, f"Exported to {path}")
    return path


# ----------------------------------------------------------------------------------------------------------
# absl flags shared by the trainers (`python -m trainers.cifar`, `python -m trainers.imagenet`).


def define_flags(model="resnet20", data="cifar10", recipe="auto"):
    """Defines the trainer flags (one per `TrainConfig` field) with the given defaults."""
    from absl import flags

    f = flags
    f.DEFINE_string("model", model, "Network: any name of keras_resnet.MODELS or resnet<depth>/plain<depth>.")
    f.DEFINE_string("data", data, "TFDS name, image-folder directory/archive, or TFRecord shard directory.")
    f.DEFINE_string("model_dir", None, "Run directory (config, checkpoints, logs, backup, summary).")
    f.DEFINE_string("data_dir", None, "TFDS data directory.")
    f.DEFINE_bool("download", False, "Let TFDS download the dataset.")
    f.DEFINE_enum("recipe", recipe, list(RECIPES), "Training recipe (auto: from the model family).")
    f.DEFINE_integer("batch_size", None, "Global batch size (the learning rate follows it linearly).")
    f.DEFINE_integer("train_steps", None, "Training iterations (recipe: 64000 CIFAR, 90 epochs ImageNet).")
    f.DEFINE_float("learning_rate", None, "Base learning rate (default: the recipe's, scaled with the batch).")
    f.DEFINE_enum("schedule", "step", list(recipes_lib.SCHEDULES), "Learning-rate schedule.")
    f.DEFINE_integer("warmup_steps", None, "Warm-up length in iterations.")
    f.DEFINE_list("boundaries", None, "Iterations where the step schedule divides the learning rate by 10.")
    f.DEFINE_float("weight_decay", None, "Coupled L2 weight decay on conv/dense kernels (recipe: 1e-4).")
    f.DEFINE_float("momentum", None, "SGD momentum (recipe: 0.9).")
    f.DEFINE_string("shortcut", None, "Shortcut option A, B or C (default: the builder's).")
    f.DEFINE_bool("zero_init_residual", False, "Zero-init the last BN scale of every residual branch.")
    f.DEFINE_float("validation_split", 0.0, "Held-out training images: fraction in (0, 1) or a count.")
    f.DEFINE_integer("steps_per_epoch", None, "Iterations between evaluations/backups (default: one pass).")
    f.DEFINE_enum("precision", "auto", list(PRECISIONS), "Numeric precision (auto: mixed on capable GPUs).")
    f.DEFINE_enum("distribution", "auto", list(DISTRIBUTIONS), "Distribution strategy.")
    f.DEFINE_bool("sync_batch_norm", False, "Synchronise BN statistics across replicas (TensorFlow).")
    f.DEFINE_enum("input", "auto", list(INPUTS), "Input path: in memory (host or, on JAX, device) or tf.data.")
    f.DEFINE_integer("seed", 0, "Random seed (initialisation, shuffling, augmentation).")
    f.DEFINE_bool("deterministic", False, "TensorFlow op determinism (slower).")
    f.DEFINE_integer("eval_batch_size", None, "Evaluation batch size.")
    f.DEFINE_integer("log_every", 50, "Iterations between TensorBoard scalars.")
    f.DEFINE_integer("sync_every", 20, "Iterations dispatched between host reads of the loss (1: every one).")
    f.DEFINE_integer("verbose", 1, "0 silent, 1 progress bar, 2 one line per epoch.")
    f.DEFINE_bool("export", False, "Export the trained model for serving at the end.")
    f.DEFINE_string("export_dir", None, "Export root (default saved_models).")


def config_from_flags(flag_values):
    """Builds a `TrainConfig` from parsed absl flags; bad values raise `ConfigError` naming the flag."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    values = {name: flag_values[name].value for name in names if name in flag_values}
    if values.get("model_dir") is None:
        raise ConfigError("--model_dir must be set.")
    if values.get("boundaries") is not None:
        try:
            values["boundaries"] = [int(b) for b in values["boundaries"]]
        except ValueError:
            raise ConfigError(f"--boundaries must be integers; received {values['boundaries']!r}.") from None
    return TrainConfig(**values)


def run_main(flag_values):
    """The body of a trainer's `main`: build the config, train, map errors to a one-line message + exit code."""
    try:
        train(config_from_flags(flag_values))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except NaNLossError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 3
    return 0
