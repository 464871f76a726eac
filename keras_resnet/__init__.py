"""keras-resnet: the residual networks of He et al. (2015) for Keras 3.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385).

Example:
    >>> import keras_resnet
    >>> model = keras_resnet.ResNet56()
    >>> keras_resnet.profile(model).macs  # multiply-adds of one forward pass
    125485696
    >>> pretrained = keras_resnet.ResNet56(weights="cifar10")  # needs a published weights file  # doctest: +SKIP
"""

from keras_resnet.startup import freeze_if_command_line_tool, prefer_onednn, quiet_if_command_line_tool

prefer_onednn()  # TensorFlow's oneDNN kernels on every x86-64 CPU, not only AVX-512 ones (3.3x on AVX2, see there)
quiet_if_command_line_tool()  # `python -m trainers.* | keras_resnet.*`: no TensorFlow start-up banners (see there)

from keras_resnet import recipes  # noqa: E402  registers the schedules that .keras checkpoints carry
from keras_resnet.batch_norm import BatchNormalization
from keras_resnet.backbone import features, pyramid_levels
from keras_resnet.blocks import SHORTCUTS, ZeroPadShortcut, basic_block, bottleneck_block
from keras_resnet.cifar import cifar_resnet
from keras_resnet.imagenet import IMAGENET_SPECS, imagenet_resnet
from keras_resnet.imagenet_classes import decode_predictions
from keras_resnet.imagenet_v2 import imagenet_resnet_v2
from keras_resnet.preactivation import preact_cifar_resnet
from keras_resnet.registry import MODELS, build
from keras_resnet import weights  # pretrained weights: named sets, converters (python -m keras_resnet.weights)
from keras_resnet.weights import preprocess_input

freeze_if_command_line_tool()  # the tools' start-up objects out of the collector's sight (see there)

__version__ = "0.1.0"


def __getattr__(name):
    # `profile` is imported on first use, so that `python -m keras_resnet.profile` finds it unimported.
    if name == "profile":
        import importlib

        return importlib.import_module("keras_resnet.profile")
    raise AttributeError(f"module 'keras_resnet' has no attribute {name!r}")


ResNet20 = MODELS["resnet20"]
ResNet32 = MODELS["resnet32"]
ResNet44 = MODELS["resnet44"]
ResNet56 = MODELS["resnet56"]
ResNet110 = MODELS["resnet110"]
ResNet1202 = MODELS["resnet1202"]
PlainNet20 = MODELS["plain20"]
PlainNet32 = MODELS["plain32"]
PlainNet44 = MODELS["plain44"]
PlainNet56 = MODELS["plain56"]
PlainNet110 = MODELS["plain110"]
ResNet18 = MODELS["resnet18"]
ResNet34 = MODELS["resnet34"]
ResNet50 = MODELS["resnet50"]
ResNet101 = MODELS["resnet101"]
ResNet152 = MODELS["resnet152"]
PlainNet18 = MODELS["plain18"]
PlainNet34 = MODELS["plain34"]
PreActResNet110 = MODELS["preact_resnet110"]
PreActResNet164 = MODELS["preact_resnet164"]
PreActResNet1001 = MODELS["preact_resnet1001"]
ResNet50V2 = MODELS["resnet50v2"]
ResNet101V2 = MODELS["resnet101v2"]
ResNet152V2 = MODELS["resnet152v2"]

__all__ = [
    "BatchNormalization",
    "IMAGENET_SPECS",
    "MODELS",
    "SHORTCUTS",
    "ZeroPadShortcut",
    "basic_block",
    "bottleneck_block",
    "build",
    "decode_predictions",
    "features",
    "cifar_resnet",
    "imagenet_resnet",
    "imagenet_resnet_v2",
    "preact_cifar_resnet",
    "preprocess_input",
    "pyramid_levels",
    "profile",
    "recipes",
    "weights",
    *[name for name in dir() if name.startswith(("ResNet", "PlainNet", "PreActResNet"))],
]
