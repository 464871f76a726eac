"""Atomic writes: a file is filled under a temporary name and renamed over its final name, or not written at all.

Every file the package writes (checkpoints, backups, `log.csv`, `config.json`, exports, tuner records) goes
through `replacing`, so a process killed at any moment leaves the previous file whole and no temporary file
that a later run would trip over; `discard` removes a partial temporary file (or directory) and frees its
space first. A storage error (full disk, quota, read-only file system) comes out as a
`keras_resnet.faults.StorageError` naming the final path. The moments between a complete temporary file and
its rename are fault sites (`keras_resnet.faults.site`), so the crash tests reach them on purpose.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the runs that write these
files train for hours: section 4.2's 64k iterations; a crash must not cost them).

Example:
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> with replacing(target) as tmp:
    ...     _ = open(tmp, "w").write("done")
    >>> open(target).read(), os.listdir(os.path.dirname(target))
    ('done', ['a.txt'])
"""

import contextlib
import os

from keras_resnet.faults import site, storage_error


def discard(path):
    """Removes the partial temporary file or directory `path`, if any, freeing its space first.

    The file is truncated before it is unlinked: a writer that failed may still hold it open (h5py does
    until garbage collection), and an open unlinked file keeps its blocks on a full disk.
    """
    path = os.fspath(path)
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil

        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        os.truncate(path, 0)
    except OSError:
        pass
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def temporary_name(path, keep_suffix=False):
    """A temporary path for writing `path`, in its directory and unique to this process (its pid).

    Two writers of one file never share a temporary (a run or search directory is also locked:
    `keras_resnet.run_lock`, so the temporaries a killed writer left are stale and removed at the next start).

    Args:
        path: the final path.
        keep_suffix: end like `path` (`<dir>/.tmp-<pid>-<name>`), for writers that choose the format by the
            file name (Keras' `.keras` / `.weights.h5`, matplotlib's `.png`); else `<path>.tmp-<pid>`.

    Example:
        >>> temporary_name("run/log.csv") == f"run/log.csv.tmp-{os.getpid()}"
        True
        >>> temporary_name("run/checkpoints/latest.keras", keep_suffix=True) == f"run/checkpoints/.tmp-{os.getpid()}-latest.keras"
        True
    """
    path = os.fspath(path)
    if keep_suffix:
        return os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{os.path.basename(path)}")
    return f"{path}.tmp-{os.getpid()}"


@contextlib.contextmanager
def replacing(path, tmp=None, moment=None):
    """Writes `path` atomically: yields a temporary path to fill, then renames it over `path`.

    After the body, the fault site `moment` (if given) is marked and `tmp` replaces `path` with
    `os.replace`. Any failure discards `tmp` (no temporary file is left behind) and leaves `path` as it
    was; a storage error is re-raised as a `StorageError` naming `path`.

    Args:
        path: the final path.
        tmp: the temporary path (default `temporary_name(path)`: `<path>.tmp-<pid>`, in the same directory so
            that the rename is atomic).
        moment: the fault site marked between the complete temporary file and the rename.

    Example:
        >>> import tempfile
        >>> target = os.path.join(tempfile.mkdtemp(), "a.txt")
        >>> with replacing(target) as tmp:
        ...     _ = open(tmp, "w").write("done")
        >>> open(target).read()
        'done'
    """
    path = os.fspath(path)
    tmp = os.fspath(tmp) if tmp is not None else temporary_name(path)
    try:
        yield tmp
        if moment:
            site(moment)
        os.replace(tmp, path)
    except BaseException as error:
        discard(tmp)
        converted = storage_error(error, path) if isinstance(error, Exception) else error
        if converted is error:
            raise
        raise converted from error
