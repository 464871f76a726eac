"""Pre-activation residual units and the CIFAR networks of He et al. (2016b), "Identity Mappings in Deep
Residual Networks" (ECCV 2016), the residual paper's sequel.

The unit moves BN and ReLU *before* each convolution (the paper's Fig. 1b / 4e, "full pre-activation"):
`x_{l+1} = x_l + F(BN-ReLU(x_l))`, with nothing after the addition, so the identity path runs clean from the
input of the first unit to the output of the last. On CIFAR-10 this lets depth 1001 train (4.62% error,
against 7.93% for the original form's ResNet-1202 in the first paper).

The networks follow the paper and its authors' code (KaimingHe/resnet-1k-layers): a 3x3 convolution with
16 filters and nothing after it (the first unit's pre-activation normalises it); three stages of units on
32x32, 16x16 and 8x8 maps, the first unit of stages 2 and 3 with stride 2; a final BN-ReLU (`post_bn`,
`post_relu`), global average pooling and the classifier.

- Basic units (two 3x3 convolutions; depth 6n+2, ResNet-110: n = 18) keep the first paper's CIFAR shortcut,
  option A (identity, zero-padded channels where the width grows) by default, as the sequel says it follows
  the first paper's CIFAR set-up; "B" / "C" use 1x1 projections (on the pre-activated input).
- Bottleneck units (1x1 of width w, 3x3 of width w, 1x1 to 4w; depth 9n+2: ResNet-164, n = 18, and
  ResNet-1001, n = 111) with widths 16, 32, 64 and outputs 64, 128, 256 use, as the paper's appendix says,
  a 1x1 projection "with pre-activation" where the dimensions change (the first unit of every stage): the
  unit's BN-ReLU is shared by both branches there. The stride sits on the first 1x1, as in the authors' code.

Layer names follow keras.applications' V2 networks within this package's block prefix (`stage2_block1_preact_bn`,
`..._1_conv`, `..._1_bn`, `..._1_relu`, ..., `..._0_conv` for a projection, `..._out` for the addition).
"""

from __future__ import annotations

import sys

import keras
from keras import layers

from keras_resnet import compat
from keras_resnet.blocks import ZeroPadShortcut, batch_norm, conv
from keras_resnet.common import check_arguments, classifier_head, model_input
from keras_resnet.weights.api import check_weights, load_weights
from keras_resnet.weights.sets import SET_NAMES

PREACT_BLOCKS = ("basic", "bottleneck")
PREACT_BOTTLENECK_DEPTHS = (164, 1001)
"""The paper's bottleneck networks; 164 is also of the basic form 6n+2, so a depth alone does not say."""
PREACT_SHORTCUTS = ("A", "B", "C")
PREACT_WIDTHS = (16, 32, 64)
PREACT_INPUT_SHAPE = (32, 32, 3)


def preact_depth_units(depth, block):
    """The number of units per stage of a pre-activation CIFAR network: depth 6n+2 (basic) or 9n+2 (bottleneck).

    Raises:
        ValueError: naming `depth` or `block`, what was received and what is accepted.

    Example:
        >>> preact_depth_units(110, "basic"), preact_depth_units(164, "bottleneck")
        (18, 18)
    """
    if block not in PREACT_BLOCKS:
        raise ValueError(f"`block` must be 'basic' or 'bottleneck'; received {block!r}.")
    layers_per_unit = 2 if block == "basic" else 3
    form = "6n+2 (20, 56, 110, ...)" if block == "basic" else "9n+2 (29, 164, 1001, ...)"
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 3 * layers_per_unit + 2 or (
            (depth - 2) % (3 * layers_per_unit)):
        raise ValueError(f"`depth` of a pre-activation CIFAR network with {block} units must be {form}; "
                         f"received {depth!r}.")
    return (depth - 2) // (3 * layers_per_unit)


def preact_block_of(depth):
    """The unit of the pre-activation network named by its depth: "bottleneck" for the paper's 164 and 1001 and
    any 9n+2 depth that is not 6n+2, "basic" for the other 6n+2 depths (ResNet-110 among them).

    Raises:
        ValueError: `depth` is of neither form.

    Example:
        >>> preact_block_of(110), preact_block_of(164), preact_block_of(29)
        ('basic', 'bottleneck', 'bottleneck')
    """
    if depth in PREACT_BOTTLENECK_DEPTHS:
        return "bottleneck"
    for block in PREACT_BLOCKS:
        try:
            preact_depth_units(depth, block)
            return block
        except ValueError:
            pass
    raise ValueError(f"`depth` of a pre-activation CIFAR network must be 6n+2 (basic units: 20, 56, 110, ...) or "
                     f"9n+2 (bottleneck units: 29, 164, 1001, ...); received {depth!r}.")


NO_ZERO_INIT = ("`zero_init_residual=True` zeroes the BN that ends a residual branch; a pre-activation unit ends "
                "with a convolution, so it has none. Use zero_init_residual=False.")


def bn_relu(x, name, **bn_kwargs):
    """Batch normalisation (`{name}_bn`, as every BN of the package; `bn_kwargs`: `epsilon`, `momentum`) and
    ReLU (`{name}_relu`): a pre-activation."""
    return layers.ReLU(name=f"{name}_relu")(batch_norm(name, **bn_kwargs)(x))


def preact_basic_unit(x, filters, strides, shortcut, name, kernel_regularizer=None):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, added to the unit's input (He et al. 2016b, Fig. 4e).

    Example:
        >>> import keras
        >>> preact_basic_unit(keras.Input((32, 32, 16)), 32, 2, "A", "stage2_block1").shape
        (None, 16, 16, 32)
    """
    pre = bn_relu(x, f"{name}_preact")
    grows = strides != 1 or x.shape[-1] != filters
    if shortcut == "C" or (shortcut == "B" and grows):
        short = conv(pre, filters, 1, strides, f"{name}_0", kernel_regularizer)
    elif grows:
        short = ZeroPadShortcut(filters, strides, name=f"{name}_shortcut")(x)
    else:
        short = x
    y = conv(pre, filters, 3, strides, f"{name}_1", kernel_regularizer)
    y = bn_relu(y, f"{name}_1")
    y = conv(y, filters, 3, 1, f"{name}_2", kernel_regularizer)
    return layers.Add(name=f"{name}_out")([short, y])


def preact_bottleneck_unit(x, width, strides, name, kernel_regularizer=None):
    """BN-ReLU-conv1x1 (width, stride), BN-ReLU-conv3x3, BN-ReLU-conv1x1 (4 width), added to the input, or to
    its pre-activated 1x1 projection where the dimensions change (He et al. 2016b, appendix).

    Example:
        >>> import keras
        >>> preact_bottleneck_unit(keras.Input((32, 32, 64)), 32, 2, "stage2_block1").shape
        (None, 16, 16, 128)
    """
    pre = bn_relu(x, f"{name}_preact")
    out = 4 * width
    short = conv(pre, out, 1, strides, f"{name}_0", kernel_regularizer) if (
        strides != 1 or x.shape[-1] != out) else x
    y = conv(pre, width, 1, strides, f"{name}_1", kernel_regularizer)
    y = bn_relu(y, f"{name}_1")
    y = conv(y, width, 3, 1, f"{name}_2", kernel_regularizer)
    y = bn_relu(y, f"{name}_2")
    y = conv(y, out, 1, 1, f"{name}_3", kernel_regularizer)
    return layers.Add(name=f"{name}_out")([short, y])


def check_preact_weights(weights, depth, shortcut, include_top, classes, channels):
    """`weights=`: `None` or a weights file (no published pre-activation CIFAR set exists to name)."""
    if isinstance(weights, str) and weights in SET_NAMES:
        raise ValueError(f"`weights`={weights!r}: no published set for the pre-activation CIFAR networks; "
                         "accepted: None (random initialisation) or the path of a weights file.")
    return check_weights(weights, family="cifar", depth=depth, shortcut=shortcut, include_top=include_top,
                         classes=classes, stride_in_3x3=False, channels=channels)


def preact_cifar_resnet(depth, block=None, shortcut=None, include_top=True, input_shape=None, pooling=None,
                        classes=10, classifier_activation="softmax", zero_init_residual=False,
                        kernel_regularizer=None, name=None, weights=None, input_tensor=None):
    """Builds a pre-activation CIFAR ResNet (He et al. 2016b): ResNet-110 (basic), ResNet-164 / ResNet-1001
    (bottleneck) and any other depth of those forms.

    Reference: He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016, section 4 and
    the appendix (CIFAR-10: 6.37% for ResNet-110, 5.46% for ResNet-164, 4.62% for ResNet-1001).

    Args:
        depth: int, 6n+2 for `block="basic"`, 9n+2 for `block="bottleneck"`.
        block: "basic" (two 3x3 convolutions per unit), "bottleneck" (1x1, 3x3, 1x1 with 4x outputs), or
            `None`: the unit the depth names (`preact_block_of`: bottleneck for 164 and 1001).
        shortcut: `None` for the paper's choice ("A" for basic units, "B" for bottleneck units); for basic
            units "A" (identity, zero-padded channels, as the first paper's CIFAR networks), "B" (1x1
            projections where the width grows) or "C" (projections everywhere); bottleneck units accept "B"
            only (pre-activated 1x1 projections where the dimensions change, the paper's appendix).
        include_top, input_shape, pooling, classes, classifier_activation, kernel_regularizer, name,
            input_tensor: as for `keras_resnet.cifar_resnet`.
        zero_init_residual: `False` only: it zeroes the BN that ends a residual branch, and a pre-activation
            unit ends with a convolution (the argument is here because every network takes it).
        weights: `None` or the path of a weights file (`.weights.h5`, `.keras`) of the same network.

    Returns:
        A `keras.Model`, named `preact_resnet<depth>` unless `name` says otherwise.

    Example:
        >>> import numpy as np
        >>> model = preact_cifar_resnet(164)
        >>> model.name, sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        ('preact_resnet164', 1703258)
    """
    block = preact_block_of(depth) if block is None else block
    units = preact_depth_units(depth, block)
    if zero_init_residual:
        raise ValueError(NO_ZERO_INIT)
    accepted = PREACT_SHORTCUTS if block == "basic" else ("B",)
    if shortcut is None:
        shortcut = accepted[0]
    if shortcut not in accepted:
        raise ValueError(f"`shortcut` of a pre-activation network with {block} units must be None (the paper's: "
                         f"{accepted[0]!r}) or one of {list(accepted)}; received {shortcut!r}.")
    shape = check_arguments(family="CIFAR", shortcut=shortcut, zero_init_residual=False, include_top=include_top,
                            input_shape=input_shape, default_input_shape=PREACT_INPUT_SHAPE, min_size=4,
                            pooling=pooling, classes=classes, classifier_activation=classifier_activation,
                            input_tensor=input_tensor)
    request = check_preact_weights(weights, depth, shortcut, include_top, classes, shape[-1])
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 16 * depth + 3000))  # as for ResNet-1202
    with compat.deferred_initial_values():  # values after the build: load_weights
        inputs, x = model_input(input_tensor, shape)
        x = conv(x, PREACT_WIDTHS[0], 3, 1, "stem", kernel_regularizer)
        for stage, width in enumerate(PREACT_WIDTHS, start=1):
            for index in range(1, units + 1):
                strides, unit_name = (2 if stage > 1 and index == 1 else 1), f"stage{stage}_block{index}"
                if block == "basic":
                    x = preact_basic_unit(x, width, strides, shortcut, unit_name, kernel_regularizer)
                else:
                    x = preact_bottleneck_unit(x, width, strides, unit_name, kernel_regularizer)
        x = bn_relu(x, "post")
        outputs = classifier_head(x, include_top, pooling, classes, classifier_activation, kernel_regularizer)
        model = keras.Model(inputs, outputs, name=name or f"preact_resnet{depth}")

    def full_network(classes):
        return preact_cifar_resnet(depth, block=block, shortcut=shortcut, input_shape=(None, None, shape[-1]),
                                   classes=classes)

    return load_weights(model, request, full_network)
