"""Multi-scale features: any network of the package as a backbone whose outputs are its feature pyramid.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016: the paper's
detection and localisation results (sections 4.3 and appendices A-C) take the ResNet's stage outputs as
features (conv4_x for Faster R-CNN's RoI pooling, conv5_x for the classifier); Lin et al., "Feature Pyramid
Networks for Object Detection", CVPR 2017 name the outputs of the stages at strides 4, 8, 16 and 32 C2..C5,
and keras-hub's backbones call them `pyramid_outputs` "P2".."P5".

`features(model)` returns a Keras model over the same layers (the same weights: training it trains them)
whose output is a dict, key `"P<k>"` for the last tensor at stride `2**k`:

- ImageNet networks (ResNet-18..152, plain-18/34, ResNet50V2..152V2): "P2".."P5", strides 4 to 32;
- CIFAR networks (ResNet-20..1202, plain nets, pre-activation ResNet-110/164/1001): their three stages,
  "P0", "P1", "P2" (strides 1, 2 and 4 of the 32x32 input: 32x32, 16x16 and 8x8 maps).

Each value is the output of the last residual block at that stride (after its ReLU). Pre-activation
networks (He et al. 2016b) add a unit's output to its input without an activation, so their features are
taken after the BN-ReLU that the network itself applies to that tensor next: the pre-activation of the
following unit, or the final `post_bn` / `post_relu` for the last stage (its trained parameters, no new
layer). A network's include_top, pooling and classifier are not part of the feature model.

Example:
    >>> import keras_resnet
    >>> backbone = keras_resnet.features(keras_resnet.ResNet20())
    >>> {key: tuple(tensor.shape) for key, tensor in backbone.output.items()}
    {'P0': (None, 32, 32, 16), 'P1': (None, 16, 16, 32), 'P2': (None, 8, 8, 64)}
    >>> pyramid_levels(keras_resnet.ResNet50(weights=None))
    {'P2': 'stage1_block3_out', 'P3': 'stage2_block4_out', 'P4': 'stage3_block6_out', 'P5': 'stage4_block3_out'}
"""

from __future__ import annotations

import math
import re

import keras

BLOCK_OUTPUT = re.compile(r"^stage\d+_block\d+_out$")
PREACTIVATION = re.compile(r"^stage\d+_block\d+_preact_relu$")
FINAL_PREACTIVATION = "post_relu"
PROBE_SIZE = 224
"""Height and width of the symbolic probe that measures strides when the model's input size is not fixed."""


def _candidates(model):
    """Names of the layers whose outputs may be features, in the model's (topological) order."""
    names = [layer.name for layer in model.layers]
    if FINAL_PREACTIVATION in names:  # a pre-activation network: the BN-ReLU'd tensors
        return [name for name in names if PREACTIVATION.match(name) or name == FINAL_PREACTIVATION]
    return [name for name in names if BLOCK_OUTPUT.match(name)]


def _probe_shape(model):
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ValueError(f"`model` {model.name!r} must take one image input (batch, height, width, channels); "
                         f"received inputs {[tuple(t.shape) for t in model.inputs]}.")
    _, height, width, channels = model.inputs[0].shape
    return (1, height or PROBE_SIZE, width or PROBE_SIZE, channels)


def pyramid_levels(model):
    """`{"P<k>": layer name}` of a network's features, in increasing stride (see the module docstring).

    Args:
        model: a network built by this package (any family, with or without its classifier).

    Returns:
        dict, keys "P<k>" for the stride `2**k` of the layer's output relative to the model's input.

    Raises:
        ValueError: naming `model`, when it has none of the package's block layers (`stage<i>_block<j>_out`)
            or more than one input.
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"`model` must be a keras.Model built by keras_resnet; received a {type(model).__name__}.")
    candidates = _candidates(model)
    if not candidates:
        raise ValueError(f"`model` {model.name!r} has no layers named stage<i>_block<j>_out (nor the pre-activation "
                         "`..._preact_relu` / `post_relu`), so it is not a network of keras_resnet: build it with "
                         "keras_resnet (e.g. keras_resnet.ResNet50()) or keras_resnet.build(name).")
    shape = _probe_shape(model)
    probe = keras.Model(model.inputs, [model.get_layer(name).output for name in candidates])
    outputs = probe.compute_output_spec(keras.KerasTensor(shape, dtype=model.inputs[0].dtype))
    levels = {}
    for name, output in zip(candidates, outputs):
        level = round(math.log2(shape[1] / output.shape[1]))
        levels[f"P{level}"] = name  # the last tensor at each stride wins
    return dict(sorted(levels.items(), key=lambda item: int(item[0][1:])))


def features(model, name=None):
    """The feature pyramid of a network: a Keras model with the same input and a dict of feature maps.

    Args:
        model: a network of this package (e.g. `keras_resnet.ResNet50(weights="imagenet")`, with or
            without its classifier), pretrained or not.
        name: the feature model's name; `"<model.name>_features"` by default.

    Returns:
        A `keras.Model` sharing `model`'s layers and weights, whose output is `{"P<k>": tensor}` for the
        strides `2**k` listed by `pyramid_levels` (channels last, the model's compute dtype).

    Raises:
        ValueError: naming `model` (see `pyramid_levels`).

    Example:
        >>> import numpy as np, keras_resnet
        >>> backbone = keras_resnet.features(keras_resnet.ResNet18(input_shape=(64, 64, 3)))
        >>> maps = backbone.predict(np.zeros((1, 64, 64, 3), "float32"), verbose=0)
        >>> {key: value.shape for key, value in maps.items()}
        {'P2': (1, 16, 16, 64), 'P3': (1, 8, 8, 128), 'P4': (1, 4, 4, 256), 'P5': (1, 2, 2, 512)}
    """
    levels = pyramid_levels(model)
    outputs = {key: model.get_layer(layer).output for key, layer in levels.items()}
    return keras.Model(model.inputs[0], outputs, name=name or f"{model.name}_features")
