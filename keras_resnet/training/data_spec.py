"""What a run's `--data` offers, checked before the run writes anything: its splits and its input path.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: ImageNet is trained on its
training images and evaluated on its validation images (section 3.4, Tables 3-4), CIFAR-10 on its test
images (section 4.2); CIFAR's small images fit in memory, ImageNet's 1.28M photos of many sizes are decoded
on the fly.

- `data_spec(config, arrays=None) -> DataSpec`: the data part of a run, resolved once (the source object of
  `keras_resnet.data.sources.resolve`, the split and input flags); the functions below take it, not the
  whole `TrainConfig` (the public ones accept either);
- `resolve_eval_split(spec)`: the split evaluated after every epoch (`--eval_split`, default
  `keras_resnet.data.default_eval_split`: "validation" for data with `val/` or `validation/`, else "test");
- `check_data(spec, eval_split)`: `Source.check_splits` on the training and evaluation splits (a missing
  split, an empty class folder, class folders that differ between splits);
- `choose_input(spec, backend, runtime, ...) -> InputPath`: the one function that chooses the input path,
  "memory", "device" or "tfdata", with its reason (below); `input_choice(config, ...)` is its memory part.

Every user error is a `ConfigError` of one line naming `--data` or `--eval_split` (trainers exit with 2).

The input rule: in memory for `ArrayData` given to `train`, `--input=memory|device`, and `--input=auto` on a
backend other than TensorFlow; tf.data for `--input=tfdata` and TFDS names; for a local folder, archive or
TFRecord directory with `--input=auto`, in memory when `keras_resnet.data.memory_input_reason` allows it (all
images of one shape, below its size limit) and the images are CIFAR-style (both sides <= 64 pixels: the
in-memory path has the CIFAR augmentation only), streamed by tf.data otherwise. In memory, the compiled step
gathers and augments the batches itself ("device") for `--input=device` and `auto` unless a reason forbids it
(another backend than JAX or TensorFlow, images not CIFAR-style, several devices, an `--init_from`
normalisation); `--input=device` with such a reason is a `ConfigError` naming every reason.

Example:
    >>> from keras_resnet.training.config import TrainConfig
    >>> input_choice(TrainConfig(model="resnet8", data="cifar10", model_dir="x"), backend="jax")
    (True, 'in memory: the jax backend has no tf.data')
"""

from __future__ import annotations

import dataclasses

from keras_resnet.training.config import ConfigError
from keras_resnet.training.arraydata import validation_size

SMALL_IMAGE = 64
"""CIFAR-style images have both sides at most this many pixels (`keras_resnet.data` chooses "cifar")."""


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The data part of a run, resolved once from its flags by `data_spec`.

    Attributes:
        flag: `--data` as given (named in messages).
        source: the resolved `keras_resnet.data.sources.Source`; None when arrays are given to `train`.
        data_dir, download: for TFDS names.
        validation_split: `--validation_split` (a fraction or a count of training images held out).
        eval_split: `--eval_split` as given (None: the default split).
        image_size, skip_corrupt, ten_crop, seed, input: those flags.
    """

    flag: str
    source: object
    data_dir: str | None
    download: bool
    validation_split: float
    eval_split: str | None
    image_size: int | None
    skip_corrupt: bool
    ten_crop: bool
    seed: int | None
    input: str

    def error(self, error):
        """A `ConfigError` naming `--data` from a data-package error (first line of its message)."""
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if isinstance(error, KeyError):
            text = text.strip("'\"")
        text = text.replace("Pass skip_corrupt=True", "Pass --skip_corrupt")  # the trainer's flag for it
        return ConfigError(f"--data={self.flag}: {text}")


def data_spec(config, arrays=None):
    """The `DataSpec` of a `TrainConfig` (a `DataSpec` is returned as it is); `--data` is resolved unless
    `arrays` (an `ArrayData`) are given instead.

    Raises:
        ConfigError: `--data` names a path that does not exist (or is empty).
    """
    if isinstance(config, DataSpec):
        return config
    spec = DataSpec(str(config.data), None, config.data_dir, config.download, config.validation_split,
                    config.eval_split, config.image_size, config.skip_corrupt, config.ten_crop, config.seed,
                    config.input)
    if arrays is not None:
        return spec
    from keras_resnet.data.sources import resolve

    try:
        return dataclasses.replace(spec, source=resolve(config.data, data_dir=config.data_dir,
                                                        download=config.download))
    except (ValueError, FileNotFoundError) as error:
        raise spec.error(error) from None


def available(spec):
    """The canonical splits of `--data`, or None when they cannot be listed (an unprepared TFDS dataset)."""
    try:
        return spec.source.splits()
    except FileNotFoundError as error:
        raise spec.error(error) from None
    except Exception as error:  # noqa: BLE001 - TFDS: not prepared, unknown name; the loader says why later
        if spec.source.local:
            raise spec.error(error) from None
        return None


def resolve_eval_split(config, data=None):
    """The canonical split evaluated after every epoch and reported as `test_*`.

    Args:
        config: a `DataSpec` (or the `TrainConfig` it comes from).
        data: the `ArrayData` given to `train`, if any (its test images are the evaluation split).

    Raises:
        ConfigError: `--eval_split` names a split the data does not have (the available ones are listed);
            the data's own validation split cannot be evaluated while `--validation_split` holds training
            images out as "validation".
    """
    from keras_resnet.data import canonical_split

    if data is not None:
        return "test"
    spec = data_spec(config)
    requested = canonical_split(str(spec.eval_split).strip().lower()) if spec.eval_split else None
    splits = available(spec)
    held_out = bool(spec.validation_split)
    if requested is not None and splits is not None and requested not in splits:
        raise ConfigError(f"--eval_split={spec.eval_split}: {spec.flag} has no such split; available splits: "
                          f"{splits}.")
    split = requested
    if split is None:
        split = "test" if splits is None or "validation" not in splits or (held_out and "test" in splits) \
            else "validation"
    if split == "validation" and held_out:
        raise ConfigError(f"--eval_split=validation: --validation_split={spec.validation_split:g} makes "
                          f"'validation' the images held out of train, not {spec.flag}'s own validation split; "
                          "pass --validation_split=0 to evaluate on the data's validation split, or "
                          "--eval_split=test.")
    if splits is not None and split not in splits:
        raise ConfigError(f"--data={spec.flag} has no {split!r} split to evaluate on; available splits: {splits}. "
                          "Pass --eval_split with one of them.")
    return split


def check_data(config, eval_split):
    """Checks the training and evaluation splits of a local `--data` (`Source.check_splits`); returns the
    number of training images left after `--validation_split` where it is known without reading them (else
    None), so that what depends on it is refused before any file or cached mean is written.

    Args:
        config: a `DataSpec` (or the `TrainConfig` it comes from).
        eval_split: the evaluation split (`resolve_eval_split`).

    Raises:
        ConfigError: naming `--data`: a missing split, a split without class folders, an empty class
            folder, class folders that differ between the splits; naming `--validation_split`: more images
            held out than the training split has (where its size is known without reading it).
    """
    spec = data_spec(config)
    if not spec.source.local:
        return None
    splits = ["train"] if eval_split == "train" else ["train", eval_split]
    try:
        spec.source.check_splits(splits)
        count = spec.source.image_count("train")
    except (ValueError, FileNotFoundError, OSError) as error:
        raise spec.error(error) from None
    if count is None:
        return None
    return count - validation_size(spec.validation_split, count)  # more held out than there is: refused here


def memory_rule(spec, data, backend, eval_split):
    """`(in_memory, reason)` of the input rule (the module docstring) for a `DataSpec`."""
    if data is not None:
        return True, "in memory: arrays given to train()"
    if spec.input in ("memory", "device", "tfdata"):
        path = "tf.data" if spec.input == "tfdata" else "in memory"
        return spec.input != "tfdata", f"{path}: --input={spec.input}"
    if backend != "tensorflow":
        return True, f"in memory: the {backend} backend has no tf.data"
    if not spec.source.local:
        return False, f"streaming: TFDS dataset {spec.flag!r} through tf.data"
    split = eval_split or resolve_eval_split(spec)
    splits = ["train"] if split == "train" else ["train", split]
    try:
        ok, reason = spec.source.memory_reason(splits)
        size = spec.source.first_image_size() if ok else None
    except (ValueError, FileNotFoundError, OSError) as error:
        raise spec.error(error) from None
    if ok and size is not None and max(size) > SMALL_IMAGE:
        return False, (f"streaming: ImageNet-style images ({size[0]}x{size[1]}, larger than {SMALL_IMAGE} pixels): "
                       "scale augmentation and crops run in tf.data")
    return ok, reason


def input_choice(config, data=None, backend=None, eval_split=None):
    """`(in_memory, reason)`: whether `train(config, data)` reads its data into memory, and why (for the log).

    Args:
        config: a `TrainConfig` (or its `DataSpec`).
        data: the `ArrayData` given to `train`, if any.
        backend: the Keras backend name; `keras.backend.backend()` if None.
        eval_split: the evaluation split (`resolve_eval_split`) if known.

    Raises:
        ConfigError: naming `--data`, when the data cannot be read.
    """
    return memory_rule(data_spec(config, data), data, backend or keras_backend(), eval_split)


def keras_backend():
    """The Keras backend's name."""
    import keras

    return keras.backend.backend()


def cifar_style(spec, data):
    """Whether the run's images are CIFAR-style (both sides <= 64 pixels after `--image_size`), the only ones
    the in-memory and device paths augment: from the arrays given, `--image_size`, or the first training
    image's size (unknown counts as not)."""
    if data is not None:
        return getattr(data.info, "preprocessing", "cifar") == "cifar"
    if spec.image_size is not None:
        return spec.image_size <= SMALL_IMAGE
    try:
        size = spec.source.first_image_size()
    except (ValueError, FileNotFoundError, OSError) as error:
        raise spec.error(error) from None
    return size is not None and max(size) <= SMALL_IMAGE


@dataclasses.dataclass(frozen=True)
class InputPath:
    """The input path of a run and why: `kind` is "memory" (host numpy batches), "device" (the compiled step
    gathers and augments uint8 images it holds) or "tfdata" (streamed); `reason` says why in memory or not."""

    kind: str
    reason: str

    @property
    def in_memory(self):
        return self.kind != "tfdata"

    @property
    def on_device(self):
        return self.kind == "device"

    def describe(self):
        """One line for the log (printed as `[keras_resnet] input: ...`)."""
        why = f" ({self.reason})" if self.reason else ""
        if self.on_device:
            return ("uint8 training images on the device, batches gathered and augmented inside the compiled step "
                    f"(pad-4 crop + flip, mean subtraction){why}")
        if self.in_memory:
            return f"in-memory arrays, batches augmented on the host (numpy){why}"
        return f"tf.data, images decoded on the fly{why}"


def device_refusals(backend, runtime, in_memory, augments, normalization):
    """Every reason the compiled step cannot gather and augment the batches itself (empty: it can)."""
    reasons = []
    if backend not in ("jax", "tensorflow"):
        reasons.append(f"the backend is {backend} (device input is the JAX and TensorFlow path)")
    if not in_memory:
        reasons.append("the data is not in memory")
    elif not augments:
        reasons.append("the images are not CIFAR-style (no on-device augmentation for them)")
    if runtime.jax_distribution is not None or runtime.replicas > 1:
        reasons.append("several devices are in use (device input is single-device)")
    if normalization is not None:
        reasons.append("the input normalisation of the --init_from weights is applied on the host")
    return reasons


def device_verdict(choice, reasons):
    """Whether `--input=choice` runs on the device given `device_refusals`; `ConfigError` for `--input=device`
    with a reason against it (naming every reason)."""
    if choice == "device" and reasons:
        raise ConfigError(f"--input=device is not possible here: {'; '.join(reasons)}. Use --input=memory.")
    return choice in ("device", "auto") and not reasons


def choose_input(spec, backend, runtime, normalization=None, data=None, eval_split=None):
    """The input path of a run, chosen once: `InputPath(kind, reason)` (the rule: the module docstring).

    Args:
        spec: the run's `DataSpec`.
        backend: the Keras backend name.
        runtime: the `Runtime` (replicas, JAX distribution).
        normalization: the `InputNormalization` of `--init_from` weights, or None.
        data: the `ArrayData` given to `train`, if any.
        eval_split: the evaluation split (`resolve_eval_split`), if known.

    Raises:
        ConfigError: tf.data without TensorFlow; `--input=device` where it cannot run; data that cannot be read.

    Example:
        >>> from keras_resnet.training.config import TrainConfig
        >>> from keras_resnet.training.runtime import Runtime
        >>> spec = data_spec(TrainConfig(model="resnet8", data="cifar10", model_dir="x", input="tfdata"))
        >>> choose_input(spec, "tensorflow", Runtime("tensorflow")).describe()
        'tf.data, images decoded on the fly (tf.data: --input=tfdata)'
    """
    in_memory, reason = memory_rule(spec, data, backend, eval_split)
    if not in_memory and backend != "tensorflow":
        raise ConfigError(f"--input=tfdata needs TensorFlow; the backend is {backend}.")
    augments = in_memory and spec.input in ("device", "auto") and cifar_style(spec, data)
    reasons = device_refusals(backend, runtime, in_memory, augments, normalization)
    if device_verdict(spec.input, reasons):
        return InputPath("device", reason)
    return InputPath("memory" if in_memory else "tfdata", reason)


def undecodable_image(spec, error):
    """A `ConfigError` naming `--data` and the file for an undecodable image that a streamed tf.data split met
    while iterating (`keras_resnet.data.corrupt`), or None for any other error.

    Args:
        spec: the run's `DataSpec`.
        error: the exception raised while training.
    """
    if type(error).__name__ != "InvalidArgumentError":
        return None
    from keras_resnet.data.corrupt import error_message

    message = error_message(error)
    return None if message is None else spec.error(ValueError(message))
