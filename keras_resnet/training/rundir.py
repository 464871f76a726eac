"""The files of a run's `model_dir` that describe it: config.json, dataset.json, mean_image.npy, summary.json.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (what a run records is what
its tables report: test error, iterations; see docs/CONTRACTS.md for the whole `model_dir`).

A `model_dir` holds one run: `check_model_dir` refuses to continue a run whose configuration differs in any
field that changes what is computed (`VOLATILE_FIELDS` may change, e.g. `--sync_every`, `--input`).

Example:
    >>> from keras_resnet.training.rundir import check_model_dir
    >>> check_model_dir("/tmp/new_run", {"model": "resnet8"})  # no config.json yet: nothing to check
"""

from __future__ import annotations

import json
import os

import numpy as np

import keras

from keras_resnet.run_log import write_json
from keras_resnet.training.config import VOLATILE_FIELDS, ConfigError
from keras_resnet.training.progress import log

IGNORED_FIELDS = ("started", "replicas", "backend", "keras_version")


def check_model_dir(model_dir, resolved):
    """Raises `ConfigError` if `model_dir/config.json` holds a run with a different configuration."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    diffs = [k for k in sorted(set(old) | set(resolved))
             if k not in VOLATILE_FIELDS and k not in IGNORED_FIELDS and old.get(k) != resolved.get(k)]
    if diffs:
        details = "; ".join(f"--{k}: {old.get(k)!r} there, {resolved.get(k)!r} now" for k in diffs[:6])
        raise ConfigError(f"--model_dir={model_dir} holds a run with a different configuration ({details}). "
                          "Use a new --model_dir, or the same flags to resume it.")


def resolved_config(config, run_input, recipe, precision, runtime, steps_per_epoch, epochs):
    """The `config.json` of a run: every flag with the values actually used and the recipe's fields."""
    info = run_input.info
    resolved = {**config.to_dict(), "batch_size": run_input.global_batch, "precision": precision,
                "recipe_fields": recipe.to_dict(), "steps_per_epoch": steps_per_epoch, "epochs": epochs,
                "classes": info.num_classes, "image_shape": list(info.image_shape),
                "replicas": runtime.replicas, "backend": runtime.backend, "keras_version": keras.__version__}
    resolved["train_steps"] = recipe.train_steps
    return resolved


def write_run_files(model_dir, resolved, info):
    """Writes config.json, dataset.json and mean_image.npy (and creates `checkpoints/`)."""
    os.makedirs(os.path.join(model_dir, "checkpoints"), exist_ok=True)
    write_json(os.path.join(model_dir, "config.json"), resolved)
    with open(os.path.join(model_dir, "dataset.json.tmp"), "w") as f:
        f.write(info.to_json())
    os.replace(os.path.join(model_dir, "dataset.json.tmp"), os.path.join(model_dir, "dataset.json"))
    if info.mean is not None:
        np.save(os.path.join(model_dir, "mean_image.npy"), np.asarray(info.mean, np.float32))


def export_run(model_dir, export_dir=None, verbose=1):
    """Exports the run in `model_dir` with `keras_resnet.export` (TensorFlow only; skipped otherwise)."""
    if keras.backend.backend() != "tensorflow":
        log(verbose, "[keras_resnet] export skipped: SavedModel export needs the TensorFlow backend.")
        return None
    try:
        from keras_resnet import export as export_lib
    except ImportError as e:
        log(verbose, f"[keras_resnet] export skipped: keras_resnet.export is not available ({e}).")
        return None
    path = export_lib.export_from_model_dir(model_dir, export_dir or "saved_models")
    log(verbose, f"Exported to {path}")
    return path
