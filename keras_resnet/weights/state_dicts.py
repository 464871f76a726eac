"""PyTorch state dicts of the ResNets (akamaster's, torchvision's, timm's): their tensor names mapped onto this
package's layer names, the order PyTorch lists them in, and which of the two layouts a state dict is.

akamaster's CIFAR ResNets (github.com/akamaster/pytorch_resnet_cifar10) and torchvision's ImageNet ones share
the names `conv1`, `bn1`, `layerS.B.convK` / `bnK` and the projection `downsample.0` / `.1` (akamaster:
`shortcut`), and differ in the classifier: `linear` and `fc`. timm's ResNets use torchvision's names. The
readers of `keras_resnet.weights.formats` (`torch.save` files and `.safetensors` files) map through these.

Example:
    >>> torch_layer_name("layer3.4.downsample.1.running_var")
    ('stage3_block5_shortcut_proj_bn', 'moving_variance')
    >>> sorted(["fc.weight", "layer1.0.bn1.bias", "layer1.0.conv1.weight", "bn1.weight"], key=torch_order)
    ['bn1.weight', 'layer1.0.conv1.weight', 'layer1.0.bn1.bias', 'fc.weight']
"""

from __future__ import annotations

import re

CLASSIFIER = "predictions"
"""Our classifier's layer name, which PyTorch's `fc` / `linear` (and keras.applications' `predictions`) map to."""

_BN_ROLES = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
_TORCH_STEM = re.compile(r"^(conv1|bn1)\.(\w+)$")
_TORCH_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(conv|bn)(\d)\.(\w+)$")
_TORCH_PROJECTION = re.compile(r"^layer(\d+)\.(\d+)\.(?:downsample|shortcut)\.([01])\.(\w+)$")
_TORCH_CLASSIFIER = re.compile(r"^(fc|linear)\.(weight|bias)$")
_TORCH_PART = re.compile(r"(.*?)(\d*)")  # a name and its trailing number
_TORCH_ORDER = {"": (0, 0), "conv": (0, 0), "bn": (0, 1), "layer": (1, 0), "downsample": (2, 0), "shortcut": (2, 0),
                "fc": (3, 0), "linear": (3, 0), "weight": (0, 0), "bias": (0, 1), "running_mean": (0, 2),
                "running_var": (0, 3), "num_batches_tracked": (0, 4)}


def torch_layer_name(key):
    """Maps a PyTorch parameter name (akamaster or torchvision) to `(our layer, our variable)`.

    Returns `None` for BN's `num_batches_tracked` counters (no Keras counterpart, not needed for inference).

    Raises:
        ValueError: the name has no counterpart in this package's networks.
    """
    if key.endswith("num_batches_tracked"):
        return None
    match = _TORCH_STEM.match(key)
    if match:
        kind, param = match.groups()
        return ("stem_conv", _conv_role(key, param)) if kind == "conv1" else ("stem_bn", _bn_role(key, param))
    match = _TORCH_BLOCK.match(key)
    if match:
        stage, block, kind, index, param = match.groups()
        layer = f"stage{stage}_block{int(block) + 1}_{index}_{kind}"
        return layer, _conv_role(key, param) if kind == "conv" else _bn_role(key, param)
    match = _TORCH_PROJECTION.match(key)
    if match:
        stage, block, index, param = match.groups()
        layer = f"stage{stage}_block{int(block) + 1}_shortcut_proj"
        return (f"{layer}_conv", _conv_role(key, param)) if index == "0" else (f"{layer}_bn", _bn_role(key, param))
    match = _TORCH_CLASSIFIER.match(key)
    if match:
        return CLASSIFIER, "kernel" if match.group(2) == "weight" else "bias"
    raise ValueError(f"tensor {key!r} has no counterpart in keras_resnet's networks (expected conv1, bn1, "
                     "layerS.B.convK / bnK / downsample.0-1, fc or linear).")


def _conv_role(key, param):
    if param not in ("weight", "bias"):
        raise ValueError(f"tensor {key!r}: unexpected convolution parameter {param!r}.")
    return "kernel" if param == "weight" else "bias"


def _bn_role(key, param):
    if param not in _BN_ROLES:
        raise ValueError(f"tensor {key!r}: unexpected batch-normalisation parameter {param!r}.")
    return _BN_ROLES[param]


def torch_order(key):
    """Sort key of a state dict's names in the order PyTorch's ResNets define them (`conv1`, `bn1`, `layer1.0.conv1`,
    ..., `downsample`, `fc`; weight, bias, running statistics): `torch.save` keeps that order, `.safetensors`
    files list names alphabetically, and sorted alike both containers report the same first misfit."""
    parts = []
    for part in key.split("."):
        name, number = _TORCH_PART.fullmatch(part).groups()
        group, rank = _TORCH_ORDER.get(name, (4, 0))
        parts.append((group, int(number or 0), rank, part))
    return parts


def torch_format(state_dict):
    """"akamaster" (classifier `linear`) or "torchvision" (classifier `fc`) for a state dict."""
    return "akamaster" if any(k.startswith("linear.") for k in state_dict) else "torchvision"
