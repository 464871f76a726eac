"""Starting a run from trained weights (`--init_from`) and keeping early layers fixed (`--freeze`).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the networks' layer
groups: the stem `conv1` and the stages `conv2_x` .. `conv5_x` of Table 1, here `stem`, `stage1`, ...);
fine-tuning a network trained on one dataset on another is the transfer learning of its section 4.3
(detection from ImageNet-trained ResNets).

- `load_initial_weights(model, config)`: weights matched by layer name and shape from a `.keras` file, a
  `.weights.h5` file or a named set of `keras_resnet.weights` (built with its published classifier and
  copied). Only the classifier may differ (another number of classes: it keeps its fresh initialisation);
  any other layer that is missing or has another shape is a `ConfigError` naming `--init_from` and the
  first such layer, raised before the run writes anything.
- `freeze(model, groups)`: every layer of the named groups gets `trainable = False`: its weights are not
  trained and its BN layers run in inference mode (Keras 3: a non-trainable BatchNormalization normalises
  with, and never updates, its moving statistics).

Example:
    >>> report = load_initial_weights(model, config)  # needs a weights file to start from  # doctest: +SKIP
    >>> report.loaded[:2], report.not_loaded  # needs a weights file to start from  # doctest: +SKIP
    (['stem_conv', 'stem_bn'], ['predictions'])
"""

from __future__ import annotations

import dataclasses
import os
import re
import zipfile

import keras

from keras_resnet.training.config import INIT_NAMED, ConfigError
from keras_resnet.training.run_parts import model_part

CLASSIFIER = "predictions"
ACCEPTED = f"a .keras or .weights.h5 file (e.g. a run's checkpoints/best.keras) or one of {list(INIT_NAMED)}"


@dataclasses.dataclass
class InitReport:
    """Which layers `load_initial_weights` loaded and which kept their initialisation."""

    source: str
    loaded: list
    not_loaded: list

    def lines(self):
        """The log lines listing both."""
        out = [f"[keras_resnet] --init_from={self.source}: {len(self.loaded)} layers loaded: "
               f"{', '.join(self.loaded)}."]
        if self.not_loaded:
            out.append(f"[keras_resnet] --init_from: not loaded (trained from their initialisation): "
                       f"{', '.join(self.not_loaded)}.")
        return out


def layer_group(name):
    """The group of a layer name: "stem", "stage<k>", or the name itself ("predictions", "image")."""
    return name.split("_", 1)[0]


def weighted_layers(model):
    """`{layer name: [numpy weights]}` of the layers of `model` that hold weights, in order."""
    return {layer.name: [keras.ops.convert_to_numpy(w) for w in layer.weights]
            for layer in model.layers if layer.weights}


def check_init_file(init_from):
    """Raises `ConfigError` when `--init_from` is neither a named set nor an existing .keras/.weights.h5 file."""
    if init_from is None or init_from in INIT_NAMED:
        return
    if not os.path.isfile(init_from):
        raise ConfigError(f"--init_from={init_from}: no such file; accepted: {ACCEPTED}.")
    if not init_from.endswith((".keras", ".weights.h5")):
        raise ConfigError(f"--init_from={init_from}: not a Keras 3 file; accepted: {ACCEPTED} (convert published "
                          "files first: python -m keras_resnet.weights convert --from=... --model=... --output=...).")
    problem = unreadable(init_from)
    if problem:
        raise ConfigError(f"--init_from={init_from}: {problem}; accepted: {ACCEPTED}.")


def unreadable(path):
    """Why the `.keras` / `.weights.h5` file at `path` cannot be read (truncated, garbage), or None; reads its
    index only (the archive's checksums, the HDF5 superblock), not the weights."""
    try:
        if path.endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                broken = archive.testzip()
                if broken is not None:
                    return f"a corrupted .keras archive (its member {broken} fails its checksum)"
                if "config.json" not in archive.namelist():
                    return "a zip archive without config.json, so not a .keras file"
            return None
        import h5py

        with h5py.File(path, "r"):
            return None
    except Exception as error:  # noqa: BLE001 - zipfile, h5py: any unreadable file, one line
        text = str(error).strip().splitlines()
        return f"not a readable {'.keras archive' if path.endswith('.keras') else 'HDF5 file'} " \
               f"({type(error).__name__}: {text[0] if text else ''})"


def check_freeze(groups, spec):
    """Raises `ConfigError` when `--freeze` names a group the network of `spec` (a `ModelSpec`) does not have;
    from the name alone, before any data is read (`freeze` checks the built model the same way)."""
    accepted = ["stem", *(f"stage{i}" for i in range(1, (3 if spec.family == "cifar" else 4) + 1))]
    unknown = [g for g in groups or () if g not in accepted]
    if unknown:
        raise ConfigError(f"--freeze: {spec.name} has no layer group {unknown[0]!r}; accepted: "
                          f"{', '.join(accepted)} (comma-separated).")


def source_weights(model, network):
    """`{layer name: [numpy weights]}` of what `--init_from` names, for `model`'s architecture (`network`: the
    run's `ModelPart`)."""
    init_from = network.init_from
    from keras_resnet.registry import build

    from keras_resnet.weights import named_set_entry

    kwargs = {"input_shape": tuple(model.input_shape[1:])}
    if network.shortcut is not None:
        kwargs["shortcut"] = network.shortcut
    if network.stride_in_3x3:
        kwargs["stride_in_3x3"] = True
    try:
        if init_from in INIT_NAMED:
            classes = named_set_entry(init_from, network.spec, network.stride_in_3x3).classes  # as published
            return weighted_layers(build(network.name, weights=init_from, classes=classes, **kwargs))
        if init_from.endswith(".keras"):
            import keras_resnet.recipes  # noqa: F401  (registers the schedules a checkpoint's optimizer names)

            return weighted_layers(keras.saving.load_model(init_from, compile=False, safe_mode=True))
        return weights_file_layers(init_from, network.name, build(network.name, **kwargs), kwargs)
    except ConfigError:
        raise
    except Exception as error:  # unreadable file, unavailable named set, a set for another network
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"--init_from={init_from}: cannot be used for {network.name}: {message}") from None


def snake_case(name):
    """A class name as the layer key Keras gives it in a `.weights.h5` file ("Conv2D" -> "conv2d")."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def file_keys(model):
    """`{layer name: key}` of `model`'s weighted layers in a `.weights.h5` it writes (`layers/<key>`):
    its layers in order, each named after its class and numbered per class ("conv2d", "conv2d_1", ...)."""
    counts, keys = {}, {}
    for layer in model.layers:
        base = snake_case(type(layer).__name__)
        n = counts.get(base, 0)
        counts[base] = n + 1
        if layer.weights:
            keys[layer.name] = base if n == 0 else f"{base}_{n}"
    return keys


def h5_shapes(path):
    """`{layer key: [shapes of vars/0, vars/1, ...]}` of a Keras 3 `.weights.h5` file."""
    import h5py

    table = {}
    with h5py.File(path, "r") as handle:
        for key, group in handle.get("layers", {}).items():
            variables = group.get("vars", {})
            if len(variables):
                table[key] = [tuple(variables[str(i)].shape) for i in range(len(variables))]
    return table


def weights_file_layers(path, model_name, candidate, kwargs):
    """The layers of a `.weights.h5` file written for `model_name` (any classifier width), by our layer names.

    The file is compared, layer by layer, with what the same network writes; the first layer that differs
    is named (`ConfigError`) and nothing is loaded.
    """
    from keras_resnet.registry import build

    found = h5_shapes(path)
    keys = file_keys(candidate)
    classifier = found.get(keys.get(CLASSIFIER, ""), [(0, 0)])
    if CLASSIFIER in keys and len(classifier[0]) == 2 and classifier[0][1] != candidate.output_shape[-1]:
        candidate = build(model_name, classes=int(classifier[0][1]), **kwargs)
    for name, key in keys.items():
        expected = [tuple(w.shape) for w in candidate.get_layer(name).weights]
        if found.get(key) != expected:
            what = f"shapes {found[key]}" if key in found else "no such layer"
            raise ConfigError(f"--init_from={path} holds another architecture than {model_name}: first mismatching "
                              f"layer {name!r} (expected shapes {expected}, found {what}).")
    extra = sorted(set(found) - set(keys.values()))
    if extra:
        raise ConfigError(f"--init_from={path} holds another architecture than {model_name}: it has "
                          f"{len(found)} weighted layers, {model_name} {len(keys)} (first extra: layers/{extra[0]}).")
    candidate.load_weights(path)
    return weighted_layers(candidate)


def match_layers(model, source, init_from):
    """Pairs `model`'s weighted layers with `source`'s by name and shapes; raises on the first misfit.

    Returns:
        `(loaded, not_loaded)` lists of layer names (only the classifier may be in `not_loaded`).
    """
    loaded, not_loaded = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        expected = [tuple(w.shape) for w in layer.weights]
        found = source.get(layer.name)
        if found is not None and [tuple(a.shape) for a in found] == expected:
            loaded.append(layer.name)
            continue
        if layer.name == CLASSIFIER:
            not_loaded.append(layer.name)
            continue
        what = "no such layer" if found is None else f"shapes {[tuple(a.shape) for a in found]}"
        raise ConfigError(f"--init_from={init_from} holds another architecture than {model.name}: first "
                          f"mismatching layer {layer.name!r} (expected shapes {expected}, found {what}).")
    extra = [name for name in source if name not in {layer.name for layer in model.layers} and name != CLASSIFIER]
    if extra:
        raise ConfigError(f"--init_from={init_from} holds another architecture than {model.name}: first "
                          f"mismatching layer {extra[0]!r} (in the file, not in {model.name}).")
    return loaded, not_loaded


def load_initial_weights(model, config):
    """Loads `--init_from` into `model` (built, not yet compiled) by layer name and shape.

    Args:
        model: the freshly built network of the run.
        config: the run's `ModelPart` (`init_from`, the model, `shortcut`), or its `TrainConfig`.

    Returns:
        An `InitReport`, or None without `--init_from`.

    Raises:
        ConfigError: naming `--init_from`: a missing or unreadable file, another architecture (the first
            mismatching layer), a named set that does not exist for this network.
    """
    network = model_part(config)
    if network.init_from is None:
        return None
    check_init_file(network.init_from)
    source = source_weights(model, network)
    loaded, not_loaded = match_layers(model, source, network.init_from)
    for name in loaded:
        model.get_layer(name).set_weights(source[name])
    return InitReport(network.init_from, loaded, not_loaded)


def groups_of(model):
    """The layer groups `--freeze` accepts for `model`, in order ("stem", "stage1", ...)."""
    groups = []
    for layer in model.layers:
        group = layer_group(layer.name)
        if layer.weights and group != CLASSIFIER and group not in groups:
            groups.append(group)
    return groups


def freeze(model, groups):
    """Sets `trainable = False` on every layer of `groups` (weights fixed, BN in inference mode).

    Returns:
        The names of the frozen layers that hold weights.

    Raises:
        ConfigError: a group `model` does not have (names `--freeze` and the accepted groups).
    """
    if not groups:
        return []
    accepted = groups_of(model)
    unknown = [g for g in groups if g not in accepted]
    if unknown:
        raise ConfigError(f"--freeze: {model.name} has no layer group {unknown[0]!r}; accepted: "
                          f"{', '.join(accepted)} (comma-separated).")
    frozen = []
    for layer in model.layers:
        if layer_group(layer.name) in groups:
            layer.trainable = False
            if layer.weights:
                frozen.append(layer.name)
    return frozen
