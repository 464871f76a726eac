"""Stop on request: SIGTERM and SIGINT become a request that a long job honours at its next safe point.

Spot VMs, Kubernetes evictions, Slurm time limits and Ctrl-C *ask* before they kill: they send SIGTERM or
SIGINT, then SIGKILL a few seconds later. While a `StopRequest` is active, those signals no longer end the
process; they set `requested` (the signal's name), and the job (the training loop, a tuner) checks it where
it can stop cleanly: it finishes the iterations already dispatched, writes its backup at that point with the
usual atomic writers, prints one line (`StopRequest.line`) and exits with `EXIT_STOPPED` (4, "incomplete:
rerun the same command to continue", the code an unfinished search already used). A second signal while
stopping is noted and changes nothing: the backup is completed either way (only SIGKILL can cut it short,
and the crash-safe writers cover that).

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (section 4.2's 64k-iteration
runs take hours on a CPU and 90 ImageNet epochs take days: a preemption must not cost an epoch).

Example:
    >>> import os, signal
    >>> with StopRequest() as stop:
    ...     os.kill(os.getpid(), signal.SIGTERM)  # what a scheduler sends
    ...     stop.requested
    'SIGTERM'
    >>> str(stop.stopped(211))
    'stopped at iteration 211 on SIGTERM; rerun the same command to continue'
"""

from __future__ import annotations

import signal
import threading

EXIT_STOPPED = 4
"""Exit code of a job stopped on request (and of a search stopped before every trial finished): incomplete,
the same command continues it."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    """Raised by a job once it has stopped on request and saved its state; the entry point prints `str(error)`
    (one line) and exits with `EXIT_STOPPED`.

    Attributes:
        iteration: where the job stopped (the iteration its backup holds).
        signal_name: the signal that asked it to stop (`"SIGTERM"`, `"SIGINT"`).
    """

    def __init__(self, message, iteration=None, signal_name=None):
        super().__init__(message)
        self.iteration, self.signal_name = iteration, signal_name


class StopRequest:
    """A context in which SIGTERM and SIGINT request a stop instead of ending the process.

    Handlers are installed on entry (main thread only: elsewhere signals cannot be caught and the request
    stays unset) and the previous ones put back on exit. Re-entrant use (a tuner's trial inside a search
    that holds a request already) shares the outer request.

    Attributes:
        requested: the name of the first signal received (`"SIGTERM"`, `"SIGINT"`), or None.
        repeated: how many more signals arrived after the first (they change nothing).
    """

    _active = None  # the innermost active request: a nested one shares it

    def __init__(self):
        self.requested = None
        self.repeated = 0
        self._previous = {}
        self._outer = None

    def __enter__(self):
        self._outer = StopRequest._active
        if self._outer is not None:
            return self._outer
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        StopRequest._active = self
        return self

    def __exit__(self, *exc):
        if self._outer is not None:
            return False
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        StopRequest._active = None
        return False

    def rearm(self):
        """Installs the handlers again (main thread only), over any a library put in their place since:
        TensorFlow's coordination service registers its own SIGTERM handler (its preemption notifier) when
        a `MultiWorkerMirroredStrategy` starts, at the C level, where Python does not see it."""
        if self._outer is not None:
            self._outer.rearm()
        elif self._previous and threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                signal.signal(signum, self._handle)

    def _handle(self, signum, frame):  # runs between two Python bytecodes: set a flag, nothing else
        if self.requested is None:
            self.requested = signal.Signals(signum).name
        else:
            self.repeated += 1

    def line(self, where):
        """The one line a job prints when it has stopped on this request; `where` says where ("at iteration
        211", "between trials")."""
        return f"stopped {where} on {self.requested}; rerun the same command to continue"

    def stopped(self, iteration, where=None):
        """The `Stopped` exception a job raises once its state at `iteration` is saved."""
        return Stopped(self.line(where or f"at iteration {iteration}"), iteration, self.requested)


def active():
    """The active `StopRequest`, or None outside one (a job run without an entry point's request)."""
    return StopRequest._active
