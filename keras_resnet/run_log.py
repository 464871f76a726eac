"""What a training run writes as it goes: the CSV log, TensorBoard scalars, `curves.png` and JSON files.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Fig. 6 (training error
dashed, test error solid, against iterations), which `plot_curves` draws for one run.

Every file is written to a temporary path and renamed, so a run killed at any moment never leaves a
half-written artifact. A resumed run cuts its history back to the iteration it resumes from
(`truncate_history`): rows of `log.csv` and TensorBoard events written after the last backup by the killed
process are dropped, so both histories stay continuous, without gaps or repeated steps, for every reader
(TensorBoard's Python loader and its Rust data server alike).

Example:
    >>> from keras_resnet import run_log
    >>> run_log.rewrite_csv("/tmp/run/log.csv", [])  # doctest: +SKIP
    >>> run_log.plot_curves("/tmp/run/log.csv", "/tmp/run/curves.png", title="resnet20")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os

import numpy as np

logger = logging.getLogger("keras_resnet.run_log")

CSV_FIELDS = ("epoch", "iteration", "learning_rate", "loss", "accuracy", "error", "val_loss", "val_error",
              "test_loss", "test_error", "images_per_second", "wall_time_s")
TENSORBOARD_SPLITS = ("train", "validation", "test")


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically (numpy scalars and arrays are converted)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=json_default)
    os.replace(tmp, path)


def json_default(obj):
    """`json.dump` fallback: numpy scalars and arrays as Python numbers and lists, anything else as str."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def read_csv(path):
    """The rows of the CSV log at `path` as dicts of strings; `[]` when it does not exist yet."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def rewrite_csv(path, rows):
    """Writes `rows` (dicts keyed by `CSV_FIELDS`) as the whole CSV log, atomically."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


class TensorBoard:
    """Scalars (loss, accuracy, error, learning rate, images/s) keyed by iteration; a no-op when disabled.

    Args:
        log_dir: the run's `logs/` directory; one sub-directory per split (`train`, `validation`, `test`).
        enabled: False on backends without TensorFlow (nothing is imported or written then).
    """

    def __init__(self, log_dir, enabled):
        self.writers = {}
        self.enabled = enabled
        if enabled:
            import tensorflow as tf

            self.tf = tf
            self.writers = {name: tf.summary.create_file_writer(os.path.join(log_dir, name))
                            for name in TENSORBOARD_SPLITS}

    def scalars(self, split, step, values):
        """Writes each finite value of `values` (name -> number or None) under `split` at `step`."""
        if not self.enabled:
            return
        with self.writers[split].as_default(step=int(step)):
            for name, value in values.items():
                if value is not None and np.isfinite(value):
                    self.tf.summary.scalar(name, float(value))

    def flush(self):
        for writer in self.writers.values():
            writer.flush()


def truncate_event_files(log_dir, last_step):
    """Drops every TensorBoard event with a step after `last_step` from the event files under `log_dir`.

    Used when a run resumes from a backup at iteration `last_step`: the killed process may have written
    scalars for iterations it never backed up, which the resumed run writes again. Each file is rewritten
    to a temporary path and renamed; files that lose nothing are left untouched, and files left empty of
    data are removed.

    Args:
        log_dir: the run's `logs/` directory (searched recursively for `events.out.tfevents.*`).
        last_step: the iteration the run resumes from; events at steps <= it are kept.

    Returns:
        The number of events dropped.
    """
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    dropped = 0
    for path in sorted(glob.glob(os.path.join(log_dir, "**", "events.out.tfevents.*"), recursive=True)):
        if path.endswith(".tmp"):
            continue
        kept, removed = [], 0
        for record in tf.data.TFRecordDataset(path):
            raw = record.numpy()
            event = event_pb2.Event.FromString(raw)
            if event.step > last_step:
                removed += 1
            else:
                kept.append((raw, event))
        if not removed:
            continue
        dropped += removed
        if not any(event.HasField("summary") for _, event in kept):
            os.remove(path)
            continue
        tmp = f"{path}.tmp"
        with tf.io.TFRecordWriter(tmp) as writer:
            for raw, _ in kept:
                writer.write(raw)
        os.replace(tmp, path)
    return dropped


def truncate_history(model_dir, iteration, *, tensorboard=True):
    """Cuts `log.csv` and the TensorBoard logs of a run back to `iteration` (the point it resumes from).

    Args:
        model_dir: the run's directory.
        iteration: the optimizer iteration restored from the backup (0 for a fresh start).
        tensorboard: also truncate the TensorBoard event files (needs TensorFlow).

    Returns:
        The CSV rows kept (those of epochs that ended at or before `iteration`).
    """
    csv_path = os.path.join(model_dir, "log.csv")
    rows = [r for r in read_csv(csv_path) if int(r["iteration"]) <= iteration]
    rewrite_csv(csv_path, rows)
    log_dir = os.path.join(model_dir, "logs")
    if tensorboard and os.path.isdir(log_dir):
        dropped = truncate_event_files(log_dir, iteration)
        if dropped:
            logger.info("Dropped %d TensorBoard events after iteration %d (written before the restart).",
                        dropped, iteration)
    return rows


def plot_curves(csv_path, png_path, title=""):
    """Draws training error (dashed) and test error (solid) against iterations, like the paper's Fig. 6.

    Args:
        csv_path: a run's `log.csv`.
        png_path: where to write the PNG (atomically).
        title: the plot title (e.g. the model name).

    Returns:
        `png_path`, or None when matplotlib is not installed (a warning says the plot was skipped).
    """
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed: %s not drawn (pip install matplotlib).", png_path)
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_csv(csv_path)
    fig, ax = plt.subplots(figsize=(6, 4))
    iters = [int(r["iteration"]) for r in rows]

    def series(key):
        return [100 * float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows]

    ax.plot(iters, series("error"), "--", color="C0", label="training error")
    ax.plot(iters, series("test_error"), "-", color="C0", label="test error")
    if any(r.get("val_error") for r in rows):
        ax.plot(iters, series("val_error"), ":", color="C1", label="validation error")
    ax.set_xlabel("iterations")
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = png_path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)
    return png_path
