"""Experiment runners: several training runs with one recipe, and the data and artifacts they share.

Reference: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016
(arXiv:1512.03385), section 4.2 and Fig. 6: plain and residual networks of several depths trained with the
identical recipe, compared by their training error.

This is the library half of `trainers/degradation.py`, `trainers/gradient_flow.py` and
`trainers/layer_responses.py` (which only parse flags and wire these calls):

* `load_experiment_data(config)`: the in-memory data of a run, loaded once for all runs when the trainer
  would read it into memory (`keras_resnet.training.uses_memory_input`).
* `train_runs(config, models, output_dir)`: each model trained with `keras_resnet.training.train` into
  `output_dir/<model>`, with its final training error and its log curves (`read_log`).
* `sample_batch(data, size)` / `sample_images(source, split, count)`: fixed, seeded probe images.
* `load_checkpoint(model_dir)`: a run's best or latest checkpoint; `write_report(path, text)` writes a text
  artifact atomically.

`keras_resnet.training` is imported inside the functions that need it (training never imports analysis).

Example:
    >>> from keras_resnet import training
    >>> config = training.TrainConfig(model="plain20", data="cifar10", train_steps=100)  # needs a prepared TFDS dataset  # doctest: +SKIP
    >>> results = train_runs(config, ["plain20", "resnet20"], "runs/fig6")  # trains a network (minutes)  # doctest: +SKIP
    >>> results["plain20"]["error"]  # final training error  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

import keras

from keras_resnet import faults, run_log


def load_experiment_data(config):
    """Loads `config.data` once as in-memory `training.ArrayData` when the trainer would use memory input.

    Args:
        config: a `keras_resnet.training.TrainConfig`.

    Returns:
        `training.ArrayData`, or None for sources the trainer reads through tf.data (TFDS names, TFRecord
        directories with `--input=tfdata` or auto on TensorFlow).
    """
    from keras_resnet import training

    if not training.uses_memory_input(config):
        return None
    return training.load_array_data(config.data, config.validation_split, config.data_dir, config.download)


def train_runs(config, models, output_dir, data=None, callbacks=None):
    """Trains each of `models` with the identical recipe of `config`, each into `output_dir/<model>`.

    Args:
        config: a `keras_resnet.training.TrainConfig`; its `model` and `model_dir` are replaced per run.
        models: list of model names (`"plain20"`, `"resnet56"`, ...).
        output_dir: str, parent directory of the runs.
        data: optional `training.ArrayData` shared by all runs (loaded once by `load_experiment_data` if None).
        callbacks: optional function `model name -> list of keras callbacks` for that run.

    Returns:
        dict model name -> the run's summary (`training.train`'s return value) plus `error` (final training
        error), `model_dir` and the log curves `curves` (see `read_log`).
    """
    from keras_resnet import training

    if data is None:
        data = load_experiment_data(config)
    results = {}
    for name in models:
        model_dir = os.path.join(output_dir, name)
        run = config.replace(model=name, model_dir=model_dir)
        summary = dict(training.train(run, data=data, callbacks=callbacks(name) if callbacks else None))
        curves = read_log(model_dir)
        summary.update(model_dir=model_dir, curves=curves,
                       error=float(curves["error"][-1]) if len(curves["error"]) else float("nan"))
        results[name] = summary
    return results


def sample_batch(data, size, seed=0, split="train"):
    """A fixed, seeded batch `(float32 preprocessed images, int32 labels)` of in-memory data.

    Args:
        data: a `training.ArrayData` (uint8 images, labels, `info.mean`).
        size: int, images in the batch (at most the split's size).
        seed: int, chooses the images.
        split: "train" or "test".

    Returns:
        `(images, labels)` normalised as the trainer does: `(image - mean) / 255`.
    """
    from keras_resnet.data import normalize

    images, labels = data.train if split == "train" else data.test
    rng = np.random.default_rng(seed)
    index = np.sort(rng.choice(len(labels), size=min(int(size), len(labels)), replace=False))
    return normalize(images[index], data.info.mean), np.asarray(labels)[index].astype("int32")


def sample_images(source, split, count, seed=0):
    """A fixed, seeded subset of the uint8 images of one split of `source`, in the source's order.

    Args:
        source: any source `keras_resnet.data.load_arrays` reads (image folder, archive, TFDS name, ...).
        split: "train" or "test".
        count: int, images to keep (at most the split's size).
        seed: int, chooses the images.

    Returns:
        uint8 images `[min(count, N), H, W, C]`, not normalised (`keras_resnet.data.normalize` does that).
    """
    from keras_resnet.data import load_arrays

    images, _, _ = load_arrays(source, split)
    rng = np.random.default_rng(seed)
    return images[np.sort(rng.choice(len(images), min(int(count), len(images)), replace=False))]


def load_checkpoint(model_dir, checkpoint="best"):
    """Loads `model_dir/checkpoints/<checkpoint>.keras` (safe mode) of a training run.

    Args:
        model_dir: str, a training run's directory.
        checkpoint: "best" or "latest".

    Returns:
        The `keras.Model`.

    Raises:
        ValueError: bad `checkpoint`. FileNotFoundError: no such checkpoint.
    """
    import keras_resnet  # noqa: F401  (registers ZeroPadShortcut and the recipes' schedules)

    if checkpoint not in ("best", "latest"):
        raise ValueError(f"`checkpoint` must be 'best' or 'latest'; received {checkpoint!r}.")
    path = os.path.join(model_dir, "checkpoints", f"{checkpoint}.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No checkpoint {path!r}: is {model_dir!r} a model_dir of a finished epoch?")
    return keras.saving.load_model(path, compile=False)


def read_log(model_dir):
    """Reads `model_dir/log.csv` of a training run (with `keras_resnet.run_log.read_csv`).

    Args:
        model_dir: str, a training run's directory.

    Returns:
        dict of float numpy arrays `iteration`, `error`, `test_error`, `cross_entropy` and `regularization`
        (the two parts of the training loss; NaN where a row has no value, as in logs written before they
        were logged apart).

    Raises:
        FileNotFoundError: `model_dir` has no `log.csv`.
    """
    path = os.path.join(model_dir, "log.csv")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No training log {path!r}: is {model_dir!r} a model_dir of a training run?")
    rows = run_log.read_csv(path)

    def column(key):
        return np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])

    return {key: column(key) for key in ("iteration", "error", "test_error", "cross_entropy", "regularization")}


def write_report(path, text):
    """Writes `text` to `path` atomically (temporary file, then rename), creating the parent directory.

    Example:
        >>> write_report("/tmp/fig6/degradation.md", "| network | ... |\\n")  # writes under /tmp/fig6  # doctest: +SKIP
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    faults.site("analysis.report")  # the report is written under its temporary name, not yet published
    os.replace(tmp, path)
    return path


__all__ = ["load_checkpoint", "load_experiment_data", "read_log", "sample_batch", "sample_images",
           "train_runs", "write_report"]
