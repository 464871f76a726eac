"""What a training run writes as it goes: the CSV log, TensorBoard scalars, `curves.png` and JSON files.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Fig. 6 (training error
dashed, test error solid, against iterations), which `plot_curves` draws for one run.

Every file is written to a temporary path and renamed (`keras_resnet.atomic.replacing`), so a run killed
at any moment never leaves a half-written artifact, and a write that fails (a full disk) removes its
temporary file, leaves the previous file intact and raises `keras_resnet.faults.StorageError` naming the
file. A resumed run cuts its history back to the iteration it resumes from
(`truncate_history`): rows of `log.csv` and TensorBoard events written after the last backup by the killed
process are dropped, so both histories stay continuous, without gaps or repeated steps, for every reader
(TensorBoard's Python loader and its Rust data server alike); an event file whose last record a kill
cut short keeps its complete records, and the temporary files of a killed rewrite are removed.

Fault sites (`keras_resnet.faults`): "json.replace" (a JSON file written under its temporary name, not yet
renamed), "csv.replace" (the same for `log.csv`), "tensorboard.flush" (the scalars of an epoch flushed to
the event files), "tensorboard.truncate" (a cut-back event file written under its temporary name).

Example:
    >>> from keras_resnet import run_log
    >>> run_log.rewrite_csv("/tmp/run/log.csv", [])  # needs a run directory  # doctest: +SKIP
    >>> run_log.plot_curves("/tmp/run/log.csv", "/tmp/run/curves.png", title="resnet20")  # needs a run directory  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import glob
import json
import logging
import os

import numpy as np

from keras_resnet import atomic, faults

logger = logging.getLogger("keras_resnet.run_log")

CSV_FIELDS = ("epoch", "iteration", "learning_rate", "loss", "cross_entropy", "regularization", "accuracy", "error",
              "val_loss", "val_error", "test_loss", "test_error", "images_per_second", "wall_time_s")
"""`loss` is what SGD minimised: `cross_entropy` (mean over the epoch's iterations) plus `regularization`, the
L2 weight decay's term `sum(l * ||w||^2)`, which grows with the weights' scale (BN makes the output blind to
it) and is not a sign of divergence; both are logged apart (He et al. 2015, section 3.4)."""
TENSORBOARD_SPLITS = ("train", "validation", "test")
TRUNCATING = ".truncating.tmp"
"""The temporary name of an event file being cut back (TensorBoard reads only names containing "tfevents")."""


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically (numpy scalars and arrays are converted)."""
    with atomic.replacing(path, moment="json.replace") as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, default=json_default)


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


def row_numbers(row):
    """A row of `read_csv` as the numbers the trainer logged: `epoch` and `iteration` ints, the rest floats,
    an empty cell (a column the run has no value for, such as `val_error` without a validation split) None."""
    return {key: None if value in ("", None) else int(value) if key in ("epoch", "iteration") else float(value)
            for key, value in row.items()}


def rewrite_csv(path, rows):
    """Writes `rows` (dicts keyed by `CSV_FIELDS`, then any extra columns such as `test_top5_error`, in the
    order they first appear) as the whole CSV log, atomically."""
    fields = list(dict.fromkeys([*CSV_FIELDS, *(key for row in rows for key in row)]))
    with atomic.replacing(path, moment="csv.replace") as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


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
        """Writes the buffered scalars to the event files."""
        if not self.enabled:
            return
        for writer in self.writers.values():
            writer.flush()
        faults.site("tensorboard.flush")


def read_event_records(path):
    """`(raw record, Event)` of each complete record of the event file `path`, in order.

    A kill in the middle of a write can leave the last record cut short (`DataLossError` when read): the
    complete records before it are returned and the cut one is dropped.
    """
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    records = []
    try:
        for record in tf.data.TFRecordDataset(path):
            raw = record.numpy()
            records.append((raw, event_pb2.Event.FromString(raw)))
    except tf.errors.DataLossError:
        logger.warning("%s ends with a record cut short (the writer was killed): dropped.", path)
        records.append((None, None))
    return records


def truncate_event_files(log_dir, last_step):
    """Drops every TensorBoard event with a step after `last_step` from the event files under `log_dir`.

    Used when a run resumes from a backup at iteration `last_step`: the killed process may have written
    scalars for iterations it never backed up, which the resumed run writes again. Each file is rewritten
    to a temporary path and renamed; files that lose nothing are left untouched, and files left empty of
    data are removed. A record cut short by a kill is dropped, and the temporary files of a killed rewrite
    (`TRUNCATING`) are removed first.

    Args:
        log_dir: the run's `logs/` directory (searched recursively for `events.out.tfevents.*`).
        last_step: the iteration the run resumes from; events at steps <= it are kept.

    Returns:
        The number of events dropped.
    """
    import tensorflow as tf

    dropped = 0
    for pattern in (f"{TRUNCATING}*", "events.out.tfevents.*.tmp"):  # rewrites killed before their rename
        for path in glob.glob(os.path.join(glob.escape(log_dir), "**", pattern), recursive=True):
            atomic.discard(path)  # the original is intact
    for path in sorted(glob.glob(os.path.join(glob.escape(log_dir), "**", "events.out.tfevents.*"), recursive=True)):
        records = read_event_records(path)
        kept = [(raw, event) for raw, event in records if event is not None and event.step <= last_step]
        removed = len(records) - len(kept)
        if not removed:
            continue
        dropped += removed
        if not any(event.HasField("summary") for _, event in kept):
            os.remove(path)
            continue
        tmp = atomic.temporary_name(os.path.join(os.path.dirname(path), TRUNCATING))  # no "tfevents": never read
        with atomic.replacing(path, tmp, moment="tensorboard.truncate"):
            with tf.io.TFRecordWriter(tmp) as writer:
                for raw, _ in kept:
                    writer.write(raw)
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
    try:
        with atomic.replacing(png_path, atomic.temporary_name(png_path, keep_suffix=True)) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return png_path
