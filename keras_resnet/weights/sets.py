"""The named sets of pretrained weights: `weights="cifar10"` and `weights="imagenet"`.

Each entry names the published file (upstream URL and hash), its format, its licence, how its inputs were
normalised and whether this package's conversion of it was verified against the real file or only against
files of the same format made here (see the README's "Pretrained weights").

- "cifar10": the option-A CIFAR-10 ResNets of akamaster/pytorch_resnet_cifar10 (the paper's architecture,
  section 4.2), BSD 2-clause.
- "imagenet": keras.applications' ResNet50/101/152 (the paper's Caffe models, stride in the first 1x1) for
  the default `stride_in_3x3=False`; torchvision's ResNet-18/34 and, under `stride_in_3x3=True`, its
  ResNet-50/101/152 ("v1.5": stride in the 3x3), IMAGENET1K_V1 weights; keras.applications' pre-activation
  ResNet50V2/101V2/152V2 (`variant="v2"`, inputs in [-1, 1]).

Example:
    >>> find_set("cifar10", family="cifar", depth=56, shortcut="A").file_name
    'resnet56-4bfd9763.th'
"""

from __future__ import annotations

import dataclasses

import re

from keras_resnet.normalization import CAFFE, TF_MODE, TORCH

SET_NAMES = ("cifar10", "imagenet")
AKAMASTER_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
TORCHVISION_URL = "https://download.pytorch.org/models/"
AKAMASTER_LICENCE = "BSD-2-Clause, (c) Yerlan Idelbayev, github.com/akamaster/pytorch_resnet_cifar10"
KERAS_LICENCE = "MIT, Kaiming He's Caffe models (github.com/KaimingHe/deep-residual-networks) via keras-applications"
KERAS_V2_LICENCE = "Apache-2.0, keras-applications (github.com/keras-team/keras-applications)"
TORCHVISION_LICENCE = "BSD-3-Clause, torchvision (github.com/pytorch/vision)"


@dataclasses.dataclass(frozen=True)
class WeightSet:
    """One published file of pretrained weights for one network.

    Attributes:
        name: the set's name, "cifar10" or "imagenet".
        model: the network, e.g. "resnet56".
        file_name: the upstream file name (what to place in `KERAS_RESNET_WEIGHTS` when offline).
        url: the upstream URL.
        file_hash: the full SHA-256 (64 hex), the MD5 that keras.applications publishes (32 hex), or the
            first 8 hex digits of the SHA-256 where only those are known (torch.hub's file-name convention).
        source_format: "akamaster", "torchvision" or "keras_applications" (see `keras_resnet.weights.formats`).
        classes: the classifier's width in the file.
        stride_in_3x3: the `stride_in_3x3` the file needs (bottleneck models only).
        preprocessing: the input normalisation the weights were trained with.
        licence: the licence of the weights and where they come from.
        verified: "real file" where this package's conversion was checked against the published file,
            "same format" where only against files of its format made here.
    """

    name: str
    model: str
    file_name: str
    url: str
    file_hash: str
    source_format: str
    classes: int
    stride_in_3x3: bool
    preprocessing: object
    licence: str
    verified: str

    @property
    def hash_algorithm(self):
        """"sha256" (full), "md5", or "sha256-prefix" (only the first 8 hex digits are known)."""
        return {64: "sha256", 32: "md5"}.get(len(self.file_hash), "sha256-prefix")

    @property
    def cache_name(self):
        """File name of the converted `.weights.h5`, unique to this file (its hash prefix is in the name)."""
        layout = "_v15" if self.stride_in_3x3 else ""
        return f"keras_resnet-{self.model}{layout}-{self.name}-{self.file_hash[:8]}.weights.h5"


def _akamaster(depth, file_hash, verified):
    prefix = file_hash[:8]
    return WeightSet("cifar10", f"resnet{depth}", f"resnet{depth}-{prefix}.th",
                     f"{AKAMASTER_URL}resnet{depth}-{prefix}.th", file_hash, "akamaster", 10, False, TORCH,
                     AKAMASTER_LICENCE, verified)


def _keras_applications(depth, md5):
    file_name = f"resnet{depth}_weights_tf_dim_ordering_tf_kernels.h5"
    return WeightSet("imagenet", f"resnet{depth}", file_name, KERAS_APPLICATIONS_URL + file_name, md5,
                     "keras_applications", 1000, False, CAFFE, KERAS_LICENCE, "same format")


def _keras_applications_v2(depth, md5):
    file_name = f"resnet{depth}v2_weights_tf_dim_ordering_tf_kernels.h5"
    return WeightSet("imagenet", f"resnet{depth}v2", file_name, KERAS_APPLICATIONS_URL + file_name, md5,
                     "keras_applications", 1000, False, TF_MODE, KERAS_V2_LICENCE, "same format")


def _torchvision(depth, file_name, stride_in_3x3):
    prefix = file_name.rsplit("-", 1)[1].split(".")[0]
    return WeightSet("imagenet", f"resnet{depth}", file_name, TORCHVISION_URL + file_name, prefix,
                     "torchvision", 1000, stride_in_3x3, TORCH, TORCHVISION_LICENCE, "same format")


NAMED_SETS = (
    _akamaster(20, "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", "real file"),
    _akamaster(32, "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", "real file"),
    _akamaster(44, "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", "real file"),
    _akamaster(56, "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", "real file"),
    _akamaster(110, "1d1ed7c2", "same format"),
    _akamaster(1202, "f3b1deed", "same format"),
    _keras_applications(50, "2cb95161c43110f7111970584f804107"),
    _keras_applications(101, "f1aeb4b969a6efcfb50fad2f0c20cfc5"),
    _keras_applications(152, "100835be76be38e30d865e96f2aaae62"),
    _keras_applications_v2(50, "3ef43a0b657b3be2300d5770ece849e0"),
    _keras_applications_v2(101, "6343647c601c52e1368623803854d971"),
    _keras_applications_v2(152, "a49b44d1979771252814e80f8ec446f9"),
    _torchvision(18, "resnet18-f37072fd.pth", False),
    _torchvision(34, "resnet34-b627a593.pth", False),
    _torchvision(50, "resnet50-0676ba61.pth", True),
    _torchvision(101, "resnet101-63fe2227.pth", True),
    _torchvision(152, "resnet152-394f9c45.pth", True),
)
"""Every named set: akamaster CIFAR-10 ResNet-20..1202, keras.applications ResNet50/101/152 and
ResNet50V2/101V2/152V2, torchvision ResNet-18..152."""


def _offered(name):
    models = sorted({s.model for s in NAMED_SETS if s.name == name},
                    key=lambda m: (int(re.search(r"\d+", m).group()), m))
    return f"{name!r} exists for {', '.join(models)} ({'option A' if name == 'cifar10' else 'option B'})"


def find_set(name, *, family, depth, shortcut, stride_in_3x3=False, variant=""):
    """The `WeightSet` for `weights=name` on a network, or a `ValueError` naming `weights`.

    Args:
        name: "cifar10" or "imagenet".
        family: "cifar" or "imagenet", the network's family.
        depth: int, the network's depth.
        shortcut: the network's `shortcut` ("A", "B", "C" or None for a plain network).
        stride_in_3x3: the network's `stride_in_3x3` (selects torchvision's files for ResNet-50/101/152).
        variant: "" for the first paper's networks, "v2" for keras.applications' pre-activation ones.

    Raises:
        ValueError: no such set for this network (another depth or family, a plain net, another shortcut).
    """
    kind = "plain" if shortcut is None else "resnet"
    label = f"{'CIFAR' if family == 'cifar' else 'ImageNet'} {kind}{depth}{variant} with shortcut={shortcut!r}"
    expected_family = "cifar" if name == "cifar10" else "imagenet"
    expected_shortcut = "A" if name == "cifar10" else "B"
    if family != expected_family or shortcut != expected_shortcut:
        raise ValueError(f"`weights`={name!r} does not fit the {label}: {_offered(name)}.")
    wanted_stride = bool(stride_in_3x3) and name == "imagenet" and depth in (50, 101, 152)
    for entry in NAMED_SETS:
        if entry.name == name and entry.model == f"resnet{depth}{variant}" and entry.stride_in_3x3 == wanted_stride:
            return entry
    raise ValueError(f"`weights`={name!r} does not fit the {label}: {_offered(name)}.")
