"""A run resolved once: the flags of a `TrainConfig` split into the frozen parts the library below `train()` takes.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (a run is its network, its
data and its recipe: sections 3.4 and 4.2); the layout follows the TF Model Garden's nested experiment
configs (task / trainer / runtime), one part per concern.

- `ModelPart`: the network (`ModelSpec` parsed once, shortcut, zero-init, synchronised BN, `--init_from`,
  `--freeze`);
- `DataSpec` (`keras_resnet.training.data_spec`): the data (the resolved source, splits, input flags);
- `SchedulePart`: the recipe flags that `resolve_recipe` lays over the family's recipe;
- `RuntimePart`: distribution, precision, seed, determinism and how often the host reads the device;
- `OutputPart`: where the run writes, what it prints and whether it exports.

`resolve_run(config, arrays=None) -> ResolvedRun` builds them all once; each public function that used to
take the whole `TrainConfig` takes its part (and still accepts a `TrainConfig`, turned into the part by
`part_of`).

Example:
    >>> from keras_resnet.training.config import TrainConfig
    >>> run = resolve_run(TrainConfig(model="plain56", data="cifar10", model_dir="/tmp/run", shortcut=None))
    >>> run.model.spec.depth, run.model.spec.plain, run.schedule.recipe, run.output.model_dir
    (56, True, 'auto', '/tmp/run')
"""

from __future__ import annotations

import dataclasses

from keras_resnet.registry import ModelSpec
from keras_resnet.training.config import backup_cadence
from keras_resnet.training.data_spec import DataSpec, data_spec


@dataclasses.dataclass(frozen=True)
class ModelPart:
    """The network of a run: `spec` (family, depth, plain), `shortcut` ("A"/"B"/"C" or None), the BN
    options and what it starts from (`init_from`) and keeps fixed (`freeze`)."""

    spec: ModelSpec
    shortcut: str | None = None
    zero_init_residual: bool = False
    sync_batch_norm: bool = False
    init_from: str | None = None
    freeze: tuple | None = None

    @property
    def name(self):
        """The model name (`resnet56`, `plain20`, ...)."""
        return self.spec.name

    @property
    def stride_in_3x3(self):
        """True where `init_from` names a tagged set whose bottleneck files put the stride in the 3x3
        convolution (torchvision's IMAGENET1K_V2 and timm's a1_in1k ResNet-50/101/152); None otherwise (the
        builder's default)."""
        from keras_resnet import weights

        if self.init_from not in weights.TAGGED_SETS:
            return None
        try:
            entry = weights.named_set_entry(self.init_from, self.spec)
        except ValueError:  # a set for another network: loading the weights names the misfit
            return None
        return True if entry.stride_in_3x3 else None


@dataclasses.dataclass(frozen=True)
class SchedulePart:
    """The recipe flags of a run (`keras_resnet.training.run_recipe.resolve_recipe` lays them over the family's
    recipe): `recipe` ("auto" or a recipe's name) and the overrides, None where the recipe decides."""

    family: str
    recipe: str = "auto"
    batch_size: int | None = None
    train_steps: int | None = None
    learning_rate: float | None = None
    schedule: str = "step"
    warmup_steps: int | None = None
    boundaries: tuple | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    depth: int = 0
    steps_per_epoch: int | None = None
    eval_batch_size: int | None = None
    preactivation: bool = False

    @property
    def kind(self):
        """"cifar", "imagenet" or "finetune": `--recipe`, or the model family's when it is "auto"."""
        return self.family if self.recipe == "auto" else self.recipe


@dataclasses.dataclass(frozen=True)
class RuntimePart:
    """Where and how the run computes: `distribution`, `precision`, `seed`, `deterministic`, and how often the
    host reads the device (`sync_every`, `steps_per_call`, `log_every`), and how often it backs up in the
    middle of an epoch (`backup_iterations` or `backup_seconds`, from `--backup_every`; None: never)."""

    distribution: str = "auto"
    precision: str = "auto"
    seed: int | None = 0
    deterministic: bool = False
    sync_every: int = 20
    steps_per_call: int = 1
    log_every: int = 50
    backup_iterations: int | None = None
    backup_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class OutputPart:
    """What the run leaves: `model_dir`, the console (`verbose`) and the export (`export`, `export_dir`)."""

    model_dir: str
    verbose: int = 1
    export: bool = False
    export_dir: str | None = None


@dataclasses.dataclass(frozen=True)
class ResolvedRun:
    """A `TrainConfig` resolved once into its parts; `config` is kept for `config.json` (every flag)."""

    config: object
    model: ModelPart
    data: DataSpec
    schedule: SchedulePart
    runtime: RuntimePart
    output: OutputPart


def model_part(config):
    """The `ModelPart` of a `TrainConfig` (a `ModelPart` is returned as it is)."""
    if isinstance(config, ModelPart):
        return config
    shortcut = None if config.shortcut is None else str(config.shortcut).upper()
    return ModelPart(config.model_spec, shortcut, config.zero_init_residual, config.sync_batch_norm,
                     config.init_from, config.freeze)


def schedule_part(config):
    """The `SchedulePart` of a `TrainConfig` (a `SchedulePart` is returned as it is)."""
    if isinstance(config, SchedulePart):
        return config
    return SchedulePart(config.model_spec.family, config.recipe, config.batch_size, config.train_steps,
                        config.learning_rate, config.schedule, config.warmup_steps, config.boundaries,
                        config.weight_decay, config.momentum, config.model_spec.depth, config.steps_per_epoch,
                        config.eval_batch_size, config.model_spec.preactivation)


def runtime_part(config):
    """The `RuntimePart` of a `TrainConfig` (a `RuntimePart` is returned as it is)."""
    if isinstance(config, RuntimePart):
        return config
    return RuntimePart(config.distribution, config.precision, config.seed, config.deterministic,
                       config.sync_every, config.steps_per_call, config.log_every, *backup_cadence(config.backup_every))


def output_part(config):
    """The `OutputPart` of a `TrainConfig` (an `OutputPart` is returned as it is)."""
    if isinstance(config, OutputPart):
        return config
    return OutputPart(config.model_dir, config.verbose, config.export, config.export_dir)


def resolve_run(config, arrays=None):
    """Every part of a run, resolved once from its `TrainConfig` (`--data` resolved unless `arrays` are given).

    Raises:
        ConfigError: a bad flag (`TrainConfig.validate`), or `--data` naming a path that does not exist.
    """
    config.validate()
    return ResolvedRun(config, model_part(config), data_spec(config, arrays), schedule_part(config),
                       runtime_part(config), output_part(config))


__all__ = ["ModelPart", "OutputPart", "ResolvedRun", "RuntimePart", "SchedulePart", "model_part", "output_part",
           "resolve_run", "runtime_part", "schedule_part"]
