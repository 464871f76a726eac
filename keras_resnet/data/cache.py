"""The mean-image cache: in memory, and on disk in the user cache directory (no TensorFlow).

The mean of the training split is computed once per (source fingerprint, split, validation_size, ...) key
and stored as `<cache dir>/means/<sha1 of key>.npy`, written atomically (temporary name, then rename). The
cache directory is `$KERAS_RESNET_CACHE_DIR`, else `$XDG_CACHE_HOME/keras_resnet`, else
`~/.cache/keras_resnet`; it is never next to the data, which may be read-only (`../shared`). When the cache
directory is not writable the mean is only kept in memory.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (arXiv:1512.03385),
section 4.2 (per-pixel mean subtraction).

Example:
    >>> mean = cached_mean({"source": "toy", "split": "train"}, lambda: np.zeros((32, 32, 3), "float32"))
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

_MEMORY: dict = {}
log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """The cache root (see the module docstring)."""
    if os.environ.get("KERAS_RESNET_CACHE_DIR"):
        return Path(os.environ["KERAS_RESNET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "keras_resnet"


def cached_mean(key: dict, compute) -> np.ndarray:
    """Returns the cached mean for `key` (a JSON-able dict), calling `compute()` and storing it on a miss."""
    text = json.dumps(key, sort_keys=True, default=str)
    digest = hashlib.sha1(text.encode()).hexdigest()
    path = cache_dir() / "means" / f"{digest}.npy"
    mem_key = (str(path), text)
    if mem_key in _MEMORY:
        return _MEMORY[mem_key].copy()
    mean = None
    if path.is_file():
        try:
            mean = np.load(path).astype(np.float32)
        except (OSError, ValueError) as e:
            log.warning("Ignoring unreadable mean cache %s: %s", path, e)
    if mean is None:
        mean = np.asarray(compute(), np.float32)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, mean)
            os.replace(tmp, path)
            with open(path.with_suffix(".json"), "w") as fh:
                fh.write(text)
        except OSError as e:
            log.warning("Mean image not cached on disk (%s); keeping it in memory only.", e)
    _MEMORY[mem_key] = mean
    return mean.copy()
