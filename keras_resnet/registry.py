"""The model registry: named constructors, `MODELS` and `build(name)`.

Names are derived from the depth (`resnet56`, `plain20`, `resnet50`), never typed twice. CIFAR depths are
6n+2 and ImageNet depths are the rows of Table 1; a name outside `MODELS` such as `resnet8` still builds
through `build`, as long as its depth is valid for one of the families (ImageNet wins for 50 and 152, which
are also of the form 6n+2).
"""

from __future__ import annotations

import dataclasses
import inspect
import re

from keras_resnet.cifar import cifar_blocks_per_stage, cifar_resnet
from keras_resnet.imagenet import IMAGENET_SPECS, imagenet_resnet
from keras_resnet.imagenet_v2 import V2_DEPTHS, imagenet_resnet_v2
from keras_resnet.preactivation import preact_block_of, preact_cifar_resnet

CIFAR_DEPTHS = (20, 32, 44, 56, 110, 1202)
CIFAR_PLAIN_DEPTHS = (20, 32, 44, 56, 110)
IMAGENET_DEPTHS = tuple(IMAGENET_SPECS)
IMAGENET_PLAIN_DEPTHS = (18, 34)
PREACT_DEPTHS = (110, 164, 1001)
"""The pre-activation CIFAR networks of He et al. (2016b): ResNet-110 (basic units), 164 and 1001 (bottleneck)."""

_NAME = re.compile(r"^(resnet|plain|preact_resnet)(\d+)(v2)?$")


APPLICATIONS_ORDER = (
    "include_top",
    "weights",
    "input_tensor",
    "input_shape",
    "pooling",
    "classes",
    "classifier_activation",
    "name",
)
"""keras.applications' argument order, which the named constructors follow; the family's own arguments
(`shortcut`, `zero_init_residual`, `kernel_regularizer`, `stride_in_3x3`) come after."""


def constructor_signature(builder, depth, plain):
    """The explicit signature of a named constructor: every argument of `builder` except `depth`.

    Defaults are the builder's, except `name` (`resnet<depth>` / `plain<depth>`, as keras.applications
    shows `name='resnet50'`) and, for plain networks, `shortcut=None`.
    """
    builder_parameters = dict(inspect.signature(builder).parameters)
    del builder_parameters["depth"]
    defaults = {key: parameter.default for key, parameter in builder_parameters.items()}
    defaults["name"] = model_label(builder, depth, plain)[1]
    if plain:
        defaults["shortcut"] = None
    order = [key for key in APPLICATIONS_ORDER if key in defaults]
    order += [key for key in builder_parameters if key not in order]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    return inspect.Signature([inspect.Parameter(key, kind, default=defaults[key]) for key in order])


def make_constructor(builder, depth, plain):
    """Returns a named constructor such as `ResNet56(include_top=True, weights=None, ...)` over `builder`.

    The constructor has an explicit signature (`inspect.signature`, `help()` and notebook tooltips show every
    argument with its default); an argument it does not list is a `TypeError`, as for any function.
    """
    family = "ImageNet" if builder in (imagenet_resnet, imagenet_resnet_v2) else "CIFAR"
    label, model_name = model_label(builder, depth, plain)
    signature = constructor_signature(builder, depth, plain)

    def constructor(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        if plain and arguments["shortcut"] is not None:
            raise ValueError(f"{label} is a plain network; received `shortcut`={arguments['shortcut']!r}.")
        return builder(depth, **arguments)

    constructor.__name__ = constructor.__qualname__ = label
    constructor.__signature__ = signature
    kind = "plain counterpart (no shortcuts) of the " if plain else ""
    pretrained = "" if plain or builder in (preact_cifar_resnet, imagenet_resnet_v2) else _pretrained_note(family,
                                                                                                           depth)
    preact = builder in (preact_cifar_resnet, imagenet_resnet_v2)
    reference = ('He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016' if preact
                 else 'He et al., "Deep Residual Learning for Image Recognition", CVPR 2016')
    constructor.__doc__ = f"""The {kind}{'pre-activation ' if preact else ''}{family} ResNet-{depth} of He et al. \
({'2016b' if preact else '2015'}).

    Reference: {reference}.
    {pretrained}
    Args:
        {", ".join(f"`{key}`" for key in signature.parameters)}: as for
            `keras_resnet.{builder.__name__}` (see there), without `depth`.

    Returns:
        A `keras.Model` named `{model_name}` unless `name` says otherwise.

    Example:
        >>> import keras_resnet
        >>> model = keras_resnet.{label}()
    """
    return constructor


def model_label(builder, depth, plain):
    """`(constructor name, model name)`: `("ResNet56", "resnet56")`, `("PlainNet20", "plain20")`,
    `("PreActResNet164", "preact_resnet164")`."""
    if builder is preact_cifar_resnet:
        return f"PreActResNet{depth}", f"preact_resnet{depth}"
    if builder is imagenet_resnet_v2:
        return f"ResNet{depth}V2", f"resnet{depth}v2"
    return (f"PlainNet{depth}", f"plain{depth}") if plain else (f"ResNet{depth}", f"resnet{depth}")


def _pretrained_note(family, depth):
    if family == "CIFAR" and depth in CIFAR_DEPTHS:
        return '\n    `weights="cifar10"` loads akamaster\'s published CIFAR-10 model (option A).\n'
    if family == "ImageNet":
        return '\n    `weights="imagenet"` loads keras.applications\' or torchvision\'s published ImageNet model.\n'
    return ""


def _registry():
    models = {}
    for depth in CIFAR_DEPTHS:
        models[f"resnet{depth}"] = make_constructor(cifar_resnet, depth, plain=False)
    for depth in CIFAR_PLAIN_DEPTHS:
        models[f"plain{depth}"] = make_constructor(cifar_resnet, depth, plain=True)
    for depth in IMAGENET_DEPTHS:
        models[f"resnet{depth}"] = make_constructor(imagenet_resnet, depth, plain=False)
    for depth in IMAGENET_PLAIN_DEPTHS:
        models[f"plain{depth}"] = make_constructor(imagenet_resnet, depth, plain=True)
    for depth in PREACT_DEPTHS:
        models[f"preact_resnet{depth}"] = make_constructor(preact_cifar_resnet, depth, plain=False)
    for depth in V2_DEPTHS:
        models[f"resnet{depth}v2"] = make_constructor(imagenet_resnet_v2, depth, plain=False)
    return models


MODELS = _registry()
"""Name -> constructor for every network of the paper (`resnet20`..`resnet1202`, `plain20`..`plain110`,
`resnet18`..`resnet152`, `plain18`, `plain34`), and the pre-activation `preact_resnet110`, `preact_resnet164`,
`preact_resnet1001` (He et al. 2016b) and keras.applications' `resnet50v2`, `resnet101v2`, `resnet152v2`."""


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model name parsed once: `name` (lower case), `family` ("cifar" or "imagenet"), `depth`, `plain`, and
    `preactivation` (the units of He et al. 2016b: `preact_resnet<depth>`, a CIFAR network, or
    `resnet<depth>v2`, keras.applications' ImageNet layout).

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: Table 1 (the ImageNet
    depths) and section 4.2 (CIFAR depths 6n+2; "plain" networks without shortcuts); He et al., "Identity
    Mappings in Deep Residual Networks", ECCV 2016 (the pre-activation networks: depths 6n+2 and 9n+2).

    Example:
        >>> spec = model_spec("Plain56")
        >>> spec.name, spec.family, spec.depth, spec.plain, spec.residual
        ('plain56', 'cifar', 56, True, False)
    """

    name: str
    family: str
    depth: int
    plain: bool
    preactivation: bool = False

    @property
    def residual(self) -> bool:
        """Whether the network has shortcuts (a ResNet, not a plain network)."""
        return not self.plain


def model_spec(name) -> ModelSpec:
    """Parses a model name into its `ModelSpec`, or raises `ValueError` naming what is accepted.

    Args:
        name: str, `resnet<depth>` or `plain<depth>` of a CIFAR (6n+2) or ImageNet (Table 1) depth (ImageNet
            wins for 50 and 152, which are also 6n+2), `preact_resnet<depth>` of a depth 6n+2 or 9n+2, or
            `resnet<depth>v2` for 50, 101 or 152.
    """
    match = _NAME.match(str(name).strip().lower()) if isinstance(name, str) else None
    if match is None:
        raise ValueError(
            f"`name` must be 'resnet<depth>', 'plain<depth>', 'preact_resnet<depth>' or 'resnet<depth>v2' (for "
            f"example one of "
            f"{sorted(MODELS)}); received {name!r}."
        )
    plain, depth = match.group(1) == "plain", int(match.group(2))
    if match.group(3):
        if match.group(1) != "resnet" or depth not in V2_DEPTHS:
            raise ValueError(f"`name` {name!r}: the V2 networks are resnet50v2, resnet101v2 and resnet152v2.")
        return ModelSpec(match.group(0), "imagenet", depth, False, preactivation=True)
    if match.group(1) == "preact_resnet":
        try:
            preact_block_of(depth)
        except ValueError as error:
            raise ValueError(f"`name` {name!r} has no valid depth: {str(error).split(' must be ', 1)[1]}") from None
        return ModelSpec(match.group(0), "cifar", depth, False, preactivation=True)
    if depth in IMAGENET_SPECS:
        return ModelSpec(match.group(0), "imagenet", depth, plain)
    try:
        cifar_blocks_per_stage(depth)
    except ValueError:
        raise ValueError(
            f"`name` {name!r} has no valid depth: CIFAR depths are 6n+2 (8, 14, 20, ...), ImageNet depths are "
            f"{sorted(IMAGENET_SPECS)}."
        ) from None
    return ModelSpec(match.group(0), "cifar", depth, plain)


def family_of(name):
    """`(family, depth, plain)` of a model name (`model_spec` as a tuple, kept for existing callers).

    Example:
        >>> family_of("resnet50")
        ('imagenet', 50, False)
    """
    spec = model_spec(name)
    return spec.family, spec.depth, spec.plain


def build(name, weights=None, **kwargs):
    """Builds a network by name.

    Args:
        name: str, a key of `MODELS` (e.g. "resnet56", "plain20", "resnet50", "preact_resnet164") or any
            `resnet<depth>` / `plain<depth>` of a valid CIFAR (6n+2) or ImageNet depth, e.g. "resnet8", or
            `preact_resnet<depth>` (6n+2 or 9n+2, e.g. "preact_resnet20").
        weights: `None`, "cifar10", "imagenet" or a weights file (see `keras_resnet.cifar_resnet` and
            `keras_resnet.imagenet_resnet`).
        **kwargs: builder arguments (`shortcut`, `classes`, `input_shape`, `input_tensor`, ...).

    Returns:
        A `keras.Model` whose name is `name` (lower case) unless `name=` is passed in `kwargs`.

    Example:
        >>> import keras_resnet
        >>> keras_resnet.build("resnet56").name
        'resnet56'
    """
    spec = model_spec(name)
    if spec.plain:
        if kwargs.get("shortcut") is not None:
            raise ValueError(f"{name!r} is a plain network; received `shortcut`={kwargs['shortcut']!r}.")
        kwargs["shortcut"] = None
    kwargs.setdefault("name", name.strip().lower())
    kwargs["weights"] = weights
    if spec.preactivation:
        builder = preact_cifar_resnet if spec.family == "cifar" else imagenet_resnet_v2
    else:
        builder = cifar_resnet if spec.family == "cifar" else imagenet_resnet
    return builder(spec.depth, **kwargs)
