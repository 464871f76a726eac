"""Atomic, versioned publishing of an export directory in TF Serving's layout.

A model's versions live in integer directories under one export root (`<export_root>/<version>/`). A new
version is written into a temporary directory beside them (`<export_root>/.tmp-<version>-*`, a name
TF Serving ignores) and renamed into place, so a polling model server never sees a half-written version;
an existing version is replaced only with `overwrite=True`. Nothing here knows what is inside a version:
the SavedModel writer (and any later format) fills `Staging.path` and calls `Staging.publish`.

Named fault sites (`keras_resnet.faults`): `export.version_written` (the temporary directory is complete,
before the rename), `export.overwrite` (an old version has been moved aside, the new one not yet renamed in).

Example:
    >>> from keras_resnet.export import versions
    >>> root, version = versions.plan_destination("/tmp/models/resnet8", None, overwrite=False)  # doctest: +SKIP
    >>> staging = versions.Staging(root, version)  # doctest: +SKIP
    >>> (staging.path / "saved_model.pb").write_bytes(b"...")  # doctest: +SKIP
    >>> staging.publish(overwrite=False)  # doctest: +SKIP
    PosixPath('/tmp/models/resnet8/1')
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from keras_resnet import faults

TMP_PREFIX = ".tmp-"
"""Prefix of the temporary directories beside the versions (ignored by TF Serving, never a version)."""


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
            self.path = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{label}-", dir=root))
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
        """Moves the old `target` aside, renames the staged directory in, then removes the old one."""
        old = self.root / f"{TMP_PREFIX}old-{version}-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)
        faults.site("export.overwrite")
        os.rename(self.path, target)
        shutil.rmtree(old, ignore_errors=True)
