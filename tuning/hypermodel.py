"""A keras-tuner `HyperModel` over the package's own builders and recipes.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: shortcut options A, B and C
(section 3.3, Table 3) and the CIFAR-10 recipe (section 4.2: SGD, batch 128, learning rate 0.1 divided by 10
at 32k and 48k of 64k iterations, weight decay 1e-4).

The search space (hyperparameter names are the builder arguments, `TrainConfig` fields and trainer flags):

| name                 | values                                                      | condition                 |
| -------------------- | ----------------------------------------------------------- | ------------------------- |
| `shortcut`           | A, B, C                                                      |                           |
| `schedule`           | step, cosine, warmup_step, warmup_cosine (`recipes.SCHEDULES`) |                         |
| `warmup_steps`       | int, log scale, 1%..10% of the budget (iterations)          | schedule is warmup_*      |
| `learning_rate`      | float, log scale, [0.01, 0.4]                               |                           |
| `weight_decay`       | 5e-5, 1e-4, 2e-4                                            |                           |
| `zero_init_residual` | False, True                                                 |                           |
| `batch_size`         | 64, 128, 256 (with `tune_batch_size`)                       |                           |
| `model`              | CIFAR depths as model names (with `depths`)                 |                           |
| `block_form`         | original, preactivation (with `tune_block_form`)            |                           |

With `block_form` "preactivation" a trial trains `preact_resnet<depth>` (He et al. 2016b, "Identity Mappings in
Deep Residual Networks": BN-ReLU before each convolution), whose recipe warms up for 400 iterations at every
depth; `zero_init_residual` applies to the original unit only (a pre-activation unit ends with a convolution).

"step" is the paper's schedule moved to the budget: the learning rate is divided by 10 at 50% and 75% of
`budget_iterations` (like 32k and 48k of 64k). Nothing here defines a block, a schedule or a training loop:
the model comes from `keras_resnet.build`, the recipe from `keras_resnet.training.resolve_recipe` (the
trainers' own), and a trial is one `keras_resnet.training.train` run (see `tuning.search`).

Example:
    >>> import keras_tuner
    >>> from tuning.hypermodel import ResNetHyperModel
    >>> hypermodel = ResNetHyperModel("resnet20", budget_iterations=4000)
    >>> hp = keras_tuner.HyperParameters()
    >>> model = hypermodel.build(hp)  # runs a search  # doctest: +SKIP
    >>> sorted(p.name for p in hp.space)  # runs a search  # doctest: +SKIP
    ['learning_rate', 'schedule', 'shortcut', 'warmup_steps', 'weight_decay', 'zero_init_residual']
"""

from __future__ import annotations

import keras_tuner

from keras_resnet import recipes
from keras_resnet import training
from keras_resnet.registry import build, model_spec

SHORTCUTS = ("A", "B", "C")
LEARNING_RATE_RANGE = (0.01, 0.4)
WEIGHT_DECAYS = (5e-5, 1e-4, 2e-4)
BATCH_SIZES = (64, 128, 256)
CIFAR_DEPTHS = (20, 32, 44, 56, 110)
WARMUP_SCHEDULES = tuple(s for s in recipes.SCHEDULES if s.startswith("warmup"))
WARMUP_FRACTIONS = (0.01, 0.1)
"""The warm-up length searched, as fractions of the budget (the paper's ResNet-110 warm-up is 400 of 64k
iterations, 0.6%; Goyal et al.'s 5 of 90 epochs is 5.6%)."""
STEP_FRACTIONS = (0.5, 0.75)
"""Boundaries of the step schedule as fractions of the budget: the paper's 32k and 48k of 64k."""


BLOCK_FORMS = ("original", "preactivation")


def network_name(values, model):
    """The model a trial builds: `values["model"]` (or `model`), as `preact_resnet<depth>` when `block_form` is
    "preactivation".

    Example:
        >>> network_name({"model": "resnet56", "block_form": "preactivation"}, "resnet20")
        'preact_resnet56'
    """
    name = values.get("model", model)
    return f"preact_{name}" if values.get("block_form") == "preactivation" else name


def warmup_range(budget_iterations):
    """(min, max) of the `warmup_steps` hyperparameter for a budget, in iterations."""
    low = max(1, round(WARMUP_FRACTIONS[0] * budget_iterations))
    return low, max(low + 1, round(WARMUP_FRACTIONS[1] * budget_iterations))


class ResNetHyperModel(keras_tuner.HyperModel):
    """The search space of issue 6 over `keras_resnet.build` and the CIFAR recipe.

    `build(hp)` declares the hyperparameters and returns the compiled network (so the hypermodel also works
    with keras-tuner's own `model.fit` tuners); `train_config(hp, model_dir)` maps the same values onto a
    `keras_resnet.training.TrainConfig`, which is how `tuning.search` runs a trial.

    Args:
        model: str, a residual model name accepted by `keras_resnet.build` ("resnet20", "resnet8", ...).
        budget_iterations: int, iterations of one full trial (Hyperband's largest); the step boundaries and the
            warm-up range are fractions of it.
        data: str, the `--data` the trials train on (only recorded in the `TrainConfig`).
        classes: int, number of classes.
        input_shape: tuple, (H, W, C) of the images.
        batch_size: int, the batch size when it is not tuned.
        tune_batch_size: bool, search `batch_size` in `BATCH_SIZES`.
        depths: optional sequence of CIFAR depths; when given, `model` is a hyperparameter over
            `resnet<depth>` for these depths.
        validation_split: images of the training split held out for the objective (a count or a fraction).
        seed: int, the seed of every trial (same initialisation and data order: common random numbers).
        precision: the trainer's `--precision`.
        tune_block_form: bool, search `block_form` ("original" or "preactivation") beside the shortcut (CIFAR
            networks).
    """

    def __init__(self, model="resnet20", budget_iterations=4000, data="cifar10", classes=10,
                 input_shape=(32, 32, 3), batch_size=128, tune_batch_size=False, depths=None,
                 validation_split=5000, seed=0, precision="auto", name="resnet", tunable=True, tune_block_form=False):
        super().__init__(name=name, tunable=tunable)
        spec = model_spec(model)
        if spec.plain:
            raise ValueError(f"`model` must be a residual network (the search tunes `shortcut`); received {model!r}.")
        if tune_block_form and (spec.family != "cifar" or spec.preactivation):
            raise ValueError(f"`tune_block_form` needs a CIFAR network of the original form, `resnet<6n+2>`; "
                             f"received model={model!r}.")
        self.tune_block_form = bool(tune_block_form)
        if depths:
            for depth in depths:
                if model_spec(f"resnet{int(depth)}").family != "cifar":
                    raise ValueError(f"`depths` must be CIFAR depths (6n+2); received {list(depths)!r}.")
        if isinstance(budget_iterations, bool) or int(budget_iterations) < 2:
            raise ValueError(f"`budget_iterations` must be an integer >= 2; received {budget_iterations!r}.")
        self.model = model
        self.budget_iterations = int(budget_iterations)
        self.data = data
        self.classes = int(classes)
        self.input_shape = tuple(input_shape)
        self.batch_size = int(batch_size)
        self.tune_batch_size = bool(tune_batch_size)
        self.depths = tuple(int(d) for d in depths) if depths else None
        self.validation_split = validation_split
        self.seed = seed
        self.precision = precision

    # --- the space

    def declare_hyperparameters(self, hp):
        """Registers every hyperparameter (and the warm-up condition) in `hp` and returns their values.

        Args:
            hp: a `keras_tuner.HyperParameters`.

        Returns:
            dict name -> value of the active hyperparameters.
        """
        values = {}
        if self.depths:
            values["model"] = hp.Choice("model", [f"resnet{d}" for d in self.depths], default=self.model
                                        if self.model in [f"resnet{d}" for d in self.depths] else None)
        values["shortcut"] = hp.Choice("shortcut", list(SHORTCUTS))
        values["schedule"] = hp.Choice("schedule", list(recipes.SCHEDULES))
        low, high = warmup_range(self.budget_iterations)
        with hp.conditional_scope("schedule", list(WARMUP_SCHEDULES)):
            warmup = hp.Int("warmup_steps", low, high, sampling="log")
        if values["schedule"] in WARMUP_SCHEDULES:
            values["warmup_steps"] = warmup
        values["learning_rate"] = hp.Float("learning_rate", *LEARNING_RATE_RANGE, sampling="log", default=0.1)
        values["weight_decay"] = hp.Choice("weight_decay", list(WEIGHT_DECAYS), default=1e-4)
        if self.tune_block_form:
            values["block_form"] = hp.Choice("block_form", list(BLOCK_FORMS), default="original")
            with hp.conditional_scope("block_form", ["original"]):
                zero_init = hp.Boolean("zero_init_residual", default=False)
            values["zero_init_residual"] = zero_init if values["block_form"] == "original" else False
        else:
            values["zero_init_residual"] = hp.Boolean("zero_init_residual", default=False)
        if self.tune_batch_size:
            values["batch_size"] = hp.Choice("batch_size", list(BATCH_SIZES), default=128)
        return values

    def values(self, hp):
        """The active values of `hp` (declaring the space if needed), as `declare_hyperparameters`."""
        return self.declare_hyperparameters(hp)

    # --- what a trial runs

    def boundaries(self):
        """The step boundaries of the budget: 50% and 75% (the paper's 32k and 48k of 64k)."""
        return tuple(max(1, round(f * self.budget_iterations)) for f in STEP_FRACTIONS)

    def train_config(self, hp, model_dir, **overrides):
        """The `TrainConfig` of a trial with the values of `hp`.

        Args:
            hp: a `keras_tuner.HyperParameters` (values set by the oracle).
            model_dir: str, the trial's run directory.
            **overrides: other `TrainConfig` fields (`steps_per_epoch`, `verbose`, ...).
        """
        values = self.values(hp)
        fields = dict(
            model=network_name(values, self.model), data=self.data, model_dir=str(model_dir),
            batch_size=values.get("batch_size", self.batch_size), train_steps=self.budget_iterations,
            boundaries=self.boundaries(), learning_rate=float(values["learning_rate"]),
            schedule=values["schedule"], warmup_steps=values.get("warmup_steps"),
            weight_decay=float(values["weight_decay"]), shortcut=values["shortcut"],
            zero_init_residual=bool(values["zero_init_residual"]), validation_split=self.validation_split,
            seed=self.seed, precision=self.precision, recipe="cifar" if model_spec(self.model).family == "cifar"
            else "auto")
        fields.update(overrides)
        return training.TrainConfig(**fields)

    def recipe(self, hp, num_train=50_000):
        """The `keras_resnet.recipes.Recipe` a trial with `hp` trains with (the trainers' resolution)."""
        config = self.train_config(hp, "unused")
        return training.resolve_recipe(config, num_train, config.batch_size)

    def build(self, hp):
        """Declares the space and returns the compiled network for the values of `hp`.

        The network is `keras_resnet.build(model, shortcut=..., zero_init_residual=...,
        kernel_regularizer=recipe.regularizer())`, compiled with the recipe's SGD and schedule.
        """
        values = self.declare_hyperparameters(hp)
        recipe = self.recipe(hp)
        model = build(network_name(values, self.model), shortcut=values["shortcut"],
                      zero_init_residual=bool(values["zero_init_residual"]), classes=self.classes,
                      input_shape=self.input_shape, kernel_regularizer=recipe.regularizer())
        model.compile(optimizer=recipe.optimizer(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model
