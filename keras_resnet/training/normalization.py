"""The input normalisation of a run started from published weights (`--init_from=cifar10|imagenet`).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (section 3.4: the mean is
subtracted from the input); the published trained networks of `keras_resnet.weights` were trained with their
own normalisation ("torch": `(x / 255 - mean) / std`; "caffe": BGR, mean pixel subtracted), and only
reproduce what they learnt when fed that way, so a run starting from them trains with it.

The package's pipelines compute `z = (x - M) / 255` (docs/CONTRACTS.md). Any `Preprocessing`
`y = (reorder(x) * scale - mean) / std` is that followed by a per-channel factor:

    M = reorder^-1(mean / scale)      (0..255 RGB units, per channel: the run's mean_image.npy, [1, 1, 3])
    y = reorder(z) * (255 * scale / std)

so the data pipelines are used unchanged with `mean=M` and `InputNormalization.numpy` / `.tf` applies the
reorder and the factor to their batches. A run records the `Preprocessing` in config.json
(`input_normalization`, `Preprocessing.to_dict()`), for evaluation and export to apply it.

Example:
    >>> from keras_resnet.weights import TORCH
    >>> norm = InputNormalization(TORCH)
    >>> [round(float(v), 2) for v in norm.pipeline_mean.ravel()]
    [123.68, 116.28, 103.53]
"""

from __future__ import annotations

import json
import os

import numpy as np


class InputNormalization:
    """A `keras_resnet.weights.Preprocessing` applied on top of the pipelines' `(x - M) / 255`.

    Args:
        preprocessing: a `keras_resnet.weights.Preprocessing`.
    """

    def __init__(self, preprocessing):
        self.preprocessing = preprocessing
        self.reverse = preprocessing.channel_order == "BGR"
        mean = np.asarray(preprocessing.mean, np.float64) / float(preprocessing.scale)
        self.pipeline_mean = (mean[::-1] if self.reverse else mean).reshape(1, 1, -1).astype(np.float32)
        self.factor = (255.0 * float(preprocessing.scale) / np.asarray(preprocessing.std, np.float64)).astype(
            np.float32)

    @property
    def name(self):
        return self.preprocessing.name

    def numpy(self, x):
        """The network's input from a numpy batch of the pipeline, `(x - M) / 255` (channels last)."""
        x = np.asarray(x, np.float32)
        return (x[..., ::-1] if self.reverse else x) * self.factor

    def tf(self, x):
        """The same as `numpy` on a TensorFlow tensor (inside tf.data)."""
        import tensorflow as tf

        if self.reverse:
            x = tf.reverse(x, axis=[-1])
        return x * tf.constant(self.factor)

    def to_dict(self):
        """The `Preprocessing` as recorded in config.json (`input_normalization`)."""
        return self.preprocessing.to_dict()

    @classmethod
    def from_dict(cls, record):
        """The inverse of `to_dict`; None for None."""
        if record is None:
            return None
        from keras_resnet.weights import Preprocessing

        return cls(Preprocessing.from_dict(record))


def run_config_of(path):
    """The config.json of the run a checkpoint belongs to (`<model_dir>/checkpoints/best.keras`), or {}."""
    config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "config.json")
    if not os.path.isfile(config):
        return {}
    try:
        with open(config) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def normalization_of(init_from, model):
    """The `InputNormalization` a run started from `init_from` trains with, or None (the data's own mean).

    Args:
        init_from: `--init_from`: None, "cifar10" / "imagenet", or a file. A named set uses its published
            normalisation; a `.weights.h5` written by `keras_resnet.weights` (a converted published file)
            the one it records; a checkpoint of a run that itself trained with one (its config.json says so)
            that one; any other file none.
        model: the network's name ("resnet56"), which selects the "imagenet" set's file.

    Raises:
        ValueError: from `keras_resnet.weights.preprocessing_of` for a named set that does not fit `model`.
    """
    if init_from is None:
        return None
    from keras_resnet import weights

    if init_from in weights.SET_NAMES:
        return InputNormalization(weights.preprocessing_of(init_from, model=model))
    if not os.path.isfile(init_from):
        return None
    if init_from.endswith(".weights.h5"):
        record = weights.read_metadata(init_from)
        if record and record.get("preprocessing"):
            return InputNormalization(weights.Preprocessing.from_dict(record["preprocessing"]))
        return None
    if init_from.endswith(".keras"):
        return InputNormalization.from_dict(run_config_of(init_from).get("input_normalization"))
    return None
