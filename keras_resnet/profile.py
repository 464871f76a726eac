"""Parameter and FLOP counting from the built graph, and the paper's cost tables.

FLOPs follow the paper's convention: multiply-adds (MACs). A convolution costs
`H_out * W_out * K_h * K_w * C_in * C_out / groups`, a dense layer `C_in * C_out` per example. These two
are the `macs`. Everything else (batch normalisation, ReLU, the shortcut additions, pooling, option A's
zero padding) costs one operation per output element at most and is reported apart as `elementwise`,
never mixed into `macs`: the paper states that the identity shortcuts add no measurable FLOPs.

Run `python -m keras_resnet.profile` for the table of every model in `keras_resnet.MODELS` next to the
paper's numbers, and the paper's bottleneck-versus-basic block comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import types

import keras

PAPER_MACS = {
    "resnet20": 40.6e6,
    "resnet32": 68.9e6,
    "resnet44": 97.2e6,
    "resnet56": 125.5e6,
    "resnet110": 252.9e6,
    "resnet1202": 2829e6,
    "resnet18": 1.8e9,
    "resnet34": 3.6e9,
    "resnet50": 3.8e9,
    "resnet101": 7.6e9,
    "resnet152": 11.3e9,
    "plain18": 1.8e9,
    "plain34": 3.6e9,
}
"""Forward multiply-adds per image as stated in the paper (ImageNet, Table 1) and `PAPER.md` (CIFAR)."""

PAPER_PARAMS = {
    "resnet20": 0.27e6,
    "resnet32": 0.46e6,
    "resnet44": 0.66e6,
    "resnet56": 0.85e6,
    "resnet110": 1.7e6,
    "resnet1202": 19.4e6,
}
"""Parameter counts as printed in the paper's Table 6 (CIFAR, option A)."""

_ELEMENTWISE = (
    keras.layers.BatchNormalization,
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.Add,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)


@dataclasses.dataclass(frozen=True)
class Profile:
    """The cost of one model, per example.

    Attributes:
        name: str, the model's name.
        trainable_params: int, trainable parameters (the paper's counts).
        non_trainable_params: int, BN moving statistics and other non-trainable weights.
        macs: int, multiply-adds of one forward pass (convolutions and dense layers).
        conv_macs: int, the part of `macs` spent in convolutions.
        dense_macs: int, the part of `macs` spent in dense layers.
        elementwise: int, output elements of BN, activations, additions and pooling (not in `macs`).
        input_shape: tuple, the `(height, width, channels)` the counts are for.
    """

    name: str
    trainable_params: int
    non_trainable_params: int
    macs: int
    conv_macs: int
    dense_macs: int
    elementwise: int
    input_shape: tuple

    @property
    def gflops(self):
        """Multiply-adds in units of 10^9, as the paper's Table 1 prints them."""
        return self.macs / 1e9


def _count(weights):
    return sum(math.prod(w.shape) for w in weights)


def _per_example(shape):
    return math.prod(int(d) for d in shape[1:])


def _walk(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _walk(layer)
        else:
            yield layer


def profile(model):
    """Counts the parameters and forward multiply-adds of a built Keras model.

    Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Table 1 (FLOPs as
    multiply-adds).

    Args:
        model: a built functional `keras.Model` with fixed height and width (nested models are walked).

    Returns:
        A `Profile`.

    Raises:
        ValueError: if the model's input height or width is unknown (`None`): FLOPs depend on it.

    Example:
        >>> import keras_resnet
        >>> p = keras_resnet.profile(keras_resnet.ResNet50())
        >>> round(p.gflops, 2), p.trainable_params
        (3.86, 25557032)
    """
    input_shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in input_shape):
        raise ValueError(
            f"`model` {model.name!r} has input shape {input_shape}; FLOPs need a fixed height and width. "
            "Build it with a concrete `input_shape=` (e.g. (224, 224, 3))."
        )
    conv_macs = dense_macs = elementwise = 0
    for layer in _walk(model):
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin_per_group, cout = layer.kernel.shape
            conv_macs += _per_example(layer.output.shape) // cout * kh * kw * cin_per_group * cout
        elif isinstance(layer, keras.layers.Dense):
            cin, cout = layer.kernel.shape
            dense_macs += _per_example(layer.output.shape) // cout * cin * cout
        elif isinstance(layer, _ELEMENTWISE):
            elementwise += _per_example(layer.output.shape)
    return Profile(
        name=model.name,
        trainable_params=_count(model.trainable_weights),
        non_trainable_params=_count(model.non_trainable_weights),
        macs=conv_macs + dense_macs,
        conv_macs=conv_macs,
        dense_macs=dense_macs,
        elementwise=elementwise,
        input_shape=input_shape,
    )


def block_comparison():
    """The paper's Fig. 5 cost argument: a 64-d basic block vs a 256-d bottleneck block on 56x56 maps.

    Returns:
        A list of `(label, Profile)` for the two blocks, each built alone with an identity shortcut.
    """
    from keras_resnet.blocks import basic_block, bottleneck_block

    rows = []
    for label, channels, block in (
        ("basic block, 64-d (3x3, 64 -> 3x3, 64)", 64, basic_block),
        ("bottleneck block, 256-d (1x1, 64 -> 3x3, 64 -> 1x1, 256)", 256, bottleneck_block),
    ):
        inputs = keras.Input((56, 56, channels))
        outputs = block(inputs, 64, 1, "A", "block")
        rows.append((label, profile(keras.Model(inputs, outputs, name=label.split(",")[0]))))
    return rows


def _fmt(number):
    if number >= 1e9:
        return f"{number / 1e9:.2f}G"
    return f"{number / 1e6:.1f}M"


def format_table(profiles):
    """Formats profiles as a markdown table beside the paper's numbers."""
    lines = [
        "| model | input | params (trainable) | paper params | MACs | paper MACs | MACs / paper |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in profiles:
        paper_macs = PAPER_MACS.get(p.name)
        paper_params = PAPER_PARAMS.get(p.name)
        ratio = f"{p.macs / paper_macs:.3f}" if paper_macs else "-"
        lines.append(
            f"| {p.name} | {'x'.join(str(d) for d in p.input_shape)} | {p.trainable_params:,} | "
            f"{_fmt(paper_params) if paper_params else '-'} | {_fmt(p.macs)} | "
            f"{_fmt(paper_macs) if paper_macs else '-'} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv=None):
    """Prints the parameter/FLOP table of every registered model and the block comparison."""
    from keras_resnet.registry import MODELS

    parser = argparse.ArgumentParser(prog="python -m keras_resnet.profile", description=main.__doc__)
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated names from keras_resnet.MODELS (default: all)"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {unknown}; accepted: {', '.join(MODELS)}")
    profiles = []
    for index, name in enumerate(names, start=1):
        print(f"[{index}/{len(names)}] building {name} ...", file=sys.stderr, flush=True)
        profiles.append(profile(MODELS[name]()))
        keras.backend.clear_session()
    print(format_table(profiles))
    print()
    print("Bottleneck versus basic block (paper, section 3.4 and Fig. 5), one block on 56x56 maps:")
    print()
    print("| block | params | MACs |")
    print("| --- | --- | --- |")
    for label, p in block_comparison():
        print(f"| {label} | {p.trainable_params:,} | {_fmt(p.macs)} |")
    return 0


class _CallableModule(types.ModuleType):
    """Makes this module callable as `profile`, so `keras_resnet.profile(model)` works whichever of the
    module and the function a Python import binds to that name, and `python -m keras_resnet.profile` runs
    without the package having imported it first (no runpy warning)."""

    def __call__(self, model):
        return profile(model)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
