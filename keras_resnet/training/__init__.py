"""The library side of a trainer: strategy, precision, the training loop, resume and what a run leaves behind.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the recipes of
`keras_resnet.recipes`).

`train(config)` runs one training job described by a `TrainConfig` and returns its summary. One job per
module:

- `config`: `TrainConfig`, `ConfigError`, `NaNLossError` and the accepted values (`PRECISIONS`, ...);
- `flags`: the absl flags of the trainers, `config_from_flags`, `run_main` and `exit_code` (exit codes 0 / 2 / 3 / 4 / 5),
  `trainer_main` (a trainer's whole command line in this process);
- `runtime`: backend, `tf.distribute` strategy or JAX data parallelism (`Runtime`, `make_runtime`),
  precision (`select_precision`, `set_precision`), seeding and determinism;
- `arraydata`: `ArrayData`, `load_array_data`; `data_spec`: the data part of a run resolved once
  (`DataSpec`), the evaluation split (`resolve_eval_split`), the data checks run before anything is written
  (`check_data`) and the one choice of the input path with its reason (`choose_input` -> `InputPath`);
- `inputs`: the input paths opened (`MemoryInput`, `TFDataInput` of `streamed_input`, the device path;
  `open_input`), and the public halves of the rule, `uses_memory_input(config, data=None, backend=None)` and `uses_device_input`;
- `init_normalization`: the input normalisation and evaluation transform of a run started from trained weights
  (`normalization_of`, `eval_transform_of`; the type,
  `InputNormalization`, is `keras_resnet.normalization`'s, re-exported here);
- `finetune`: `--init_from` (`load_initial_weights`, by layer name and shape) and `--freeze`;
- `scoring`: top-1 / top-5 error, centre crop or 10 crops (`evaluate_batches`, `topk_errors`);
- `steppers`: the compiled steps `TFStepper` and `JaxStepper` (`step_fn`, `multi_step_fn(k)`), one or
  `--steps_per_call` iterations per call;
- `checkpoints`: atomic `.keras` checkpoints, the backup a run resumes from (`BackupCheckpointer`, also as
  the callback `AtomicBackupAndRestore`), `best.keras`;
- `run_recipe` / `model`: `resolve_recipe` (the family's recipe with the flags on top) and `build_model`;
- `rundir`: config.json / dataset.json / mean_image.npy, `check_model_dir`, `export_run`;
- `progress`: the progress bar and messages;
- `setup` / `loop`: `train()` as phases (`setup.prepare`, then `resume`, `train_epoch`, `end_epoch`, `finish`).

`model_dir` (see docs/CONTRACTS.md):

    config.json, dataset.json, mean_image.npy, checkpoints/latest.keras, checkpoints/best.keras,
    checkpoints/best.json, summary.json, log.csv, logs/ (TensorBoard), backup/ (the resume point), curves.png

Backends: everything here runs on TensorFlow and JAX. TensorFlow-only pieces (tf.data input,
TensorBoard, `tf.distribute`) are skipped on other backends with a log line; on JAX several local devices
are used through `keras.distribution.DataParallel`.

Example:
    >>> from keras_resnet import training
    >>> config = training.TrainConfig(model="resnet8", data="/data/tiny", model_dir="/tmp/run",
    ...                               batch_size=32, train_steps=40)  # trains a network (minutes)  # doctest: +SKIP
    >>> training.train(config)["test_error"]  # trains a network (minutes)  # doctest: +SKIP
"""

from keras_resnet.training.checkpoints import (
    AtomicBackupAndRestore,
    BackupCheckpointer,
    BestCheckpoint,
    save_model_atomic,
    variable_int,
)
from keras_resnet.training.config import (
    DEFAULTED_FIELDS,
    DISTRIBUTIONS,
    INIT_NAMED,
    INPUTS,
    PRECISIONS,
    RECIPES,
    VOLATILE_FIELDS,
    ConfigError,
    NaNLossError,
    TrainConfig,
)
from keras_resnet.training.data_spec import check_data, input_choice, resolve_eval_split
from keras_resnet.training.scoring import EvalResult, topk_errors
from keras_resnet.training.scoring import evaluate as evaluate_batches
from keras_resnet.training.finetune import InitReport, load_initial_weights
from keras_resnet.training.flags import config_from_flags, define_flags, exit_code, run_main, trainer_main
from keras_resnet.training.streamed_input import TFDataInput
from keras_resnet.training.inputs import (
    ArrayData,
    MemoryInput,
    load_array_data,
    uses_device_input,
    uses_memory_input,
    validation_size,
)
from keras_resnet.training.loop import train
from keras_resnet.training.model import BuiltModel, build_model, build_run_model, iter_layers
from keras_resnet.normalization import InputNormalization
from keras_resnet.training.init_normalization import normalization_of
from keras_resnet.training.run_recipe import default_batch_size, resolve_recipe
from keras_resnet.training.rundir import check_model_dir, export_run
from keras_resnet.training.runtime import (
    Runtime,
    has_tensorflow,
    logger,
    make_runtime,
    prepare_backend,
    select_precision,
    set_precision,
)
from keras_resnet.training.steppers import JaxStepper, TFStepper, make_stepper

__all__ = [
    "DEFAULTED_FIELDS", "DISTRIBUTIONS", "INIT_NAMED", "INPUTS", "PRECISIONS", "RECIPES", "VOLATILE_FIELDS",
    "BuiltModel", "EvalResult", "InitReport", "InputNormalization", "build_run_model", "check_data",
    "evaluate_batches", "input_choice", "load_initial_weights", "normalization_of", "resolve_eval_split",
    "topk_errors",
    "ArrayData", "AtomicBackupAndRestore", "BackupCheckpointer", "BestCheckpoint", "ConfigError", "JaxStepper",
    "MemoryInput", "NaNLossError", "Runtime", "TFDataInput", "TFStepper", "TrainConfig",
    "build_model", "check_model_dir", "config_from_flags", "default_batch_size", "define_flags", "exit_code", "export_run",
    "has_tensorflow", "iter_layers", "load_array_data", "logger", "make_runtime", "make_stepper",
    "prepare_backend", "resolve_recipe", "run_main", "save_model_atomic", "select_precision", "set_precision",
    "train", "trainer_main", "uses_device_input", "uses_memory_input", "validation_size", "variable_int",
]
