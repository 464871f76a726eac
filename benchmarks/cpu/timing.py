"""Timed windows of a callable, calibrated once, and the medians the table shows.

A worker registers each engine's call (one inference call on a fixed batch, or one training step) under
a key. `calibrate` runs it a few times untimed (first-call costs: allocation, tracing, graph
optimisation) and fixes the number of calls per window so that a window lasts about the target; every
later `window` request runs exactly that many calls and returns the elapsed seconds. The orchestrator
asks for the windows of all columns of a row in turn, so that a slow patch on a shared machine hits
every column alike.

Example:
    >>> timer = Timer()
    >>> timer.add("noop", lambda: None, items=1)
    >>> timer.calibrate("noop", calls=3)["calls"]
    3
    >>> timer.window("noop")["calls"]
    3
"""

from __future__ import annotations

import math
import statistics
import time


class Timer:
    """Registered calls, each with its items per call (images) and calls per window."""

    def __init__(self):
        self.calls, self.items, self.per_window = {}, {}, {}

    def add(self, key, fn, items):
        """Registers `fn()` (one call processes `items` images) under `key`."""
        self.calls[key], self.items[key] = fn, int(items)

    def drop(self, key):
        """Forgets `key` (frees its model and inputs)."""
        for table in (self.calls, self.items, self.per_window):
            table.pop(key, None)
        return {}

    def calibrate(self, key, window_seconds=None, calls=None, warmup_calls=2):
        """Runs `warmup_calls` untimed calls and fixes the calls per window.

        Args:
            key: a registered call.
            window_seconds: target window length (calls = that / the last warm-up call's time).
            calls: a fixed number of calls per window instead (training: the steps of a window).
            warmup_calls: calls before timing (at least 1).

        Returns:
            `{"calls", "first_call_s", "warm_call_s"}`.
        """
        fn = self.calls[key]
        seconds = []
        for _ in range(max(1, int(warmup_calls))):
            start = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - start)
        if calls is None:
            calls = max(1, math.ceil(float(window_seconds) / max(seconds[-1], 1e-6)))
        self.per_window[key] = int(calls)
        return {"calls": int(calls), "first_call_s": seconds[0], "warm_call_s": seconds[-1]}

    def window(self, key):
        """One timed window: `{"seconds", "calls", "items"}`."""
        fn, calls = self.calls[key], self.per_window[key]
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return {"seconds": time.perf_counter() - start, "calls": calls, "items": calls * self.items[key]}

    def handlers(self):
        """The `calibrate`, `window` and `drop` requests of a worker."""
        return {"calibrate": self.calibrate, "window": self.window, "drop": self.drop}


def window_value(window, task):
    """A window's value in the row's unit: images/s, or ms per call for latency rows."""
    if task == "latency":
        return 1000.0 * window["seconds"] / window["calls"]
    return window["items"] / window["seconds"]


def summarize(windows, task):
    """`{"median", "min", "max", "values"}` of the windows' values (None when there is none)."""
    values = [window_value(w, task) for w in windows]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}
