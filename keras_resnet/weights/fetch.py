"""Finding, downloading and checking the published weight files.

Search order for a file of a named set: the directories of the `KERAS_RESNET_WEIGHTS` environment variable
(one or more, separated by `os.pathsep`; how offline users and tests provide files), then the Keras cache
(`$KERAS_HOME/models`, by default `~/.keras/models`, where `keras.applications` keeps the same files); only
then is it downloaded with `keras.utils.get_file`, into the Keras cache. Every file, found or downloaded, is
checked against the set's hash before use; a download that fails its check is deleted, so nothing
unverified is ever cached. With no network and no file, the error says which file to place where.

Example:
    >>> os.environ[WEIGHTS_ENV] = "/data/weights"
    >>> weights_dirs()[0]
    '/data/weights'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

import keras

WEIGHTS_ENV = "KERAS_RESNET_WEIGHTS"


class WeightsUnavailableError(FileNotFoundError):
    """A named set's file is neither in a searched directory nor downloadable (no network)."""


def keras_cache_dir():
    """The Keras cache directory for model files: `$KERAS_HOME/models` (default `~/.keras/models`).

    As `keras.utils.get_file`, falls back to `/tmp/.keras/models` where the Keras home is not writable.
    """
    home = os.path.expanduser(os.environ.get("KERAS_HOME", os.path.join("~", ".keras")))
    if not os.access(home, os.W_OK):
        home = os.path.join(tempfile.gettempdir(), ".keras")
    return os.path.join(home, "models")


def weights_dirs():
    """The searched directories, in order: `KERAS_RESNET_WEIGHTS` entries, then the Keras cache."""
    env = [d for d in os.environ.get(WEIGHTS_ENV, "").split(os.pathsep) if d]
    return [os.path.expanduser(d) for d in env] + [keras_cache_dir()]


def locate(file_name):
    """The first searched directory's `file_name`, or `None`."""
    for directory in weights_dirs():
        path = os.path.join(directory, file_name)
        if os.path.isfile(path):
            return path
    return None


def file_digest(path, algorithm="sha256"):
    """Hex digest of a file ("sha256" or "md5"), read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_matches(path, file_hash):
    """Whether the file's SHA-256 (64 or prefix) or MD5 (32 hex digits) is `file_hash`; returns (ok, found)."""
    algorithm = "md5" if len(file_hash) == 32 else "sha256"
    found = file_digest(path, algorithm)
    return found.startswith(file_hash.lower()), found


def check_file(path, entry):
    """Raises `ValueError` unless the file at `path` has the hash of the `WeightSet` `entry`."""
    ok, found = hash_matches(path, entry.file_hash)
    if not ok:
        kind = "MD5" if entry.hash_algorithm == "md5" else "SHA-256"
        raise ValueError(
            f"{path}: {kind} {found} does not match the published {entry.file_hash} of {entry.file_name} "
            f"({entry.url}); the file is truncated, corrupt or another file. Delete it, or replace it with the "
            "published file."
        )


def unavailable_message(entry, reason):
    env = os.environ.get(WEIGHTS_ENV)
    where = f"the directory {env} (${WEIGHTS_ENV})" if env else f"a directory named by ${WEIGHTS_ENV}"
    return (
        f"`weights`={entry.name!r} for {entry.model} needs {entry.file_name}, which is not in "
        f"{', '.join(weights_dirs())} and could not be downloaded from {entry.url} ({reason}). Without a "
        f"network, place {entry.file_name} (hash {entry.file_hash}) in {where} or in {keras_cache_dir()}, or "
        "pass `weights=` the path of the file."
    )


def download(entry):
    """Downloads `entry`'s file with `keras.utils.get_file` into the Keras cache and returns its path.

    The download lands in a private temporary directory, is checked, and only then moved into the cache;
    a failed check deletes it.

    Raises:
        WeightsUnavailableError: the download failed (no network, unreachable URL).
        ValueError: the downloaded file does not have the published hash (nothing is cached).
    """
    cache = keras_cache_dir()
    os.makedirs(cache, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".keras_resnet-download-", dir=cache)
    try:
        full_hash = entry.file_hash if entry.hash_algorithm != "sha256-prefix" else None
        try:
            path = keras.utils.get_file(entry.file_name, entry.url, file_hash=full_hash, cache_dir=staging,
                                        cache_subdir="files")
        except ValueError as error:  # get_file's own hash check failed
            raise ValueError(f"download of {entry.url} refused: {error}") from None
        except Exception as error:  # get_file wraps every fetch failure in a bare Exception
            raise WeightsUnavailableError(unavailable_message(entry, error)) from None
        try:
            check_file(path, entry)
        except ValueError as error:
            raise ValueError(f"download of {entry.url} refused: {error}") from None
        target = os.path.join(cache, entry.file_name)
        os.replace(path, target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(entry):
    """The verified local path of a named set's file: found in `weights_dirs()` or downloaded.

    Args:
        entry: a `keras_resnet.weights.sets.WeightSet`.

    Raises:
        ValueError: a found or downloaded file does not have the published hash.
        WeightsUnavailableError: not found and not downloadable; the message names the file and where to
            place it.
    """
    path = locate(entry.file_name)
    if path is None:
        return download(entry)
    check_file(path, entry)
    return path
