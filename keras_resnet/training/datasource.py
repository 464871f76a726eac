"""What a run's `--data` offers, checked before the run writes anything: its splits and its input path.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: ImageNet is trained on its
training images and evaluated on its validation images (section 3.4, Tables 3-4), CIFAR-10 on its test
images (section 4.2); CIFAR's small images fit in memory, ImageNet's 1.28M photos of many sizes are decoded
on the fly.

- `resolve_eval_split(config)`: the split evaluated after every epoch (`--eval_split`, default
  `keras_resnet.data.default_eval_split`: "validation" for data with `val/` or `validation/`, else "test");
- `check_data(config, eval_split)`: `keras_resnet.data.check_splits` on the training and evaluation splits
  (a missing split, an empty class folder, class folders that differ between splits);
- `input_choice(config, data, backend)`: `(in_memory, reason)`, the one rule of the input path (below).

Every user error is a `ConfigError` of one line naming `--data` or `--eval_split` (trainers exit with 2).

The input rule: in memory for `ArrayData` given to `train`, `--input=memory|device`, and `--input=auto` on a
backend other than TensorFlow; tf.data for `--input=tfdata` and TFDS names; for a local folder, archive or
TFRecord directory with `--input=auto`, in memory when `keras_resnet.data.memory_input_reason` allows it (all
images of one shape, below its size limit) and the images are CIFAR-style (both sides <= 64 pixels: the
in-memory path has the CIFAR augmentation only), streamed by tf.data otherwise.

Example:
    >>> from keras_resnet.training.config import TrainConfig
    >>> input_choice(TrainConfig(model="resnet8", data="cifar10", model_dir="x"), backend="jax")
    (True, 'in memory: the jax backend has no tf.data')
"""

from __future__ import annotations

from keras_resnet.training.config import ConfigError

SMALL_IMAGE = 64
"""CIFAR-style images have both sides at most this many pixels (`keras_resnet.data` chooses "cifar")."""


def data_error(config, error):
    """A `ConfigError` naming `--data` from a data-package error (first line of its message)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, KeyError):
        text = text.strip("'\"")
    text = text.replace("Pass skip_corrupt=True", "Pass --skip_corrupt")  # the trainer's flag for it
    return ConfigError(f"--data={config.data}: {text}")


def data_source(config):
    """`--data` resolved (`keras_resnet.data.sources.resolve`): a missing path is a `ConfigError` naming it."""
    from keras_resnet.data.sources import resolve

    try:
        return resolve(config.data, data_dir=config.data_dir, download=config.download)
    except (ValueError, FileNotFoundError) as error:
        raise data_error(config, error) from None


def available(config):
    """The canonical splits of `--data`, or None when they cannot be listed (an unprepared TFDS dataset)."""
    source = data_source(config)
    try:
        return source.splits()
    except FileNotFoundError as error:
        raise data_error(config, error) from None
    except Exception as error:  # noqa: BLE001 - TFDS: not prepared, unknown name; the loader says why later
        if source.local:
            raise data_error(config, error) from None
        return None


def resolve_eval_split(config, data=None):
    """The canonical split evaluated after every epoch and reported as `test_*`.

    Args:
        config: a `TrainConfig` (`data`, `eval_split`, `validation_split`, `data_dir`).
        data: the `ArrayData` given to `train`, if any (its test images are the evaluation split).

    Raises:
        ConfigError: `--eval_split` names a split the data does not have (the available ones are listed);
            the data's own validation split cannot be evaluated while `--validation_split` holds training
            images out as "validation".
    """
    from keras_resnet.data import canonical_split

    if data is not None:
        return "test"
    requested = canonical_split(str(config.eval_split).strip().lower()) if config.eval_split else None
    splits = available(config)
    held_out = bool(config.validation_split)
    if requested is not None and splits is not None and requested not in splits:
        raise ConfigError(f"--eval_split={config.eval_split}: {config.data} has no such split; available splits: "
                          f"{splits}.")
    split = requested
    if split is None:
        split = "test" if splits is None or "validation" not in splits or (held_out and "test" in splits) \
            else "validation"
    if split == "validation" and held_out:
        raise ConfigError(f"--eval_split=validation: --validation_split={config.validation_split:g} makes "
                          f"'validation' the images held out of train, not {config.data}'s own validation split; "
                          "pass --validation_split=0 to evaluate on the data's validation split, or "
                          "--eval_split=test.")
    if splits is not None and split not in splits:
        raise ConfigError(f"--data={config.data} has no {split!r} split to evaluate on; available splits: {splits}. "
                          "Pass --eval_split with one of them.")
    return split


def check_data(config, eval_split):
    """Checks the training and evaluation splits of a local `--data` (`keras_resnet.data.check_splits`).

    Raises:
        ConfigError: naming `--data`: a missing split, a split without class folders, an empty class
            folder, class folders that differ between the splits.
    """
    source = data_source(config)
    if not source.local:
        return
    splits = ["train"] if eval_split == "train" else ["train", eval_split]
    try:
        source.check_splits(splits)
    except (ValueError, FileNotFoundError, OSError) as error:
        raise data_error(config, error) from None


def input_choice(config, data=None, backend=None, eval_split=None):
    """`(in_memory, reason)`: whether `train(config, data)` reads its data into memory, and why (for the log).

    Args:
        config: a `TrainConfig`.
        data: the `ArrayData` given to `train`, if any.
        backend: the Keras backend name; `keras.backend.backend()` if None.
        eval_split: the evaluation split (`resolve_eval_split`) if known.

    Raises:
        ConfigError: naming `--data`, when the data cannot be read.
    """
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if data is not None:
        return True, "in memory: arrays given to train()"
    if config.input in ("memory", "device", "tfdata"):
        path = "tf.data" if config.input == "tfdata" else "in memory"
        return config.input != "tfdata", f"{path}: --input={config.input}"
    if backend != "tensorflow":
        return True, f"in memory: the {backend} backend has no tf.data"
    source = data_source(config)
    if not source.local:
        return False, f"streaming: TFDS dataset {config.data!r} through tf.data"
    split = eval_split or resolve_eval_split(config)
    splits = ["train"] if split == "train" else ["train", split]
    try:
        ok, reason = source.memory_reason(splits)
        size = source.first_image_size() if ok else None
    except (ValueError, FileNotFoundError, OSError) as error:
        raise data_error(config, error) from None
    if ok and size is not None and max(size) > SMALL_IMAGE:
        return False, (f"streaming: ImageNet-style images ({size[0]}x{size[1]}, larger than {SMALL_IMAGE} pixels): "
                       "scale augmentation and crops run in tf.data")
    return ok, reason


def undecodable_image(config, error):
    """A `ConfigError` naming `--data` and the file for an undecodable image that a streamed tf.data split met
    while iterating (`keras_resnet.data.corrupt`), or None for any other error."""
    if type(error).__name__ != "InvalidArgumentError":
        return None
    from keras_resnet.data.corrupt import error_message

    message = error_message(error)
    return None if message is None else data_error(config, ValueError(message))
