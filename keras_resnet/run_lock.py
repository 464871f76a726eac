"""One writer per run directory: a lock a trainer or a tuner holds for as long as it writes there.

A command run twice by mistake, or a scheduler retrying a job that is still alive, would otherwise have two
processes writing the same checkpoints, backups and logs (and removing each other's temporary files). The
lock is `<directory>/.lock`, held with `fcntl.flock` and holding the holder's host, pid and start time:

- a second process is refused at once (`RunLocked`, naming the directory and the holder), before it writes
  anything in the directory;
- the operating system releases the lock when its holder dies, even by SIGKILL or a power cut of a client:
  the next process takes the lock over and says whose it was (`RunLock.took_over`);
- the file itself stays (removing a lock file races with a process opening it); it is empty while nobody
  holds it.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (a run is hours of one
process's work; section 4.2).

Example:
    >>> import tempfile
    >>> directory = tempfile.mkdtemp()
    >>> with RunLock(directory, "--model_dir") as lock:
    ...     second = RunLock(directory, "--model_dir")
    ...     try:
    ...         second.acquire()
    ...     except RunLocked as error:
    ...         print("is in use by another process" in str(error))
    True
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
import sys

LOCK_FILE = ".lock"


class RunLocked(Exception):
    """Another live process holds the lock of the directory; the message names it and the holder."""


class RunLock:
    """The lock of `directory` (created when missing: the holder is about to write there).

    Args:
        directory: the run (or search) directory.
        flag: how the user named it (`"--model_dir"`, `"--directory"`), for the messages.

    Attributes:
        took_over: the record of a previous holder that died without releasing the lock (`"host ... pid
            ..."`), or None.
    """

    def __init__(self, directory, flag="--model_dir"):
        self.directory, self.flag = os.fspath(directory), flag
        self.path = os.path.join(self.directory, LOCK_FILE)
        self.took_over = None
        self._fd = None

    def acquire(self):
        """Takes the lock; returns self.

        Raises:
            RunLocked: another live process holds it (nothing was written).
        """
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EWOULDBLOCK: held by a live process
            holder = read_record(fd)
            os.close(fd)
            raise RunLocked(
                f"{self.flag}={self.directory} is in use by another process ({holder or 'holder unknown'}, "
                f"lock {self.path}); two writers would corrupt the run. Wait for it to finish or stop it "
                "(SIGTERM stops it cleanly), then rerun.") from None
        self.took_over = read_record(fd) or None
        os.ftruncate(fd, 0)
        started = datetime.datetime.now().isoformat(timespec="seconds")
        os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()} since {started}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self):
        """Empties the record and releases the lock (idempotent)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:  # a full or read-only disk: the lock is released all the same
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self):
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def take(directory, flag="--model_dir"):
    """Acquires the lock of `directory` for this process and returns it; says on stderr (one line) when it
    takes over the lock of a process that ended without releasing it.

    Raises:
        RunLocked: another live process holds it (nothing was written).
    """
    lock = RunLock(directory, flag).acquire()
    if lock.took_over:
        print(f"warning: took over the lock of {flag}={lock.directory} from a process that ended without releasing "
              f"it ({lock.took_over}).", file=sys.stderr, flush=True)
    return lock


def read_record(fd):
    """The holder's record in the lock file `fd` (one line), or ""."""
    try:
        return os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        return ""
