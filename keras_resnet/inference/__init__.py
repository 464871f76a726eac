"""Inference graphs built for speed: batch-norm folding and an ONNX writer for the package's networks.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016: every
convolution is followed by BN (section 3.4), which at inference is a per-channel affine map that folds
exactly into the convolution.

Example:
    >>> import keras_resnet
    >>> from keras_resnet.inference import fold_batch_norms
    >>> folded, pairs = fold_batch_norms(keras_resnet.ResNet20())
"""

from keras_resnet.inference.fold import fold_batch_norms, foldable_pairs, folded_weights

__all__ = ["fold_batch_norms", "foldable_pairs", "folded_weights", "onnx_graph"]


def __getattr__(name):
    # `onnx_graph` needs the optional `onnx` package: imported on first use only.
    if name == "onnx_graph":
        import importlib

        return importlib.import_module("keras_resnet.inference.onnx_graph")
    raise AttributeError(f"module 'keras_resnet.inference' has no attribute {name!r}")
