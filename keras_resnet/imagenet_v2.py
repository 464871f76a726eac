"""The ImageNet pre-activation ResNets as keras.applications builds them: `ResNet50V2`, `ResNet101V2`,
`ResNet152V2`, so that their published weights load (He et al. 2016b, "Identity Mappings in Deep Residual
Networks", in TF-slim's layout, which keras.applications took over).

Where this layout departs from the ECCV paper's pre-activation ResNet (and why it is kept): its published
weights were trained in it, and a network that loads them must compute what they were trained for.

- The stride sits on the 3x3 convolution of the *last* unit of stages 1-3 (keras' conv2-conv4), not on the
  first unit of stages 2-4: the identity shortcut of that unit is a `MaxPooling2D(1, strides=2)` (every other
  pixel), and the first unit of each stage projects (1x1 convolution on the pre-activated input) at stride 1.
- The stem's 7x7 convolution, every unit's last 1x1 convolution and every projection carry a bias (the
  paper's convolutions have none: a BN follows them); the stem has no BN or ReLU (the first unit's
  pre-activation normalises it), then the 3x3 / 2 max pooling.
- BN epsilon 1.001e-5 and momentum 0.99 (keras.applications'), inputs scaled to [-1, 1] (`x / 127.5 - 1`).

Layer names are keras.applications' within this package's prefixes (`conv3_block2_1_conv` is
`stage2_block2_1_conv`; `conv1_conv` is `stem_conv`; `post_bn`, `post_relu`, `avg_pool`, `predictions`).
"""

from __future__ import annotations

import keras
from keras import layers

from keras_resnet import compat
from keras_resnet.blocks import conv
from keras_resnet.common import check_arguments, classifier_head, model_input
from keras_resnet.imagenet import IMAGENET_FILTERS, IMAGENET_INPUT_SHAPE, IMAGENET_MIN_SIZE, IMAGENET_SPECS
from keras_resnet.preactivation import NO_ZERO_INIT, bn_relu
from keras_resnet.weights.api import check_weights, load_weights

V2_DEPTHS = (50, 101, 152)
V2_BN_EPSILON, V2_BN_MOMENTUM = 1.001e-5, 0.99


def v2_bn_relu(x, name):
    """BN (keras.applications' epsilon and momentum, `{name}_bn`) and ReLU (`{name}_relu`)."""
    return bn_relu(x, name, epsilon=V2_BN_EPSILON, momentum=V2_BN_MOMENTUM)


def v2_unit(x, width, strides, project, name, kernel_regularizer=None):
    """One pre-activation bottleneck unit in keras.applications' layout (`residual_block_v2`)."""
    pre = v2_bn_relu(x, f"{name}_preact")
    if project:
        short = conv(pre, 4 * width, 1, strides, f"{name}_0", kernel_regularizer, use_bias=True)
    elif strides > 1:
        short = layers.MaxPooling2D(1, strides=strides, name=f"{name}_shortcut")(x)
    else:
        short = x
    y = conv(pre, width, 1, 1, f"{name}_1", kernel_regularizer)
    y = v2_bn_relu(y, f"{name}_1")
    y = conv(y, width, 3, strides, f"{name}_2", kernel_regularizer)
    y = v2_bn_relu(y, f"{name}_2")
    y = conv(y, 4 * width, 1, 1, f"{name}_3", kernel_regularizer, use_bias=True)
    return layers.Add(name=f"{name}_out")([short, y])


def imagenet_resnet_v2(depth, include_top=True, input_shape=None, pooling=None, classes=1000,
                       classifier_activation="softmax", zero_init_residual=False, kernel_regularizer=None, name=None,
                       weights=None, input_tensor=None):
    """Builds keras.applications' `ResNet50V2` / `ResNet101V2` / `ResNet152V2` (see the module docstring).

    Reference: He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016; the layout of
    keras.applications' `resnet_v2` (TF-slim's).

    Args:
        depth: int, 50, 101 or 152 (blocks per stage as Table 1 of the first paper).
        include_top, input_shape, pooling, classes, classifier_activation, kernel_regularizer, name,
            input_tensor: as for `keras_resnet.imagenet_resnet`.
        zero_init_residual: `False` only (a pre-activation unit ends with a convolution, not a BN).
        weights: `None`, "imagenet" (keras.applications' published V2 file, converted on first use: inputs
            in [-1, 1], see `keras_resnet.preprocess_input(x, "imagenet", model="resnet50v2")`; with
            `include_top=True` only for `classes=1000`), or the path of a weights file (`.weights.h5`,
            `.keras`, or keras.applications' Keras-2 `resnet50v2_weights_tf_dim_ordering_tf_kernels.h5`).

    Returns:
        A `keras.Model`, named `resnet<depth>v2` unless `name` says otherwise.

    Example:
        >>> import numpy as np
        >>> model = imagenet_resnet_v2(50)
        >>> model.name, sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        ('resnet50v2', 25568360)
    """
    if isinstance(depth, bool) or depth not in V2_DEPTHS:
        raise ValueError(f"`depth` of an ImageNet V2 ResNet must be one of {list(V2_DEPTHS)}; received {depth!r}.")
    if zero_init_residual:
        raise ValueError(NO_ZERO_INIT)
    shape = check_arguments(family="ImageNet", shortcut="B", zero_init_residual=False, include_top=include_top,
                            input_shape=input_shape, default_input_shape=IMAGENET_INPUT_SHAPE,
                            min_size=IMAGENET_MIN_SIZE, pooling=pooling, classes=classes,
                            classifier_activation=classifier_activation, input_tensor=input_tensor)
    request = check_weights(weights, family="imagenet", depth=depth, shortcut="B", include_top=include_top,
                            classes=classes, stride_in_3x3=False, channels=shape[-1], variant="v2")
    with compat.deferred_initial_values():  # values after the build: load_weights
        inputs, x = model_input(input_tensor, shape)
        x = conv(x, 64, 7, 2, "stem", kernel_regularizer, use_bias=True)
        x = layers.ZeroPadding2D(padding=1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
        _, blocks_per_stage = IMAGENET_SPECS[depth]
        for stage, (width, blocks) in enumerate(zip(IMAGENET_FILTERS, blocks_per_stage), start=1):
            for index in range(1, blocks + 1):
                strides = 2 if index == blocks and stage < len(blocks_per_stage) else 1
                x = v2_unit(x, width, strides, index == 1, f"stage{stage}_block{index}", kernel_regularizer)
        x = v2_bn_relu(x, "post")
        outputs = classifier_head(x, include_top, pooling, classes, classifier_activation, kernel_regularizer)
        model = keras.Model(inputs, outputs, name=name or f"resnet{depth}v2")

    def full_network(classes):
        return imagenet_resnet_v2(depth, input_shape=(None, None, shape[-1]), classes=classes)

    return load_weights(model, request, full_network)
