"""Named fault sites: the moments at which a crash must lose nothing, made reachable on purpose.

Code marks each critical moment (inside a checkpoint or backup write, between a trial's end and the
oracle's save, ...) with `faults.site("checkpoint.write")`. Normally that is a dictionary lookup and
nothing else. With the environment variable `KERAS_RESNET_FAULT` set, the process kills itself with
SIGKILL (or raises an injected `OSError`) at the N-th hit of the named site, so a crash test reaches the
moment it means every time, on a fast and on a busy machine, instead of racing a timer.

Syntax of `KERAS_RESNET_FAULT`: `SITE[@N][:ACTION]`, several separated by commas. `N` counts the hits of
`SITE` in this process, from 1 (default 1). `ACTION` is `kill` (default: SIGKILL, no clean-up runs) or
`enospc` (raise `OSError(errno.ENOSPC)` as a full disk does). With `KERAS_RESNET_FAULT_LOG=PATH` every hit
of every site is appended to PATH as one line (`SITE N`), written through before a kill, so a harness can
check that the sites it lists were reached.

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
ACTIONS = ("kill", "enospc")

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
    if log_path:
        with open(log_path, "a") as f:
            f.write(f"{name} {count}\n")
            f.flush()
            os.fsync(f.fileno())
    n, action = parse_spec(spec).get(name, (None, None))
    if count != n:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise OSError(errno.ENOSPC, f"No space left on device (injected by {FAULT_ENV} at {name} hit {count})")
