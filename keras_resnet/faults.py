"""Named fault sites: the moments at which a crash must lose nothing, made reachable on purpose.

Code marks each critical moment (inside a checkpoint or backup write, between a trial's end and the
oracle's save, ...) with `faults.site("checkpoint.write")`. Normally that is a dictionary lookup and
nothing else. With the environment variable `KERAS_RESNET_FAULT` set, the process kills itself with
SIGKILL (or raises an injected `OSError`) at the N-th hit of the named site, so a crash test reaches the
moment it means every time, on a fast and on a busy machine, instead of racing a timer.

Syntax of `KERAS_RESNET_FAULT`: `SITE[@N][:ACTION]`, several separated by commas. `N` counts the hits of
`SITE` in this process, from 1 (default 1). `ACTION` is one of
- `kill` (default): SIGKILL, no clean-up runs;
- `enospc`: raise `OSError(errno.ENOSPC)` as a full disk does;
- `sigterm` / `sigint`: the process sends itself SIGTERM / SIGINT (as a scheduler or Ctrl-C would) and
  goes on: what a stop request does is the handler's business (`keras_resnet.training.stop_request`);
- `wait`: the process waits at the site until a signal arrives from outside (any of SIGTERM, SIGINT,
  SIGUSR1), then hands it to the handler that was there, as if it had arrived at that moment. A test sends
  the signal once the log below shows the site: it lands at that moment exactly, with no race against the
  process's speed.

With `KERAS_RESNET_FAULT_LOG=PATH` every hit of every site is appended to PATH as one line (`SITE N`),
written through before the action, so a harness can check that the sites it lists were reached (and knows
when a waiting process is waiting).

Example:
    >>> from keras_resnet import faults
    >>> faults.site("example.moment")  # no-op unless KERAS_RESNET_FAULT names it
"""

import collections
import errno
import os
import signal

FAULT_ENV = "KERAS_RESNET_FAULT"
LOG_ENV = "KERAS_RESNET_FAULT_LOG"
ACTIONS = ("kill", "enospc", "sigterm", "sigint", "wait")
WAITED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)

_hits = collections.Counter()


def parse_spec(text):
    """Parses a `KERAS_RESNET_FAULT` value into `{site: (n, action)}`.

    Args:
        text: str, e.g. `"checkpoint.write@2:kill,csv.write:enospc"`.

    Returns:
        dict mapping each site name to `(n, action)`.

    Raises:
        ValueError: a malformed entry (names the variable, the entry and the accepted form).
    """
    plan = {}
    for entry in filter(None, (part.strip() for part in (text or "").split(","))):
        name, _, action = entry.partition(":")
        name, _, count = name.partition("@")
        action = action or "kill"
        if not name or action not in ACTIONS or (count and not count.isdigit()) or count == "0":
            raise ValueError(f"{FAULT_ENV}: bad entry {entry!r}; expected SITE[@N][:ACTION] with N >= 1 and "
                             f"ACTION one of {', '.join(ACTIONS)}.")
        plan[name] = (int(count or 1), action)
    return plan


def site(name):
    """Marks the critical moment `name`; fires the fault that `KERAS_RESNET_FAULT` plans for it, if any.

    Args:
        name: str, a dotted site name such as `"backup.write"` (see docs/CONTRACTS.md for the list).

    Raises:
        OSError: `errno.ENOSPC`, when the plan says `enospc` for this hit.
    """
    spec = os.environ.get(FAULT_ENV)
    log_path = os.environ.get(LOG_ENV)
    if not spec and not log_path:
        return
    _hits[name] += 1
    count = _hits[name]
    n, action = parse_spec(spec).get(name, (None, None))
    action = action if count == n else None
    waiting = _SignalWait() if action == "wait" else None  # listening before the log line says it waits
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"{name} {count}\n")
            f.flush()
            os.fsync(f.fileno())
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action in ("sigterm", "sigint"):  # to the process, as a scheduler sends it (any thread may receive it)
        os.kill(os.getpid(), signal.SIGTERM if action == "sigterm" else signal.SIGINT)
        return
    if action == "wait":
        waiting.wait()
        return
    raise OSError(errno.ENOSPC, f"No space left on device (injected by {FAULT_ENV} at {name} hit {count})")


class _SignalWait:
    """The `wait` action: until one of `WAITED_SIGNALS` has been handled, then passes it on to the handler
    that was there (e.g. a stop request's), as if it had arrived at this moment.

    It polls a flag its own handlers set rather than blocking in `sigwait`: a signal sent to the process may
    be delivered to any of its threads (TensorFlow's, gRPC's), and Python runs the handler in the main thread
    at its next bytecode, which a 10 ms sleep reaches.
    """

    def __init__(self):
        self.received = None
        self.previous = {signum: signal.signal(signum, self._handle) for signum in WAITED_SIGNALS}

    def _handle(self, signum, frame):
        if self.received is None:
            self.received = (signum, frame)

    def wait(self):
        import time

        while self.received is None:
            time.sleep(0.01)
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        signum, frame = self.received
        handler = self.previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.raise_signal(signum)  # ends the process as the signal would have


# ------------------------------------------------------------------------------------------------------
# Storage failures: a full disk, a quota, a read-only file system. Writers name the file they could not
# write (`StorageError`), remove their partial temporary file (`keras_resnet.atomic.discard`), and the entry
# points turn the error into one line and `EXIT_STORAGE`.

EXIT_STORAGE = 5
"""Exit code of every entry point (trainers, `tuning.search`, `keras_resnet.export`) for a storage error
(2 = bad configuration or unreadable file, 3 = NaN loss, 4 = incomplete search)."""

STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)
STORAGE_MESSAGES = tuple(os.strerror(code) for code in STORAGE_ERRNOS)  # "No space left on device", ...


class StorageError(OSError):
    """A write that failed for lack of space (or quota, a read-only file system, a file too large), naming the path.

    `errno`, `strerror` and `filename` are those of `OSError`; `str(error)` is one line:
    `cannot write <path>: <cause>`.

    Example:
        >>> str(StorageError(errno.ENOSPC, "No space left on device", "/run/backup/latest.weights.h5"))
        'cannot write /run/backup/latest.weights.h5: No space left on device'
    """

    def __str__(self):
        return f"cannot write {self.filename}: {self.strerror}"


def is_storage_error(error):
    """Whether `error` (any exception, or one it was raised from) says the disk is full, over quota,
    read-only or failing: an `OSError` with such an errno, or an error whose message says so (TensorFlow's
    file errors are not `OSError`s)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
            return True
        if any(message in str(error) for message in STORAGE_MESSAGES):
            return True
        error = error.__cause__ or error.__context__
    return False


def storage_cause(error):
    """The first exception of `error`'s chain (itself, what it was raised from, ...) that is an `OSError`
    with a storage errno and a file name, else with a storage errno, else `error` itself."""
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        error = error.__cause__ or error.__context__
    storage = [e for e in chain if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS]
    named = [e for e in storage if e.filename]
    return (named or storage or chain or [None])[0]


def storage_error(error, path):
    """`error` as a `StorageError` naming `path` when it is a storage error (else `error` unchanged).

    Example:
        >>> storage_error(OSError(errno.ENOSPC, "No space left on device"), "/run/log.csv").filename
        '/run/log.csv'
    """
    if isinstance(error, StorageError) or not is_storage_error(error):
        return error
    code = error.errno if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS else errno.ENOSPC
    return StorageError(code, os.strerror(code), os.fspath(path))


def describe_storage_error(error, path=None):
    """The one line an entry point prints for the storage error `error`: the path, the cause, what to do.

    Args:
        error: an exception for which `is_storage_error` is true.
        path: the path to name when `error` carries none (e.g. the export root).
    """
    error = storage_error(storage_cause(error), path or getattr(storage_cause(error), "filename", None) or "?")
    name = errno.errorcode.get(error.errno, str(error.errno))
    return (f"cannot write {error.filename}: {error.strerror} ({name}). Nothing was half-written: the previous "
            "state is intact; free space (or fix the file system) and rerun the same command.")


def process_alive(pid):
    """Whether process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
