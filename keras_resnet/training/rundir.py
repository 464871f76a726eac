"""The files of a run's `model_dir` that describe it: config.json, dataset.json, mean_image.npy, summary.json.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (what a run records is what
its tables report: test error, iterations; see docs/CONTRACTS.md for the whole `model_dir`).

A `model_dir` holds one run: `check_model_dir` refuses to continue a run whose configuration differs in any
field that changes what is computed (`VOLATILE_FIELDS` may change, e.g. `--sync_every`, `--input`), and a
run whose `config.json` or `checkpoints/*.keras` cannot be read or hold another model (`ConfigError`
naming the file; nothing is replaced). `write_run_files` first removes the temporary files a killed run
left behind. `export_run` exports a run once: `model_dir/export.json` records the version, so a rerun
after a kill at any moment (or of a finished command) never publishes a second one.

Fault sites (`keras_resnet.faults`): "train.start" (the run files written, nothing trained in this
process yet), "train.exported" (the export published and recorded, before the message).

Example:
    >>> from keras_resnet.training.rundir import check_model_dir
    >>> check_model_dir("/tmp/new_run", {"model": "resnet8"})  # no config.json yet: nothing to check
"""

from __future__ import annotations

import glob
import json
import os
import zipfile

import numpy as np

import keras

from keras_resnet import atomic, faults
from keras_resnet.run_log import write_json
from keras_resnet.training.config import VOLATILE_FIELDS, ConfigError
from keras_resnet.training.progress import log

IGNORED_FIELDS = ("started", "replicas", "backend", "keras_version")
CHECKPOINT_FILES = ("latest.keras", "best.keras")
EXPORT_RECORD = "export.json"
STALE_TEMPORARIES = tuple(os.path.join(*parts) for parts in (
    ("*.tmp-*",), (".tmp-*",), ("checkpoints", ".tmp-*"), ("checkpoints", "*.tmp-*"), ("backup", ".tmp-*"),
    ("backup", "*.tmp-*"), ("logs", "*", "*.tmp"), ("logs", "*", ".*.tmp-*"),
    # the names written before `keras_resnet.atomic.temporary_name` (2026-12-02), left by runs killed then
    ("*.tmp",), ("*.tmp.png",), ("checkpoints", "*.tmp"), ("backup", "tmp.weights.h5"), ("backup", "*.tmp"),
    ("logs", "*", ".*.tmp")))
"""Temporary files a killed run may leave (`keras_resnet.atomic.temporary_name`); removed at the next start,
which holds the run's lock, so none of them belongs to a live writer."""


def read_config(path):
    """The JSON of a run's `config.json` at `path`; a `ConfigError` naming it when it cannot be read."""
    try:
        with open(path) as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is corrupted ({error}); restore it, or use a new --model_dir (nothing was "
                          "changed).") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a run configuration (a JSON object); restore it, or use a new "
                          "--model_dir (nothing was changed).")
    return config


def check_model_dir(model_dir, resolved):
    """Raises `ConfigError` if `model_dir` holds a run with a different configuration, or a `config.json` or
    checkpoint that cannot be read or holds another model (the file is named)."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.exists(path):
        return
    old = read_config(path)
    diffs = [k for k in sorted(set(old) | set(resolved))
             if k not in VOLATILE_FIELDS and k not in IGNORED_FIELDS and old.get(k) != resolved.get(k)]
    if diffs:
        details = "; ".join(f"--{k}: {old.get(k)!r} there, {resolved.get(k)!r} now" for k in diffs[:6])
        raise ConfigError(f"--model_dir={model_dir} holds a run with a different configuration ({details}). "
                          "Use a new --model_dir, or the same flags to resume it.")
    model = str(resolved.get("model", "")).strip().lower()
    for name in CHECKPOINT_FILES:
        checkpoint = os.path.join(model_dir, "checkpoints", name)
        problem = checkpoint_problem(checkpoint, model) if os.path.exists(checkpoint) else None
        if problem:
            raise ConfigError(f"{checkpoint} {problem}; restore it, or delete it (the run resumes from backup/ and "
                              "writes it again at the next epoch's end; nothing was changed).")


def checkpoint_problem(path, model):
    """Why the `.keras` archive at `path` is not a checkpoint of the model named `model`, or None.

    Checks the archive's integrity (every member's CRC) and the model name in its `config.json`, without
    loading it.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            if broken is not None:
                return f"is corrupted (its member {broken} fails its checksum)"
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        return f"is not a readable .keras archive ({type(error).__name__}: {error})"
    name = (config.get("config") or {}).get("name") if isinstance(config, dict) else None
    if model and name != model:
        return f"holds another model ({name!r}; this run trains {model!r})"
    return None


def remove_stale_temporaries(model_dir):
    """Removes the temporary files a killed run left in `model_dir` (not those of `.workers/`); returns them."""
    removed = []
    for pattern in STALE_TEMPORARIES:
        for path in glob.glob(os.path.join(glob.escape(model_dir), pattern)):
            atomic.discard(path)
            removed.append(path)
    return removed


def resolved_config(flags, run_input, recipe, precision, runtime, steps_per_epoch, epochs):
    """The `config.json` of a run: every flag (`flags`: `TrainConfig.to_dict()`) with the values actually used
    and the recipe's fields."""
    info = run_input.info
    resolved = {**flags, "batch_size": run_input.global_batch, "precision": precision,
                "recipe_fields": recipe.to_dict(), "steps_per_epoch": steps_per_epoch, "epochs": epochs,
                "classes": info.num_classes, "image_shape": list(info.image_shape),
                "replicas": runtime.replicas, "backend": runtime.backend, "keras_version": keras.__version__}
    resolved["train_steps"] = recipe.train_steps
    return resolved


def write_run_files(model_dir, resolved, info):
    """Removes stale temporary files; writes config.json, dataset.json and mean_image.npy (and creates
    `checkpoints/`), each atomically."""
    os.makedirs(os.path.join(model_dir, "checkpoints"), exist_ok=True)
    remove_stale_temporaries(model_dir)
    write_json(os.path.join(model_dir, "config.json"), resolved)
    with atomic.replacing(os.path.join(model_dir, "dataset.json")) as tmp:
        with open(tmp, "w") as f:
            f.write(info.to_json())
    if info.mean is not None:
        with atomic.replacing(os.path.join(model_dir, "mean_image.npy")) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(info.mean, np.float32))
    faults.site("train.start")


def export_run(model_dir, export_dir=None, verbose=1):
    """Exports the run in `model_dir` with `keras_resnet.export` (TensorFlow only; skipped otherwise), once.

    `model_dir/export.json` records the version chosen before the export starts
    (`keras_resnet.export.versions.publish_once`): a rerun, after a kill at any moment or of a finished
    command, publishes nothing new while that version exists under the same export root.
    """
    if keras.backend.backend() != "tensorflow":
        log(verbose, "[keras_resnet] export skipped: SavedModel export needs the TensorFlow backend.")
        return None
    try:
        from keras_resnet import export as export_lib
        from keras_resnet.export import versions
    except ImportError as e:
        log(verbose, f"[keras_resnet] export skipped: keras_resnet.export is not available ({e}).")
        return None
    summary_path = os.path.join(model_dir, "summary.json")
    iterations = read_config(summary_path).get("iterations") if os.path.exists(summary_path) else None
    record = os.path.join(model_dir, EXPORT_RECORD)
    path, exported = versions.publish_once(
        record, export_dir or "saved_models", {"checkpoint": "best", "iterations": iterations},
        lambda version: export_lib.export_from_model_dir(model_dir, export_dir or "saved_models", version=version))
    faults.site("train.exported")
    log(verbose, f"Exported to {path}" if exported else f"Already exported to {path} ({record}).")
    return path
