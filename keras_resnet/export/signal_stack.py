"""The calling thread's alternate signal stack, kept across OpenVINO's compiled models.

OpenVINO's CPU plugin (seen with 2026.4) gives the thread that compiles a model an alternate signal stack
(`sigaltstack`, 11,568 bytes) and puts the previous one back when that compiled model is destroyed. The
restores are not nested: compile A, compile B, destroy A, destroy B leaves the thread on A's stack, which was
freed with A. The int8 gate compiles the float and the int8 network and releases them in that order, so the
export left its thread on freed memory. CPython installs its signal handlers with `SA_ONSTACK`, so the next
SIGINT or SIGTERM (Ctrl-C in a notebook, a scheduler's stop request) then crashed the process with a
segmentation fault instead of reaching its handler.

`kept()` records the thread's alternate stack on entry and puts it back on exit, once the compiled models made
inside are released. Where the C library has no `sigaltstack` (Windows), it changes nothing.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the networks exported here);
`sigaltstack(2)`.

Example:
    >>> from keras_resnet.export import signal_stack
    >>> before = signal_stack.current()
    >>> with signal_stack.kept():
    ...     pass  # compile, run and release OpenVINO models here
    >>> signal_stack.current() == before
    True
"""

from __future__ import annotations

import contextlib
import ctypes
import gc


class _Stack(ctypes.Structure):  # `stack_t` of <signal.h>
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


def _sigaltstack():
    """libc's `sigaltstack`, or None where there is none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sigaltstack
    except (AttributeError, OSError, TypeError):
        return None
    function.argtypes = [ctypes.POINTER(_Stack), ctypes.POINTER(_Stack)]
    return function


def current():
    """The calling thread's alternate signal stack as `(address, flags, size)`, or None without `sigaltstack`."""
    function = _sigaltstack()
    if function is None:
        return None
    stack = _Stack()
    if function(None, ctypes.byref(stack)) != 0:
        return None
    return stack.ss_sp or 0, stack.ss_flags, stack.ss_size


@contextlib.contextmanager
def kept():
    """Puts the calling thread's alternate signal stack back as it was on entry, after collecting garbage so
    that compiled models dropped inside are destroyed first (their destructors restore stacks of their own)."""
    function = _sigaltstack()
    saved = _Stack()
    if function is None or function(None, ctypes.byref(saved)) != 0:
        yield
        return
    try:
        yield
    finally:
        gc.collect()
        # The flags a caller may set are SS_DISABLE or 0; SS_ONSTACK (we are not on it here) is read-only.
        saved.ss_flags &= ~1  # SS_ONSTACK
        function(ctypes.byref(saved), None)
