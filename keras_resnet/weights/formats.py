"""Readers of the published weight formats, mapped onto this package's layer names.

Every reader returns a *tensor table*: `{layer_name: {variable_name: (array, source_key)}}` in Keras layout
(convolution kernels `(kh, kw, in, out)`, dense kernels `(in, out)`), where `layer_name` is one of ours
(`stem_conv`, `stage2_block1_1_bn`, `stage3_block1_shortcut_proj_conv`, `predictions`; see
`keras_resnet.blocks`) and `source_key` is the tensor's name in the file, for error messages.

Formats:

- "akamaster": `torch.save` of `{"state_dict": ..., "best_prec1": ...}` with `module.`-prefixed names
  (`module.layer2.0.conv1.weight`, `module.linear.weight`), github.com/akamaster/pytorch_resnet_cifar10.
- "torchvision": a plain state dict (`layer2.0.downsample.0.weight`, `fc.weight`).
- "safetensors": either state dict in a `.safetensors` file (Hugging Face's format; timm's ResNets use
  torchvision's names), read with the `safetensors` package's NumPy backend, no PyTorch. float16, bfloat16
  (through `ml_dtypes`, which Keras installs) and float64 tensors load as float32.
- "keras_applications": the Keras-2-era weights-only HDF5 of keras.applications' ResNet50/101/152 (root
  attribute `layer_names`, one group per layer with attribute `weight_names`; names such as
  `conv3_block1_0_conv`). Its convolutions carry biases, which fold exactly into the following BN's moving
  mean (`mean - bias`), and its BN epsilon 1.001e-5 folds exactly into the moving variance. The same layout
  holds the pre-activation ResNet50V2/101V2/152V2 (`conv2_block1_preact_bn`, `post_bn`): those map one to one
  onto `keras_resnet.imagenet_resnet_v2`, which has keras.applications' biases and epsilon.

PyTorch is imported only by `read_torch` and `safetensors` only by `read_safetensors`, so both stay optional
dependencies; the two share `state_dict_table`, one mapping of PyTorch names and layouts onto ours
(`keras_resnet.weights.state_dicts`).

Example:
    >>> detect_format("resnet18.a1_in1k/model.safetensors"), detect_format("resnet50-0676ba61.pth")
    ('safetensors', 'torch')
"""

from __future__ import annotations

import os
import re

import numpy as np

from keras_resnet.blocks import BN_EPSILON
from keras_resnet.weights.state_dicts import CLASSIFIER, torch_format, torch_layer_name, torch_order

SOURCE_FORMATS = ("akamaster", "torchvision", "torch", "safetensors", "keras_applications")
"""Formats `read_source` takes; "torch" (a `torch.save` file) and "safetensors" (a `.safetensors` file) hold
either of the PyTorch layouts (they share names), which the file's names tell apart."""
KERAS_APPLICATIONS_BN_EPSILON = 1.001e-5
TORCH_EXTENSIONS = (".th", ".pth", ".pt")
TORCH_LAYOUTS = ("akamaster", "torchvision", "torch")
SAFETENSORS_EXTENSIONS = (".safetensors",)
LEGACY_H5_EXTENSIONS = (".h5", ".hdf5")

_KERAS_BLOCK = re.compile(r"^conv(\d)_block(\d+)_(\d)_(conv|bn)$")
_KERAS_STEM = {"conv1_conv": "stem_conv", "conv1_bn": "stem_bn", CLASSIFIER: CLASSIFIER}
_KERAS_V2_BLOCK = re.compile(r"^conv([2-5])_(block\d+_(?:preact_bn|[0-3]_conv|[12]_bn))$")
_KERAS_V2_OTHERS = {"conv1_conv": "stem_conv", "post_bn": "post_bn", CLASSIFIER: CLASSIFIER}


class WeightsFileError(ValueError):
    """A weights file the user named that cannot be used: missing, a directory, unreadable (truncated,
    garbage, another format) or holding another network. `str()` is one line naming the file; `path` and
    `reason` let a command line name its own flag (`--weights=PATH: reason`, exit 2)."""

    def __init__(self, path, reason, message=None):
        super().__init__(message or f"{path}: {reason}")
        self.path, self.reason = os.fspath(path), reason


def first_line(error):
    """`Type: the first line of its message`: a library's multi-line error in one line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0].strip() if text else ''}".rstrip(": ")


def load_torch_state_dict(path):
    """The state dict of a PyTorch file as `{name: float32 NumPy array}`, `module.` prefixes removed.

    Reads with `torch.load(weights_only=True)` (no code from the file runs) and unwraps akamaster's
    `{"state_dict": ...}` checkpoints.

    Raises:
        ImportError: PyTorch is not installed (`pip install "keras-resnet[torch]"`).
        ValueError: the file is not a readable PyTorch state dict (truncated, another format).
    """
    try:
        import torch
    except ImportError:
        raise ImportError(f"reading the PyTorch file {path} needs PyTorch: pip install 'keras-resnet[torch]' "
                          "(or pip install torch).") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        raise WeightsFileError(path, f"not a readable PyTorch file ({first_line(error)}); it may be truncated or "
                                     "of another format.") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsFileError(path, "expected a state dict (names -> tensors) or {'state_dict': ...}; found "
                                     f"{type(obj).__name__}.")
    return {k.removeprefix("module."): v.detach().cpu().float().numpy() for k, v in obj.items()}


def state_dict_table(state_dict, path):
    """`(tensor table, "akamaster" or "torchvision")` of a PyTorch state dict `{name: NumPy array}`.

    Names are taken in `torch_order`, kernels transposed to Keras' layout, BN's `num_batches_tracked` counters
    skipped and convolution biases folded (`fold_conv_biases`); arrays become float32.

    Raises:
        WeightsFileError: a tensor name with no counterpart in this package's networks, naming `path`.
    """
    table = {}
    for key in sorted(state_dict, key=torch_order):
        array = state_dict[key]
        try:
            target = torch_layer_name(key)
        except ValueError as error:
            raise WeightsFileError(path, str(error)) from None
        if target is None:
            continue
        layer, role = target
        if role == "kernel":
            array = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array.T
        _put(table, layer, role, np.ascontiguousarray(array, np.float32), key, path)
    return fold_conv_biases(table), torch_format(state_dict)


def read_torch(path):
    """`(tensor table, "akamaster" or "torchvision")` of a PyTorch file (see the module docstring)."""
    return state_dict_table(load_torch_state_dict(path), path)


def load_safetensors_state_dict(path):
    """The tensors of a `.safetensors` file as `{name: NumPy array}`, floating-point ones as float32.

    Reads with `safetensors.safe_open(framework="numpy")` (no PyTorch; nothing in the file is executed).
    Integer tensors are kept only for BN's `num_batches_tracked` counters.

    Raises:
        ImportError: the `safetensors` package is not installed (`pip install 'keras-resnet[safetensors]'`).
        WeightsFileError: the file is not a readable safetensors file (truncated, another format), or holds a
            tensor that is not floating point or that NumPy cannot hold (float8).
    """
    try:
        from safetensors import safe_open
    except ImportError:
        raise ImportError(f"reading the safetensors file {path} needs the safetensors package: pip install "
                          "'keras-resnet[safetensors]' (or pip install safetensors).") from None
    import ml_dtypes  # noqa: F401 - a Keras dependency; gives NumPy the bfloat16 of the hub's half-precision files
    try:
        handle = safe_open(os.fspath(path), framework="numpy")
    except Exception as error:  # SafetensorError (bad header, truncated), OSError (a directory, unreadable)
        raise WeightsFileError(path, f"not a readable safetensors file ({first_line(error)}); it may be truncated "
                                     "or of another format.") from None
    with handle:
        return {key: _safetensors_array(handle, key, path) for key in handle.keys()}


def _safetensors_array(handle, key, path):
    """One tensor of an open safetensors file: float32 if floating point, as is for `num_batches_tracked`."""
    dtype = handle.get_slice(key).get_dtype()  # safetensors' names: F32, F16, BF16, F64, F8_E4M3, I64, BOOL, ...
    if not dtype.startswith(("F", "BF")) and not key.endswith("num_batches_tracked"):
        raise WeightsFileError(path, f"tensor {key!r} is {dtype}; accepted: floating-point tensors (F32, F16, BF16, "
                                     "F64), and integers only for BN's num_batches_tracked.")
    try:
        array = handle.get_tensor(key)
    except (TypeError, AttributeError) as error:  # a dtype safetensors' NumPy backend lacks (float8)
        raise WeightsFileError(path, f"tensor {key!r} is {dtype}, which NumPy cannot hold ({first_line(error)}); "
                                     "accepted: F32, F16, BF16 or F64 (save the state dict as float32).") from None
    return array.astype(np.float32) if dtype.startswith(("F", "BF")) else array


def read_safetensors(path):
    """`(tensor table, "akamaster" or "torchvision")` of a `.safetensors` state dict (see the module docstring)."""
    return state_dict_table(load_safetensors_state_dict(path), path)


def keras_layer_name(name):
    """Maps a keras.applications ResNet layer name (`conv4_block3_2_bn`, `conv2_block1_0_conv`) to ours.

    Raises:
        ValueError: a weighted layer with no counterpart in this package's networks.
    """
    if name in _KERAS_STEM:
        return _KERAS_STEM[name]
    match = _KERAS_BLOCK.match(name)
    if not match or not 2 <= int(match.group(1)) <= 5:
        raise ValueError(f"layer {name!r} has no counterpart in keras_resnet's networks (expected conv1_conv, "
                         "conv1_bn, convN_blockB_K_conv / _bn or predictions, as in keras.applications' ResNets).")
    stage, block, index, kind = match.groups()
    middle = "shortcut_proj" if index == "0" else index
    return f"stage{int(stage) - 1}_block{block}_{middle}_{kind}"


def keras_v2_layer_name(name):
    """Maps a keras.applications ResNet50V2/101V2/152V2 layer name (`conv3_block2_preact_bn`) to ours
    (`stage2_block2_preact_bn`, `keras_resnet.imagenet_v2`).

    Raises:
        ValueError: a weighted layer with no counterpart in the V2 networks.
    """
    if name in _KERAS_V2_OTHERS:
        return _KERAS_V2_OTHERS[name]
    match = _KERAS_V2_BLOCK.match(name)
    if not match:
        raise ValueError(f"layer {name!r} has no counterpart in keras_resnet's V2 networks (expected conv1_conv, "
                         "convN_blockB_preact_bn, _K_conv, _K_bn, post_bn or predictions, as keras.applications').")
    return f"stage{int(match.group(1)) - 1}_{match.group(2)}"


def is_keras_v2(layer_names):
    """Whether keras.applications layer names are those of a pre-activation (V2) ResNet."""
    return any(name == "post_bn" or name.endswith("_preact_bn") for name in layer_names)


def _decode(values):
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def read_keras_h5(path):
    """Tensor table of a keras.applications Keras-2-era `.h5` weights file (see the module docstring)."""
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise WeightsFileError(path, f"not a readable HDF5 file ({first_line(error)}); it may be truncated.") from None
    table = {}
    with handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in group.attrs:
            raise WeightsFileError(path, "no `layer_names` attribute, so not a Keras-2 weights file as "
                                         "keras.applications publishes (a Keras 3 file ends in .weights.h5 and loads "
                                         "as is).")
        layer_names = _decode(group.attrs["layer_names"])
        v2 = is_keras_v2(layer_names)
        try:
            for layer_name in layer_names:
                for weight_name in _decode(group[layer_name].attrs.get("weight_names", [])):
                    role = weight_name.split("/")[-1].split(":")[0]
                    array = np.asarray(group[layer_name][weight_name], np.float32)
                    ours = keras_v2_layer_name(layer_name) if v2 else keras_layer_name(layer_name)
                    _put(table, ours, role, array, f"{layer_name}/{weight_name}", path)
        except (KeyError, OSError) as error:
            raise WeightsFileError(path, f"unreadable Keras-2 weights ({first_line(error)}); it may be truncated.") from None
    if v2:  # the V2 networks keep keras.applications' biases and BN epsilon
        return table
    _adjust_bn_epsilon(table, KERAS_APPLICATIONS_BN_EPSILON)
    return fold_conv_biases(table)


def keras_h5_is_v2(path):
    """Whether a keras.applications Keras-2 `.h5` holds a pre-activation (V2) ResNet (False if unreadable)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            group = handle["model_weights"] if "model_weights" in handle else handle
            return is_keras_v2(_decode(group.attrs.get("layer_names", [])))
    except (OSError, KeyError):
        return False


def _put(table, layer, role, array, key, path):
    entry = table.setdefault(layer, {})
    if role in entry:
        raise ValueError(f"{path}: tensors {entry[role][1]!r} and {key!r} both map to {layer}/{role}.")
    entry[role] = (array, key)


def _adjust_bn_epsilon(table, source_epsilon):
    """moving_variance + (source epsilon - ours): identical `1 / sqrt(variance + epsilon)` with our epsilon."""
    for entry in table.values():
        if "moving_variance" in entry:
            variance, key = entry["moving_variance"]
            entry["moving_variance"] = (variance + np.float32(source_epsilon - BN_EPSILON), key)


def fold_conv_biases(table):
    """Folds every convolution bias into the following BN: `BN(conv(x) + b)` with mean m is `BN(conv(x))`
    with mean `m - b`, exactly. Our convolutions (as the paper's) have no bias.

    Raises:
        ValueError: a convolution bias with no BN of the same prefix to fold into.
    """
    for layer in [name for name in table if name.endswith("_conv") and "bias" in table[name]]:
        bias, bias_key = table[layer].pop("bias")
        bn = table.get(layer[: -len("_conv")] + "_bn", {})
        if "moving_mean" not in bn:
            raise ValueError(f"convolution bias {bias_key!r} of {layer} has no following BN moving mean to fold into.")
        mean, mean_key = bn["moving_mean"]
        if mean.shape != bias.shape:
            raise ValueError(f"convolution bias {bias_key!r} {bias.shape} does not fit BN mean {mean_key!r} {mean.shape}.")
        bn["moving_mean"] = (mean - bias, f"{mean_key} - {bias_key}")
    return table


def detect_format(path):
    """The source format of a file from its name: "torch" (an akamaster or torchvision PyTorch file),
    "safetensors" (a `.safetensors` state dict of either layout), "keras_applications" (a Keras-2 `.h5`),
    or "keras" (a Keras 3 `.weights.h5` / `.keras` file).

    Raises:
        ValueError: an extension none of the readers takes.
    """
    name = os.path.basename(str(path)).lower()
    if name.endswith((".weights.h5", ".keras")):
        return "keras"
    if name.endswith(LEGACY_H5_EXTENSIONS):
        return "keras_applications"
    if name.endswith(TORCH_EXTENSIONS):
        return "torch"
    if name.endswith(SAFETENSORS_EXTENSIONS):
        return "safetensors"
    raise WeightsFileError(path, "unknown weights format; accepted: .weights.h5 or .keras (Keras 3), "
                                 f"{', '.join(TORCH_EXTENSIONS)} (akamaster / torchvision PyTorch files), "
                                 f"{', '.join(SAFETENSORS_EXTENSIONS)} (torchvision / timm state dicts), "
                                 f"{', '.join(LEGACY_H5_EXTENSIONS)} (keras.applications' Keras-2 files).")


def read_source(path, source_format):
    """`(tensor table, format)` of `path` in `source_format` (one of `SOURCE_FORMATS`); "torch" and
    "safetensors" resolve to "akamaster" or "torchvision" from the file's names. A PyTorch layout named for a
    `.safetensors` file reads it as safetensors, so a resolved format reads its file again."""
    if source_format == "safetensors" or (source_format in TORCH_LAYOUTS and
                                          os.fspath(path).lower().endswith(SAFETENSORS_EXTENSIONS)):
        return read_safetensors(path)
    if source_format in TORCH_LAYOUTS:
        return read_torch(path)
    if source_format == "keras_applications":
        return read_keras_h5(path), source_format
    raise ValueError(f"`source_format` must be one of {SOURCE_FORMATS}; received {source_format!r}.")
