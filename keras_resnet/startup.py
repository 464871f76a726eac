"""A quiet start for the command-line tools: no TensorFlow / CUDA start-up banners unless asked for.

Importing TensorFlow prints, on a CPU-only machine, lines a user cannot act on (`oneDNN custom operations
are on`, `Could not find cuda drivers`, the CPU-instruction banner, and absl's `All log messages before
absl::InitializeLog() is called are written to STDERR`); some are printed by the C++ library before
`TF_CPP_MIN_LOG_LEVEL` is read. For the project's command-line tools (`python -m trainers.*`,
`python -m keras_resnet.<tool>`, `python -m tuning.*`) `quiet_tensorflow_startup()` sets
`TF_CPP_MIN_LOG_LEVEL=3` and imports TensorFlow with the process's stderr (file descriptor 2) sent to a
temporary file, which is printed only if the import fails. A user who sets `TF_CPP_MIN_LOG_LEVEL` (any value)
gets TensorFlow's own logging untouched. Library use (`import keras_resnet` in a program or notebook) is
never affected.

This module imports only the standard library: it runs before Keras and TensorFlow are imported.

Example:
    >>> import keras_resnet.startup as startup
    >>> startup.is_command_line_tool(["-m"], "keras_resnet.evaluate")
    True
"""

from __future__ import annotations

import os
import sys
import tempfile

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
TOOL_PACKAGES = ("trainers", "tuning", "keras_resnet")


def main_module_name():
    """The module name `python -m` runs (`__main__.__spec__.name`), or "" for scripts and the REPL."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", "") or ""


def is_command_line_tool(argv=None, main_name=None):
    """Whether this process is `python -m <one of the project's tools>`.

    While `python -m keras_resnet.<tool>` imports the `keras_resnet` package, `sys.argv[0]` is still "-m";
    for `python -m trainers.<name>` the main module is already the trainer when `keras_resnet` is imported.
    """
    argv = sys.argv if argv is None else argv
    main_name = main_module_name() if main_name is None else main_name
    if argv[:1] == ["-m"]:
        return True
    return main_name.split(".")[0] in TOOL_PACKAGES and main_name not in ("", "__main__")


def quiet_tensorflow_startup():
    """Imports TensorFlow without its start-up banners (see the module docstring); a no-op when the user set
    `TF_CPP_MIN_LOG_LEVEL`, when TensorFlow is already imported or not installed.

    Returns:
        True when TensorFlow was imported quietly here.
    """
    if LOG_LEVEL_ENV in os.environ or "tensorflow" in sys.modules:
        return False
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":  # TensorFlow is not needed to start
        return False
    os.environ[LOG_LEVEL_ENV] = "3"
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded interpreters)
        return False
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            return False
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return True


def quiet_if_command_line_tool():
    """`quiet_tensorflow_startup()` for the project's command-line tools only (called by `keras_resnet`)."""
    if is_command_line_tool():
        return quiet_tensorflow_startup()
    return False
