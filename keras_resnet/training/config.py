"""What a training run is: `TrainConfig` (one field per trainer flag), its errors and accepted values.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; unset fields come from the
recipes of `keras_resnet.recipes` (section 4.2 for CIFAR, 3.4 for ImageNet).

`TrainConfig.validate()` is cheap and runs before any work: a bad value raises `ConfigError` whose message
names the flag (`--name`), what was received and what is accepted; the trainers exit with code 2 on it and
with code 3 on `NaNLossError`.

Example:
    >>> from keras_resnet.training.config import TrainConfig
    >>> TrainConfig(model="resnet8", data="/data/tiny", model_dir="/tmp/run", batch_size=32).batch_size
    32
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np

from keras_resnet import recipes as recipes_lib
from keras_resnet.registry import model_spec
from keras_resnet.eval_transform import RUN_KEY
from keras_resnet.weights.sets import SET_NAMES

PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("auto", "none", "mirrored", "multi_worker")
INPUTS = ("auto", "memory", "device", "tfdata")
RECIPES = ("auto", "cifar", "imagenet", "finetune")
INIT_NAMED = SET_NAMES  # `--init_from` names: the named sets of `keras_resnet.weights`, tagged ones included

# Fields that may change between a run and its resumption (they do not change what is computed).
VOLATILE_FIELDS = ("model_dir", "data_dir", "download", "distribution", "verbose", "export", "export_dir",
                   "log_every", "sync_every", "input", "steps_per_call", "backup_every")

# Fields added after run directories already existed: an old config.json lacks them, which means these values
# (the behaviour before they existed). A resumed run compares them only when they differ from these.
DEFAULTED_FIELDS = {"image_size": None, "eval_split": "test", "ten_crop": False, "skip_corrupt": False,
                    "init_from": None, "freeze": None, "input_normalization": None,
                    RUN_KEY: None}

POSITIVE_INTEGERS = ("batch_size", "train_steps", "steps_per_epoch", "eval_batch_size", "log_every",
                     "sync_every", "steps_per_call", "image_size")


class ConfigError(ValueError):
    """A bad flag or configuration value; the message names the flag (`--name`)."""


class NaNLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. Unset (None) fields come from the recipe.

    Attributes:
        model: a name accepted by `keras_resnet.build` ("resnet110", "plain20", "resnet50", "resnet8", ...).
        data: a TFDS name, an image-folder directory or archive, or a directory of TFRecord shards.
        model_dir: where the run writes everything (see `keras_resnet.training` and docs/CONTRACTS.md).
        data_dir: TFDS data directory.
        download: let TFDS download the dataset.
        recipe: "auto" (from the model family), "cifar", "imagenet" or "finetune" (`keras_resnet.recipes`:
            cosine decay from a lower learning rate over a few epochs, for a network started with `init_from`).
        batch_size: global batch size (summed over replicas); the recipe's by default.
        train_steps: iterations to train for; the recipe's by default.
        learning_rate: base learning rate; by default the recipe's, scaled linearly with `batch_size`.
        schedule: one of `keras_resnet.recipes.SCHEDULES`.
        warmup_steps: length of the warm-up of the schedule, in iterations.
        boundaries: iterations where the step schedule divides the learning rate by 10.
        weight_decay: coupled L2 weight decay on kernels.
        momentum: SGD momentum.
        shortcut: "A", "B" or "C" (None: the builder's default; plain networks have none).
        zero_init_residual: start the last BN scale of every residual branch at zero.
        validation_split: images of the training split held out for validation: a fraction in (0, 1) or a
            count >= 1 (the paper: 5000 of 50k).
        steps_per_epoch: iterations between evaluations and backups; by default one pass over the data.
        precision: one of `PRECISIONS`.
        distribution: one of `DISTRIBUTIONS`.
        sync_batch_norm: synchronise BN statistics across replicas (TensorFlow), so that N replicas compute
            what one device does with the same global batch.
        input: "auto" (in memory on non-TensorFlow backends and for image folders, tf.data otherwise; on
            JAX with CIFAR-style data on one device, "device"), "memory" (numpy batches augmented on the
            host), "device" (JAX: the uint8 training images live on the accelerator and the compiled step
            gathers and augments its batch there; only indices and crop offsets cross per step, and the
            batches are exactly those of "memory") or "tfdata".
        seed: seeds initialisation, shuffling and augmentation (None: not seeded).
        deterministic: TensorFlow op determinism (slower; for exact reproducibility tests).
        eval_batch_size: batch size of evaluation; `batch_size` by default.
        log_every: iterations between TensorBoard scalar writes.
        sync_every: iterations dispatched between reads of the loss on the host (progress bar, NaN check,
            batch callbacks). The step never waits for the host in between, so an accelerator stays busy;
            1 reads every iteration. A NaN is still reported with the iteration where it first appeared.
        steps_per_call: iterations run by one compiled call (a loop over that many batches inside the
            compiled step), so the host dispatches once per `steps_per_call` iterations. The weights are
            those of one iteration per call (bitwise on TensorFlow; on JAX up to float32 rounding, the
            loop body being compiled as a whole); a NaN is still named at its own iteration. Batch-begin
            callbacks of the iterations of one call run before the call is dispatched.
        image_size: the side N of the N x N images the network sees. ImageNet-style (streamed) data: the crop
            of the scale augmentation (shorter side in [256, 480] * N / 224) and of evaluation (shorter side
            round(256 * N / 224), centre crop); default 224. CIFAR-style data: images resized to N x N;
            default the data's own size.
        eval_split: the split evaluated after every epoch and reported as `test_*` (log.csv, summary.json):
            "test", "validation" (the data's own `val/` or `validation/` split) or "train"; None: "validation"
            when the data has one, else "test" (`keras_resnet.data.default_eval_split`).
        ten_crop: evaluate on 10 crops (four corners and centre, and their mirror images; the paper's
            Table 3), probabilities averaged, instead of the centre crop (ImageNet-style data).
        skip_corrupt: skip undecodable images (counted in the log and summary.json) instead of failing.
        init_from: start from trained weights: a `.keras` / `.weights.h5` file (e.g. a finished run's
            `checkpoints/best.keras`) or a named set ("cifar10", "imagenet", "imagenet-tv2", "imagenet-a1" of
            `keras_resnet.weights`, which then also sets the input normalisation; a tagged set also the
            evaluation transform and, for ResNet-50/101/152, the stride in the bottleneck's 3x3). Layers are
            matched by name and shape; a classifier of another width is replaced. A resumed run starts from its
            backup instead.
        freeze: layer groups kept fixed ("stem", "stage1", ...), their BN statistics included (frozen BN
            layers run in inference mode).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        export: export the trained model for serving at the end (`keras_resnet.export`).
        export_dir: where to export; the export module's default if None.
        backup_every: also write the backup in the middle of an epoch, every so many iterations ("2000") or
            every so long ("15min", "30s", "1h"; `backup_cadence`), so that a SIGKILL loses at most that
            much; resuming from such a backup is exact. None: at every epoch's end only (and on a stop
            request, `keras_resnet.stop_request`).
    """

    model: str = "resnet20"
    data: str = "cifar10"
    model_dir: str = "model_dir"
    data_dir: str | None = None
    download: bool = False
    recipe: str = "auto"
    batch_size: int | None = None
    train_steps: int | None = None
    learning_rate: float | None = None
    schedule: str = "step"
    warmup_steps: int | None = None
    boundaries: tuple | None = None
    weight_decay: float | None = None
    momentum: float | None = None
    shortcut: str | None = None
    zero_init_residual: bool = False
    validation_split: float = 0.0
    steps_per_epoch: int | None = None
    precision: str = "auto"
    distribution: str = "auto"
    sync_batch_norm: bool = False
    input: str = "auto"
    seed: int | None = 0
    deterministic: bool = False
    eval_batch_size: int | None = None
    log_every: int = 50
    sync_every: int = 20
    steps_per_call: int = 1
    verbose: int = 1
    export: bool = False
    export_dir: str | None = None
    image_size: int | None = None
    eval_split: str | None = None
    ten_crop: bool = False
    skip_corrupt: bool = False
    init_from: str | None = None
    freeze: tuple | None = None
    backup_every: str | None = None

    def __post_init__(self):
        if self.boundaries is not None:
            object.__setattr__(self, "boundaries", tuple(int(b) for b in self.boundaries))
        object.__setattr__(self, "freeze", freeze_groups(self.freeze))
        if self.init_from is not None:
            object.__setattr__(self, "init_from", str(self.init_from))
        self.validate()

    def validate(self):
        """Raises `ConfigError` naming the flag of the first bad value; cheap, runs before any work."""
        try:
            self.model_spec
        except ValueError as e:
            raise ConfigError(f"--model: {e}") from None
        if not self.model_dir:
            raise ConfigError("--model_dir must be set.")
        if os.path.exists(self.model_dir) and not os.path.isdir(self.model_dir):
            raise ConfigError(f"--model_dir={self.model_dir} is a file; accepted: a run directory (a new one, or "
                              "one to resume).")
        if not self.data:
            raise ConfigError("--data must be set.")
        for name in POSITIVE_INTEGERS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value <= 0):
                raise ConfigError(f"--{name} must be a positive integer; received {value!r}.")
        self._validate_recipe_fields()
        choices = (("recipe", RECIPES), ("schedule", recipes_lib.SCHEDULES), ("precision", PRECISIONS),
                   ("distribution", DISTRIBUTIONS), ("input", INPUTS))
        for name, accepted in choices:
            if getattr(self, name) not in accepted:
                raise ConfigError(f"--{name} must be one of {list(accepted)}; received {getattr(self, name)!r}.")
        if self.boundaries is not None and (list(self.boundaries) != sorted(set(self.boundaries))
                                            or any(b <= 0 for b in self.boundaries)):
            raise ConfigError(f"--boundaries must be increasing positive iterations; received {self.boundaries}.")
        if self.init_from is not None and not self.init_from.strip():
            raise ConfigError(f"--init_from must be a .keras / .weights.h5 file or one of {list(INIT_NAMED)}; "
                              "received an empty value.")
        backup_cadence(self.backup_every)
        if self.eval_split is not None and not str(self.eval_split).strip():
            raise ConfigError("--eval_split must name a split (train, validation, test); received an empty value.")

    def _validate_recipe_fields(self):
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"--warmup_steps must be >= 0; received {self.warmup_steps!r}.")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ConfigError(f"--learning_rate must be positive; received {self.learning_rate!r}.")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"--weight_decay must be >= 0; received {self.weight_decay!r}.")
        if self.momentum is not None and not 0 <= self.momentum < 1:
            raise ConfigError(f"--momentum must be in [0, 1); received {self.momentum!r}.")
        if not self.validation_split >= 0 or (self.validation_split >= 1 and self.validation_split % 1):
            raise ConfigError("--validation_split must be a fraction in [0, 1) or a whole number of images; "
                              f"received {self.validation_split!r}.")
        if self.shortcut is not None and str(self.shortcut).upper() not in ("A", "B", "C"):
            raise ConfigError(f"--shortcut must be A, B or C; received {self.shortcut!r}.")
        if self.shortcut is not None and self.model_spec.plain:
            raise ConfigError(f"--shortcut: {self.model!r} is a plain network and has no shortcuts.")

    @functools.cached_property
    def model_spec(self):
        """`--model` parsed once (`keras_resnet.registry.ModelSpec`: family, depth, plain)."""
        return model_spec(self.model)

    def replace(self, **changes):
        """Returns a copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The fields as a JSON-ready dict (`boundaries` and `freeze` as lists)."""
        out = dataclasses.asdict(self)
        for name in ("boundaries", "freeze"):
            if out[name] is not None:
                out[name] = list(out[name])
        return out


BACKUP_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}


def backup_cadence(value):
    """`--backup_every` as `(iterations, seconds)`, one of them None (both None when `value` is).

    Raises:
        ConfigError: anything but a positive whole number of iterations or a positive duration with a unit
            of `BACKUP_UNITS`; the message names the flag.

    Example:
        >>> backup_cadence("2000"), backup_cadence("15min"), backup_cadence(None)
        ((2000, None), (None, 900.0), (None, None))
    """
    if value is None:
        return None, None
    text = str(value).strip().lower()
    accepted = ("a positive number of iterations (2000) or a duration with a unit of "
                f"{', '.join(BACKUP_UNITS)} (15min, 30s, 1h)")
    if text.isdigit() and int(text) > 0:
        return int(text), None
    for unit, seconds in BACKUP_UNITS.items():
        number = text[:-len(unit)] if text.endswith(unit) else ""
        try:
            amount = float(number)
        except ValueError:
            continue
        if np.isfinite(amount) and amount > 0 and number.replace(".", "", 1).isdigit():
            return None, amount * seconds
    raise ConfigError(f"--backup_every must be {accepted}; received {value!r}.")


def freeze_groups(value):
    """`--freeze` as a tuple of group names ("stem", "stage1", ...), None when empty.

    Accepts None, a comma-separated string or a sequence of names (the absl list flag gives a list).

    Example:
        >>> freeze_groups("stem, stage1")
        ('stem', 'stage1')
    """
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(n).strip().lower() for n in names if str(n).strip())
    return names or None
