"""Batch-normalisation folding: each inference-mode BN merged into the convolution in front of it.

At inference a BN layer is an affine map per channel, `y = gamma * (x - mean) / sqrt(var + eps) + beta`.
When its input is a convolution that feeds nothing else, the map folds exactly (up to float rounding)
into that convolution: the kernel's output channels are scaled by `s = gamma / sqrt(var + eps)` and a
bias `beta - s * mean` is added (plus `s * b` of the convolution's own bias, if it had one). The network of
He et al. (2015) puts a BN after every convolution (section 3.4), so a folded ResNet runs no BN at all;
the option-A shortcut stays parameter-free. This is what the serving graphs (SavedModel and ONNX) run.

The rewrite works on the public functional-model config (`get_config` / `from_config`): the BN layers
are dropped, every reference to a BN's output is pointed at its convolution, and the convolutions get
`use_bias=True` with the folded weights. It uses only `keras.layers` / `keras.ops`, so it runs on every
backend.

Example:
    >>> import keras_resnet
    >>> from keras_resnet.inference import fold_batch_norms
    >>> folded, pairs = fold_batch_norms(keras_resnet.ResNet20())
    >>> len(pairs), len(folded.layers) < len(keras_resnet.ResNet20().layers)
    (19, True)
"""

import copy

import keras
import numpy as np

from keras_resnet import compat


def history_refs(node, found=None):
    """Every `keras_history` list (`[layer name, node index, tensor index]`) inside a (nested) inbound-node
    structure of a functional config, in call order; the lists themselves, so they can be rewired."""
    found = [] if found is None else found
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__" and "keras_history" in node.get("config", {}):
            found.append(node["config"]["keras_history"])
            return found
        for value in node.values():
            history_refs(value, found)
    elif isinstance(node, (list, tuple)):
        for value in node:
            history_refs(value, found)
    return found


def _consumers(config):
    """{layer name: number of references to its outputs} over the whole functional config."""
    counts = {}
    for layer in config["layers"]:
        for ref in history_refs(layer["inbound_nodes"], []):
            counts[ref[0]] = counts.get(ref[0], 0) + 1
    for ref in _output_refs(config):
        counts[ref[0]] = counts.get(ref[0], 0) + 1
    return counts


def _output_refs(config):
    """The `[layer, node, tensor]` references of a functional config's outputs (one, a list, or a dict of
    them, as `keras_resnet.features` models have)."""
    outputs = config["output_layers"]
    if isinstance(outputs, dict):
        return list(outputs.values())
    return [outputs] if outputs and isinstance(outputs[0], str) else list(outputs)


def foldable_pairs(model):
    """The (convolution, BN) layer-name pairs of `model` that fold exactly.

    A pair qualifies when the BN's single input is a `Conv2D` (any kernel size or stride) whose output
    feeds nothing but that BN, and the BN normalises the last (channel) axis.

    Args:
        model: a functional Keras model.

    Returns:
        list of `(conv_name, bn_name)` in the model's layer order.
    """
    config = model.get_config()
    counts = _consumers(config)
    pairs = []
    for layer_config in config["layers"]:
        layer = model.get_layer(layer_config["name"])
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        refs = history_refs(layer_config["inbound_nodes"], [])
        if len(refs) != 1 or len(layer_config["inbound_nodes"]) != 1:
            continue
        source = model.get_layer(refs[0][0])
        axis = layer.axis if isinstance(layer.axis, int) else tuple(layer.axis)
        if (isinstance(source, keras.layers.Conv2D) and counts.get(source.name) == 1
                and axis in (-1, 3, (3,), (-1,)) and source.data_format == "channels_last"):
            pairs.append((source.name, layer.name))
    return pairs


def folded_weights(conv, bn):
    """The `(kernel, bias)` of `conv` with `bn` (inference mode) folded into it, in float64 then float32.

    Args:
        conv: a built `keras.layers.Conv2D`.
        bn: the `keras.layers.BatchNormalization` that follows it.

    Returns:
        `(kernel, bias)` numpy float32 arrays shaped like a biased `conv`'s weights.
    """
    kernel = np.asarray(keras.ops.convert_to_numpy(conv.kernel), np.float64)
    bias = np.asarray(keras.ops.convert_to_numpy(conv.bias), np.float64) if conv.use_bias else 0.0
    channels = kernel.shape[-1]
    gamma = np.asarray(keras.ops.convert_to_numpy(bn.gamma), np.float64) if bn.scale else np.ones(channels)
    beta = np.asarray(keras.ops.convert_to_numpy(bn.beta), np.float64) if bn.center else np.zeros(channels)
    mean = np.asarray(keras.ops.convert_to_numpy(bn.moving_mean), np.float64)
    variance = np.asarray(keras.ops.convert_to_numpy(bn.moving_variance), np.float64)
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return (kernel * scale).astype(np.float32), (beta + scale * (bias - mean)).astype(np.float32)


def _rewire(node, renamed):
    """Points every `keras_history` that names a dropped BN at its convolution (in place)."""
    for ref in history_refs(node, []):
        if ref[0] in renamed:
            ref[0] = renamed[ref[0]]


def fold_batch_norms(model):
    """A copy of `model` in which every foldable BN is merged into its convolution.

    Args:
        model: a functional Keras model (e.g. any `keras_resnet` network), float32 weights recommended
            (the export folds its float32 serving clone).

    Returns:
        `(folded_model, pairs)`: a new functional model computing the same inference-mode function with
        no BN layer after a convolution, and the list of folded `(conv_name, bn_name)` pairs.

    Raises:
        ValueError: `model` is not a functional model (names the model and its class).
    """
    try:
        config = copy.deepcopy(model.get_config())
        layers_config = config["layers"]
    except (NotImplementedError, KeyError, TypeError) as error:
        raise ValueError(f"fold_batch_norms: model {getattr(model, 'name', model)!r} "
                         f"({type(model).__name__}) is not a functional model; received {error!r}.") from None
    pairs = foldable_pairs(model)
    renamed = {bn: conv for conv, bn in pairs}
    conv_names = set(renamed.values())
    kept = []
    for layer_config in layers_config:
        if layer_config["name"] in renamed:
            continue
        if layer_config["name"] in conv_names:
            layer_config["config"].update(use_bias=True, bias_initializer={"module": "keras.initializers",
                                          "class_name": "Zeros", "config": {}, "registered_name": None},
                                          kernel_regularizer=None, bias_regularizer=None)
        _rewire(layer_config["inbound_nodes"], renamed)
        kept.append(layer_config)
    config["layers"] = kept
    for ref in _output_refs(config):
        ref[0] = renamed.get(ref[0], ref[0])
    with compat.deferred_initial_values():  # no random draws: every value is the source's
        folded = model.__class__.from_config(config)
    bn_of = {conv: bn for conv, bn in pairs}
    with compat.giving_values(folded.variables):
        for layer in folded.layers:
            source = model.get_layer(layer.name)
            if layer.name in bn_of:
                compat.set_weights(layer, list(folded_weights(source, model.get_layer(bn_of[layer.name]))))
            elif source.weights:
                compat.set_weights(layer, source.get_weights())
    return folded, pairs
