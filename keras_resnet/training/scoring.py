"""Evaluation as the paper reports it: top-1 and top-5 error, on the centre crop or on 10 crops.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: Tables 3 and 4 (top-1 and
top-5 error on the ImageNet validation set; Table 3 with the 10-crop testing of Krizhevsky et al. 2012,
the softmax scores averaged over the four corner and centre crops and their horizontal flips) and
section 4.2 (CIFAR-10: top-1 test error).

- `evaluate(predict, batches, classes)` -> `EvalResult(loss, error, top5_error, count)`: `predict` maps
  a float32 batch `[B, H, W, C]` to probabilities `[B, classes]`; a batch of 10 crops per image
  `[B, 10, H, W, C]` is averaged over its crops. `error` is `1 - mean(argmax == label)` (the top-1 error
  every run has reported); `top5_error` is the fraction of images whose label is not among the 5 most
  probable classes (a label tied with the 5th counts as among them), None with 5 classes or fewer, where
  it is 0 by definition.

Example:
    >>> import numpy as np
    >>> probs = np.eye(6, dtype=np.float32)[[0, 1, 2]]
    >>> topk_errors(probs, np.array([0, 1, 5]))
    (0.33333333333333337, 0.0)
"""

from __future__ import annotations

import dataclasses

import numpy as np

TOP_K = 5


@dataclasses.dataclass
class EvalResult:
    """Mean cross-entropy, top-1 error, top-5 error (None with <= 5 classes) and the images counted."""

    loss: float
    error: float
    top5_error: float | None
    count: int


def top5_misses(probs, labels, k=TOP_K):
    """Number of images whose label is not among the `k` most probable classes (ties count as among)."""
    true = probs[np.arange(len(labels)), labels]
    return int((np.sum(probs > true[:, None], axis=1) >= k).sum())


def topk_errors(probs, labels, k=TOP_K):
    """`(top-1 error, top-k error)` of probabilities `[N, classes]` for int labels `[N]` (top-k None when
    there are `k` classes or fewer)."""
    labels = np.asarray(labels).astype(np.int64)
    top1 = 1.0 - float((probs.argmax(-1) == labels).sum()) / max(len(labels), 1)
    if probs.shape[-1] <= k:
        return top1, None
    return top1, top5_misses(probs, labels, k) / max(len(labels), 1)


def crop_average(predict, x):
    """Probabilities of a batch; a 10-crop batch `[B, 10, H, W, C]` is averaged over its crops."""
    x = np.asarray(x)
    if x.ndim != 5:
        return np.asarray(predict(x))
    b, crops = x.shape[:2]
    probs = np.asarray(predict(x.reshape((b * crops,) + x.shape[2:])))
    return probs.reshape(b, crops, -1).mean(axis=1)


def evaluate(predict, batches, classes=None):
    """Evaluates `predict` (numpy batch -> probabilities) on `(x, y)` batches.

    Args:
        predict: callable, float32 images `[B, H, W, C]` -> probabilities `[B, classes]`.
        batches: iterable of `(x, y)`: `x` `[B, H, W, C]` or `[B, 10, H, W, C]` (10 crops), `y` int `[B]`.
        classes: the number of classes (for top-5); taken from the probabilities if None.

    Returns:
        An `EvalResult`.
    """
    total_loss, correct, misses5, count = 0.0, 0.0, 0, 0
    for x, y in batches:
        probs = crop_average(predict, x)
        y = np.asarray(y).astype(np.int64)
        classes = classes or probs.shape[-1]
        p = np.clip(probs[np.arange(len(y)), y].astype(np.float64), 1e-7, 1.0)
        total_loss += float(-np.log(p).sum())
        correct += float((probs.argmax(-1) == y).sum())
        if classes > TOP_K:
            misses5 += top5_misses(probs, y)
        count += len(y)
    top5 = misses5 / max(count, 1) if classes and classes > TOP_K else None
    return EvalResult(total_loss / max(count, 1), 1.0 - correct / max(count, 1), top5, count)
