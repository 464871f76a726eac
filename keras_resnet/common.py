"""The skeleton the CIFAR and ImageNet builders share: argument checks, input, stem, stages, classifier head.

Both families are one network (He et al. 2016, Table 1 and section 4.2): a stem, stages of residual blocks
whose first block subsamples (stride 2, except in the first stage), global average pooling and a
fully connected classifier. The builders differ only in their spec tables (stem kernel and pooling,
filters, blocks per stage, block type); `stem`, `residual_stages` and `finish` are the rest, so the layer
names and weights of both families come from one place.

Every check runs before any layer is built, and each `ValueError` names the argument, the value received
and what is accepted (see the package's design notes).
"""

from __future__ import annotations

import keras
from keras import layers

from keras_resnet.blocks import SHORTCUTS, conv_bn

POOLINGS = (None, "avg", "max")


def check_arguments(
    *,
    family,
    shortcut,
    zero_init_residual,
    include_top,
    input_shape,
    default_input_shape,
    min_size,
    pooling,
    classes,
    classifier_activation,
    input_tensor=None,
):
    """Validates the builder arguments common to both families and returns the resolved input shape.

    Args:
        family: str, "CIFAR" or "ImageNet", used in messages.
        shortcut: the `shortcut` argument.
        zero_init_residual: the `zero_init_residual` argument.
        include_top: the `include_top` argument.
        input_shape: the `input_shape` argument, or `None` for `default_input_shape`.
        default_input_shape: tuple, the family's default `(height, width, channels)`.
        min_size: int, the smallest spatial size the network's downsampling accepts.
        pooling: the `pooling` argument.
        classes: the `classes` argument.
        classifier_activation: the `classifier_activation` argument.
        input_tensor: the `input_tensor` argument: `None` or a Keras tensor to build on; its shape is the
            input shape when `input_shape` is `None`.

    Returns:
        The input shape as a tuple of three entries.

    Raises:
        ValueError: naming the offending argument, the value received and what is accepted.
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(f"`shortcut` must be one of 'A', 'B', 'C' or None (plain network); received {shortcut!r}.")
    if zero_init_residual and shortcut is None:
        raise ValueError(
            "`zero_init_residual=True` needs residual blocks, but `shortcut=None` builds a plain network: zeroing "
            "the last BN scale of a plain block would cut the only signal path. Use shortcut='A', 'B' or 'C'."
        )
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False; received {include_top!r}.")
    if pooling not in POOLINGS:
        raise ValueError(f"`pooling` must be one of None, 'avg' or 'max'; received {pooling!r}.")
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be an integer >= 1; received {classes!r}.")
    if include_top:
        try:
            keras.activations.get(classifier_activation)
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"`classifier_activation` must be None, a Keras activation name or a callable; received "
                f"{classifier_activation!r} ({error})."
            ) from None

    shape = default_input_shape if input_shape is None else input_shape
    if input_tensor is not None:
        shape = check_input_tensor(input_tensor, input_shape)
    try:
        shape = tuple(None if d is None else int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"`input_shape` must be a tuple (height, width, channels); received {input_shape!r}."
        ) from None
    if len(shape) != 3:
        raise ValueError(
            f"`input_shape` must have 3 entries (height, width, channels), channels last; received {input_shape!r}."
        )
    height, width, channels = shape
    if channels is None or channels < 1:
        raise ValueError(
            f"`input_shape` must have a known channel count >= 1 (the first convolution's kernel depends on it); "
            f"received {input_shape!r}."
        )
    for size in (height, width):
        if size is not None and size < min_size:
            raise ValueError(
                f"`input_shape` {input_shape!r} is too small for the {family} ResNet: height and width must be at "
                f"least {min_size} (the network downsamples by {min_size}), or None for any size."
            )
    return shape


def check_input_tensor(input_tensor, input_shape):
    """Checks `input_tensor` (a rank-4 Keras tensor agreeing with `input_shape`) and returns the input shape.

    Raises:
        ValueError: naming `input_tensor`, what was received and what is accepted.
    """
    if not isinstance(input_tensor, keras.KerasTensor):
        raise ValueError(
            "`input_tensor` must be a Keras tensor (from keras.Input or a layer applied to one), channels last; "
            f"received a {type(input_tensor).__name__}."
        )
    if len(input_tensor.shape) != 4:
        raise ValueError(
            f"`input_tensor` must have shape (batch, height, width, channels); received shape {input_tensor.shape}."
        )
    tensor_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        return tensor_shape
    if len(tuple(input_shape)) != 3 or any(
        a is not None and b is not None and a != b for a, b in zip(tuple(input_shape), tensor_shape)
    ):
        raise ValueError(f"`input_tensor` of shape {input_tensor.shape} does not agree with `input_shape`={input_shape!r}.")
    return tuple(input_shape)


def model_input(input_tensor, shape):
    """`(model inputs, tensor to build on)`: a new `keras.Input` named "image", or `input_tensor` and the
    inputs it comes from (so a model can start after preprocessing layers, as in keras.applications)."""
    if input_tensor is None:
        inputs = keras.Input(shape, name="image")
        return inputs, inputs
    sources = keras.utils.get_source_inputs(input_tensor)
    return (sources[0] if len(sources) == 1 else sources), input_tensor


def classifier_head(x, include_top, pooling, classes, classifier_activation, kernel_regularizer=None):
    """Global pooling and the optional fully connected classifier.

    The classifier runs in float32 whatever the global dtype policy, so logits and probabilities are float32
    under `mixed_float16` and `mixed_bfloat16` (a keras.applications convention for mixed precision).

    Args:
        x: the last stage's feature map.
        include_top: bool, add global average pooling and the `classes`-way classifier.
        pooling: None, "avg" or "max"; used when `include_top=False`.
        classes: int, number of classes.
        classifier_activation: None, an activation name or callable, applied to the logits.
        kernel_regularizer: optional regulariser for the classifier kernel.

    Returns:
        The model's output tensor.
    """
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return layers.Dense(
            classes,
            activation=classifier_activation,
            kernel_regularizer=kernel_regularizer,
            dtype="float32",
            name="predictions",
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def model_name(depth, shortcut, name):
    """The model's name: `name` if given, else `resnet<depth>` or `plain<depth>` (derived, never typed twice)."""
    if name is not None:
        return name
    return f"{'plain' if shortcut is None else 'resnet'}{depth}"


def stem(x, filters, kernel_size, strides, kernel_regularizer=None, max_pool=False):
    """The first layers: a convolution with BN and ReLU (`stem_conv`, `stem_bn`, `stem_relu`), then for
    ImageNet a 3x3 max pool of stride 2 with a symmetric padding of 1 (`stem_pool_pad`, `stem_pool`), as the
    reference models (zeros are safe after the ReLU)."""
    x = conv_bn(x, filters, kernel_size, strides, "stem", kernel_regularizer)
    x = layers.ReLU(name="stem_relu")(x)
    if max_pool:
        x = layers.ZeroPadding2D(padding=1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(pool_size=3, strides=2, name="stem_pool")(x)
    return x


def residual_stages(x, stages, block, **block_kwargs):
    """Stages of blocks, `stages` being `[(filters, blocks), ...]`: block `j` of stage `i` is named
    `stage<i>_block<j>`, and the first block of every stage but the first subsamples with stride 2.

    Args:
        x: the stem's output.
        stages: `(filters, number of blocks)` per stage.
        block: `keras_resnet.blocks.basic_block` or `bottleneck_block` (or a partial of one).
        **block_kwargs: passed to every block (`shortcut`, `kernel_regularizer`, `zero_init_residual`).

    Example:
        >>> from keras_resnet.blocks import basic_block
        >>> x = residual_stages(keras.Input((32, 32, 16)), [(16, 1), (32, 1)], basic_block, shortcut="A")
        >>> tuple(x.shape)
        (None, 16, 16, 32)
    """
    for stage, (filters, blocks) in enumerate(stages, start=1):
        for index in range(1, blocks + 1):
            x = block(x, filters=filters, strides=2 if stage > 1 and index == 1 else 1,
                      name=f"stage{stage}_block{index}", **block_kwargs)
    return x


def finish(inputs, x, *, depth, shortcut, name, include_top, pooling, classes, classifier_activation,
           kernel_regularizer):
    """The classifier head on the last stage and the `keras.Model`, named by `model_name`."""
    outputs = classifier_head(x, include_top, pooling, classes, classifier_activation, kernel_regularizer)
    return keras.Model(inputs, outputs, name=model_name(depth, shortcut, name))
