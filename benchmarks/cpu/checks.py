"""The output-match check every engine passes before it is timed: its logits against our Keras logits.

The tolerance is relative to the largest reference logit: `max |out - reference| / max |reference| < 1e-4`
(float32 engines computing the same network differ by rounding only; a wrong weight copy, layout or
preprocessing differs by far more).

Example:
    >>> import numpy as np
    >>> compare(np.array([[1.0, 2.0]]), np.array([[1.0, 2.00001]]))["ok"]
    True
    >>> compare(np.array([[1.0, 2.1]]), np.array([[1.0, 2.0]]))["ok"]
    False
"""

from __future__ import annotations

import numpy as np

TOLERANCE = 1e-4
"""Relative tolerance of the logits (issue 15: the outputs match before timing)."""


def compare(out, reference, tolerance=TOLERANCE):
    """`{"max_abs_diff", "relative", "tolerance", "ok"}` of `out` against `reference`."""
    out, reference = np.asarray(out, np.float64), np.asarray(reference, np.float64)
    if out.shape != reference.shape:
        return {"ok": False, "error": f"shape {out.shape} != reference {reference.shape}", "tolerance": tolerance}
    diff = float(np.abs(out - reference).max())
    relative = diff / max(float(np.abs(reference).max()), 1e-12)
    return {"max_abs_diff": diff, "relative": relative, "tolerance": tolerance,
            "ok": bool(np.isfinite(relative) and relative < tolerance)}


def softmax(logits):
    """Row-wise softmax in float64."""
    logits = np.asarray(logits, np.float64)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def predicted_classes(outputs_of, count, batch):
    """The argmax class of each of `count` images, from `outputs_of(start, stop)` (scores of images
    `start..stop-1`) called batch by batch; the top-1 pass of every worker."""
    return [int(c) for i in range(0, count, batch) for c in np.argmax(outputs_of(i, min(i + batch, count)), -1)]
