"""The network and optimizer of a run, built exactly as `train()` builds them.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the networks of
`keras_resnet.build`, trained with SGD and coupled L2 weight decay on kernels, section 3.4 / 4.2).

`build_model` is the seam other programs (the GPU benchmark, experiments) use to get the model `train()`
would train: built inside the strategy's scope, compiled with the recipe's optimizer (loss-scaled under
mixed_float16) and with the optimizer's variables created, so a stepper can take its state at once.
`--init_from` weights are loaded and `--freeze` groups fixed before compiling (`keras_resnet.training.finetune`).

Example:
    >>> from keras_resnet.training import TrainConfig, build_model, resolve_recipe
    >>> config = TrainConfig(model="resnet8", model_dir="x", batch_size=32)
    >>> model = build_model(config, resolve_recipe(config, 50000), classes=10, input_shape=(32, 32, 3))
    >>> model.optimizer.iterations.numpy()  # the model of the lines above  # doctest: +SKIP
    0
"""

from __future__ import annotations

import contextlib
import dataclasses

import keras

from keras_resnet.registry import build
from keras_resnet.training.finetune import freeze, load_initial_weights
from keras_resnet.training.run_parts import model_part


def iter_layers(layer):
    """Every layer inside `layer` (a model or a layer holding layers), depth first, each once.

    Only public attributes are read (`layers`), so nested models and blocks are walked without Keras'
    private `_flatten_layers`.
    """
    seen = set()
    stack = list(reversed(getattr(layer, "layers", [])))
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(reversed(getattr(current, "layers", [])))


def batch_norm_layers(model):
    """The `keras.layers.BatchNormalization` layers of `model` (subclasses included)."""
    return [layer for layer in iter_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]


@dataclasses.dataclass
class BuiltModel:
    """A run's compiled model, what `--init_from` loaded into it (an `InitReport` or None) and the layers
    `--freeze` fixed."""

    model: object
    init_report: object = None
    frozen: list = dataclasses.field(default_factory=list)


def build_run_model(config, recipe, classes=None, input_shape=None, runtime=None, load_init=True, **build_kwargs):
    """`build_model`, also saying what `--init_from` loaded and what `--freeze` fixed.

    The network is built, `--init_from` loaded into it (when `load_init`; a resumed run restores its
    backup instead), the `--freeze` groups made non-trainable, and only then compiled, so that the
    optimizer holds slots for the trainable variables only.

    Args:
        config: the run's `ModelPart` (or its `TrainConfig`); the other arguments as `build_model`'s.
        load_init: load `--init_from` (False when a backup will be restored instead).

    Returns:
        A `BuiltModel`.

    Raises:
        ConfigError: `--init_from` missing, unreadable or of another architecture; `--freeze` naming a
            group the network does not have.
    """
    network = model_part(config)
    kwargs = dict(zero_init_residual=network.zero_init_residual, kernel_regularizer=recipe.regularizer())
    if classes is not None:
        kwargs["classes"] = classes
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    if network.shortcut is not None:
        kwargs["shortcut"] = network.shortcut
    if network.stride_in_3x3:
        kwargs["stride_in_3x3"] = True
    kwargs.update(build_kwargs)
    with runtime.scope() if runtime is not None else contextlib.nullcontext():
        model = build(network.name, **kwargs)
        report = load_initial_weights(model, network) if load_init else None
        frozen = freeze(model, network.freeze)
        model.compile(optimizer=recipe.optimizer(), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])  # attaches the (loss-scaled under float16) optimizer
        model.optimizer.build(model.trainable_variables)
    if network.sync_batch_norm and runtime is not None and runtime.replicas > 1 and runtime.backend == "tensorflow":
        for layer in batch_norm_layers(model):
            layer.synchronized = True
    return BuiltModel(model, report, frozen)


def build_model(config, recipe, classes=None, input_shape=None, runtime=None, **build_kwargs):
    """Builds and compiles the run's network as `train()` does.

    Args:
        config: the run's `ModelPart` (model, shortcut, zero_init_residual, sync_batch_norm, init_from and
            freeze), or the `TrainConfig` it comes from.
        recipe: the resolved `keras_resnet.recipes.Recipe` (optimizer, weight decay).
        classes: number of classes (None: the builder's default).
        input_shape: (H, W, C) (None: the builder's default).
        runtime: the `Runtime` whose strategy scope holds the variables (None: no strategy).
        **build_kwargs: passed to `keras_resnet.build` on top (e.g. `stride_in_3x3`).

    Returns:
        A compiled `keras.Model` whose optimizer is built.
    """
    return build_run_model(model_part(config), recipe, classes, input_shape, runtime, **build_kwargs).model
