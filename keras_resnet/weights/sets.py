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
- "imagenet-tv2": torchvision's IMAGENET1K_V2 ResNet-50/101/152 (80.9 / 81.9 / 82.3% top-1 as published),
  `stride_in_3x3=True`, evaluated at 232 / 224 bilinear.
- "imagenet-a1": timm's a1_in1k ResNet-18/34/50/101/152 (Wightman et al. 2021, "ResNet strikes back";
  71.5 / 76.4 / 80.4 / 81.5 / 82.0% top-1 at 224 as published), `stride_in_3x3=True` for 50/101/152,
  evaluated at 235 / 224 bicubic. Its files are the GitHub release `.pth`; the same weights on the Hugging
  Face hub (`timm/resnet50.a1_in1k`, `model.safetensors`) load with `weights=PATH`.

Example:
    >>> find_set("cifar10", family="cifar", depth=56, shortcut="A").file_name
    'resnet56-4bfd9763.th'
    >>> entry = find_set("imagenet-tv2", family="imagenet", depth=50, shortcut="B", stride_in_3x3=True)
    >>> entry.file_name, entry.top1, entry.evaluation.resize_size
    ('resnet50-11ad3fa6.pth', 80.858, 232)
"""

from __future__ import annotations

import dataclasses
import re

from keras_resnet.eval_transform import EvalTransform
from keras_resnet.normalization import CAFFE, TF_MODE, TORCH

SET_NAMES = ("cifar10", "imagenet", "imagenet-tv2", "imagenet-a1")
TAGGED_SETS = {
    "imagenet-tv2": "torchvision's IMAGENET1K_V2 (its 2021 recipe), ResNet-50/101/152 with stride_in_3x3=True",
    "imagenet-a1": "timm's a1_in1k (ResNet Strikes Back, procedure A1), ResNet-18/34/50/101/152 "
                   "(stride_in_3x3=True for 50/101/152)",
}
"""Sets named `<data>-<publisher's tag>`: the data the classifier was trained on (its 1,000 ImageNet classes, so
`decode_predictions` applies) and the tag its publisher gives the weights (`IMAGENET1K_V2` in torchvision,
`resnet50.a1_in1k` in timm), short enough to type where `"imagenet"` is typed today."""
AKAMASTER_URL = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
KERAS_APPLICATIONS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
TORCHVISION_URL = "https://download.pytorch.org/models/"
AKAMASTER_LICENCE = "BSD-2-Clause, (c) Yerlan Idelbayev, github.com/akamaster/pytorch_resnet_cifar10"
KERAS_LICENCE = "MIT, Kaiming He's Caffe models (github.com/KaimingHe/deep-residual-networks) via keras-applications"
KERAS_V2_LICENCE = "Apache-2.0, keras-applications (github.com/keras-team/keras-applications)"
TORCHVISION_LICENCE = "BSD-3-Clause, torchvision (github.com/pytorch/vision)"
TIMM_URL = "https://github.com/huggingface/pytorch-image-models/releases/download/v0.1-rsb-weights/"
TIMM_URL_50 = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rsb-weights/"
TIMM_LICENCE = "Apache-2.0, timm (github.com/huggingface/pytorch-image-models), Wightman et al. 2021, arXiv:2110.00476"
TORCHVISION_V2_EVAL = EvalTransform("torchvision IMAGENET1K_V2", resize_size=232, crop_size=224,
                                    interpolation="bilinear")
"""torchvision's `ImageClassification(crop_size=224, resize_size=232)`: Pillow bilinear, antialiased."""
TIMM_A1_EVAL = EvalTransform("timm a1_in1k", resize_size=235, crop_size=224, interpolation="bicubic")
"""timm's `transforms_imagenet_eval` at `input_size` 224, `crop_pct` 0.95: shorter side `floor(224 / 0.95)` = 235,
Pillow bicubic, centre 224 crop (timm also reports the same weights at 288 with crop_pct 1.0)."""


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
        top1: the ImageNet / CIFAR-10 top-1 accuracy (%) its publisher reports, under `evaluation`; None where
            the publisher gives none for this file.
        evaluation: the publisher's evaluation transform (`keras_resnet.eval_transform.EvalTransform`), which
            `keras_resnet.evaluate` and the export use for this set; None: the package's own (256 / 224
            bilinear for ImageNet, the whole 32x32 image for CIFAR).
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
    top1: float = None
    evaluation: EvalTransform = None

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


def _torchvision_v2(depth, file_name, top1):
    entry = _torchvision(depth, file_name, True)
    return dataclasses.replace(entry, name="imagenet-tv2", top1=top1, evaluation=TORCHVISION_V2_EVAL)


def _timm_a1(depth, file_name, top1):
    prefix = file_name.rsplit("-", 1)[1].split(".")[0]
    url = (TIMM_URL_50 if depth == 50 else TIMM_URL) + file_name
    return WeightSet("imagenet-a1", f"resnet{depth}", file_name, url, prefix, "torchvision", 1000,
                     depth >= 50, TORCH, TIMM_LICENCE, "same format", top1, TIMM_A1_EVAL)


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
    _torchvision_v2(50, "resnet50-11ad3fa6.pth", 80.858),
    _torchvision_v2(101, "resnet101-cd907fc2.pth", 81.886),
    _torchvision_v2(152, "resnet152-f82ba261.pth", 82.284),
    _timm_a1(18, "resnet18_a1_0-d63eafa0.pth", 71.504),
    _timm_a1(34, "resnet34_a1_0-46f8f793.pth", 76.420),
    _timm_a1(50, "resnet50_a1_0-14fe96d1.pth", 80.382),
    _timm_a1(101, "resnet101_a1_0-cdcb52a9.pth", 81.494),
    _timm_a1(152, "resnet152_a1_0-2eee8a7a.pth", 81.998),
)
"""Every named set: akamaster CIFAR-10 ResNet-20..1202, keras.applications ResNet50/101/152 and
ResNet50V2/101V2/152V2, torchvision ResNet-18..152 (IMAGENET1K_V1, and IMAGENET1K_V2 for 50/101/152), timm's
a1_in1k ResNet-18..152. Top-1 of the tagged sets: torchvision's `_metrics` (acc@1) and timm's
`results-imagenet.csv` at 224 (crop_pct 0.95)."""


def _offered(name):
    models = sorted({s.model for s in NAMED_SETS if s.name == name},
                    key=lambda m: (int(re.search(r"\d+", m).group()), m))
    return f"{name!r} exists for {', '.join(models)} ({'option A' if name == 'cifar10' else 'option B'})"


def find_set(name, *, family, depth, shortcut, stride_in_3x3=False, variant=""):
    """The `WeightSet` for `weights=name` on a network, or a `ValueError` naming `weights`.

    Args:
        name: one of `SET_NAMES` ("cifar10", "imagenet", or a tagged ImageNet set, `TAGGED_SETS`).
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
    if name in TAGGED_SETS:
        wanted_stride = depth in (50, 101, 152)
        if wanted_stride and not stride_in_3x3 and not variant:
            raise ValueError(f"`weights`={name!r} ({TAGGED_SETS[name]}) was trained with the stride in the 3x3 "
                             f"convolution: build the ResNet-{depth} with stride_in_3x3=True; received "
                             f"stride_in_3x3={stride_in_3x3!r}.")
    for entry in NAMED_SETS:
        if entry.name == name and entry.model == f"resnet{depth}{variant}" and entry.stride_in_3x3 == wanted_stride:
            return entry
    raise ValueError(f"`weights`={name!r} does not fit the {label}: {_offered(name)}.")
