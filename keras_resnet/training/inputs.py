"""The input of a run: where its batches come from. The data of epoch `e` depends only on `(seed, e)`.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2 (the CIFAR
augmentation: 4-pixel padding, a random 32x32 crop and a random horizontal flip, per-pixel mean subtracted).

Three paths, chosen by `--input` and by one public rule, `uses_memory_input(config, data, backend)`:

- `MemoryInput`: uint8 arrays in memory (`ArrayData`), batches augmented on the host with numpy
  (`keras_resnet.data.memory.ArrayIterator`); on TensorFlow fed through `tf.distribute`;
- the device path (JAX, `uses_device_input`): the same `MemoryInput` gives only the plans of its batches
  (indices, crop offsets, flips) and the compiled step gathers and augments on the accelerator;
- `TFDataInput`: `keras_resnet.data.load` (tf.data), sharded with `tf.distribute.InputContext`.

Every input has `info`, `num_train`, `has_validation`, `epoch_batches(epoch, skip)`,
`tf_distributed_epoch(runtime, epoch, skip, steps)` and `eval_batches(split)`.

Example:
    >>> from keras_resnet.training.inputs import uses_memory_input
    >>> from keras_resnet.training.config import TrainConfig
    >>> uses_memory_input(TrainConfig(model="resnet8", data="cifar10", model_dir="x"), backend="jax")
    True
"""

from __future__ import annotations

import dataclasses
import os

from keras_resnet.training.config import ConfigError
from keras_resnet.training.recipe import default_batch_size

PASSES_PER_EPOCH = 1_000_000  # an epoch longer than the data cycles through fresh passes, each seeded apart


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
        """Number of training images."""
        return len(self.train[1])


def validation_size(split, num_train):
    """Images held out by `--validation_split` (a fraction of `num_train`, or a count)."""
    if not split:
        return 0
    return int(round(split * num_train)) if split < 1 else int(split)


def load_array_data(source, validation_split=0.0, data_dir=None, download=False):
    """Loads a small dataset into memory with `keras_resnet.data.load_arrays` (image folders and archives
    need no TensorFlow), holding out `validation_split` (fraction or count) of the training split."""
    from keras_resnet.data import load_arrays

    kwargs = {k: v for k, v in (("data_dir", data_dir), ("download", download)) if v}
    train_x, train_y, info = load_arrays(source, "train", **kwargs)
    size = validation_size(validation_split, len(train_y))
    validation = None
    if size:
        train_x, train_y, info = load_arrays(source, "train", validation_size=size, **kwargs)
        val_x, val_y, _ = load_arrays(source, "validation", validation_size=size, **kwargs)
        validation = (val_x, val_y)
    test_x, test_y, _ = load_arrays(source, "test", **kwargs)
    return ArrayData(info, (train_x, train_y), (test_x, test_y), validation)


def uses_memory_input(config, data=None, backend=None):
    """Whether `train(config, data)` reads its data into memory (`MemoryInput`) rather than through tf.data.

    The rule: in memory when `data` is given, for `--input=memory` / `device`, and for `--input=auto` on a
    backend other than TensorFlow or when `--data` is a local directory or file (image folder, archive);
    tf.data otherwise (TFDS names, TFRecord directories read by `--input=tfdata`).

    Args:
        config: a `TrainConfig`.
        data: the `ArrayData` passed to `train`, if any.
        backend: the Keras backend name; `keras.backend.backend()` if None.

    Returns:
        bool.
    """
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if data is not None or config.input in ("memory", "device"):
        return True
    return config.input == "auto" and (backend != "tensorflow" or os.path.isdir(config.data)
                                       or os.path.isfile(config.data))


class MemoryInput:
    """Epochs of global batches from in-memory arrays (`keras_resnet.data.memory.ArrayIterator`).

    Args:
        data: an `ArrayData`.
        global_batch: training batch size over all replicas.
        eval_batch: evaluation batch size.
        seed: the run's seed (None: unseeded).
    """

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

    def _passes(self, epoch):
        images, labels = self.data.train
        for data_pass in range(PASSES_PER_EPOCH):
            yield self._iterator(images, labels, self.global_batch, True, epoch * PASSES_PER_EPOCH + data_pass)

    def epoch_batches(self, epoch, skip=0):
        """Numpy global batches of epoch `epoch` (seeded by `(seed, epoch)`), skipping the first `skip`."""
        i = 0
        for iterator in self._passes(epoch):
            for batch in iterator:
                if i >= skip:
                    yield batch
                i += 1

    def epoch_plans(self, epoch, skip=0):
        """The plans of `epoch_batches(epoch, skip)`: `(indices, (offset_y, offset_x, flip))` per global batch.

        Applying them to the uint8 training images (`keras_resnet.data.device_augment.augment_normalize`)
        gives exactly the batches `epoch_batches` yields; the device input path uses them.
        """
        i = 0
        for iterator in self._passes(epoch):
            for plan in iterator.plans():
                if i >= skip:
                    yield plan
                i += 1

    @property
    def augments(self):
        """Whether training batches get the CIFAR crop/flip (small images); otherwise only shuffled."""
        return getattr(self.info, "preprocessing", "cifar") == "cifar"

    def eval_batches(self, split):
        """Batches of `split` ("validation" or "test"), in order, not augmented."""
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


class TFDataInput:
    """Epochs from `keras_resnet.data.load` (tf.data), sharded with `tf.distribute.InputContext`.

    Args:
        config: a `TrainConfig` (data, data_dir, download, seed).
        global_batch: training batch size over all replicas.
        eval_batch: evaluation batch size.
        validation_size: training images held out for validation (0: none).
    """

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
        """A `tf.distribute` iterator over `steps` global batches of epoch `epoch`, after `skip`."""
        def dataset_fn(ctx):
            ds, _ = self.data_lib.load(self.config.data, "train", self.global_batch, training=True,
                                       seed=self._seed(epoch), input_context=ctx, **self.kwargs)
            return ds.repeat().skip(skip).take(steps)

        return iter(runtime.strategy.distribute_datasets_from_function(dataset_fn))

    def epoch_batches(self, epoch, skip=0):
        """Numpy global batches of epoch `epoch`, skipping the first `skip`."""
        ds, _ = self.data_lib.load(self.config.data, "train", self.global_batch, training=True,
                                   seed=self._seed(epoch), **self.kwargs)
        return ds.repeat().skip(skip).as_numpy_iterator()

    def eval_batches(self, split):
        """Numpy batches of `split`, not augmented."""
        ds, _ = self.data_lib.load(self.config.data, split, self.eval_batch, training=False, **self.kwargs)
        return ds.as_numpy_iterator()


def uses_device_input(choice, backend, runtime, data_input):
    """Whether the JAX step gathers and augments its batches on the device (`--input=device`, or `auto`).

    Raises:
        ConfigError: `--input=device` where it cannot run (names every reason).
    """
    reasons = []
    if backend != "jax":
        reasons.append(f"the backend is {backend} (device input is the JAX path)")
    if not isinstance(data_input, MemoryInput):
        reasons.append("the data is not in memory")
    elif not data_input.augments:
        reasons.append("the images are not CIFAR-style (no on-device augmentation for them)")
    if runtime.jax_distribution is not None:
        reasons.append("several devices are in use (device input is single-device)")
    if choice == "device" and reasons:
        raise ConfigError(f"--input=device is not possible here: {'; '.join(reasons)}. Use --input=memory.")
    return choice in ("device", "auto") and not reasons


def describe_input(use_memory, device_input):
    """One line saying which input path a run uses (printed as `[keras_resnet] input: ...`)."""
    if device_input:
        return ("uint8 training images on the device, batches gathered and augmented inside the compiled step "
                "(pad-4 crop + flip, mean subtraction)")
    if use_memory:
        return "in-memory arrays, batches augmented on the host (numpy)"
    return "tf.data"


@dataclasses.dataclass
class RunInput:
    """The input `train()` uses: the input object, whether it is in memory / on the device, the batches."""

    data_input: object
    use_memory: bool
    device_input: bool
    global_batch: int
    eval_batch: int
    data: ArrayData | None = None

    @property
    def num_train(self):
        return self.data_input.num_train

    @property
    def info(self):
        return self.data_input.info


def open_input(config, runtime, data=None):
    """Chooses and opens the input of `train(config, data)`; checks the batch size against it.

    Args:
        config: a `TrainConfig`.
        runtime: the `Runtime` (backend, replicas, JAX distribution).
        data: optional `ArrayData` to train on instead of loading `config.data`.

    Returns:
        A `RunInput`.

    Raises:
        ConfigError: tf.data without TensorFlow, a batch not divisible by the replicas or larger than the
            training set, `--input=device` where it cannot run.
    """
    backend = runtime.backend
    use_memory = uses_memory_input(config, data, backend)
    if use_memory and data is None:
        data = load_array_data(config.data, config.validation_split, config.data_dir, config.download)
    if not use_memory and backend != "tensorflow":
        raise ConfigError(f"--input=tfdata needs TensorFlow; the backend is {backend}.")
    global_batch = config.batch_size or default_batch_size(config)
    if global_batch % runtime.replicas:
        raise ConfigError(f"--batch_size={global_batch} must be divisible by the {runtime.replicas} replicas.")
    eval_batch = config.eval_batch_size or global_batch
    if use_memory:
        data_input = MemoryInput(data, global_batch, eval_batch, config.seed)
    else:
        data_input = TFDataInput(config, global_batch, eval_batch, 0)
        size = validation_size(config.validation_split, data_input.num_train)
        if size:
            data_input = TFDataInput(config, global_batch, eval_batch, size)
    device_input = uses_device_input(config.input, backend, runtime, data_input)
    if data_input.num_train < global_batch:
        raise ConfigError(f"--batch_size={global_batch} is larger than the {data_input.num_train} training images.")
    return RunInput(data_input, use_memory, device_input, global_batch, eval_batch, data)
