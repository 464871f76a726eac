"""The options of `python -m tuning.search`: the `SearchOptions` record, its checks and its absl flags.

Flags that mean what a trainer flag means share the trainer's vocabulary: `--precision` is an enum over
`keras_resnet.training.PRECISIONS`, `--model`, `--data`, `--data_dir`, `--batch_size`, `--steps_per_epoch`,
`--validation_split` and `--seed` are the `TrainConfig` fields of every trial. Bad values raise
`SearchError` naming the flag, what was received and what is accepted (the entry point exits with 2).

Example:
    >>> from tuning.options import SearchOptions
    >>> options = SearchOptions(project_dir="runs/tune20", tuner="hyperband")
    >>> options.validate()
    >>> options.hyperband_unit()
    444
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

from keras_resnet.training import PRECISIONS
from keras_resnet.stop_request import EXIT_STOPPED

ROLES = ("auto", "chief", "worker")
TUNERS = ("random", "bayesian", "hyperband")
BAYESIAN_NEEDS = ("sklearn", "scipy")
"""Modules keras-tuner's Bayesian oracle needs: the `bayesian` extra (`pip install 'keras-resnet[bayesian]'`)."""
OBJECTIVE = "val_accuracy"
EXIT_BAD_CONFIG = 2
EXIT_INCOMPLETE = EXIT_STOPPED  # 4: incomplete (stopped early or on request); the same command continues


class SearchError(ValueError):
    """A bad flag or environment; the message names the flag or variable."""


@dataclasses.dataclass
class SearchOptions:
    """The flags of `python -m tuning.search` (see `define_flags` for their meaning)."""

    project_dir: str
    tuner: str = "random"
    model: str = "resnet20"
    data: str = "cifar10"
    data_dir: str | None = None
    max_trials: int = 12
    budget_iterations: int = 4000
    steps_per_epoch: int | None = None
    batch_size: int = 128
    tune_batch_size: bool = False
    tune_depth: bool = False
    depths: tuple = (20, 32, 44, 56, 110)
    tune_block_form: bool = False
    validation_split: float = 5000
    hyperband_max_units: int = 9
    hyperband_factor: int = 3
    num_initial_points: int | None = None
    overwrite: bool = False
    role: str = "auto"
    local_workers: int = 0
    worker_timeout: float = 600.0
    export_best: bool = False
    export_dir: str | None = None
    seed: int = 0
    precision: str = "auto"
    verbose: int = 1

    def validate(self):
        """Raises `SearchError` naming the flag of the first bad value (cheap; before any work)."""
        if not self.project_dir:
            raise SearchError("--project_dir must be set.")
        if os.path.exists(self.project_dir) and not os.path.isdir(self.project_dir):
            raise SearchError(f"--project_dir={self.project_dir} is a file; accepted: a search directory (a new "
                              "one, or one to continue).")
        for flag, value, accepted in (("tuner", self.tuner, TUNERS), ("precision", self.precision, PRECISIONS),
                                      ("role", self.role, ROLES)):
            if value not in accepted:
                raise SearchError(f"--{flag} must be one of {list(accepted)}; received {value!r}.")
        missing = [name for name in BAYESIAN_NEEDS if importlib.util.find_spec(name) is None] \
            if self.tuner == "bayesian" else []
        if missing:
            raise SearchError(f"--tuner=bayesian needs scikit-learn and SciPy ({', '.join(missing)} not installed): "
                              "pip install 'keras-resnet[bayesian]'; or use --tuner=random|hyperband.")
        self.validate_model()
        for name in ("max_trials", "budget_iterations", "batch_size", "hyperband_max_units"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SearchError(f"--{name} must be a positive integer; received {value!r}.")
        if self.budget_iterations < 2:
            raise SearchError(f"--budget_iterations must be >= 2; received {self.budget_iterations}.")
        if self.steps_per_epoch is not None and not 0 < self.steps_per_epoch <= self.budget_iterations:
            raise SearchError(f"--steps_per_epoch must be in [1, --budget_iterations]; received "
                              f"{self.steps_per_epoch!r}.")
        if self.tuner == "hyperband":
            if self.hyperband_factor < 2:
                raise SearchError(f"--hyperband_factor must be >= 2; received {self.hyperband_factor}.")
            if self.budget_iterations // self.hyperband_max_units < 1:
                raise SearchError(f"--budget_iterations={self.budget_iterations} is smaller than "
                                  f"--hyperband_max_units={self.hyperband_max_units}.")
        if not self.validation_split > 0:
            raise SearchError("--validation_split must be > 0: the objective is the validation accuracy on "
                              f"held-out training images; received {self.validation_split!r}.")
        if self.local_workers < 0 or (self.local_workers and self.role == "worker"):
            raise SearchError(f"--local_workers must be >= 0 and is for the chief; received {self.local_workers} "
                              f"with --role={self.role}.")
        if not self.worker_timeout > 0:
            raise SearchError(f"--worker_timeout must be positive; received {self.worker_timeout!r}.")

    def validate_model(self):
        """`--model` is a residual network; with `--tune_depth`, `--depths` are CIFAR depths 6n+2."""
        from keras_resnet.registry import model_spec

        try:
            plain = model_spec(self.model).plain
        except ValueError as e:
            raise SearchError(f"--model: {e}") from None
        if plain:
            raise SearchError(f"--model must be a residual network (the search tunes `shortcut`); received "
                              f"{self.model!r}.")
        if not self.tune_depth:
            return
        for depth in self.depths:
            try:
                family = model_spec(f"resnet{int(depth)}").family
            except ValueError:
                family = None
            if family != "cifar":
                raise SearchError(f"--depths must be CIFAR depths 6n+2; received {list(self.depths)!r}.")

    def hyperband_unit(self):
        """Iterations of one Hyperband resource unit."""
        return self.budget_iterations // self.hyperband_max_units


def resolve_role(options, environ=None):
    """"local", "chief" or "worker" from `--role`, `--local_workers` and the KERASTUNER_* variables.

    Example:
        >>> resolve_role(SearchOptions(project_dir="p"), environ={})
        'local'
    """
    environ = os.environ if environ is None else environ
    if options.local_workers:
        return "chief"
    has_env = "KERASTUNER_ORACLE_IP" in environ
    if options.role == "auto":
        if not has_env:
            return "local"
        return "chief" if "chief" in environ.get("KERASTUNER_TUNER_ID", "") else "worker"
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        if name not in environ:
            raise SearchError(f"--role={options.role} needs the environment variable {name} (the chief's address; "
                              "or use --local_workers=N on one machine).")
    tuner_id = environ.get("KERASTUNER_TUNER_ID")
    if options.role == "chief" and tuner_id is not None and "chief" not in tuner_id:
        raise SearchError(f"--role=chief needs KERASTUNER_TUNER_ID to contain 'chief'; it is {tuner_id!r}.")
    if options.role == "worker" and (not tuner_id or "chief" in tuner_id):
        raise SearchError("--role=worker needs KERASTUNER_TUNER_ID set to a unique worker id (not containing "
                          f"'chief'); it is {tuner_id!r}.")
    return options.role


def define_flags(flag_values=None):
    """Defines the absl flags of `python -m tuning.search` on `flag_values` (the global `absl.flags.FLAGS` by
    default, once per process); returns it."""
    from absl import flags

    from keras_resnet.cli_flags import flags_on

    flag_values = flags.FLAGS if flag_values is None else flag_values
    f = flags_on(flag_values)

    f.DEFINE_enum("tuner", "random", list(TUNERS), "Search algorithm (keras-tuner oracle).")
    f.DEFINE_string("model", "resnet20", "Residual network (keras_resnet.build name); the depth when not tuned.")
    f.DEFINE_string("data", "cifar10", "Image folder / archive / TFRecord directory / TFDS name (held in memory).")
    f.DEFINE_string("data_dir", None, "TFDS data directory.")
    f.DEFINE_integer("max_trials", 12, "Number of trials (also caps Hyperband).")
    f.DEFINE_integer("budget_iterations", 4000, "Iterations of one trial (Hyperband: of the largest rung).")
    f.DEFINE_integer("steps_per_epoch", None, "Iterations between validations (default budget/4; Hyperband: "
                                              "one resource unit).")
    f.DEFINE_integer("batch_size", 128, "Batch size when --tune_batch_size is off.")
    f.DEFINE_bool("tune_batch_size", False, "Also search batch_size in {64, 128, 256}.")
    f.DEFINE_bool("tune_depth", False, "Also search the depth (hyperparameter `model` over --depths).")
    f.DEFINE_list("depths", ["20", "32", "44", "56", "110"], "CIFAR depths searched with --tune_depth.")
    f.DEFINE_bool("tune_block_form", False, "Also search the residual unit: the original one or the pre-activation "
                  "one of He et al. 2016b (hyperparameter `block_form`; CIFAR networks).")
    f.DEFINE_float("validation_split", 5000, "Held-out training images for the objective: count or fraction.")
    f.DEFINE_integer("hyperband_max_units", 9, "Hyperband: resource units of the largest rung (max_epochs).")
    f.DEFINE_integer("hyperband_factor", 3, "Hyperband: reduction factor.")
    f.DEFINE_integer("num_initial_points", None, "Bayesian: random trials before the Gaussian process.")
    f.DEFINE_string("project_dir", None, "Search directory (oracle state, trials, results).")
    f.DEFINE_bool("overwrite", False, "Start afresh instead of continuing the search in --project_dir.")
    f.DEFINE_enum("role", "auto", list(ROLES), "Distributed role (auto: from KERASTUNER_* variables).")
    f.DEFINE_integer("local_workers", 0, "Start a chief and this many workers on 127.0.0.1.")
    f.DEFINE_float("worker_timeout", 600, "Seconds of silence after which a worker is presumed dead.")
    f.DEFINE_bool("export_best", False, "Export the best trial's model for TF Serving (no retraining).")
    f.DEFINE_string("export_dir", None, "Export root (default saved_models/<project_dir name>).")
    f.DEFINE_integer("seed", 0, "Seed of every trial and of the oracle.")
    f.DEFINE_enum("precision", "auto", list(PRECISIONS), "Trainer --precision of every trial (auto: mixed on "
                                                         "capable GPUs).")
    f.DEFINE_integer("verbose", 1, "0: one line per trial; 1: also trial tables and one line per evaluation.")
    return flag_values


def options_from_flags(flag_values):
    """A `SearchOptions` from parsed absl flags (`--depths` as ints, an integral `--validation_split` as a count)."""
    names = [f.name for f in dataclasses.fields(SearchOptions)]
    values = {n: flag_values[n].value for n in names if n in flag_values}
    if values.get("project_dir") is None:
        raise SearchError("--project_dir must be set.")
    try:
        values["depths"] = tuple(int(d) for d in values["depths"])
    except ValueError:
        raise SearchError(f"--depths must be integers; received {values['depths']!r}.") from None
    vs = values["validation_split"]
    values["validation_split"] = int(vs) if vs >= 1 and float(vs).is_integer() else vs
    return SearchOptions(**values)
