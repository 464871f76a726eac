"""Atomic, versioned publishing of an export directory in TF Serving's layout.

A model's versions live in integer directories under one export root (`<export_root>/<version>/`). A new
version is written into a temporary directory beside them (`<export_root>/.tmp-<version>-*`, a name
TF Serving ignores) and renamed into place, so a polling model server never sees a half-written version;
an existing version is replaced only with `overwrite=True`. Nothing here knows what is inside a version:
the SavedModel writer (and any later format) fills `Staging.path` and calls `Staging.publish`.

Crash safety: a temporary directory is named `.tmp-<version or "next">-<host>-<pid>-<random>`; the next
`plan_destination` in the same root removes those whose process on this host is gone. `overwrite=True`
swaps the new version in with one atomic exchange (Linux `renameat2(RENAME_EXCHANGE)`), so the version
number is never empty; where the exchange is not available the old version is first moved aside to
`.tmp-old-<version>-<host>-<pid>-<random>`, and a kill before the new one is renamed in is repaired by the
next `plan_destination`, which moves the old version back. `publish_once` exports a given thing at most
once (a trainer's `--export`, the tuner's `--export_best`), however often the process is killed.

Named fault sites (`keras_resnet.faults`): `export.version_written` (the temporary directory is complete,
before the rename), `export.overwrite` (the new version is in place and the old one not yet removed; where
no exchange is available: the old version moved aside, the new one not yet renamed in), `export.planned`
(`publish_once` recorded the version it is about to export), `export.published` (`publish_once`'s export
returned, before it does).

Example:
    >>> from keras_resnet.export import versions
    >>> root, version = versions.plan_destination("/tmp/models/resnet8", None, overwrite=False)  # writes under /tmp/models  # doctest: +SKIP
    >>> staging = versions.Staging(root, version)  # writes under /tmp/models  # doctest: +SKIP
    >>> (staging.path / "saved_model.pb").write_bytes(b"...")  # writes under /tmp/models  # doctest: +SKIP
    >>> staging.publish(overwrite=False)  # writes under /tmp/models  # doctest: +SKIP
    PosixPath('/tmp/models/resnet8/1')
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import uuid
import zlib
from pathlib import Path

import numpy as np

from keras_resnet import atomic, faults

TMP_PREFIX = ".tmp-"
"""Prefix of the temporary directories beside the versions (ignored by TF Serving, never a version)."""
HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"
"""This machine's tag in temporary names: only this host's dead exporters' directories are removed."""
TEMPORARY_NAME = re.compile(rf"^{re.escape(TMP_PREFIX)}(old-)?(\w+)-([0-9a-f]{{8}})-(\d+)-")
RENAME_EXCHANGE = 2


def existing_versions(export_root) -> list[int]:
    """The integer version directories under `export_root` (TF Serving's versions), sorted.

    Example:
        >>> existing_versions("/nonexistent")
        []
    """
    root = Path(export_root)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(export_root) -> int:
    """The next free version under `export_root`: one more than the largest, or 1.

    Example:
        >>> next_version("/nonexistent")
        1
    """
    versions = existing_versions(export_root)
    return versions[-1] + 1 if versions else 1


def check_version(version):
    """`version` as an int (None stays None: the next free one); a `ValueError` unless a positive integer."""
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or int(version) < 1:
        raise ValueError(f"`version` must be a positive integer (TF Serving's version directory); received {version!r}.")
    return int(version)


def plan_destination(export_root, version, overwrite):
    """Cheap checks of the destination, before any expensive work.

    Args:
        export_root: the directory of the versions (created later if missing).
        version: positive int or None (the next free version at publication time).
        overwrite: bool, whether an existing `version` may be replaced.

    Returns:
        `(absolute root Path, version or None)`.

    Raises:
        ValueError: no root or a bad version. NotADirectoryError / PermissionError: the root cannot be
        created or written. FileExistsError: `version` exists and not `overwrite`.
    """
    if export_root is None or str(export_root) == "":
        raise ValueError("`export_root` must be a directory path such as 'saved_models/resnet20'; received nothing.")
    root = Path(export_root).expanduser().absolute()
    version = check_version(version)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"`export_root` {str(root)!r} exists and is not a directory.")
    ancestor = root
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(
            f"`export_root` {str(root)!r} cannot be created: {str(ancestor)!r} is not a directory."
        )
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"`export_root` {str(root)!r} is not writable ({str(ancestor)!r} is read-only).")
    recover(root)
    if version is not None and (root / str(version)).exists() and not overwrite:
        raise FileExistsError(
            f"Version {version} already exists in {str(root)!r}; pass `overwrite=True` (--overwrite) to replace "
            f"it, or omit the version to write the next free one ({next_version(root)})."
        )
    return root, version


class Staging:
    """A temporary directory beside the target version, renamed into place by `publish`.

    Created before any expensive work (so an unwritable destination fails first); `abort` removes it and
    any parent directories it created.

    Attributes:
        root: the export root (absolute `Path`).
        version: the requested version, or None for the next free one.
        path: the temporary directory to fill.
    """

    def __init__(self, root: Path, version):
        self.root, self.version = root, version
        self.created = []
        missing = []
        parent = root
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            for directory in reversed(missing):
                directory.mkdir()
                self.created.append(directory)
            label = "next" if version is None else str(version)
            self.path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{label}-{HOST}-{os.getpid()}-", dir=root))
        except OSError as error:
            self._remove_created()
            raise PermissionError(
                f"Cannot write into `export_root` {str(root)!r}: {error.strerror or error}."
            ) from error

    def _remove_created(self):
        for directory in reversed(self.created):
            try:
                directory.rmdir()
            except OSError:
                pass
        self.created = []

    def abort(self):
        """Removes the temporary directory and the parent directories this staging created."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._remove_created()

    def publish(self, overwrite: bool, before_rename=None) -> Path:
        """Renames the staged directory to `<root>/<version>` (the next free version if none was given).

        Args:
            overwrite: bool, replace an existing version (moved aside, then removed after the rename).
            before_rename: optional `callable(version)` run on the staged directory before each rename
                attempt (e.g. to write the version into the model card), so the published directory is
                never modified afterwards.

        Returns:
            The published version directory (`Path`).
        """
        for _ in range(100):
            version = self.version if self.version is not None else next_version(self.root)
            target = self.root / str(version)
            if target.exists() and self.version is None:
                continue  # pragma: no cover - another exporter took it between the two calls
            if before_rename is not None:
                before_rename(version)
            faults.site("export.version_written")
            if target.exists():
                if not overwrite:
                    raise FileExistsError(f"Version {version} appeared in {str(self.root)!r} during the export.")
                self._replace(target, version)
                return target
            try:
                os.rename(self.path, target)
            except OSError:  # pragma: no cover - a concurrent exporter created it: try the next version
                if self.version is None:
                    continue
                raise
            return target
        raise RuntimeError(f"Could not find a free version in {str(self.root)!r}.")  # pragma: no cover

    def _replace(self, target: Path, version):
        """Swaps the staged directory with the old `target` in one step, then removes the old version.

        Without an atomic exchange: moves the old `target` aside, renames the staged directory in, then
        removes the old one (`recover` moves it back after a kill in between).
        """
        if exchange(self.path, target):
            faults.site("export.overwrite")
            shutil.rmtree(self.path, ignore_errors=True)  # now the old version
            return
        old = self.root / f"{TMP_PREFIX}old-{version}-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        faults.site("export.overwrite")
        os.rename(self.path, target)
        shutil.rmtree(old, ignore_errors=True)


def exchange(a, b):
    """Atomically swaps the paths `a` and `b` (Linux `renameat2(RENAME_EXCHANGE)`); False when unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_cwd = -100
    if libc.renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


def recover(export_root):
    """Repairs what killed exporters on this host left in `export_root`; returns the versions restored.

    An old version moved aside by a replace that was killed before the new version was renamed in
    (`.tmp-old-<v>-...`) goes back to `<v>` when `<v>` is missing, and is removed otherwise; the staging
    directories of dead exporters are removed. Directories of live processes, of other hosts and other
    names are left alone.
    """
    root = Path(export_root)
    restored = []
    if not root.is_dir():
        return restored
    for path in sorted(root.iterdir()):
        match = TEMPORARY_NAME.match(path.name)
        if not match or not path.is_dir() or match.group(3) != HOST or faults.process_alive(int(match.group(4))):
            continue
        target = root / match.group(2)
        if match.group(1) and match.group(2).isdigit() and not target.exists():
            os.rename(path, target)
            restored.append(int(match.group(2)))
            print(f"warning: {target} was missing (an overwrite was killed half-way); restored the previous "
                  f"version from {path.name}.", file=sys.stderr, flush=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
    return restored


def publish_once(record_path, export_root, key, export):
    """Calls `export(version)` unless the export named `key` is already published under `export_root`.

    The version is chosen first and recorded in `record_path` (JSON: key, export root, version), then
    exported with that explicit version: a rerun after a kill at any moment finds the record and either
    sees the version published (and returns it) or exports the same version again. So the same `key`
    is published once, however often the process is killed.

    Args:
        record_path: the record file, e.g. `<model_dir>/export.json`.
        export_root: the version root.
        key: JSON-serialisable identity of what is exported (e.g. the run's iteration count).
        export: `callable(version) -> Path` that publishes `version` (`overwrite=False`).

    Returns:
        `(Path of the version directory, bool: exported now)`.

    Raises:
        keras_resnet.faults.StorageError: a full disk while exporting, naming `<export_root>/<version>`.
    """
    root = Path(export_root).expanduser().absolute()
    recover(root)
    record = None
    if os.path.exists(record_path):
        try:
            with open(record_path) as f:
                record = json.load(f)
        except ValueError as error:
            raise ValueError(f"{record_path} is corrupted ({error}); delete it to export again (the versions "
                             f"in {root} are left as they are).") from None
    if record and record.get("key") == key and record.get("export_root") == str(root):
        version = int(record["version"])
        if (root / str(version)).is_dir():
            return root / str(version), False
    else:
        version = next_version(root)
        with atomic.replacing(record_path) as tmp:
            with open(tmp, "w") as f:
                json.dump({"key": key, "export_root": str(root), "version": version}, f, indent=1)
    faults.site("export.planned")
    try:
        path = Path(export(version))
    except Exception as error:  # a full disk names the version being written
        converted = faults.storage_error(error, root / str(version))
        if converted is error:
            raise
        raise converted from error
    faults.site("export.published")
    return path, True
