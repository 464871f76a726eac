"""Building blocks of the residual networks: conv-BN helpers, shortcuts A/B/C, basic and bottleneck blocks.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385), sections 3.2-3.4 and 4.2.

Blocks are plain functions over Keras tensors (as in `keras.applications` and keras-hub). The custom layers
are `ZeroPadShortcut`, the parameter-free option-A shortcut, and the fused `BatchNormalization`, both
registered as serializable so that `.keras` files load in Keras' safe mode (no `Lambda` layers anywhere).

Conventions shared by every block, as in the paper and its reference (Caffe / PyTorch) models:

- no convolution biases; batch normalisation after every convolution (PyTorch's momentum 0.1 and epsilon
  1e-5, i.e. Keras `momentum=0.9, epsilon=1e-5`), with `keras_resnet.batch_norm.BatchNormalization`: Keras'
  layer computed by TensorFlow's fused kernel on that backend (`KERAS_RESNET_FUSED_BN=0` turns it off);
- ReLU after the addition;
- He-normal kernel initialisation;
- stride-2 convolutions pad symmetrically: explicit `ZeroPadding2D` followed by a `valid` convolution,
  never Keras' asymmetric `padding="same"` at stride 2.

Only `keras.layers` and `keras.ops` are used (the fused kernel only behind a backend check), so the blocks
run on the TensorFlow, JAX and PyTorch backends.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_resnet.batch_norm import BatchNormalization

SHORTCUTS = ("A", "B", "C", None)
"""Accepted values of the `shortcut` argument: the paper's options A, B, C, or `None` for a plain network."""

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def kernel_initializer():
    """The He-normal initialiser of He et al. (2015b) used for every convolution."""
    return keras.initializers.HeNormal()


def subsample(x, strides):
    """Every `strides`-th pixel of an NHWC tensor along height and width: `x[:, ::strides, ::strides, :]`.

    When both sizes are known multiples of `strides` it is computed as a reshape to
    `[batch, height / s, s, width / s, s * channels]` and one plain `ops.slice` (element 0 of the row
    phase, the first `channels` values of each pixel pair): the same values, moved in whole runs of
    channels, and a gradient that is a zero padding. On TensorFlow's CPU kernels a strided slice of an
    NHWC tensor and its gradient were 4x slower (forward and backward 6.0 against 1.4 ms for a batch of
    128 x 32 x 32 x 16; `benchmarks/option_a_subsample.py`, benchmarks/BENCHMARKS.md): the two option-A
    shortcuts of a CIFAR ResNet took a sixth of its inference time. Other sizes use the strided slice.

    Args:
        x: a 4-D channels-last tensor with a known channel count.
        strides: int, the subsampling step (1 returns `x`).

    Returns:
        The subsampled tensor, `[batch, ceil(height / s), ceil(width / s), channels]`.

    Example:
        >>> import numpy as np
        >>> x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
        >>> bool((keras.ops.convert_to_numpy(subsample(x, 2)) == x[:, ::2, ::2, :]).all())
        True
    """
    if strides == 1:
        return x
    _, height, width, channels = x.shape
    if height is None or width is None or channels is None or height % strides or width % strides:
        return x[:, ::strides, ::strides, :]
    batch = -1 if x.shape[0] is None else x.shape[0]  # -1: a dynamic batch, without shape ops in the graph
    rows = ops.reshape(x, (batch, height // strides, strides, width // strides, strides * channels))
    picked = ops.slice(rows, (0, 0, 0, 0, 0), (batch, height // strides, 1, width // strides, channels))
    return ops.reshape(picked, (batch, height // strides, width // strides, channels))


@keras.saving.register_keras_serializable(package="keras_resnet")
class ZeroPadShortcut(layers.Layer):
    """Option-A shortcut: identity with spatial subsampling and zero-padded extra channels.

    When a block halves the feature map and doubles the channels, the paper's option A (section 3.3) keeps
    the shortcut parameter-free: it takes every other pixel (`x[:, ::2, ::2, :]`) and pads the new channels
    with zeros, split equally between both sides of the channel axis (the odd one, if any, goes last).

    Args:
        filters: int, the number of output channels (at least the input's).
        strides: int, the spatial subsampling step (1 or 2).
        **kwargs: standard `keras.layers.Layer` arguments such as `name`.

    Example:
        >>> import numpy as np
        >>> layer = ZeroPadShortcut(filters=32, strides=2)
        >>> tuple(layer(np.ones((1, 8, 8, 16), "float32")).shape)
        (1, 4, 4, 32)
    """

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def _padding(self, channels):
        extra = self.filters - channels
        if extra < 0:
            raise ValueError(
                f"ZeroPadShortcut: `filters`={self.filters} is smaller than the input's {channels} channels; "
                "option A can only add channels."
            )
        return extra // 2, extra - extra // 2

    def call(self, inputs):
        x = subsample(inputs, self.strides)
        before, after = self._padding(inputs.shape[-1])
        if before or after:
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [before, after]])
        return x

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if self.strides > 1:
            height = None if height is None else -(-height // self.strides)
            width = None if width is None else -(-width // self.strides)
        return (batch, height, width, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "strides": self.strides})
        return config


def conv(x, filters, kernel_size, strides, name, kernel_regularizer=None, use_bias=False):
    """A convolution (`{name}_conv`, without bias unless `use_bias`), padded symmetrically: Keras' "same" at
    stride 1 (symmetric for odd kernels), an explicit `{name}_pad` and a "valid" convolution at stride 2, as the
    reference models.

    Example:
        >>> conv(keras.Input((8, 8, 3)), 16, 3, 2, "stem").shape
        (None, 4, 4, 16)
    """
    pad = (kernel_size - 1) // 2
    if strides == 1:
        padding = "same"
    else:
        if pad:
            x = layers.ZeroPadding2D(padding=pad, name=f"{name}_pad")(x)
        padding = "valid"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer(),
        kernel_regularizer=kernel_regularizer,
        name=f"{name}_conv",
    )(x)


def batch_norm(name, zero_gamma=False, epsilon=BN_EPSILON, momentum=BN_MOMENTUM):
    """The BN layer of every block (`{name}_bn`): PyTorch's momentum 0.1 and epsilon 1e-5 unless given (the
    keras.applications V2 networks: 1.001e-5 and 0.99), the fused kernel."""
    return BatchNormalization(
        momentum=momentum,
        epsilon=epsilon,
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=f"{name}_bn",
    )


def conv_bn(x, filters, kernel_size, strides, name, kernel_regularizer=None, zero_gamma=False):
    """Convolution (no bias, symmetric padding: `conv`) followed by batch normalisation.

    Args:
        x: the input tensor, channels last.
        filters: int, output channels.
        kernel_size: int, square kernel size.
        strides: int, 1 or 2.
        name: str, prefix of the layer names (`{name}_conv`, `{name}_bn`, `{name}_pad`).
        kernel_regularizer: optional Keras regulariser for the kernel (the recipes' L2 weight decay).
        zero_gamma: bool, start the BN scale at zero (the last BN of a residual branch with
            `zero_init_residual=True`).

    Returns:
        The normalised tensor (no activation).
    """
    return batch_norm(name, zero_gamma)(conv(x, filters, kernel_size, strides, name, kernel_regularizer))


def shortcut_branch(x, filters, strides, shortcut, name, kernel_regularizer=None):
    """The shortcut connection of a block for option A, B or C.

    Args:
        x: the block input.
        filters: int, the block's output channels.
        strides: int, the block's stride.
        shortcut: "A", "B" or "C" (see `SHORTCUTS`).
        name: str, the block's name prefix; layers are named `{name}_shortcut` (option A) or
            `{name}_shortcut_proj_conv` / `{name}_shortcut_proj_bn` (projections).
        kernel_regularizer: optional regulariser for projection kernels.

    Returns:
        The shortcut tensor, shaped like the residual branch's output.
    """
    grows = strides != 1 or x.shape[-1] != filters
    if shortcut == "C" or (shortcut == "B" and grows):
        return conv_bn(x, filters, 1, strides, f"{name}_shortcut_proj", kernel_regularizer)
    if grows:
        return ZeroPadShortcut(filters, strides, name=f"{name}_shortcut")(x)
    return x


def _merge(x, shortcut_tensor, name):
    if shortcut_tensor is not None:
        x = layers.Add(name=f"{name}_add")([x, shortcut_tensor])
    return layers.ReLU(name=f"{name}_out")(x)


def basic_block(x, filters, strides, shortcut, name, kernel_regularizer=None, zero_init_residual=False):
    """Two 3x3 convolutions with a shortcut: the block of ResNet-18/34 and every CIFAR ResNet (Fig. 2 left).

    Args:
        x: the input tensor.
        filters: int, the channels of both convolutions and of the output.
        strides: int, the stride of the first convolution (2 where a stage starts downsampling).
        shortcut: "A", "B", "C", or `None` for a plain block (no shortcut at all).
        name: str, the block's name prefix, e.g. `stage2_block1`.
        kernel_regularizer: optional regulariser for every kernel.
        zero_init_residual: bool, start the last BN scale at zero so the block begins as its shortcut.

    Returns:
        The block's output tensor.

    Example:
        >>> inputs = keras.Input((32, 32, 16))
        >>> basic_block(inputs, 32, 2, "A", "stage2_block1").shape
        (None, 16, 16, 32)
    """
    short = None if shortcut is None else shortcut_branch(x, filters, strides, shortcut, name, kernel_regularizer)
    y = conv_bn(x, filters, 3, strides, f"{name}_1", kernel_regularizer)
    y = layers.ReLU(name=f"{name}_1_relu")(y)
    y = conv_bn(y, filters, 3, 1, f"{name}_2", kernel_regularizer, zero_gamma=zero_init_residual)
    return _merge(y, short, name)


def bottleneck_block(
    x, filters, strides, shortcut, name, kernel_regularizer=None, zero_init_residual=False, stride_in_3x3=False
):
    """1x1 reduce, 3x3, 1x1 restore (x4): the block of ResNet-50/101/152 (Fig. 5 right).

    Args:
        x: the input tensor.
        filters: int, the bottleneck width (64, 128, 256, 512); the output has `4 * filters` channels.
        strides: int, the block's stride.
        shortcut: "A", "B", "C", or `None` for a plain block.
        name: str, the block's name prefix.
        kernel_regularizer: optional regulariser for every kernel.
        zero_init_residual: bool, start the last BN scale at zero.
        stride_in_3x3: bool. `False` (default) downsamples in the first 1x1 convolution as the paper's
            Caffe models do, which gives the paper's FLOP counts; `True` moves the stride to the 3x3
            convolution (torchvision's "v1.5"). Parameter counts are identical.

    Returns:
        The block's output tensor, with `4 * filters` channels.

    Example:
        >>> inputs = keras.Input((56, 56, 64))
        >>> bottleneck_block(inputs, 64, 1, "B", "stage1_block1").shape
        (None, 56, 56, 256)
    """
    out_filters = 4 * filters
    short = None if shortcut is None else shortcut_branch(x, out_filters, strides, shortcut, name, kernel_regularizer)
    stride_1x1, stride_3x3 = (1, strides) if stride_in_3x3 else (strides, 1)
    y = conv_bn(x, filters, 1, stride_1x1, f"{name}_1", kernel_regularizer)
    y = layers.ReLU(name=f"{name}_1_relu")(y)
    y = conv_bn(y, filters, 3, stride_3x3, f"{name}_2", kernel_regularizer)
    y = layers.ReLU(name=f"{name}_2_relu")(y)
    y = conv_bn(y, out_filters, 1, 1, f"{name}_3", kernel_regularizer, zero_gamma=zero_init_residual)
    return _merge(y, short, name)
