"""`weights=` of the constructors: checking the argument, loading named sets and files, converting.

`weights` is `None` (random initialisation), a named set ("cifar10", "imagenet"; see
`keras_resnet.weights.sets`) or the path of a file: a Keras 3 `.weights.h5` / `.keras`, an akamaster `.th`,
a torchvision `.pth`, a `.safetensors` state dict (torchvision / timm names) or a keras.applications Keras-2
`.h5`. `check_weights` runs before any layer is built, `load_weights` after (it gives every variable its
value: the file's, or its initializer's draw). A named set is converted once and cached as `.weights.h5` in
the Keras cache (`keras_resnet.weights.fetch`); a converted file records its input normalisation, which
`preprocess_input` applies.

Example:
    >>> import keras_resnet, numpy as np
    >>> model = keras_resnet.ResNet56(weights="cifar10")  # needs a published weights file  # doctest: +SKIP
    >>> x = keras_resnet.preprocess_input(np.zeros((1, 32, 32, 3)), weights="cifar10")
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings

from keras_resnet import compat
from keras_resnet.weights import fetch as fetching
from keras_resnet.weights.assign import assign, copy_weights, has_classifier, read_metadata, write_weights
from keras_resnet.normalization import CAFFE, TF_MODE, TORCH, Preprocessing
from keras_resnet.weights.sets import SET_NAMES, TAGGED_SETS, find_set
from keras_resnet.weights.formats import (WeightsFileError, detect_format, first_line, keras_h5_is_v2,
                                          read_source)

_MODEL = re.compile(r"^(resnet|plain)(\d+)(v2)?$")


@dataclasses.dataclass(frozen=True)
class WeightsRequest:
    """A checked `weights=` argument: a named set (`entry`) or a file (`path`, `file_format`)."""

    entry: object = None
    path: str = None
    file_format: str = None


def _bad_weights(weights, reason):
    return ValueError(f"`weights` must be None, one of {', '.join(map(repr, SET_NAMES))}, or the path of a weights "
                      f"file (.weights.h5, .keras, .th, .pth, .safetensors, .h5); received {weights!r} ({reason}).")


def check_weights(weights, *, family, depth, shortcut, include_top, classes, stride_in_3x3, channels, variant=""):
    """Validates `weights=` against the network about to be built, as keras.applications does.

    Args:
        weights: None, "cifar10", "imagenet", or a path (str or `os.PathLike`).
        family: "cifar" or "imagenet".
        depth, shortcut, include_top, classes, stride_in_3x3: the builder's arguments.
        variant: "" or "v2" (keras.applications' pre-activation networks), for the named sets.
        channels: int, the input's channel count.

    Returns:
        `None` for `weights=None`, else a `WeightsRequest`.

    Raises:
        ValueError: naming `weights` (or `classes`, `input_shape`): an unknown set or missing file, a set
            for another network, `include_top=True` with another number of classes, not 3 channels.
    """
    if weights is None:
        return None
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise _bad_weights(weights, f"a {type(weights).__name__}")
    if weights in SET_NAMES:
        entry = find_set(weights, family=family, depth=depth, shortcut=shortcut, stride_in_3x3=stride_in_3x3,
                         variant=variant)
        if include_top and classes != entry.classes:
            raise ValueError(f"`weights`={weights!r} with `include_top=True` needs `classes`={entry.classes} (the "
                             f"published classifier); received `classes`={classes!r}. Use include_top=False "
                             "(and your own classifier) for another number of classes.")
        if channels != 3:
            raise ValueError(f"`weights`={weights!r} needs RGB inputs (3 channels); `input_shape` has {channels}.")
        return WeightsRequest(entry=entry)
    if not os.path.isfile(weights):
        reason = "a directory, not a weights file" if os.path.isdir(weights) else "not a named set, and no such file"
        raise WeightsFileError(weights, reason, str(_bad_weights(weights, reason)))
    return WeightsRequest(path=weights, file_format=detect_format(weights))


def load_weights(model, request, factory):
    """Gives a freshly built model its values: the checked `weights=`, or (`None`) its initializers' draws.

    The builders create the layers under `keras_resnet.compat.deferred_initial_values`: no variable has a
    value yet, and none is drawn at random that a file replaces.

    Args:
        model: the built Keras model.
        request: the `WeightsRequest` of `check_weights`, or `None` for random initialisation.
        factory: callable `factory(classes)` building the same network with its classifier (include_top,
            `classes` outputs): the layout a converted `.weights.h5` holds, used when `model` has another head.
    """
    with compat.giving_values(model.variables):  # after: the initializers' draws for what has no value yet
        if request is not None:
            _load_request(model, request, factory)
    return model


def _load_request(model, request, factory):
    """The named set or file of a checked `weights=` into `model` (see `load_weights`)."""
    if request.entry is not None:
        load_named_set(model, request.entry, factory)
    elif request.file_format == "keras":
        load_keras_file(model, request.path, factory)
    else:
        assign(model, read_source(request.path, request.file_format)[0], request.path)


def _keras_load(model, path):
    """Keras' `load_weights`, which assigns: variables still without values get zeros to be overwritten."""
    compat.initialize_deferred(model.variables, zeros=True)
    model.load_weights(path)


def _full_network(factory, classes):
    """The network with its `classes`-way classifier, built without random initial values to load into."""
    with compat.deferred_initial_values():
        return factory(classes)


def _load_into_head(model, path, classes, factory):
    """Keras' `load_weights` of a file saved from the full network, into `model` whatever its head."""
    if has_classifier(model, classes):
        _keras_load(model, path)
        return
    canonical = _full_network(factory, classes)
    _keras_load(canonical, path)
    copy_weights(canonical, model, path)


def load_named_set(model, entry, factory):
    """Loads a named set: its cached conversion, else the (found or downloaded) published file."""
    cached = fetching.locate(entry.cache_name)
    if cached is not None:
        try:
            _load_into_head(model, cached, entry.classes, factory)
            return
        except Exception as error:  # a cache from another version of the package: convert again
            warnings.warn(f"ignoring the cached conversion {cached} ({error}); converting {entry.file_name} again.")
    source = fetching.fetch(entry)
    canonical = model if has_classifier(model, entry.classes) else _full_network(factory, entry.classes)
    with compat.giving_values(canonical.variables):
        assign(canonical, read_source(source, entry.source_format)[0], source)
    metadata = describe(canonical, source, entry.source_format, entry.preprocessing, entry=entry)
    try:
        write_weights(canonical, os.path.join(fetching.keras_cache_dir(), entry.cache_name), metadata)
    except OSError as error:
        warnings.warn(f"weights loaded, but the conversion could not be cached ({error}).")
    if canonical is not model:
        copy_weights(canonical, model, source)


def load_keras_file(model, path, factory):
    """A Keras 3 `.weights.h5` / `.keras`: files written here (with a record) load whatever the model's head."""
    record = read_metadata(path) if path.endswith(".weights.h5") else None
    try:
        if record and record.get("classes"):
            _load_into_head(model, path, int(record["classes"]), factory)
        else:
            _keras_load(model, path)
    except Exception as error:  # noqa: BLE001 - h5py, zipfile, Keras: any unreadable or foreign file, one line
        reason = f"does not fit {model.name} or is unreadable ({first_line(error)})"
        raise WeightsFileError(path, reason, f"`weights`={path!r} {reason}") from None


def describe(model, source, source_format, preprocessing, entry=None):
    """The JSON record written with a converted file."""
    record = {
        "model": model.name,
        "classes": getattr(model.get_layer("predictions"), "units", None) if has_classifier(model) else None,
        "source": os.path.basename(source),
        "source_format": source_format,
        "source_sha256": fetching.file_digest(source),
        "preprocessing": preprocessing.to_dict(),
    }
    if entry is not None:
        record.update(set=entry.name, url=entry.url, licence=entry.licence)
    return record


def preprocessing_for_format(source_format, path=None):
    """The normalisation a source format's published weights use: CAFFE for keras.applications' ResNets,
    TF_MODE for its V2 networks (told apart by the layer names of the file at `path`), else TORCH (the
    PyTorch formats: akamaster, torchvision, and `.safetensors` files of timm's and torchvision's ResNets)."""
    if source_format == "keras_applications":
        return TF_MODE if path is not None and keras_h5_is_v2(path) else CAFFE
    return TORCH


def convert(source, model, output, source_format=None):
    """Converts a published file into `model` (strictly, see `keras_resnet.weights.assign`) and saves it.

    Args:
        source: path of an akamaster `.th`, torchvision `.pth`, `.safetensors` (torchvision / timm state
            dict, read without PyTorch) or keras.applications `.h5` file.
        model: the Keras model to load into (built with `weights=None`), e.g. `keras_resnet.ResNet56()`.
        output: path of the `.weights.h5` to write (atomically, with a record of source and preprocessing).
        source_format: one of `keras_resnet.weights.formats.SOURCE_FORMATS`, or `None` to detect it from the
            file name.

    Returns:
        The output path.

    Example:
        >>> convert("resnet56-4bfd9763.th", keras_resnet.ResNet56(), "resnet56.weights.h5")  # needs akamaster's published file  # doctest: +SKIP
    """
    source = os.fspath(source)
    if not os.path.isfile(source):
        raise ValueError(f"weights source {source!r}: no such file.")
    source_format = source_format or detect_format(source)
    if source_format == "keras":
        raise ValueError(f"weights source {source!r} is a Keras 3 file already: load it with weights=PATH.")
    table, source_format = read_source(source, source_format)
    assign(model, table, source)
    return write_weights(model, output, describe(model, source, source_format,
                                                 preprocessing_for_format(source_format, source)))


def named_set_entry(weights, spec, stride_in_3x3=None):
    """The `WeightSet` behind a named `weights=` for a network, or None for a file.

    Args:
        weights: a named set (`SET_NAMES`) or anything else (files: None).
        spec: the network's `keras_resnet.registry.ModelSpec` (`model_spec("resnet50")`), parsed by the caller.
        stride_in_3x3: the bottleneck stride placement, or None for the set's own (True for the tagged sets'
            ResNet-50/101/152, torchvision's and timm's; else False, keras.applications').

    Raises:
        ValueError: naming `weights` (no such set for this network).
    """
    if not isinstance(weights, str) or weights not in SET_NAMES:
        return None
    if stride_in_3x3 is None:
        stride_in_3x3 = weights in TAGGED_SETS and spec.depth in (50, 101, 152)
    shortcut = None if spec.plain else ("A" if spec.family == "cifar" else "B")
    variant = "v2" if spec.preactivation and spec.family == "imagenet" else ""
    return find_set(weights, family=spec.family, depth=spec.depth, shortcut=shortcut, stride_in_3x3=stride_in_3x3,
                    variant=variant)


def preprocessing_of(weights, model=None, stride_in_3x3=False):
    """The `Preprocessing` of a named set or weights file.

    Args:
        weights: "cifar10", "imagenet" (needs `model`: keras.applications' and torchvision's files differ),
            the path of a file (a converted `.weights.h5` records it; a `.th` / `.pth` / `.safetensors`
            implies "torch", a Keras-2 `.h5` "caffe"), or a `Preprocessing`.
        model: str, the network's name (e.g. "resnet50"), for `weights="imagenet"`.
        stride_in_3x3: bool, the network's `stride_in_3x3` (torchvision's files for ResNet-50/101/152).

    Raises:
        ValueError: naming `weights` or `model`.
    """
    if isinstance(weights, Preprocessing):
        return weights
    if weights == "cifar10":
        return TORCH
    if weights in TAGGED_SETS or weights == "imagenet":
        match = _MODEL.match(str(model).lower()) if model is not None else None
        if match is None:
            raise ValueError(f"`weights`={weights!r} is normalised as Caffe (keras.applications' ResNet50/101/152) "
                             "or as torchvision (ResNet-18/34, stride_in_3x3, the tagged sets), depending on the "
                             f"network: pass `model=`, e.g. 'resnet50'; received model={model!r}.")
        depth = int(match.group(2))
        stride = stride_in_3x3 or (weights in TAGGED_SETS and depth in (50, 101, 152))
        return find_set(weights, family="imagenet", depth=depth, shortcut="B", stride_in_3x3=stride,
                        variant=match.group(3) or "").preprocessing
    if isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        file_format = detect_format(weights)
        if file_format != "keras":
            return preprocessing_for_format(file_format, os.fspath(weights))
        record = read_metadata(os.fspath(weights)) if os.fspath(weights).endswith(".weights.h5") else None
        if record and "preprocessing" in record:
            return Preprocessing.from_dict(record["preprocessing"])
        raise ValueError(f"`weights`={os.fspath(weights)!r} records no preprocessing (not written by "
                         "keras_resnet.weights); normalise its inputs as its training did.")
    raise _bad_weights(weights, "not a named set, a Preprocessing, or an existing file")


def preprocess_input(x, weights, model=None, stride_in_3x3=False):
    """Normalises RGB images in [0, 255] as the given pretrained weights expect (see `preprocessing_of`).

    Args:
        x: images, channels last, RGB values in [0, 255] (NumPy array or backend tensor).
        weights: "cifar10", "imagenet", a weights file path, or a `Preprocessing`.
        model: the network's name, needed for `weights="imagenet"`.
        stride_in_3x3: the network's `stride_in_3x3`, for `weights="imagenet"`.

    Returns:
        float32 images in the network's channel order.

    Example:
        >>> import numpy as np
        >>> [round(float(v), 3) for v in preprocess_input(np.zeros((1, 2, 2, 3)), weights="cifar10")[0, 0, 0]]
        [-2.118, -2.036, -1.804]
    """
    return preprocessing_of(weights, model, stride_in_3x3).apply(x)
