"""Strict loading of a tensor table into a model, copying between models, and writing `.weights.h5` files.

Loading is all or nothing: every variable of every weighted layer must find a tensor of its shape, and every
tensor of the source must find a variable (only the classifier may be left over, when the model has no top);
the first that does not fit raises a `ValueError` naming it, the expected and the found shape, and nothing is
assigned. Files are written atomically (a temporary file, then `os.replace`), with a JSON record of where
the weights come from and how their inputs are normalised in the root attribute `keras_resnet`.

Example:
    >>> import keras_resnet
    >>> model = keras_resnet.cifar_resnet(8)
    >>> assign(model, table_of(model), "itself")  # a model's own weights fit it exactly
"""

from __future__ import annotations

import errno
import json
import os

import keras
import numpy as np

from keras_resnet import atomic, compat, faults
from keras_resnet.weights.formats import CLASSIFIER

METADATA_ATTR = "keras_resnet"
WEIGHTS_SUFFIX = ".weights.h5"


def has_classifier(model, classes=None):
    """Whether `model` ends with our `predictions` layer (with `classes` units, if given)."""
    try:
        layer = model.get_layer(CLASSIFIER)
    except ValueError:
        return False
    return classes is None or getattr(layer, "units", None) == classes


def plan(model, table, source):
    """Pairs each model variable with its tensor, checking names and shapes; assigns nothing.

    Args:
        model: a Keras model with this package's layer names.
        table: tensor table `{layer: {variable: (array, source_key)}}` (see `keras_resnet.weights.formats`).
        source: str naming the source in messages (a path, "the cached ...").

    Returns:
        A list of `(variable, array)` pairs.

    Raises:
        ValueError: the first variable without a tensor, tensor of the wrong shape, or tensor without a place.
    """
    pairs, used = [], set()
    for layer in model.layers:
        for variable in layer.weights:
            expected = tuple(variable.shape)
            entry = table.get(layer.name, {})
            if variable.name not in entry:
                raise ValueError(f"{source}: no tensor for {layer.name}/{variable.name} of {model.name} "
                                 f"(expected shape {expected}); found for {layer.name}: "
                                 f"{sorted(entry) or 'nothing'}. Not loaded.")
            array, key = entry[variable.name]
            if tuple(array.shape) != expected:
                raise ValueError(f"{source}: tensor {key!r} for {layer.name}/{variable.name} of {model.name}: "
                                 f"expected shape {expected}, found {tuple(array.shape)}. Not loaded.")
            pairs.append((variable, array))
            used.add((layer.name, variable.name))
    skip_classifier = not has_classifier(model)
    for layer, entry in table.items():
        for role, (array, key) in entry.items():
            if (layer, role) not in used and not (skip_classifier and layer == CLASSIFIER):
                raise ValueError(f"{source}: tensor {key!r} (shape {tuple(array.shape)}, for {layer}/{role}) "
                                 f"has no place in {model.name}: the file is for another network. Not loaded.")
    return pairs


def assign(model, table, source):
    """Loads a tensor table into `model`, all or nothing (see `plan`); a model built under
    `keras_resnet.compat.deferred_initial_values` gets its first values here (inside `compat.giving_values`)."""
    for variable, array in plan(model, table, source):
        compat.set_value(variable, array)


def table_of(model):
    """The tensor table of a model's own weights, keyed by its layer and variable names."""
    table = {}
    for layer in model.layers:
        for variable in layer.weights:
            table.setdefault(layer.name, {})[variable.name] = (keras.ops.convert_to_numpy(variable), variable.path)
    return table


def copy_weights(source_model, target_model, source):
    """Copies weights by layer name (strict; the source's classifier may be left over)."""
    assign(target_model, table_of(source_model), source)


def write_weights(model, path, metadata):
    """Saves `model.save_weights` to `path` atomically, with `metadata` as JSON in the root attribute.

    Args:
        model: the Keras model.
        path: str ending in `.weights.h5`.
        metadata: JSON-serialisable dict (source, model, preprocessing, ...).

    Raises:
        ValueError: `path` does not end in `.weights.h5`.
        OSError: the directory is not writable (the temporary file is removed).
    """
    import h5py

    path = os.fspath(path)
    if not path.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"weights output {path!r} must end in {WEIGHTS_SUFFIX!r}.")
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    stem = name[: -len(WEIGHTS_SUFFIX)]
    sweep_stale_temporaries(directory, stem)
    temporary = os.path.join(directory, f".{stem}.{os.getpid()}.tmp{WEIGHTS_SUFFIX}")
    needed = sum(int(np.prod(w.shape)) * 4 for w in model.weights) + (1 << 20)
    stat = os.statvfs(directory)
    if stat.f_bavail * stat.f_frsize < needed:  # h5py cannot close a file cleanly on a disk that fills up
        raise faults.StorageError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    try:
        model.save_weights(temporary)
        with h5py.File(temporary, "a") as handle:
            handle.attrs[METADATA_ATTR] = json.dumps(metadata, sort_keys=True)
        faults.site("weights.cache_write")
        os.replace(temporary, path)
    except BaseException:
        atomic.discard(temporary)
        raise
    return path


def sweep_stale_temporaries(directory, stem):
    """Removes `.<stem>.<pid>.tmp.weights.h5` files left by writers that died (their pid no longer runs).

    Returns:
        list of the paths removed.
    """
    removed = []
    prefix, suffix = f".{stem}.", f".tmp{WEIGHTS_SUFFIX}"
    for entry in os.listdir(directory):
        pid = entry[len(prefix): -len(suffix)] if entry.startswith(prefix) and entry.endswith(suffix) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not faults.process_alive(int(pid)):
            atomic.discard(os.path.join(directory, entry))
            removed.append(os.path.join(directory, entry))
    return removed



def read_metadata(path):
    """The `keras_resnet` record of a `.weights.h5` file as a dict, or `None` if it has none."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            text = handle.attrs.get(METADATA_ATTR)
    except OSError:
        return None
    if text is None:
        return None
    return json.loads(text.decode("utf8") if isinstance(text, bytes) else text)
