"""A fast and quiet start: TensorFlow's oneDNN kernels on every x86 CPU, and no start-up banners for the tools.

`prefer_onednn()` (run by `import keras_resnet`, before Keras imports TensorFlow): TensorFlow turns its
oneDNN CPU kernels on by default only on x86 processors with AVX-512 VNNI or newer; elsewhere (an AVX2 AMD
EPYC, say) its convolutions run on Eigen, and a ResNet-20 training step is 3.3x slower (82 against 269
images/s on a 2-core AVX2 EPYC, benchmarks/BENCHMARKS.md). Unless the user set `TF_ENABLE_ONEDNN_OPTS`
(0 keeps Eigen) or imported TensorFlow first, it is set to 1 on x86-64, so every CPU of that family runs
the kernels the AVX-512 machines get anyway.

Importing TensorFlow prints, on a CPU-only machine, lines a user cannot act on (`oneDNN custom operations
are on`, `Could not find cuda drivers`, `failed call to cuInit`, the CPU-instruction banner, and absl's
`All log messages before absl::InitializeLog() is called are written to STDERR`); some are printed by the
C++ library before `TF_CPP_MIN_LOG_LEVEL` is read, so that even `TF_CPP_MIN_LOG_LEVEL=3` does not silence
them. For the project's command-line tools (`python -m trainers.*`, `python -m keras_resnet.<tool>`,
`python -m tuning.*`) `quiet_tensorflow_startup()` imports TensorFlow with the process's stderr (file
descriptor 2) sent to a temporary file, then passes on only the records the user's level asks for:

- `TF_CPP_MIN_LOG_LEVEL` unset: it is set to 3 and nothing of the start-up is shown;
- set to 1, 2 or 3 by the user: the start-up records of that severity and above (W, E, F) are shown;
- set to 0: TensorFlow's output is left untouched.

The captured text is shown whole if the import fails. Library use (`import keras_resnet` in a program or
notebook) is never affected.

Once the package's imports are done, a tool also freezes their objects (`freeze_if_command_line_tool()`,
`gc.freeze`), so that Python's garbage collector, during the command and at its exit, walks only what the
command creates (0.9 s of a 5.1 s `python -m keras_resnet.evaluate --help`).

This module imports only the standard library: it runs before Keras and TensorFlow are imported.

Example:
    >>> import keras_resnet.startup as startup
    >>> startup.is_command_line_tool(["-m"], "keras_resnet.evaluate")
    True
    >>> startup.records_at_level("I0 banner\\nW0 warning\\n  continued\\n", 1)
    'W0 warning\\n  continued\\n'
"""

from __future__ import annotations

import gc
import os
import re
import sys
import tempfile

LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"
TOOL_PACKAGES = ("trainers", "tuning", "keras_resnet")
SEVERITIES = {"I": 0, "W": 1, "E": 2, "F": 3}
RECORD = re.compile(r"^([IWEF])\d")
PRE_INIT = "WARNING: All log messages before absl::InitializeLog()"


def records_at_level(text, level):
    """The log records of `text` of severity `level` and above (absl/TensorFlow `I`, `W`, `E`, `F` lines, each
    with its continuation lines); absl's pre-initialisation notice is dropped."""
    kept, keep = [], True
    for line in text.splitlines(keepends=True):
        match = RECORD.match(line)
        if line.startswith(PRE_INIT):
            keep = False
        elif match:
            keep = SEVERITIES[match.group(1)] >= level
        if keep:
            kept.append(line)
    return "".join(kept)


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
    `TF_CPP_MIN_LOG_LEVEL=0`, when TensorFlow is already imported, not needed (another Keras backend) or
    not installed.

    Returns:
        True when TensorFlow was imported here.
    """
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return False
    try:
        level = int(os.environ.setdefault(LOG_LEVEL_ENV, "3"))
    except ValueError:
        return False
    if level <= 0:
        return False
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded interpreters)
        return False
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            import tensorflow  # noqa: F401

            failed = False
        except ImportError:
            return False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            sys.stderr.write(text if failed else records_at_level(text, level))
            sys.stderr.flush()
    return True


def prefer_onednn(machine=None):
    """Sets `TF_ENABLE_ONEDNN_OPTS=1` on x86-64 unless the user set it or TensorFlow is already imported.

    Args:
        machine: the processor architecture (`platform.machine()` if None).

    Returns:
        True when the variable was set here.

    Example:
        >>> prefer_onednn(machine="aarch64")  # Arm: TensorFlow's own choice is kept
        False
    """
    import platform

    machine = platform.machine() if machine is None else machine
    if machine.lower() not in ("x86_64", "amd64") or ONEDNN_ENV in os.environ or "tensorflow" in sys.modules:
        return False
    os.environ[ONEDNN_ENV] = "1"
    return True


def quiet_if_command_line_tool():
    """`quiet_tensorflow_startup()` for the project's command-line tools only (called by `keras_resnet`)."""
    if is_command_line_tool():
        return quiet_tensorflow_startup()
    return False


def freeze_if_command_line_tool():
    """For the project's command-line tools only (called by `keras_resnet` once its imports are done): collects
    the start-up's garbage and freezes what survives (`gc.freeze`): TensorFlow's, Keras' and the package's module
    objects, which live to the process's end anyway. The collector's full passes during the command and the one at
    its exit then walk only what the command itself creates: `python -m keras_resnet.evaluate --help` takes 4.2 s
    instead of 5.1 (2-core Xeon, benchmarks/BENCHMARKS.md). Library use is never affected.

    Returns:
        True when the objects were frozen here.
    """
    if not is_command_line_tool():
        return False
    gc.collect()
    gc.freeze()
    return True
