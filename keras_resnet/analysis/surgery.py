"""Model surgery: identity deepening of a (trained) CIFAR ResNet.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385), section 3.1: "a deeper model should have training error no greater than its shallower
counterpart", since the added layers can be identity mappings.

* `describe_cifar_model(model)`: the `cifar_resnet` arguments of a model, recovered from its layer names.
* `deepen(model, extra_blocks_per_stage)`: a deeper CIFAR ResNet computing exactly the same function: new
  identity blocks whose last BN scale is zero, every other weight copied by layer name. The result is an
  ordinary `cifar_resnet(depth')` model that can keep training.

Uses `keras` only (any backend).

Example:
    >>> import keras_resnet
    >>> shallow = keras_resnet.build("resnet20")
    >>> deepen(shallow, 2).name  # ResNet-32, same outputs as `shallow`
    'resnet32'
"""

from __future__ import annotations

import re

import numpy as np

import keras

from keras_resnet.blocks import BN_EPSILON
from keras_resnet.cifar import cifar_resnet

_BLOCK = re.compile(r"^stage(\d+)_block(\d+)_1_conv$")


def describe_cifar_model(model):
    """Recovers the `cifar_resnet` arguments of a model built by it (from its stable layer names).

    Args:
        model: a `keras.Model` returned by `keras_resnet.cifar_resnet` (or `build("resnet20")`, ...).

    Returns:
        dict with `depth`, `blocks_per_stage`, `shortcut` ("A", "B", "C" or None), `input_shape`,
        `include_top`, `classes`, `classifier_activation`, `pooling`, `kernel_regularizer`.

    Raises:
        ValueError: if `model` is not a CIFAR ResNet of this package (names the missing layers).
    """
    names = {layer.name for layer in model.layers}
    blocks = {}
    for name in names:
        match = _BLOCK.match(name)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    if "stem_conv" not in names or sorted(blocks) != [1, 2, 3] or any(
            blocks[s] != set(range(1, len(blocks[1]) + 1)) for s in blocks):
        raise ValueError(
            f"`model` {model.name!r} is not a CIFAR ResNet built by `keras_resnet.cifar_resnet` (expected layers "
            "'stem_conv' and 'stage{1,2,3}_block{1..n}_1_conv'); `deepen` supports the CIFAR family only."
        )
    n = len(blocks[1])
    if "stage1_block1_add" not in names:
        shortcut = None
    elif "stage1_block1_shortcut_proj_conv" in names:
        shortcut = "C"
    elif "stage2_block1_shortcut_proj_conv" in names:
        shortcut = "B"
    else:
        shortcut = "A"
    include_top = "predictions" in names
    head = model.get_layer("predictions") if include_top else None
    activation = None
    if head is not None:
        activation = keras.activations.serialize(head.activation)
        activation = activation if isinstance(activation, str) else activation.get("config", {}).get("name")
        activation = None if activation == "linear" else activation
    return {
        "depth": 6 * n + 2,
        "blocks_per_stage": n,
        "shortcut": shortcut,
        "input_shape": tuple(model.input_shape[1:]),
        "include_top": include_top,
        "classes": int(head.units) if head is not None else None,
        "classifier_activation": activation,
        "pooling": None if include_top else ("avg" if "avg_pool" in names else "max" if "max_pool" in names
                                             else None),
        "kernel_regularizer": model.get_layer("stem_conv").kernel_regularizer,
    }


def deepen(model, extra_blocks_per_stage):
    """Returns a deeper residual network that computes exactly the same function as `model`.

    The paper's argument for why depth alone should not hurt (section 3.1): take a trained shallow network and
    add identity layers; the deeper network is no worse. Here each stage of a CIFAR ResNet of depth 6n+2
    gets `extra_blocks_per_stage` new basic blocks appended after its last block, giving depth
    6(n + extra)+2. A new block's last BN scale (gamma) and shift (beta) are zero, so its residual branch
    outputs exactly 0 and the block outputs `relu(x + 0) = x` (its input already comes out of a ReLU). Every
    layer of `model` is copied by name, including the BN moving statistics, so the result equals `model` in
    inference mode (and in training mode too for options A and B).

    With option C every shortcut is a 1x1 projection + BN; the new blocks' projections are set to the
    identity (identity kernel, BN with zero moving mean, unit moving variance, unit scale), which is exact
    in inference mode.

    The result is an ordinary `cifar_resnet(depth')` model (same shortcut option, input shape, classes,
    classifier and kernel regulariser), so it can be compiled and trained further, e.g. to show that
    training continues from the shallow network's accuracy.

    Args:
        model: a CIFAR ResNet built by `keras_resnet.cifar_resnet` (any shortcut option; not a plain net).
        extra_blocks_per_stage: int >= 0, the basic blocks (2 layers each) added to every stage: depth grows
            by `6 * extra_blocks_per_stage` (20 -> 32 with 2, 20 -> 56 with 6).

    Returns:
        A new `keras.Model` named `resnet<depth'>` (for option A; the builder's default name otherwise).

    Raises:
        ValueError: a plain network (no identity to add), a model not built by `cifar_resnet`, or a bad
            `extra_blocks_per_stage`.

    Example:
        >>> import numpy as np, keras_resnet
        >>> shallow = keras_resnet.build("resnet8", input_shape=(16, 16, 3))
        >>> deep = deepen(shallow, 1)  # ResNet-14
        >>> x = np.random.rand(2, 16, 16, 3).astype("float32")
        >>> bool(np.allclose(shallow.predict(x, verbose=0), deep.predict(x, verbose=0), atol=1e-6))
        True
    """
    if isinstance(extra_blocks_per_stage, bool) or not isinstance(extra_blocks_per_stage, (int, np.integer)) \
            or extra_blocks_per_stage < 0:
        raise ValueError(f"`extra_blocks_per_stage` must be an integer >= 0; received {extra_blocks_per_stage!r}.")
    spec = describe_cifar_model(model)
    if spec["shortcut"] is None:
        raise ValueError(
            f"`model` {model.name!r} is a plain network: it has no shortcuts, so new blocks cannot be identities. "
            "`deepen` needs a residual network (shortcut 'A', 'B' or 'C')."
        )
    n, extra = spec["blocks_per_stage"], int(extra_blocks_per_stage)
    deeper = cifar_resnet(
        spec["depth"] + 6 * extra,
        shortcut=spec["shortcut"],
        include_top=spec["include_top"],
        input_shape=spec["input_shape"],
        classes=spec["classes"] if spec["include_top"] else 10,
        classifier_activation=spec["classifier_activation"],
        kernel_regularizer=spec["kernel_regularizer"],
        pooling=spec["pooling"],
    )
    new_layers = {layer.name: layer for layer in deeper.layers}
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in new_layers:  # pragma: no cover - the builder keeps every name
            raise ValueError(f"Layer {layer.name!r} of {model.name!r} has no counterpart in {deeper.name!r}.")
        new_layers[layer.name].set_weights(layer.get_weights())
    for stage in (1, 2, 3):
        for block in range(n + 1, n + extra + 1):
            prefix = f"stage{stage}_block{block}"
            bn = new_layers[f"{prefix}_2_bn"]
            bn.gamma.assign(np.zeros(bn.gamma.shape, "float32"))
            bn.beta.assign(np.zeros(bn.beta.shape, "float32"))
            if f"{prefix}_shortcut_proj_conv" in new_layers:  # option C: make the projection an identity
                conv = new_layers[f"{prefix}_shortcut_proj_conv"]
                channels = conv.kernel.shape[-1]
                conv.kernel.assign(np.eye(channels, dtype="float32").reshape(1, 1, channels, channels))
                proj_bn = new_layers[f"{prefix}_shortcut_proj_bn"]
                proj_bn.gamma.assign(np.ones(channels, "float32"))
                proj_bn.beta.assign(np.zeros(channels, "float32"))
                proj_bn.moving_mean.assign(np.zeros(channels, "float32"))
                proj_bn.moving_variance.assign(np.full(channels, 1.0 - BN_EPSILON, "float32"))
    return deeper


__all__ = ["deepen", "describe_cifar_model"]
