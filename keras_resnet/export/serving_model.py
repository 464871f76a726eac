"""The network an export serves: a float32 copy of the classifier that outputs logits, then graph transforms.

`prepare_serving_model(model)` checks that the model is an exportable classifier (a functional or
sequential model ending in the Dense layer "predictions" with softmax, sigmoid or no activation), clones
it layer by layer into float32 (whatever dtype policy it was trained under), rebuilds the classifier
without activation so the graph exposes logits, copies the weights, and then applies each transform of
`transforms` in order. A transform is a function `keras.Model -> keras.Model` that keeps the logits equal
up to float rounding (for example folding each BatchNormalization into the preceding convolution); its
name is recorded in `ServingModel.transforms`. `DEFAULT_TRANSFORMS` is what every export applies: today
`fold_batch_norm`, which merges each inference-mode BN into the convolution before it (exact up to float
rounding; He et al. 2015 put a BN after every convolution, so the served graph runs none; see
`keras_resnet.inference.fold`). Keras only; the TensorFlow graph is built by `keras_resnet.export.serving`.

Example:
    >>> import keras_resnet
    >>> prepared = prepare_serving_model(keras_resnet.build("resnet8"))
    >>> prepared.activation, prepared.model.get_layer("predictions").get_config()["activation"]
    ('softmax', 'linear')
"""

from __future__ import annotations

import dataclasses

import numpy as np

SUPPORTED_ACTIVATIONS = ("softmax", "linear", "sigmoid")
"""Classifier activations an export can turn back into probabilities from logits."""


def fold_batch_norm(model):
    """Every BN that follows a convolution folded into it (`keras_resnet.inference.fold_batch_norms`)."""
    from keras_resnet.inference import fold_batch_norms

    return fold_batch_norms(model)[0]


DEFAULT_TRANSFORMS = (fold_batch_norm,)
"""Graph transforms (`keras.Model -> keras.Model`) every export applies after the float32 copy."""


def count_batch_norms(model) -> int:
    """The number of BatchNormalization layers of `model` (the card records how many were folded)."""
    import keras

    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


@dataclasses.dataclass(frozen=True)
class ServingModel:
    """The prepared network.

    Attributes:
        model: float32 `keras.Model` from the input image (preprocessed) to logits.
        activation: the trained classifier's activation ("softmax", "linear" or "sigmoid").
        training_policy: the dtype policy name the source model was trained under (a sorted list of
            names when its layers differ, None when no layer has weights).
        transforms: names of the transforms applied after the float32 copy, in order.
    """

    model: object
    activation: str
    training_policy: object
    transforms: tuple = ()


def classifier_activation(model) -> str:
    """The activation name of the Dense layer "predictions"; a `ValueError` when not exportable."""
    import keras

    try:
        head = model.get_layer("predictions")
    except ValueError:
        raise ValueError(
            f"Model {model.name!r} has no classifier layer named 'predictions' (built with include_top=False?); "
            "only classifiers can be exported for serving."
        ) from None
    if not isinstance(head, keras.layers.Dense):
        raise ValueError(f"Layer 'predictions' of {model.name!r} must be a Dense layer; received {type(head).__name__}.")
    activation = keras.activations.serialize(head.activation)
    activation = activation if isinstance(activation, str) else getattr(head.activation, "__name__", "custom")
    if activation not in SUPPORTED_ACTIVATIONS:
        raise ValueError(
            f"Classifier activation {activation!r} of {model.name!r} is not supported for export; "
            "use 'softmax' (default), 'sigmoid' or None."
        )
    return activation


def training_policy(model):
    """The dtype policy of the model's weighted layers other than the classifier (see `ServingModel`)."""
    policies = sorted({layer.dtype_policy.name for layer in model.layers
                       if layer.weights and getattr(layer, "dtype_policy", None) is not None
                       and layer.name != "predictions"})
    return policies[0] if len(policies) == 1 else (policies or None)


def float32_clone(model, inputs, edit_config=None):
    """A float32 copy of the functional `model` on `inputs`, layer by layer, with `model`'s weights.

    The copy draws no random initial values (`keras_resnet.compat.deferred_initial_values`): each variable's
    first value is its source's.

    Args:
        model: a functional or sequential `keras.Model`.
        inputs: the `keras.Input` of the copy.
        edit_config: optional `edit_config(layer, config)` changing a layer's config (in place) before it is
            rebuilt.

    Raises:
        ValueError: the model cannot be cloned layer by layer (a subclassed model).
    """
    import keras

    from keras_resnet import compat

    def clone_layer(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        if edit_config is not None:
            edit_config(layer, config)
        return layer.__class__.from_config(config)

    try:
        with compat.deferred_initial_values():
            clone = keras.models.clone_model(model, input_tensors=inputs, clone_function=clone_layer)
    except Exception as error:  # subclassed models cannot be cloned layer by layer
        raise ValueError(
            f"Model {model.name!r} cannot be rebuilt layer by layer for a float32 export "
            f"({type(error).__name__}: {error}); export a functional or sequential model."
        ) from error
    source = {layer.name: layer for layer in model.layers}
    with compat.giving_values(clone.variables):
        for layer in clone.layers:
            weights = source[layer.name].get_weights()
            if weights:
                compat.set_weights(layer, [np.asarray(w, dtype=np.float32) for w in weights])
    return clone


def float32_logits_clone(model):
    """A float32 copy of `model`, layer by layer, with the classifier's activation removed; weights copied.

    Raises:
        ValueError: the model cannot be cloned layer by layer (a subclassed model).
    """
    import keras

    def logits(layer, config):
        if layer.name == "predictions":
            config["activation"] = "linear"

    inputs = keras.Input(shape=tuple(model.input_shape[1:]), dtype="float32", name=model.inputs[0].name)
    return float32_clone(model, inputs, logits)


def layer_sources(model) -> dict:
    """`{layer name: [names of the layers feeding it]}` from the model's public functional config."""
    from keras_resnet.inference.fold import history_refs

    return {layer["name"]: [ref[0] for ref in history_refs(layer["inbound_nodes"])]
            for layer in model.get_config()["layers"]}


def reverse_input_channels(model):
    """`model` taking its input channels in reverse order (RGB instead of BGR), in place; returns it.

    Every convolution that reads the input (directly or through zero padding, which commutes with a channel
    permutation) gets its kernel reversed along the input-channel axis: `conv(reverse(x), W) ==
    conv(x, reverse(W))` exactly. Used by the ONNX export of BGR (Caffe) weights, whose graph takes RGB pixels.

    Raises:
        ValueError: a layer other than zero padding or a convolution reads the input.
    """
    import keras

    sources = layer_sources(model)
    reads_input = {model.layers[0].name}
    for layer in model.layers[1:]:
        if not reads_input.intersection(sources.get(layer.name, [])):
            continue
        if isinstance(layer, keras.layers.ZeroPadding2D):
            reads_input.add(layer.name)
        elif isinstance(layer, keras.layers.Conv2D):
            layer.kernel.assign(np.ascontiguousarray(keras.ops.convert_to_numpy(layer.kernel)[:, :, ::-1, :]))
        else:
            raise ValueError(f"Cannot reverse the input channels of {model.name!r}: layer {layer.name!r} "
                             f"({type(layer).__name__}) reads the input; only Conv2D and ZeroPadding2D can.")
    return model


def prepare_serving_model(model, transforms=DEFAULT_TRANSFORMS) -> ServingModel:
    """The float32 logits network of `model`, with `transforms` applied in order.

    Args:
        model: a functional `keras.Model` ending in the Dense layer "predictions".
        transforms: sequence of functions `keras.Model -> keras.Model` that keep the logits (up to float
            rounding); each one's `__name__` is recorded.

    Returns:
        `ServingModel`.

    Raises:
        ValueError: the model is not an exportable classifier.
    """
    activation = classifier_activation(model)
    policy = training_policy(model)
    network = float32_logits_clone(model)
    for transform in transforms:
        network = transform(network)
    names = tuple(getattr(t, "__name__", type(t).__name__) for t in transforms)
    return ServingModel(model=network, activation=activation, training_policy=policy, transforms=names)
