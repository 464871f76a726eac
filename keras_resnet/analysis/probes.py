"""Probes of a network's internals: per-layer gradient norms and the responses of its 3x3 layers.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385), section 3.2 (the identity term carries the gradient: d(x + F(x))/dx = 1 + dF/dx) and
Fig. 7 (standard deviations of the layer responses).

* `gradient_norms(model, batch)`: the L2 norm of the gradient of the loss on one batch with respect to each
  convolution / dense kernel, from the input side to the output side.
* `GradientNormsCallback(batch)`: records `gradient_norms` at the start and at the end of a training run.
* `layer_responses(model, images)`: the standard deviation of each 3x3 layer's response (the output of its
  BN, before the addition and the ReLU), as in Fig. 7; `response_layers(model)` names those BN layers.

Backends: `layer_responses` uses `keras` only. `gradient_norms` needs a backend-specific gradient:
`tf.GradientTape` on TensorFlow, `jax.grad` on JAX (both through `model.stateless_call`, so that the BN
moving statistics are left untouched); other backends raise `NotImplementedError`.

Example:
    >>> import numpy as np, keras_resnet
    >>> model = keras_resnet.build("resnet8", input_shape=(16, 16, 3))
    >>> x, y = np.random.rand(4, 16, 16, 3).astype("float32"), np.arange(4)
    >>> list(gradient_norms(model, (x, y)))[:2]
    ['stem_conv', 'stage1_block1_1_conv']
"""

from __future__ import annotations

import numpy as np

import keras
from keras import ops


def _kernel_layers(model):
    """(layer, kernel variable) of every convolution and dense layer, in the model's (topological) order."""
    out = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and getattr(kernel, "trainable", False):
            out.append((layer, kernel))
    return out


def _from_logits(model):
    head = model.layers[-1]
    activation = getattr(head, "activation", None)
    return activation is None or activation is keras.activations.linear or getattr(
        activation, "__name__", "") == "linear"


def gradient_norms(model, batch, training=True):
    """Per-layer L2 norm of the gradient of the classification loss on one batch.

    The paper's gradient-flow argument (section 3.2): in a residual block d(x + F(x))/dx = 1 + dF/dx, so the
    identity term keeps the gradient from vanishing towards the input; deep plain networks have no such
    term. The loss is the mean sparse categorical cross-entropy of the model's output (from logits when the
    classifier has no activation), without the weight-decay term. The BN layers normalise with the batch
    statistics (`training=True`, as in training) but their moving statistics are not updated.

    Args:
        model: a classification `keras.Model` (e.g. any CIFAR ResNet or plain net).
        batch: `(images, labels)`: float32 preprocessed images `[N, H, W, C]` and int labels `[N]`.
        training: bool, run BN (and anything else mode-dependent) in training mode.

    Returns:
        dict (insertion-ordered from the input side to the output side) mapping the name of each
        convolution / dense layer to the L2 norm (float) of the gradient with respect to its kernel.

    Raises:
        NotImplementedError: on a backend other than TensorFlow or JAX.
        ValueError: if `batch` is not an `(images, labels)` pair of matching length.

    Example:
        >>> import numpy as np, keras_resnet
        >>> model = keras_resnet.build("resnet8", input_shape=(16, 16, 3))
        >>> x, y = np.random.rand(4, 16, 16, 3).astype("float32"), np.arange(4)
        >>> list(gradient_norms(model, (x, y)))[:2]
        ['stem_conv', 'stage1_block1_1_conv']
    """
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise ValueError(f"`batch` must be an (images, labels) pair; received {type(batch).__name__}.")
    images = np.asarray(keras.ops.convert_to_numpy(batch[0]), dtype="float32")
    labels = np.asarray(keras.ops.convert_to_numpy(batch[1])).astype("int32").reshape(-1)
    if len(images) != len(labels):
        raise ValueError(f"`batch` has {len(images)} images but {len(labels)} labels.")
    kernels = _kernel_layers(model)
    trainable = model.trainable_variables
    index = {id(v): i for i, v in enumerate(trainable)}
    positions = [index[id(kernel)] for _, kernel in kernels]
    from_logits = _from_logits(model)

    def loss_fn(trainable_values, non_trainable_values, images):
        outputs, _ = model.stateless_call(trainable_values, non_trainable_values, images, training=training)
        outputs = ops.cast(outputs, "float32")
        return ops.mean(keras.losses.sparse_categorical_crossentropy(labels, outputs, from_logits=from_logits))

    non_trainable_values = [v.value for v in model.non_trainable_variables]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        trainable_values = [tf.convert_to_tensor(v.value) for v in trainable]
        with tf.GradientTape() as tape:
            tape.watch(trainable_values)
            loss = loss_fn(trainable_values, non_trainable_values, images)
        grads = tape.gradient(loss, [trainable_values[i] for i in positions])
    elif backend == "jax":
        import jax

        trainable_values = [v.value for v in trainable]
        all_grads = jax.jit(jax.grad(loss_fn))(trainable_values, non_trainable_values, images)
        grads = [all_grads[i] for i in positions]
    else:
        raise NotImplementedError(
            f"`gradient_norms` supports the TensorFlow and JAX backends; the backend is {backend!r}.")
    return {layer.name: float(np.linalg.norm(np.asarray(keras.ops.convert_to_numpy(g), dtype=np.float64)))
            for (layer, _), g in zip(kernels, grads)}


class GradientNormsCallback(keras.callbacks.Callback):
    """Records `gradient_norms` on one fixed batch at the start and at the end of training (section 3.2).

    Attributes:
        batch: the `(images, labels)` batch the norms are measured on.
        norms: dict with `"init"` (at `on_train_begin`) and `"trained"` (at `on_train_end`), each an ordered
            dict layer name -> gradient norm.

    Example:
        >>> probe = GradientNormsCallback((images, labels))  # needs a batch of training images  # doctest: +SKIP
        >>> keras_resnet.training.train(config, callbacks=[probe]); probe.norms["init"]  # trains a network (minutes)  # doctest: +SKIP
    """

    def __init__(self, batch):
        super().__init__()
        self.batch, self.norms = batch, {}

    def on_train_begin(self, logs=None):
        self.norms["init"] = gradient_norms(self.model, self.batch)

    def on_train_end(self, logs=None):
        self.norms["trained"] = gradient_norms(self.model, self.batch)


def response_layers(model):
    """Names of the BN layers that follow a 3x3 convolution (`X_conv` -> `X_bn`), in layer order."""
    names = {layer.name for layer in model.layers}
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and tuple(layer.kernel_size) == (3, 3) \
                and layer.name.endswith("_conv") and layer.name[:-5] + "_bn" in names:
            out.append(layer.name[:-5] + "_bn")
    return out


def layer_responses(model, images, batch_size=256):
    """Standard deviation of each 3x3 layer's response, the quantity of the paper's Fig. 7.

    The response of a 3x3 layer is the output of its BN, before the addition (residual nets) and the ReLU,
    computed in inference mode. Its standard deviation is taken per channel over the images and positions,
    then averaged over the channels: the scale that BN's gamma sets, which shrinks when a residual function
    is close to zero (the overall standard deviation would also mix in the spread of the channel offsets).

    Args:
        model: a network with stable layer names (`stem_conv`/`stem_bn`, `stage{s}_block{b}_{1,2}_conv/_bn`).
        images: float32 preprocessed images `[N, H, W, C]` (numpy or tensor).
        batch_size: int, images per forward pass.

    Returns:
        dict (insertion-ordered by layer index, input side first) mapping BN layer name -> std (float).

    Raises:
        ValueError: if the model has no 3x3 conv + BN pair or `images` is empty.

    Example:
        >>> import numpy as np, keras_resnet
        >>> model = keras_resnet.build("plain8", input_shape=(16, 16, 3))
        >>> len(layer_responses(model, np.random.rand(4, 16, 16, 3).astype("float32")))
        7
    """
    names = response_layers(model)
    if not names:
        raise ValueError(f"`model` {model.name!r} has no 3x3 convolution followed by a BN layer ('X_conv', 'X_bn').")
    images = np.asarray(keras.ops.convert_to_numpy(images), dtype="float32")
    if images.ndim != 4 or not len(images):
        raise ValueError(f"`images` must be a non-empty batch [N, H, W, C]; received shape {images.shape}.")
    probe = keras.Model(model.input, [model.get_layer(name).output for name in names])
    counts = [0] * len(names)
    sums = [0.0] * len(names)
    squares = [0.0] * len(names)
    for start in range(0, len(images), batch_size):
        outputs = probe(images[start:start + batch_size], training=False)
        for i, out in enumerate(outputs):
            out = np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)
            out = out.reshape(-1, out.shape[-1])
            counts[i] += out.shape[0]
            sums[i] = sums[i] + out.sum(0)
            squares[i] = squares[i] + (out * out).sum(0)
    result = {}
    for name, s, q, count in zip(names, sums, squares, counts):
        mean = s / count
        result[name] = float(np.sqrt(np.maximum(q / count - mean * mean, 0.0)).mean())
    return result


__all__ = ["GradientNormsCallback", "gradient_norms", "layer_responses", "response_layers"]
