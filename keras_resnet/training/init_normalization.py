"""How the inputs of a run started from trained weights (`--init_from`) are normalised (`normalization_of`) and
evaluated (`eval_transform_of`).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (section 3.4: the mean is
subtracted from the input); the published trained networks of `keras_resnet.weights` were trained with their
own normalisation ("torch": `(x / 255 - mean) / std`; "caffe": BGR, mean pixel subtracted), and only
reproduce what they learnt when fed that way, so a run starting from them trains with it
(`keras_resnet.normalization.InputNormalization`, recorded in the run's config.json). A tagged set
("imagenet-tv2", "imagenet-a1") was also measured under its publisher's evaluation transform (resize, centre
crop, interpolation: `keras_resnet.eval_transform`), which the run's evaluation then uses (recorded in
config.json as `eval_transform`; the evaluation of the run directory and its export read it there).

Example:
    >>> normalization_of("cifar10", "resnet20").name
    'torch'
    >>> normalization_of(None, "resnet20") is None
    True
    >>> eval_transform_of("imagenet-a1", "resnet50").resize_size
    235
"""

from __future__ import annotations

import json
import os

from keras_resnet.normalization import InputNormalization, Preprocessing


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
            return InputNormalization(Preprocessing.from_dict(record["preprocessing"]))
        return None
    if init_from.endswith(".keras"):
        return InputNormalization.from_dict(run_config_of(init_from).get("input_normalization"))
    return None


def eval_transform_of(init_from, model):
    """The evaluation transform (`keras_resnet.eval_transform.EvalTransform`) a run started from `init_from`
    evaluates with at its publisher's crop size, or None (the package's 256 / 224 geometry).

    Args:
        init_from: `--init_from`: a tagged set ("imagenet-tv2", "imagenet-a1") gives its publisher's transform;
            a checkpoint of a run that itself recorded one (its config.json) that one; anything else None.
        model: the network's name ("resnet50"), which selects the set's file.
    """
    from keras_resnet import weights
    from keras_resnet.eval_transform import EvalTransform
    from keras_resnet.registry import model_spec

    if init_from is None:
        return None
    if init_from in weights.TAGGED_SETS:
        try:
            return weights.named_set_entry(init_from, model_spec(model)).evaluation
        except ValueError:  # a set for another network: loading the weights names the misfit
            return None
    if init_from.endswith(".keras") and os.path.isfile(init_from):
        try:
            return EvalTransform.of_run(run_config_of(init_from))
        except ValueError:
            return None
    return None
