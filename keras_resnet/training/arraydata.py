"""In-memory data of a run: `ArrayData` (uint8 images and labels per split) and `load_array_data`.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2 (CIFAR-10: 45k
training images, 5k held out for validation, the 10k test images; small enough to hold in memory).

Example:
    >>> from keras_resnet.training.arraydata import validation_size
    >>> validation_size(0.1, 50000), validation_size(5000, 50000)
    (5000, 5000)
"""

from __future__ import annotations

import dataclasses

from keras_resnet.training.config import ConfigError


@dataclasses.dataclass
class ArrayData:
    """In-memory data for `train`: uint8 images `[N, H, W, C]` and int labels per split.

    Attributes:
        info: a `keras_resnet.data.DatasetInfo` (class names, image shape, mean, preprocessing).
        train: (images, labels) actually trained on.
        test: (images, labels) of the evaluation split (the test split, or the data's own validation split).
        validation: optional (images, labels) held out of the training split.
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
    """Images held out by `--validation_split` (a fraction of `num_train`, or a count).

    Raises:
        ConfigError: naming `--validation_split`, when it would leave no training image.
    """
    if not split:
        return 0
    size = int(round(split * num_train)) if split < 1 else int(split)
    if size >= num_train:
        raise ConfigError(f"--validation_split={split:g} holds out {size} images, but the training split has only "
                          f"{num_train}; accepted: a fraction in (0, 1) or a count below {num_train}.")
    return size


def load_array_data(source, validation_split=0.0, data_dir=None, download=False, *, eval_split="test",
                    image_size=None, skip_corrupt=False, mean=None):
    """Loads a small dataset into memory with `keras_resnet.data.load_arrays` (image folders and archives
    need no TensorFlow), holding out `validation_split` (fraction or count) of the training split.

    Args:
        source: the `--data` source.
        validation_split: training images held out as "validation" (a fraction or a count).
        data_dir, download: for TFDS names.
        eval_split: the split loaded as `ArrayData.test` (`--eval_split`).
        image_size: resize every image to `image_size` x `image_size` (`--image_size`; None: as stored).
        skip_corrupt: skip undecodable images (counted in `info.num_skipped`).
        mean: the mean to normalise with (None: the training split's).
    """
    from keras_resnet.data import load_arrays
    from keras_resnet.data.sources import resolve

    known = resolve(source, data_dir=data_dir, download=download).image_count("train") if validation_split else None
    if known is not None:  # too many held out: refused before anything is read (or a mean cached)
        validation_size(validation_split, known)
    kwargs = {k: v for k, v in (("data_dir", data_dir), ("download", download)) if v}
    kwargs.update(skip_corrupt=skip_corrupt, mean=mean)
    train_x, train_y, info = load_arrays(source, "train", **kwargs)
    if image_size is not None and tuple(info.image_shape[:2]) != (image_size, image_size):
        kwargs["image_size"] = (image_size, image_size)
        train_x, train_y, info = load_arrays(source, "train", **kwargs)
    size = validation_size(validation_split, len(train_y))
    validation = None
    if size:
        train_x, train_y, info = load_arrays(source, "train", validation_size=size, **kwargs)
        val_x, val_y, _ = load_arrays(source, "validation", validation_size=size, **kwargs)
        validation = (val_x, val_y)
    test_x, test_y, test_info = load_arrays(source, eval_split, **kwargs)
    info.num_examples = {**info.num_examples, **test_info.num_examples}
    if skip_corrupt:
        from keras_resnet.data.info import SkipCounts

        parts = (info.num_skipped, test_info.num_skipped)
        info.num_skipped = SkipCounts({k: p[k] for p in parts for k in p},
                                      files={k: p.files(k) for p in parts for k in p})
    return ArrayData(info, (train_x, train_y), (test_x, test_y), validation)
