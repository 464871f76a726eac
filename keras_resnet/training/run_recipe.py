"""The recipe of a run: the model family's recipe (`keras_resnet.recipes`) with the flags applied on top.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2 (CIFAR: SGD,
batch 128, lr 0.1 divided by 10 at 32k and 48k of 64k iterations, weight decay 1e-4, momentum 0.9; the
ResNet-110 warm-up at 0.01 for 400 iterations) and section 3.4 (ImageNet: batch 256, 90 epochs); Goyal et
al. 2017 for the linear scaling of the learning rate with the batch. `finetune` (not in the paper): cosine
decay from a tenth of the ImageNet learning rate over a few epochs, for a network started from trained
weights (`--init_from`).

Example:
    >>> from keras_resnet.training.config import TrainConfig
    >>> from keras_resnet.training.run_recipe import resolve_recipe
    >>> resolve_recipe(TrainConfig(model="resnet110", model_dir="x", train_steps=6400), 50000).boundaries
    (3200, 4800)
"""

from __future__ import annotations

from keras_resnet import recipes as recipes_lib
from keras_resnet.training.run_parts import schedule_part


def recipe_kind(config):
    """"cifar", "imagenet" or "finetune": `--recipe`, or the model family's when it is "auto".

    Args:
        config: the run's `SchedulePart` (or its `TrainConfig`).
    """
    return schedule_part(config).kind


def default_batch_size(config):
    """The recipe's global batch size (128 for CIFAR, 256 for ImageNet), before any flag.

    Args:
        config: the run's `SchedulePart` (or its `TrainConfig`).
    """
    kind = schedule_part(config).kind
    if kind == "cifar":
        return recipes_lib.cifar_recipe().batch_size
    if kind == "finetune":
        return recipes_lib.finetune_recipe().batch_size
    return recipes_lib.imagenet_recipe().batch_size


def resolve_recipe(config, num_train, global_batch=None):
    """The recipe of a run: the family's recipe with the flags applied on top.

    The learning rate follows the global batch linearly when `--batch_size` differs from the recipe's and
    `--learning_rate` is not given. A `--train_steps` without `--boundaries` moves the step boundaries with
    it, keeping the recipe's proportions (the CIFAR recipe's 32k/48k of 64k become 50% and 75%); the
    ResNet-110 warm-up keeps its 400 iterations.

    Args:
        config: the run's `SchedulePart` (or its `TrainConfig`).
        num_train: training images (sets the ImageNet recipe's epoch length).
        global_batch: the global batch size; `--batch_size` or the recipe's if None.

    Returns:
        A `keras_resnet.recipes.Recipe`.
    """
    schedule = schedule_part(config)
    depth, kind = schedule.depth, schedule.kind
    if kind == "cifar":
        recipe = recipes_lib.cifar_recipe(depth, preactivation=schedule.preactivation)
    elif kind == "finetune":
        recipe = recipes_lib.finetune_recipe(train_examples=num_train)
    else:
        recipe = recipes_lib.imagenet_recipe(train_examples=num_train)
    batch = global_batch or schedule.batch_size or recipe.batch_size
    if batch != recipe.batch_size:
        recipe = recipe.scaled_to_batch(batch)
    changes = {}
    if schedule.learning_rate is not None:
        factor = schedule.learning_rate / recipe.learning_rate
        changes.update(learning_rate=schedule.learning_rate,
                       warmup_learning_rate=recipe.warmup_learning_rate * factor)
    for name in ("train_steps", "boundaries", "weight_decay", "momentum"):
        if getattr(schedule, name) is not None:
            changes[name] = getattr(schedule, name)
    if schedule.train_steps is not None and schedule.boundaries is None and recipe.boundaries:
        # A shortened (or lengthened) run keeps the recipe's proportions: 32k/48k of 64k -> 50% / 75%.
        scale = schedule.train_steps / recipe.train_steps
        changes["boundaries"] = tuple(max(1, round(b * scale)) for b in recipe.boundaries)
    if changes:
        recipe = recipe.replace(**changes)
    recipe = recipe.with_schedule(schedule.schedule, schedule.warmup_steps)
    if recipe.warmup != "none" and recipe.warmup_steps == 0:
        recipe = recipe.replace(warmup="none")
    return recipe
