"""The input of a run: where its batches come from. The data of epoch `e` depends only on `(seed, e)`.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2 (the CIFAR
augmentation: 4-pixel padding, a random 32x32 crop and a random horizontal flip, per-pixel mean subtracted).

Three paths, chosen once by `keras_resnet.training.data_spec.choose_input` (an `InputPath`: "memory",
"device" or "tfdata", and its reason; `uses_memory_input(config, data, backend)` and `uses_device_input` are
its two halves as public functions):

- `MemoryInput`: uint8 arrays in memory (`ArrayData`), batches augmented on the host with numpy
  (`keras_resnet.data.in_memory.ArrayIterator`); on TensorFlow fed through `tf.distribute`;
- the device path (JAX and TensorFlow, one device, `uses_device_input`): the same `MemoryInput` gives only
  the plans of its batches (indices, crop offsets, flips) and the compiled step gathers and augments them
  from the uint8 images it holds (on a CPU too: 2-7% more ResNet-20 images/s than host numpy batches on
  2 cores, benchmarks/BENCHMARKS.md), bit for bit the host's batches;
- `TFDataInput` (`keras_resnet.training.streamed_input`): `keras_resnet.data.load` (tf.data), sharded with
  `tf.distribute.InputContext`.

Every input has `info`, `num_train`, `has_validation`, `epoch_batches(epoch, skip)`,
`tf_distributed_epoch(runtime, epoch, skip, steps)` and `eval_batches(role)`: role "validation" is the part
of the training split held out by `--validation_split`, role "test" the evaluation split (`--eval_split`:
the data's test split, or its own validation split, e.g. a `val/` folder). A run started from published
weights feeds the network with their normalisation (`keras_resnet.training.init_normalization`) on every path.

Example:
    >>> from keras_resnet.training.inputs import uses_memory_input
    >>> from keras_resnet.training.config import TrainConfig
    >>> uses_memory_input(TrainConfig(model="resnet8", data="cifar10", model_dir="x"), backend="jax")
    True
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_resnet.training.arraydata import ArrayData, load_array_data, validation_size
from keras_resnet.training.config import ConfigError
from keras_resnet.training.data_spec import InputPath, choose_input, data_spec, device_refusals, device_verdict, \
    input_choice
from keras_resnet.training.streamed_input import TFDataInput

PASSES_PER_EPOCH = 1_000_000  # an epoch longer than the data cycles through fresh passes, each seeded apart
PLAN_CHUNK = 64  # batch plans the device path stacks per host call (`MemoryInput.tf_distributed_plans`)


def uses_memory_input(config, data=None, backend=None):
    """Whether `train(config, data)` reads its data into memory (`MemoryInput`) rather than through tf.data.

    The rule: in memory when `data` is given, for `--input=memory` / `device`, and for `--input=auto` on a
    backend other than TensorFlow, or when `--data` is a local folder, archive or TFRecord directory whose
    images are CIFAR-style (both sides <= 64 pixels), all of one shape and below the size limit of
    `keras_resnet.data.memory_input_reason`; tf.data otherwise (TFDS names, `--input=tfdata`, photos of
    many sizes). `keras_resnet.training.data_spec.input_choice` gives the reason too.

    Args:
        config: a `TrainConfig`.
        data: the `ArrayData` passed to `train`, if any.
        backend: the Keras backend name; `keras.backend.backend()` if None.

    Returns:
        bool.
    """
    return input_choice(data_spec(config, data), data, backend)[0]


class MemoryInput:
    """Epochs of global batches from in-memory arrays (`keras_resnet.data.in_memory.ArrayIterator`).

    Args:
        data: an `ArrayData`.
        global_batch: training batch size over all replicas.
        eval_batch: evaluation batch size.
        seed: the run's seed (None: unseeded).
        normalization: an `InputNormalization` applied to every batch (None: the data's mean only).
    """

    def __init__(self, data, global_batch, eval_batch, seed, normalization=None):
        self.data, self.global_batch, self.eval_batch, self.seed = data, global_batch, eval_batch, seed
        self.info = data.info
        self.num_train = data.num_train
        self.has_validation = data.validation is not None
        self.normalization = normalization

    def _normalized(self, batches):
        if self.normalization is None:
            yield from batches
            return
        for x, y in batches:
            yield self.normalization.numpy(x), y

    def _iterator(self, images, labels, batch, training, epoch=0):
        from keras_resnet.data.in_memory import ArrayIterator

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
        return self._normalized(self._epoch_batches(epoch, skip))

    def _epoch_batches(self, epoch, skip):
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

    def eval_batches(self, role):
        """Batches of `role` ("validation": held out; "test": the evaluation split), in order, not augmented."""
        images, labels = self.data.validation if role == "validation" else self.data.test
        return self._normalized(iter(self._iterator(images, labels, self.eval_batch, False)))

    def skipped(self):
        """`{split: images skipped}` when decoding the data (`--skip_corrupt`)."""
        return dict(self.info.num_skipped)

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

    def tf_distributed_plans(self, runtime, epoch, skip, steps):
        """A `tf.distribute` iterator of the plans of epoch `epoch` (`epoch_plans`), one replica: int32
        `(indices, offset_y, offset_x)` and bool `flip`, each `[batch]` (the TensorFlow device path).

        The plans are stacked on the host `PLAN_CHUNK` batches at a time and unbatched by tf.data, so no
        Python runs between two steps: a generator called once per batch competed with the step for the
        cores (ResNet-20 on 2 cores: 1,180 against 1,145 images/s, median of 4 alternating runs each;
        `benchmarks/train_input.py --variants=device-per-batch,device`, benchmarks/BENCHMARKS.md).
        """
        import itertools

        import tensorflow as tf

        def chunks():
            plans = itertools.islice(self.epoch_plans(epoch, skip), steps)
            while chunk := list(itertools.islice(plans, PLAN_CHUNK)):
                yield (np.stack([indices for indices, _ in chunk]).astype(np.int32),
                       np.stack([augment[0] for _, augment in chunk]).astype(np.int32),
                       np.stack([augment[1] for _, augment in chunk]).astype(np.int32),
                       np.stack([np.asarray(augment[2], bool) for _, augment in chunk]))

        ints = tf.TensorSpec((None, self.global_batch), tf.int32)
        spec = (ints, ints, ints, tf.TensorSpec((None, self.global_batch), tf.bool))

        def dataset_fn(ctx):
            return tf.data.Dataset.from_generator(chunks, output_signature=spec).unbatch().prefetch(2)

        return iter(runtime.strategy.distribute_datasets_from_function(dataset_fn))


def uses_device_input(choice, backend, runtime, data_input):
    """Whether the compiled step gathers and augments the batches of an opened input itself (`--input=device`,
    or `auto`): `keras_resnet.training.data_spec.device_refusals` and `device_verdict` for `data_input`.

    Raises:
        ConfigError: `--input=device` where it cannot run (names every reason).
    """
    in_memory = isinstance(data_input, MemoryInput)
    reasons = device_refusals(backend, runtime, in_memory, in_memory and data_input.augments,
                              getattr(data_input, "normalization", None))
    return device_verdict(choice, reasons)


def describe_input(use_memory, device_input, reason=None):
    """One line saying which input path a run uses and why (`InputPath.describe`)."""
    return InputPath("device" if device_input else "memory" if use_memory else "tfdata", reason or "").describe()


@dataclasses.dataclass(frozen=True)
class RunInput:
    """The input `train()` uses: the input object, its `InputPath` (memory / device / tf.data and why), the
    batches, the arrays (None: streamed), the evaluation split and the input normalisation (None: the data's
    mean)."""

    data_input: object
    path: InputPath
    global_batch: int
    eval_batch: int
    data: ArrayData | None = None
    eval_split: str = "test"
    normalization: object = None

    @property
    def use_memory(self):
        return self.path.in_memory

    @property
    def device_input(self):
        return self.path.on_device

    @property
    def reason(self):
        return self.path.reason

    @property
    def num_train(self):
        return self.data_input.num_train

    @property
    def info(self):
        return self.data_input.info

    @property
    def eval_transform(self):
        """The evaluation transform the run's evaluation applies (`TFDataInput.eval_transform`), or None."""
        return getattr(self.data_input, "eval_transform", None)


def open_data(spec, use_memory, data, global_batch, eval_batch, eval_split, normalization, eval_transform=None):
    """The `MemoryInput` or `TFDataInput` of a run's `DataSpec` (data errors become `ConfigError` naming `--data`)."""
    mean = None if normalization is None else normalization.pipeline_mean
    try:
        if use_memory:
            if data is None:
                data = load_array_data(spec.source, spec.validation_split, spec.data_dir, spec.download,
                                       eval_split=eval_split, image_size=spec.image_size,
                                       skip_corrupt=spec.skip_corrupt, mean=mean)
            elif normalization is not None:
                data.info.mean = mean
            if spec.ten_crop:
                raise ConfigError("--ten_crop: the in-memory input evaluates whole images; 10-crop testing needs "
                                  "ImageNet-style images streamed by tf.data (--input=tfdata).")
            return MemoryInput(data, global_batch, eval_batch, spec.seed, normalization), data
        data_input = TFDataInput(spec, global_batch, eval_batch, 0, eval_split, normalization, eval_transform)
        size = validation_size(spec.validation_split, data_input.num_train)
        if size:
            data_input = TFDataInput(spec, global_batch, eval_batch, size, eval_split, normalization, eval_transform)
        return data_input, data
    except ConfigError:
        raise
    except (ValueError, FileNotFoundError) as error:
        from keras_resnet.data.folder import ImageShapeError

        if isinstance(error, ImageShapeError) and use_memory and spec.input in ("memory", "device"):
            raise ConfigError(f"--input={spec.input}: {spec.flag} holds images of several sizes, which only "
                              f"tf.data streams ({str(error).split(';')[0]}); use --input=auto or --input=tfdata."
                              ) from None
        raise spec.error(error) from None


def open_input(spec, runtime, global_batch, eval_batch=None, data=None, eval_split="test", normalization=None,
               eval_transform=None):
    """Chooses the input path of a run (`choose_input`) and opens it; checks the batch size against it.

    Args:
        spec: the run's `DataSpec` (`keras_resnet.training.data_spec.data_spec`).
        runtime: the `Runtime` (backend, replicas, JAX distribution).
        global_batch: the training batch over all replicas.
        eval_batch: the evaluation batch (None: `global_batch`).
        data: optional `ArrayData` to train on instead of loading `--data`.
        eval_split: the evaluation split (`keras_resnet.training.data_spec.resolve_eval_split`).
        normalization: the `InputNormalization` of `--init_from` weights, or None.
        eval_transform: the evaluation transform of `--init_from` weights (`eval_transform_of`), or None.

    Returns:
        A `RunInput`.

    Raises:
        ConfigError: tf.data without TensorFlow, a batch not divisible by the replicas or larger than the
            training set, `--input=device` where it cannot run, data that cannot be read (naming `--data`).
    """
    path = choose_input(spec, runtime.backend, runtime, normalization, data, eval_split)
    if global_batch % runtime.replicas:
        raise ConfigError(f"--batch_size={global_batch} must be divisible by the {runtime.replicas} replicas.")
    eval_batch = eval_batch or global_batch
    data_input, data = open_data(spec, path.in_memory, data, global_batch, eval_batch, eval_split, normalization,
                                 eval_transform)
    if data_input.num_train < global_batch:
        raise ConfigError(f"--batch_size={global_batch} is larger than the {data_input.num_train} training images.")
    return RunInput(data_input, path, global_batch, eval_batch, data, eval_split, normalization)
