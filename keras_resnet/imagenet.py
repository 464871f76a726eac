"""The ImageNet family of He et al. (2015), section 3.4 and Table 1: ResNet-18/34/50/101/152.

Stem: 7x7 convolution, 64 filters, stride 2 (padded 3 on every side) and 3x3 max pooling, stride 2 (padded
1); four stages on 56, 28, 14 and 7 maps with 64, 128, 256 and 512 base filters, the first block of stages
2-4 downsampling with stride 2; global average pooling and a 1000-way classifier. Depth is data: the
`IMAGENET_SPECS` table maps each depth to its block type and blocks per stage.
"""

from __future__ import annotations

import functools

from keras_resnet import compat
from keras_resnet.blocks import basic_block, bottleneck_block
from keras_resnet.common import check_arguments, finish, model_input, residual_stages, stem
from keras_resnet.weights.api import check_weights, load_weights

IMAGENET_SPECS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
"""Depth -> (block type, blocks per stage), Table 1 of the paper."""

IMAGENET_FILTERS = (64, 128, 256, 512)
IMAGENET_INPUT_SHAPE = (224, 224, 3)
IMAGENET_MIN_SIZE = 32
"""Five stride-2 steps (stem convolution, stem pooling, stages 2-4): height and width must be at least 32."""


def imagenet_resnet(
    depth,
    shortcut="B",
    include_top=True,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    zero_init_residual=False,
    kernel_regularizer=None,
    stride_in_3x3=False,
    name=None,
    weights=None,
    input_tensor=None,
):
    """Builds an ImageNet ResNet (or its plain counterpart) of depth 18, 34, 50, 101 or 152.

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1.

    Args:
        depth: int, one of 18, 34, 50, 101, 152 (the keys of `IMAGENET_SPECS`).
        shortcut: "B" (projections where the dimensions grow; the paper's choice for 50/101/152), "A"
            (zero-padded identity), "C" (projections everywhere), or `None` for the plain network.
        include_top: bool, whether to end with global average pooling and the classifier.
        input_shape: optional `(height, width, channels)`; `(224, 224, 3)` by default. Height and width may
            be `None`.
        pooling: None, "avg" or "max": global pooling of the features when `include_top=False`.
        classes: int, number of classes of the classifier.
        classifier_activation: activation of the classifier (`None` gives logits).
        zero_init_residual: bool, start the last BN scale of every residual branch at zero.
        kernel_regularizer: optional Keras regulariser for every convolution and dense kernel.
        stride_in_3x3: bool, put a bottleneck block's stride on its 3x3 convolution (torchvision's "v1.5")
            instead of the first 1x1 (the paper's Caffe models, the default). Basic blocks ignore it.
        name: optional model name; `resnet<depth>` or `plain<depth>` by default.
        weights: `None` (random initialisation), "imagenet" (option B only; keras.applications' Caffe-converted
            ResNet50/101/152 for `stride_in_3x3=False`, torchvision's ResNet-18/34 and, with
            `stride_in_3x3=True`, ResNet-50/101/152; with `include_top=True` only for `classes=1000`), or the
            path of a weights file (`.weights.h5`, `.keras`, torchvision `.pth`, keras.applications `.h5`).
            Inputs must then be normalised as the weights expect: see `keras_resnet.preprocess_input`.
        input_tensor: optional Keras tensor to build on (e.g. the output of preprocessing layers); the
            model's inputs are then the inputs it comes from.

    Returns:
        A `keras.Model`.

    Example:
        >>> import numpy as np
        >>> model = imagenet_resnet(50)
        >>> sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        25557032
    """
    if isinstance(depth, bool) or depth not in IMAGENET_SPECS:
        raise ValueError(
            f"`depth` for an ImageNet ResNet must be one of {sorted(IMAGENET_SPECS)}; received {depth!r}."
        )
    shape = check_arguments(
        family="ImageNet",
        shortcut=shortcut,
        zero_init_residual=zero_init_residual,
        include_top=include_top,
        input_shape=input_shape,
        default_input_shape=IMAGENET_INPUT_SHAPE,
        min_size=IMAGENET_MIN_SIZE,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        input_tensor=input_tensor,
    )
    if not isinstance(stride_in_3x3, bool):
        raise ValueError(f"`stride_in_3x3` must be True or False; received {stride_in_3x3!r}.")
    request = check_weights(weights, family="imagenet", depth=depth, shortcut=shortcut, include_top=include_top,
                            classes=classes, stride_in_3x3=stride_in_3x3, channels=shape[-1])
    block_type, blocks_per_stage = IMAGENET_SPECS[depth]

    with compat.deferred_initial_values():  # values after the build: load_weights
        inputs, x = model_input(input_tensor, shape)
        x = stem(x, 64, 7, 2, kernel_regularizer, max_pool=True)
        block = (basic_block if block_type == "basic"
                 else functools.partial(bottleneck_block, stride_in_3x3=stride_in_3x3))
        x = residual_stages(x, list(zip(IMAGENET_FILTERS, blocks_per_stage)), block, shortcut=shortcut,
                            kernel_regularizer=kernel_regularizer, zero_init_residual=zero_init_residual)
        model = finish(inputs, x, depth=depth, shortcut=shortcut, name=name, include_top=include_top,
                       pooling=pooling, classes=classes, classifier_activation=classifier_activation,
                       kernel_regularizer=kernel_regularizer)

    def full_network(classes):
        return imagenet_resnet(depth, shortcut=shortcut, input_shape=(None, None, shape[-1]), classes=classes,
                               stride_in_3x3=stride_in_3x3)

    return load_weights(model, request, full_network)
