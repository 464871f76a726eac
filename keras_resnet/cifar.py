"""The CIFAR-10 family of He et al. (2015), section 4.2 and Table 6: depth 6n+2.

A 3x3 convolution with 16 filters, then three stages of `n` basic blocks (2n layers each) with 16, 32 and
64 filters on 32x32, 16x16 and 8x8 maps (the first block of stages 2 and 3 has stride 2), global average
pooling and a 10-way classifier. Option A (parameter-free) shortcuts by default, as in the paper.
"""

from __future__ import annotations

import sys

from keras_resnet import compat
from keras_resnet.blocks import basic_block
from keras_resnet.common import check_arguments, finish, model_input, residual_stages, stem
from keras_resnet.weights.api import check_weights, load_weights

CIFAR_FILTERS = (16, 32, 64)
CIFAR_INPUT_SHAPE = (32, 32, 3)
CIFAR_MIN_SIZE = 4
"""Two stride-2 stages: height and width must be at least 4."""


def cifar_blocks_per_stage(depth):
    """Returns n, the number of basic blocks per stage, for a CIFAR depth 6n+2.

    Args:
        depth: int, 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, 1202, ...).

    Raises:
        ValueError: if `depth` is not of the form 6n+2 with n >= 1.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"`depth` for a CIFAR ResNet must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, 1202, ...); "
            f"received {depth!r}."
        )
    return (depth - 2) // 6


def cifar_resnet(
    depth,
    shortcut="A",
    include_top=True,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    zero_init_residual=False,
    kernel_regularizer=None,
    name=None,
    weights=None,
    input_tensor=None,
):
    """Builds a CIFAR ResNet (or its plain counterpart) of depth 6n+2.

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2.

    Args:
        depth: int, 6n+2 with n >= 1 (20, 32, 44, 56, 110 and 1202 in the paper; 8 for quick tests).
        shortcut: "A" (identity with zero-padded channels, the paper's CIFAR choice), "B" (projections where
            the dimensions grow), "C" (projections everywhere), or `None` for the plain network.
        include_top: bool, whether to end with global average pooling and the classifier.
        input_shape: optional `(height, width, channels)`; `(32, 32, 3)` by default. Height and width may
            be `None`.
        pooling: None, "avg" or "max": global pooling of the features when `include_top=False`.
        classes: int, number of classes of the classifier.
        classifier_activation: activation of the classifier (`None` gives logits).
        zero_init_residual: bool, start the last BN scale of every residual branch at zero, so every block
            is an identity (its shortcut) at initialisation.
        kernel_regularizer: optional Keras regulariser for every convolution and dense kernel (the paper's
            weight decay as L2).
        name: optional model name; `resnet<depth>` or `plain<depth>` by default.
        weights: `None` (random initialisation), "cifar10" (akamaster's published CIFAR-10 models, for
            ResNet-20/32/44/56/110/1202 with option A; with `include_top=True` only for `classes=10`), or the
            path of a weights file (`.weights.h5`, `.keras`, akamaster `.th`, torchvision `.pth`, ...). Inputs
            must then be normalised as the weights expect: see `keras_resnet.preprocess_input`.
        input_tensor: optional Keras tensor to build on (e.g. the output of preprocessing layers); the
            model's inputs are then the inputs it comes from.

    Returns:
        A `keras.Model`.

    Example:
        >>> import numpy as np
        >>> model = cifar_resnet(20)
        >>> model.name, sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        ('resnet20', 269722)
    """
    n = cifar_blocks_per_stage(depth)
    shape = check_arguments(
        family="CIFAR",
        shortcut=shortcut,
        zero_init_residual=zero_init_residual,
        include_top=include_top,
        input_shape=input_shape,
        default_input_shape=CIFAR_INPUT_SHAPE,
        min_size=CIFAR_MIN_SIZE,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        input_tensor=input_tensor,
    )
    request = check_weights(weights, family="cifar", depth=depth, shortcut=shortcut, include_top=include_top,
                            classes=classes, stride_in_3x3=False, channels=shape[-1])
    # Keras walks the functional graph recursively (several frames per layer); ResNet-1202's 4,000+ layers
    # overflow Python's default limit, which TensorFlow's import lowers to 3,000.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 16 * depth + 3000))
    with compat.deferred_initial_values():  # values after the build: load_weights
        inputs, x = model_input(input_tensor, shape)
        x = stem(x, CIFAR_FILTERS[0], 3, 1, kernel_regularizer)
        x = residual_stages(x, [(filters, n) for filters in CIFAR_FILTERS], basic_block, shortcut=shortcut,
                            kernel_regularizer=kernel_regularizer, zero_init_residual=zero_init_residual)
        model = finish(inputs, x, depth=depth, shortcut=shortcut, name=name, include_top=include_top,
                       pooling=pooling, classes=classes, classifier_activation=classifier_activation,
                       kernel_regularizer=kernel_regularizer)

    def full_network(classes):
        return cifar_resnet(depth, shortcut=shortcut, input_shape=(None, None, shape[-1]), classes=classes)

    return load_weights(model, request, full_network)
