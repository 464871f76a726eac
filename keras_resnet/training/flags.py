"""The absl flags shared by the trainers (`python -m trainers.cifar`, `python -m trainers.imagenet`).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (every recipe field of
sections 3.4 / 4.2 is a flag: `--batch_size`, `--train_steps`, `--learning_rate`, `--boundaries`, ...).

One flag per `TrainConfig` field. `run_main(FLAGS)` is a trainer's whole `main`: it builds the config,
trains, and maps errors to a one-line message on stderr and an exit code: 0 done, 2 bad configuration
(`ConfigError`, the message names the flag or file), 3 NaN loss (`NaNLossError`), 4 stopped on request
(SIGTERM / SIGINT, `keras_resnet.stop_request`: backed up at the iteration reached, the same command
continues), 5 storage error (a full disk, `keras_resnet.faults.EXIT_STORAGE`: the path and the cause).

`trainer_main(argv, prog, ...)` is a trainer's whole command line in this process (its own `FlagValues`), so that
tests and notebooks can run it without a new interpreter.

Example:
    >>> from keras_resnet.training import flags as train_flags
    >>> train_flags.trainer_main(["--model=resnet8", "--model_dir=/tmp/run", "--data=/data/tiny"],
    ...                  "python -m trainers.cifar")  # trains a network (minutes)  # doctest: +SKIP
    0
"""

from __future__ import annotations

import dataclasses
import sys

from keras_resnet import faults
from keras_resnet.cli_flags import flags_on, read_command_line
from keras_resnet import recipes as recipes_lib
from keras_resnet.stop_request import EXIT_STOPPED, Stopped
from keras_resnet.training.config import DISTRIBUTIONS, INPUTS, PRECISIONS, RECIPES, ConfigError, NaNLossError, \
    TrainConfig
from keras_resnet.training.loop import train


def define_flags(model="resnet20", data="cifar10", recipe="auto", flag_values=None):
    """Defines the trainer flags (one per `TrainConfig` field) with the given defaults on `flag_values` (the
    global `absl.flags.FLAGS` by default); returns it."""
    from absl import flags

    flag_values = flags.FLAGS if flag_values is None else flag_values
    f = flags_on(flag_values)
    f.DEFINE_string("model", model, "Network: any name of keras_resnet.MODELS or resnet<depth>/plain<depth>.")
    f.DEFINE_string("data", data, "TFDS name, image-folder directory/archive, or TFRecord shard directory.")
    f.DEFINE_string("model_dir", None, "Run directory (config, checkpoints, logs, backup, summary).")
    f.DEFINE_string("data_dir", None, "TFDS data directory.")
    f.DEFINE_bool("download", False, "Let TFDS download the dataset.")
    f.DEFINE_enum("recipe", recipe, list(RECIPES), "Training recipe (auto: from the model family; finetune: "
                  "cosine decay from a low learning rate for a few epochs, with --init_from).")
    f.DEFINE_integer("batch_size", None, "Global batch size (the learning rate follows it linearly).")
    f.DEFINE_integer("train_steps", None, "Training iterations (recipe: 64000 CIFAR, 90 epochs ImageNet).")
    f.DEFINE_float("learning_rate", None, "Base learning rate (default: the recipe's, scaled with the batch).")
    f.DEFINE_enum("schedule", "step", list(recipes_lib.SCHEDULES), "Learning-rate schedule.")
    f.DEFINE_integer("warmup_steps", None, "Warm-up length in iterations.")
    f.DEFINE_list("boundaries", None, "Iterations where the step schedule divides the learning rate by 10.")
    f.DEFINE_float("weight_decay", None, "Coupled L2 weight decay on conv/dense kernels (recipe: 1e-4).")
    f.DEFINE_float("momentum", None, "SGD momentum (recipe: 0.9).")
    f.DEFINE_string("shortcut", None, "Shortcut option A, B or C (default: the builder's).")
    f.DEFINE_bool("zero_init_residual", False, "Zero-init the last BN scale of every residual branch.")
    f.DEFINE_float("validation_split", 0.0, "Held-out training images: fraction in (0, 1) or a count.")
    f.DEFINE_integer("steps_per_epoch", None, "Iterations between evaluations/backups (default: one pass).")
    f.DEFINE_enum("precision", "auto", list(PRECISIONS), "Numeric precision (auto: mixed on capable GPUs).")
    f.DEFINE_enum("distribution", "auto", list(DISTRIBUTIONS), "Distribution strategy.")
    f.DEFINE_bool("sync_batch_norm", False, "Synchronise BN statistics across replicas (TensorFlow).")
    f.DEFINE_enum("input", "auto", list(INPUTS), "Input path: in memory (host or device augmentation) or tf.data.")
    f.DEFINE_integer("seed", 0, "Random seed (initialisation, shuffling, augmentation).")
    f.DEFINE_bool("deterministic", False, "TensorFlow op determinism (slower).")
    f.DEFINE_integer("eval_batch_size", None, "Evaluation batch size.")
    f.DEFINE_integer("log_every", 50, "Iterations between TensorBoard scalars.")
    f.DEFINE_integer("sync_every", 20, "Iterations dispatched between host reads of the loss (1: every one).")
    f.DEFINE_integer("steps_per_call", 1, "Iterations run by one compiled call (the same weights as 1).")
    f.DEFINE_integer("verbose", 1, "0 silent, 1 progress bar, 2 one line per epoch.")
    f.DEFINE_bool("export", False, "Export the trained model for serving at the end.")
    f.DEFINE_string("export_dir", None, "Export root (default saved_models).")
    f.DEFINE_integer("image_size", None, "Side N of the N x N images the network sees: the crop of ImageNet-style "
                     "data (default 224; scale augmentation [256, 480] * N / 224), CIFAR-style images resized "
                     "(default: their size).")
    f.DEFINE_string("eval_split", None, "Split evaluated after every epoch, reported as test_* (default: "
                    "'validation' when the data has val/ or validation/, else 'test').")
    f.DEFINE_bool("ten_crop", False, "Evaluate on 10 crops (corners, centre and their flips; the paper's Table 3).")
    f.DEFINE_bool("skip_corrupt", False, "Skip undecodable images (counted in the log) instead of failing.")
    f.DEFINE_string("init_from", None, "Start from trained weights: a .keras / .weights.h5 file (e.g. a run's "
                    "checkpoints/best.keras) or cifar10 / imagenet / imagenet-tv2 / imagenet-a1 (keras_resnet.weights, "
                    "with their input normalisation; the tagged sets also with their evaluation transform and "
                    "bottleneck stride). Another classifier width is replaced; a resumed run uses its backup.")
    f.DEFINE_list("freeze", None, "Layer groups kept fixed, BN statistics included: stem,stage1,...")
    f.DEFINE_string("backup_every", None, "Also back up mid-epoch every N iterations (2000) or every so long "
                    "(15min, 30s, 1h), so that a kill loses at most that much (default: at epoch ends only).")
    return flag_values


def config_from_flags(flag_values):
    """Builds a `TrainConfig` from parsed absl flags; bad values raise `ConfigError` naming the flag."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    values = {name: flag_values[name].value for name in names if name in flag_values}
    if values.get("model_dir") is None:
        raise ConfigError("--model_dir must be set.")
    if values.get("boundaries") is not None:
        try:
            values["boundaries"] = [int(b) for b in values["boundaries"]]
        except ValueError:
            raise ConfigError(f"--boundaries must be integers; received {values['boundaries']!r}.") from None
    return TrainConfig(**values)


def trainer_main(argv, prog, model="resnet20", data="cifar10", recipe="auto"):
    """A trainer's whole command line, in this process: `argv` (without the program name) parsed into fresh
    flag values (never the global `absl.flags.FLAGS`), then `run_main`. Returns the exit code: a bad command
    line (an unknown flag, a malformed value, extra arguments) is one line and 2, like every other mistake.

    Example:
        >>> trainer_main(["--model=resnet9", "--model_dir=/tmp/run"], "python -m trainers.cifar")  # prints one line
        2
    """
    from absl import flags

    flag_values = define_flags(model, data, recipe, flags.FlagValues())
    code = read_command_line(flag_values, prog, argv,
                             f"usage: {prog} --model_dir=DIR [--model=NAME] [--data=SOURCE] [flags]")
    return run_main(flag_values) if code is None else code


def run_main(flag_values):
    """The body of a trainer's `main`: build the config, train, map errors to a one-line message + exit code."""
    return exit_code(lambda: train(config_from_flags(flag_values)))


def exit_code(body):
    """Runs `body()` (a command's work) and maps its errors to one line on stderr and the exit code: 0 done,
    2 `ConfigError`, 3 `NaNLossError`, 4 stopped on request, 5 storage error; anything else propagates.

    Example:
        >>> exit_code(lambda: None)
        0
    """
    try:
        body()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    except NaNLossError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 3
    except Stopped as e:  # SIGTERM / SIGINT: backed up at the iteration reached; the same command continues
        print(e, file=sys.stderr, flush=True)
        return EXIT_STOPPED
    except Exception as e:  # a full disk, a quota, a read-only file system: one line, exit 5
        if not faults.is_storage_error(e):
            raise
        print(f"error: {faults.describe_storage_error(e)}", file=sys.stderr, flush=True)
        return faults.EXIT_STORAGE
    return 0
