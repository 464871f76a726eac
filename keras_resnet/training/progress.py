"""What a run prints: the Keras progress bar with the iteration and learning rate, and one-line messages.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (iterations, not epochs, are
the unit of its recipes: the bar shows `12/64000`).

Example:
    >>> import keras
    >>> from keras_resnet.training.progress import log, progress
    >>> bar = keras.utils.Progbar(4, verbose=0, stateful_metrics=["loss", "error"])
    >>> progress(bar, 1, 1, 64000, 0.1, {"loss": 2.3, "error": 0.9})
    >>> log(1, "done")
    done
"""

from __future__ import annotations

import keras

from keras_resnet import compat

METRICS = ["loss", "error"]


def progress_bar(steps, verbose):
    """A Keras progress bar over the `steps` iterations of an epoch (shown at `verbose == 1` only)."""
    return keras.utils.Progbar(steps, verbose=verbose if verbose == 1 else 0, stateful_metrics=list(METRICS))


def progress(bar, current, iteration, total, lr, metrics):
    """Keras progress bar with the iteration count (as `12/64000`) and the learning rate."""
    compat.progbar_set_text(bar, "iteration", f"{iteration}/{total}")
    compat.progbar_set_text(bar, "lr", f"{lr:.4g}")
    bar.update(current, list(metrics.items()))


def log(verbose, message):
    """Prints `message` (flushed) when `verbose` is truthy."""
    if verbose:
        print(message, flush=True)


def epoch_line(record):
    """The one line printed after an epoch: iteration, loss, errors and images per second."""
    val = f" - val_error {100 * record['val_error']:.2f}%" if record["val_error"] is not None else ""
    return (f"iteration {record['iteration']} - loss {record['loss']:.4f} - error {100 * record['error']:.2f}%{val}"
            f" - test_error {100 * record['test_error']:.2f}% - {record['images_per_second']:.0f} images/s")
