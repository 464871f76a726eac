"""absl flags for commands that run in the calling process: each call gets its own `FlagValues`.

A command's `main(argv)` defines its flags on a fresh `FlagValues` (`flags_on(fv).DEFINE_string(...)`), never
on the global `absl.flags.FLAGS`, and parses `argv` with `parse`: a malformed value, an unknown flag or an
extra argument becomes one line for the command to print with exit code 2, as its other mistakes are. So a
test (or a notebook) runs a command's whole command line without starting a new interpreter, and two
commands' flags (`--model_dir` of the trainers and of `keras_resnet.evaluate`) never collide.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (every recipe field of
sections 3.4 / 4.2 is a flag of the trainers).

Example:
    >>> from absl import flags
    >>> fv = flags.FlagValues()
    >>> _ = flags_on(fv).DEFINE_integer("batch_size", 128, "Images per batch.")
    >>> parse(fv, "prog", ["--batch_size=64"]), fv.batch_size
    (None, 64)
    >>> parse(flags.FlagValues(), "prog", ["--bogus=1"])
    "Unknown command line flag 'bogus'"
"""

from __future__ import annotations

import functools

HELP_ARGS = ("-h", "--help", "-help", "--helpfull", "--helpshort")


class flags_on:  # noqa: N801 - reads as a function: flags_on(fv).DEFINE_string(...)
    """`absl.flags.DEFINE_*` bound to one `FlagValues`."""

    def __init__(self, flag_values):
        self.flag_values = flag_values

    def __getattr__(self, name):
        from absl import flags

        return functools.partial(getattr(flags, name), flag_values=self.flag_values)


def wants_help(argv):
    """Whether `argv` asks for the flags' help (`--help`, `--helpfull`, ...)."""
    return any(arg in HELP_ARGS for arg in argv)


def parse(flag_values, prog, argv):
    """Parses `argv` (without the program name; `--flagfile` included) into `flag_values`.

    Returns:
        None, or the one-line reason the command line is malformed (an unknown flag, a bad value, extra
        arguments).
    """
    from absl import flags

    try:
        rest = flag_values([prog, *argv])
    except flags.Error as error:
        return str(error).strip().splitlines()[0]
    if rest[1:]:
        return f"unrecognized arguments: {' '.join(rest[1:])}"
    return None


def read_command_line(flag_values, prog, argv, usage):
    """`--help` (prints `usage` and the flags: returns 0) or `parse` (a malformed line: prints it as one
    `error:` line, returns 2); None when `flag_values` hold a well-formed command line to run."""
    import sys

    if wants_help(argv):
        print(f"{usage}\n\nflags:\n{flag_values.get_help(include_special_flags=False)}", flush=True)
        return 0
    malformed = parse(flag_values, prog, argv)
    if malformed:
        print(f"error: {malformed}", file=sys.stderr, flush=True)
        return 2
    return None
