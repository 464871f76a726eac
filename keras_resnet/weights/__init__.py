"""Pretrained weights for the networks of He et al. (2015): named sets, converters, preprocessing.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016. Because the
networks here are exactly the paper's (option A on CIFAR, the Caffe stride placement or torchvision's
`stride_in_3x3` on ImageNet), the published trained models load without approximation:

- `weights="cifar10"`: akamaster/pytorch_resnet_cifar10's ResNet-20/32/44/56/110/1202 (option A);
- `weights="imagenet"`: keras.applications' ResNet50/101/152 and torchvision's ResNet-18..152;
- `weights="imagenet-tv2"` / `"imagenet-a1"`: torchvision's IMAGENET1K_V2 and timm's a1_in1k weights, each
  with its publisher's top-1 and evaluation transform (`TAGGED_SETS`, `keras_resnet.eval_transform`);
- `weights=PATH`: a `.weights.h5` / `.keras` file, or any published format below (`.th`, `.pth`, `.h5`,
  `.safetensors`).

Converters (PyTorch, an optional extra, is imported only to read `.th` / `.pth` files; `safetensors`, another,
only for `.safetensors`) match tensors by layer name and shape and fail on the first that does not fit; from
the command line:

    python -m keras_resnet.weights convert --from=resnet56-4bfd9763.th --model=resnet56 \\
        --output=resnet56.weights.h5

Example:
    >>> import keras_resnet
    >>> model = keras_resnet.ResNet56(weights="cifar10")  # needs a published weights file  # doctest: +SKIP
    >>> x = keras_resnet.weights.preprocess_input(images, weights="cifar10")  # needs a published weights file  # doctest: +SKIP
"""

from keras_resnet.weights.api import (
    WeightsRequest,
    check_weights,
    convert,
    load_weights,
    named_set_entry,
    preprocess_input,
    preprocessing_of,
)
from keras_resnet.weights.assign import read_metadata, write_weights
from keras_resnet.weights.fetch import WEIGHTS_ENV, WeightsUnavailableError, fetch, keras_cache_dir, weights_dirs
from keras_resnet.normalization import CAFFE, TF_MODE, TORCH, Preprocessing
from keras_resnet.weights.sets import NAMED_SETS, SET_NAMES, TAGGED_SETS, WeightSet, find_set
from keras_resnet.weights.formats import SOURCE_FORMATS, WeightsFileError, detect_format, read_source

__all__ = [
    "CAFFE",
    "TF_MODE",
    "NAMED_SETS",
    "SET_NAMES",
    "SOURCE_FORMATS",
    "TAGGED_SETS",
    "TORCH",
    "WEIGHTS_ENV",
    "Preprocessing",
    "WeightSet",
    "WeightsRequest",
    "WeightsFileError",
    "WeightsUnavailableError",
    "check_weights",
    "convert",
    "detect_format",
    "fetch",
    "find_set",
    "keras_cache_dir",
    "load_weights",
    "named_set_entry",
    "preprocess_input",
    "preprocessing_of",
    "read_metadata",
    "read_source",
    "weights_dirs",
    "write_weights",
]
