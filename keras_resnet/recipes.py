"""The paper's training recipes as data, and their learning-rate schedules.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, sections 3.4 and 4.2;
`finetune_recipe` is the common transfer-learning schedule for starting from such a trained network.

A `Recipe` is a small frozen dataclass keyed by *iterations* (optimizer steps), never by epochs: the CIFAR
recipe divides the learning rate by 10 at iterations 32k and 48k and stops at 64k; for ResNet-110 and deeper
it first trains at 0.01 for 400 iterations and then goes back to 0.1. The ImageNet recipe (epochs 30 and 60
of 90) is converted to iterations from the number of training images and the batch size.

Schedules are `keras.optimizers.schedules.LearningRateSchedule` subclasses written with `keras.ops`, so they
run on every backend and serialise with the optimizer (`keras.saving` round trip).

Weight decay is the coupled L2 of the paper, Caffe and PyTorch's `weight_decay=wd`: the gradient of every
conv and dense kernel gets `wd * w` added. Keras' `L2(l)` adds `l * ||w||^2` to the loss, whose gradient is
`2 l w`, so the regulariser is `L2(wd / 2)` (see `Recipe.regularizer`). BN parameters are not decayed.

Example:
    >>> from keras_resnet import recipes
    >>> recipe = recipes.cifar_recipe(depth=110)
    >>> schedule = recipe.learning_rate_schedule()
    >>> [round(float(schedule(step)), 4) for step in (0, 399, 400, 32000, 48000)]
    [0.01, 0.01, 0.1, 0.01, 0.001]
"""

from __future__ import annotations

import dataclasses
import math

import keras
from keras import ops

SCHEDULES = ("step", "cosine", "warmup_step", "warmup_cosine")
"""Names accepted by `Recipe.with_schedule` and the trainers' `--schedule` flag."""

WARMUPS = ("none", "constant", "linear")

CIFAR_TRAIN_EXAMPLES = 50_000
IMAGENET_TRAIN_EXAMPLES = 1_281_167


@dataclasses.dataclass(frozen=True)
class Recipe:
    """An optimisation recipe: SGD with momentum, a learning-rate schedule and weight decay.

    Attributes:
        name: str, a label ("cifar", "imagenet", ...).
        batch_size: int, the global batch size the learning rate is meant for.
        learning_rate: float, the base learning rate (after warm-up, before decay).
        train_steps: int, total number of iterations (optimizer steps).
        boundaries: tuple of int, iterations at which the learning rate is multiplied by `decay_rate`
            (schedule "step").
        decay_rate: float, the factor applied at each boundary.
        schedule: "step" or "cosine" (cosine decay from `learning_rate` to 0 at `train_steps`).
        warmup: "none", "constant" (the paper's ResNet-110 trick: `warmup_learning_rate` for `warmup_steps`
            iterations, then the schedule) or "linear" (from `warmup_learning_rate` up to the schedule's
            value at `warmup_steps`).
        warmup_steps: int, length of the warm-up in iterations.
        warmup_learning_rate: float, the constant warm-up value or the start of the linear ramp.
        momentum: float, SGD momentum.
        nesterov: bool, Nesterov momentum.
        weight_decay: float, coupled L2 weight decay on conv and dense kernels (0 disables it).
    """

    name: str
    batch_size: int
    learning_rate: float
    train_steps: int
    boundaries: tuple = ()
    decay_rate: float = 0.1
    schedule: str = "step"
    warmup: str = "none"
    warmup_steps: int = 0
    warmup_learning_rate: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4

    def __post_init__(self):
        object.__setattr__(self, "boundaries", tuple(int(b) for b in self.boundaries))
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"`schedule` must be 'step' or 'cosine'; received {self.schedule!r}.")
        if self.warmup not in WARMUPS:
            raise ValueError(f"`warmup` must be one of {WARMUPS}; received {self.warmup!r}.")
        for field, value in (("batch_size", self.batch_size), ("train_steps", self.train_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{field}` must be a positive integer; received {value!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be positive; received {self.learning_rate!r}.")
        if self.warmup_steps < 0 or (self.warmup != "none" and self.warmup_steps == 0):
            raise ValueError(f"`warmup_steps` must be positive with warmup={self.warmup!r}; "
                             f"received {self.warmup_steps!r}.")
        if list(self.boundaries) != sorted(self.boundaries) or any(b <= 0 for b in self.boundaries):
            raise ValueError(f"`boundaries` must be increasing positive iterations; received {self.boundaries}.")
        if self.weight_decay < 0:
            raise ValueError(f"`weight_decay` must be >= 0; received {self.weight_decay!r}.")

    def replace(self, **changes):
        """Returns a copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """Returns the fields as a JSON-friendly dict."""
        out = dataclasses.asdict(self)
        out["boundaries"] = list(self.boundaries)
        return out

    def scaled_to_batch(self, global_batch_size):
        """Scales the learning rates linearly with the global batch size (Goyal et al. 2017).

        The iteration keys are unchanged: flags such as `--train_steps` decide the length of the run.

        Args:
            global_batch_size: int, the batch summed over all replicas.
        """
        factor = global_batch_size / self.batch_size
        return self.replace(
            batch_size=int(global_batch_size),
            learning_rate=self.learning_rate * factor,
            warmup_learning_rate=self.warmup_learning_rate * factor,
        )

    def with_schedule(self, schedule, warmup_steps=None):
        """Returns the recipe with one of the named alternatives of `SCHEDULES`.

        Args:
            schedule: "step" (the recipe's own, including its warm-up), "cosine", "warmup_step" (linear
                warm-up from 0, then the step schedule) or "warmup_cosine".
            warmup_steps: optional int, length of the linear warm-up; by default the recipe's own warm-up
                length, or 5% of `train_steps` if it has none.
        """
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {SCHEDULES}; received {schedule!r}.")
        if schedule == "step":
            return self if warmup_steps is None else self.replace(warmup_steps=int(warmup_steps))
        if warmup_steps is None:
            warmup_steps = self.warmup_steps or max(1, self.train_steps // 20)
        base = "cosine" if schedule.endswith("cosine") else "step"
        if schedule.startswith("warmup"):
            return self.replace(schedule=base, warmup="linear", warmup_steps=int(warmup_steps),
                                warmup_learning_rate=0.0)
        return self.replace(schedule=base, warmup="none", warmup_steps=0, warmup_learning_rate=0.0)

    def learning_rate_schedule(self):
        """Returns the `LearningRateSchedule` of this recipe (a function of the iteration)."""
        warmup = dict(warmup=self.warmup, warmup_steps=self.warmup_steps,
                      warmup_learning_rate=self.warmup_learning_rate)
        if self.schedule == "cosine":
            return CosineDecay(self.learning_rate, self.train_steps, **warmup)
        values = [float(f"{self.learning_rate * self.decay_rate**i:.12g}") for i in range(len(self.boundaries) + 1)]
        return StepDecay(list(self.boundaries), values, **warmup)

    def optimizer(self):
        """Returns `keras.optimizers.SGD` with this recipe's momentum and schedule (no decoupled decay)."""
        return keras.optimizers.SGD(
            learning_rate=self.learning_rate_schedule(), momentum=self.momentum, nesterov=self.nesterov
        )

    def regularizer(self):
        """Returns `keras.regularizers.L2(weight_decay / 2)`, or None without weight decay.

        Passed to the builders as `kernel_regularizer`, it adds `weight_decay * w` to the gradient of every
        conv and dense kernel: PyTorch's and Caffe's coupled weight decay.
        """
        return keras.regularizers.L2(self.weight_decay / 2.0) if self.weight_decay else None


def cifar_recipe(depth=20, train_examples=CIFAR_TRAIN_EXAMPLES, preactivation=False):
    """The paper's CIFAR-10 recipe (section 4.2).

    SGD momentum 0.9, batch 128, learning rate 0.1 divided by 10 at 32k and 48k iterations, 64k iterations,
    weight decay 1e-4. For depth >= 110: 0.01 for the first 400 iterations, then back to 0.1. The
    pre-activation networks (He et al. 2016b, appendix) take the same recipe with that warm-up at every depth
    ("for all CIFAR experiments"; the authors note it is not needed by the new unit).

    Args:
        depth: int, network depth (decides the warm-up).
        train_examples: int, unused by the schedule (iteration keyed); kept for symmetry with
            `imagenet_recipe`.
        preactivation: bool, the recipe of the pre-activation networks (warm-up at every depth).

    Example:
        >>> cifar_recipe(164, preactivation=True).warmup_steps, cifar_recipe(56).warmup_steps
        (400, 0)
    """
    del train_examples
    recipe = Recipe(name="cifar", batch_size=128, learning_rate=0.1, train_steps=64_000,
                    boundaries=(32_000, 48_000))
    if depth >= 110 or preactivation:
        recipe = recipe.replace(warmup="constant", warmup_steps=400, warmup_learning_rate=0.01)
    return recipe


def imagenet_recipe(train_examples=IMAGENET_TRAIN_EXAMPLES, batch_size=256, epochs=90, decay_epochs=(30, 60)):
    """The ImageNet recipe (section 3.4): batch 256, 0.1 divided by 10 at epochs 30 and 60 of 90.

    Epochs are converted to iterations with `ceil(train_examples / batch_size)` iterations per epoch.

    Args:
        train_examples: int, number of training images (1,281,167 for ILSVRC-2012).
        batch_size: int, global batch size.
        epochs: int, length of training in epochs.
        decay_epochs: tuple of int, epochs at which the learning rate is divided by 10.
    """
    per_epoch = math.ceil(train_examples / batch_size)
    return Recipe(name="imagenet", batch_size=batch_size, learning_rate=0.1 * batch_size / 256,
                  train_steps=epochs * per_epoch, boundaries=tuple(e * per_epoch for e in decay_epochs))


FINETUNE_EPOCHS = 10
"""Length of the `finetune` recipe in epochs (passes over the training images)."""


def finetune_recipe(train_examples=IMAGENET_TRAIN_EXAMPLES, batch_size=64, epochs=FINETUNE_EPOCHS,
                    learning_rate=0.01):
    """Fine-tuning a trained network on a small dataset of one's own (`--recipe=finetune`, `--init_from`).

    Not in the paper, which trains from scratch: the usual transfer-learning schedule for its networks.
    SGD momentum 0.9, weight decay 1e-4 as in section 3.4, a learning rate ten times lower than the
    paper's ImageNet 0.1 (scaled from batch 256 to `batch_size` it is `learning_rate`), cosine decay to
    zero over `epochs` passes over the data, no warm-up.

    Args:
        train_examples: int, number of training images (sets the number of iterations).
        batch_size: int, global batch size the learning rate is meant for.
        epochs: int, passes over the training images.
        learning_rate: float, the starting learning rate at `batch_size`.

    Example:
        >>> recipe = finetune_recipe(train_examples=640)
        >>> recipe.schedule, recipe.train_steps, recipe.learning_rate
        ('cosine', 100, 0.01)
    """
    per_epoch = math.ceil(train_examples / batch_size)
    return Recipe(name="finetune", batch_size=batch_size, learning_rate=learning_rate,
                  train_steps=epochs * per_epoch, schedule="cosine")


class _Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Shared warm-up logic: `warmup` is "none", "constant" or "linear"."""

    def __init__(self, warmup="none", warmup_steps=0, warmup_learning_rate=0.0):
        if warmup not in WARMUPS:
            raise ValueError(f"`warmup` must be one of {WARMUPS}; received {warmup!r}.")
        self.warmup = warmup
        self.warmup_steps = int(warmup_steps)
        self.warmup_learning_rate = float(warmup_learning_rate)

    def _base(self, step):
        raise NotImplementedError

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = self._base(step)
        if self.warmup == "none" or self.warmup_steps <= 0:
            return lr
        end = float(self.warmup_steps)
        if self.warmup == "constant":
            warm = ops.full_like(lr, self.warmup_learning_rate)
        else:
            target = self._base(ops.convert_to_tensor(end, "float32"))
            warm = self.warmup_learning_rate + (target - self.warmup_learning_rate) * step / end
        return ops.where(step < end, warm, lr)

    def get_config(self):
        return {"warmup": self.warmup, "warmup_steps": self.warmup_steps,
                "warmup_learning_rate": self.warmup_learning_rate}


@keras.saving.register_keras_serializable(package="keras_resnet")
class StepDecay(_Warmup):
    """Piecewise-constant learning rate keyed by iterations, with an optional warm-up.

    `values[i]` is used for `boundaries[i-1] <= step < boundaries[i]`.

    Args:
        boundaries: list of int, increasing iterations.
        values: list of float, one more than `boundaries`.
        warmup: "none", "constant" or "linear".
        warmup_steps: int, warm-up length in iterations.
        warmup_learning_rate: float, constant warm-up value or start of the linear ramp.

    Example:
        >>> schedule = StepDecay([32000, 48000], [0.1, 0.01, 0.001])
        >>> round(float(schedule(32000)), 4)
        0.01
    """

    def __init__(self, boundaries, values, warmup="none", warmup_steps=0, warmup_learning_rate=0.0):
        super().__init__(warmup, warmup_steps, warmup_learning_rate)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"`values` must have one more entry than `boundaries`; received {values} and "
                             f"{boundaries}.")
        self.boundaries = [int(b) for b in boundaries]
        self.values = [float(v) for v in values]

    def _base(self, step):
        lr = ops.full_like(step, self.values[0])
        for boundary, value in zip(self.boundaries, self.values[1:]):
            lr = ops.where(step >= float(boundary), ops.full_like(step, value), lr)
        return lr

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, **super().get_config()}


@keras.saving.register_keras_serializable(package="keras_resnet")
class CosineDecay(_Warmup):
    """Cosine decay from `learning_rate` to `alpha * learning_rate` at `decay_steps`, after a warm-up.

    With a warm-up the cosine starts at `warmup_steps` and ends at `decay_steps`.

    Args:
        learning_rate: float, the peak learning rate.
        decay_steps: int, the iteration where the cosine reaches its floor (the end of training).
        alpha: float, the floor as a fraction of `learning_rate`.
        warmup: "none", "constant" or "linear".
        warmup_steps: int, warm-up length in iterations.
        warmup_learning_rate: float, constant warm-up value or start of the linear ramp.
    """

    def __init__(self, learning_rate, decay_steps, alpha=0.0, warmup="none", warmup_steps=0,
                 warmup_learning_rate=0.0):
        super().__init__(warmup, warmup_steps, warmup_learning_rate)
        self.learning_rate = float(learning_rate)
        self.decay_steps = int(decay_steps)
        self.alpha = float(alpha)

    def _base(self, step):
        start = float(self.warmup_steps) if self.warmup != "none" else 0.0
        span = max(float(self.decay_steps) - start, 1.0)
        progress = ops.clip((step - start) / span, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        return self.learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "decay_steps": self.decay_steps, "alpha": self.alpha,
                **super().get_config()}
