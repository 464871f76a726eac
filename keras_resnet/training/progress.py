"""What a run prints: the Keras progress bar with the iteration and learning rate, and one-line messages.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (iterations, not epochs, are
the unit of its recipes: the bar shows `12/64000`).

Example:
    >>> import keras
    >>> from keras_resnet.training.progress import log, progress
    >>> bar = keras.utils.Progbar(4, verbose=0, stateful_metrics=["ce", "l2", "error"])
    >>> progress(bar, 1, 1, 64000, 0.1, {"ce": 2.3, "l2": 0.02, "error": 0.9})
    >>> log(1, "done")
    done
"""

from __future__ import annotations

import keras

from keras_resnet import compat

METRICS = ["ce", "l2", "error"]
"""The bar's running means: cross-entropy, the L2 weight-decay term (their sum is the loss SGD minimises) and the
training error."""


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


def percent(value):
    return f"{100 * value:.2f}%"


def error_text(error, top5, split="test"):
    """`test_error 8.75%` (and ` (top-5 1.20%)`): the label names the evaluation split."""
    top = f" (top-5 {percent(top5)})" if top5 is not None else ""
    return f"{'val' if split == 'validation' else split}_error {percent(error)}{top}"


def epoch_line(record, eval_split="test"):
    """The one line printed after an epoch: iteration, the loss as cross-entropy + L2 term, errors (top-5 too
    with more than 5 classes) and images per second. `test_*` values are those of the evaluation split, named
    in the line."""
    val = ""
    if record["val_error"] is not None:
        val = f" - {error_text(record['val_error'], record.get('val_top5_error'), 'validation')}"
    test = error_text(record["test_error"], record.get("test_top5_error"), eval_split)
    loss = f"loss {record['loss']:.4f}"
    if record.get("cross_entropy") is not None:
        loss = f"cross-entropy {record['cross_entropy']:.4f} + L2 {record['regularization']:.4f}"
    return (f"iteration {record['iteration']} - {loss} - error {percent(record['error'])}{val}"
            f" - {test} - {record['images_per_second']:.0f} images/s")


def evaluation_line(summary, model_dir):
    """The last line of a run: the evaluation split's top-1 (and top-5) error, iterations, time, `model_dir`."""
    split = summary.get("eval_split", "test")
    top5 = f", top-5 {percent(summary['test_top5_error'])}" if summary.get("test_top5_error") is not None else ""
    crops = ", 10 crops" if summary.get("eval_crops", 1) == 10 else ""
    where = f" ({split} split{crops})" if split != "test" or crops else ""
    skipped = sum(dict(summary.get("skipped_images") or {}).values())
    skipped = f", {skipped} undecodable image(s) skipped" if skipped else ""
    return (f"{summary['model']}: {split} error {percent(summary['test_error'])}{top5}{where} after "
            f"{summary['iterations']} iterations ({summary['wall_time_s']:.0f} s, "
            f"{summary['images_per_second']:.0f} images/s{skipped}) -> {model_dir}")


def start_lines(run):
    """What a run says before its first epoch: what it evaluates on, how its inputs are normalised, what
    `--init_from` loaded and what `--freeze` fixed."""
    model, data, run_input = run.parts.model, run.parts.data, run.run_input
    info = run_input.info
    protocol = "centre crop" if info.preprocessing == "imagenet" else "whole images"
    protocol = "10 crops" if data.ten_crop else protocol
    lines = [f"[keras_resnet] evaluation: the {run_input.eval_split} split of {data.flag}, {protocol} "
             f"{info.image_shape[0]}x{info.image_shape[1]}, top-1{' and top-5' if info.num_classes > 5 else ''} "
             "error after every epoch."]
    if run_input.eval_transform is not None:
        lines.append(f"[keras_resnet] evaluation transform of --init_from={model.init_from}: "
                     f"{run_input.eval_transform.describe()}.")
    if run_input.normalization is not None:
        lines.append(f"[keras_resnet] input normalisation of --init_from={model.init_from}: "
                     f"{run_input.normalization.preprocessing.to_json()}.")
    built = run.built
    if built is not None and built.init_report is not None:
        lines += built.init_report.lines()
    elif model.init_from is not None and run.state.start:
        lines.append(f"[keras_resnet] --init_from={model.init_from} not loaded: the run resumes from its backup.")
    if built is not None and built.frozen:
        lines.append(f"[keras_resnet] --freeze={','.join(model.freeze)}: {len(built.frozen)} layers fixed, their "
                     "BN statistics included.")
    return lines
