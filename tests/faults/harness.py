"""Runs a real command under a plan of named faults (`keras_resnet.faults`), with no timer anywhere.

A plan is a list of `Fault(site, n, action)`. `run_with_faults(command, plan, ...)` runs the command once
per fault with `KERAS_RESNET_FAULT=site@n:action` (and `KERAS_RESNET_FAULT_LOG`, so every hit of every site
is logged, written through before a kill), then once more without a fault; the same command each time, as
a user who restarts it would. Each faulty attempt must fire:

- `kill`: the process died by SIGKILL (-9) at the n-th hit of the site (the log's last line says so);
- `enospc`: an `OSError(ENOSPC)` raised there made the process exit with `EXIT_STORAGE` (5) and one line
  `error: cannot write <path>: No space left on device (ENOSPC) ...` on stderr, no traceback, the file it
  names unchanged (or still absent) and no temporary file left under the watched directories;
- `sigterm` / `sigint` (the process signals itself there, as a scheduler or Ctrl-C would): it stopped on
  request, exit `EXIT_STOPPED` (4) with the one line `stopped at iteration N on SIGTERM; rerun the same
  command to continue` on stderr, no traceback and no temporary file left.

After every attempt the caller's `check(attempt)` verifies its invariants; the last attempt must exit 0.
A planned fault that was not reached fails the test, naming the sites the process did reach, so a case
list cannot silently stop testing what it says.

Example:
    >>> plan = [kill("backup.write"), enospc("csv.replace", 2)]  # doctest: +SKIP
    >>> run_with_faults([sys.executable, "-m", "trainers.cifar", ...], plan, workdir=tmp_path,
    ...                 watched=[model_dir], check=lambda attempt: check_run(model_dir))  # doctest: +SKIP
"""

import collections
import dataclasses
import hashlib
import os
import re
import signal
import subprocess
from pathlib import Path

from conftest import REPO, env

from keras_resnet.faults import EXIT_STORAGE, FAULT_ENV, LOG_ENV
from keras_resnet.stop_request import EXIT_STOPPED

KILLED = -signal.SIGKILL
HANG_GUARD_S = 900  # a hung process fails the test instead of the CI job; no assertion depends on time
ERROR_LINE = re.compile(r"error: cannot write (?P<path>\S+): (?P<cause>[^(]+) \((?P<code>E[A-Z]+)\)")
TEMPORARY = re.compile(r"(\.tmp$|\.tmp[-.]|^\.tmp-|^tmp\.weights\.h5$)")
STOP_LINE = re.compile(r"^stopped at iteration (?P<iteration>\d+) on (?P<signal>SIGTERM|SIGINT); rerun the same "
                       r"command to continue$")
STOP_ACTIONS = ("sigterm", "sigint")


@dataclasses.dataclass(frozen=True)
class Fault:
    """One planned fault: the `n`-th hit of `site` kills the process (`kill`) or raises ENOSPC (`enospc`)."""

    site: str
    n: int = 1
    action: str = "kill"

    @property
    def spec(self):
        return f"{self.site}@{self.n}:{self.action}"

    @property
    def expected_returncode(self):
        return {"kill": KILLED, "enospc": EXIT_STORAGE}.get(self.action, EXIT_STOPPED)

    def __str__(self):
        return self.spec


def kill(site, n=1):
    """`Fault(site, n, "kill")`: SIGKILL at the n-th hit of `site`."""
    return Fault(site, n, "kill")


def enospc(site, n=1):
    """`Fault(site, n, "enospc")`: a full disk at the n-th hit of `site`."""
    return Fault(site, n, "enospc")


def stop(site, n=1, signal_name="sigterm"):
    """`Fault(site, n, "sigterm")` (or "sigint"): the process asks itself to stop at the n-th hit of `site`."""
    return Fault(site, n, signal_name)


@dataclasses.dataclass
class Attempt:
    """One run of the command: its fault (None for a clean run), exit status, output and site hits."""

    index: int
    fault: object
    returncode: int
    stdout: str
    stderr: str
    hits: list
    before: dict

    def tail(self, chars=3000):
        return f"{self.stdout[-chars:]}\n--- stderr ---\n{self.stderr[-chars:]}"

    @property
    def reached(self):
        """Whether the planned fault's site was hit `n` times."""
        return self.fault is not None and (self.fault.site, self.fault.n) in self.hits

    def describe_hits(self):
        counts = collections.Counter(site for site, _ in self.hits)
        return ", ".join(f"{site} x{count}" for site, count in sorted(counts.items())) or "none"


def read_hits(path):
    """`[(site, n), ...]` of a `KERAS_RESNET_FAULT_LOG` file, in order (empty if there is none)."""
    path = Path(path)
    if not path.exists():
        return []
    return [(site, int(n)) for site, n in (line.split() for line in path.read_text().splitlines() if line.strip())]


def digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def snapshot(*roots):
    """`{absolute path: sha256}` of every file under `roots`."""
    found = {}
    for root in roots:
        root = Path(root)
        if root.is_dir():
            for path in root.rglob("*"):
                if path.is_file():
                    found[str(path.absolute())] = digest(path)
    return found


def temporaries(*roots):
    """Temporary files and directories (by name) under `roots`, sorted."""
    found = []
    for root in roots:
        root = Path(root)
        if root.is_dir():
            found += [str(p) for p in root.rglob("*") if TEMPORARY.search(p.name)]
    return sorted(found)


def run_attempt(command, fault, index, workdir, watched=(), extra_env=None):
    """Runs `command` once with `fault` planned (None: no fault) and returns its `Attempt`."""
    log = Path(workdir) / f"fault-hits-{index}.log"
    variables = {**(extra_env or {}), LOG_ENV: str(log)}
    if fault is not None:
        variables[FAULT_ENV] = fault.spec
    before = snapshot(*watched)
    result = subprocess.run([str(part) for part in command], cwd=REPO, env=env(**variables), capture_output=True,
                            text=True, timeout=HANG_GUARD_S)
    return Attempt(index, fault, result.returncode, result.stdout, result.stderr, read_hits(log), before)


def check_fired(attempt, watched=()):
    """Asserts that the attempt's fault fired as planned (see the module docstring)."""
    fault = attempt.fault
    assert attempt.returncode == fault.expected_returncode and attempt.reached, (
        f"attempt {attempt.index}: {fault} should have ended the process with {fault.expected_returncode}; it "
        f"exited {attempt.returncode} having reached: {attempt.describe_hits()}\n{attempt.tail()}")
    assert attempt.hits[-1] == (fault.site, fault.n) or fault.action != "kill", (
        f"attempt {attempt.index}: the process went on after {fault}: {attempt.hits[-3:]}")
    if fault.action == "enospc":
        check_storage_error(attempt, watched)
    if fault.action in STOP_ACTIONS:
        check_stopped(attempt, watched)


def check_stopped(attempt, watched=()):
    """Asserts that the attempt stopped on request: exit 4, one line saying where and on which signal, no
    traceback, no temporary file under `watched`; returns the iteration it names."""
    assert attempt.returncode == EXIT_STOPPED, f"attempt {attempt.index}: exit {attempt.returncode}\n{attempt.tail()}"
    lines = [line for line in attempt.stderr.splitlines() if STOP_LINE.match(line)]
    assert len(lines) == 1 and "Traceback" not in attempt.stderr and "error:" not in attempt.stderr, (
        f"attempt {attempt.index}: expected the one stop line, got:\n{attempt.stderr[-3000:]}")
    if attempt.fault is not None and attempt.fault.action in STOP_ACTIONS:
        assert STOP_LINE.match(lines[0])["signal"] == attempt.fault.action.upper(), lines[0]
    left = temporaries(*watched)
    assert not left, f"temporary files left behind by a stop ({attempt.fault}): {left}"
    return int(STOP_LINE.match(lines[0])["iteration"])


def check_storage_error(attempt, watched=(), expected_path=None):
    """Asserts one error line naming the path and the cause, no traceback, the named file unchanged and no
    temporary file under `watched`; returns the path named."""
    errors = [line for line in attempt.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in attempt.stderr, (
        f"attempt {attempt.index} ({attempt.fault}): expected one error line, got:\n{attempt.stderr[-3000:]}")
    match = ERROR_LINE.search(errors[0])
    assert match and match["code"] == "ENOSPC" and "No space left on device" in match["cause"], errors[0]
    path = str(Path(match["path"]).absolute())
    if expected_path is not None:
        assert path == str(Path(expected_path).absolute()), (path, expected_path)
    roots = [str(Path(root).absolute()) for root in watched]
    assert not roots or any(path == root or path.startswith(root + os.sep) for root in roots), (
        f"the error names {path}, outside the run's directories {roots}")
    if os.path.isfile(path) or path in attempt.before:
        assert os.path.isfile(path) and digest(path) == attempt.before.get(path), (
            f"{path} changed although writing it failed ({attempt.fault})")
    left = temporaries(*watched)
    assert not left, f"temporary files left behind by a failed write ({attempt.fault}): {left}"
    return path


def run_with_faults(command, plan, *, workdir, watched=(), check=None, extra_env=None):
    """Runs `command` once per fault of `plan` and then once without a fault (which must exit 0).

    Args:
        command: the argv (the same for every attempt).
        plan: list of `Fault`, in order; each must fire (`check_fired`).
        workdir: where the fault logs go (`fault-hits-<i>.log`).
        watched: directories whose files are snapshotted before each attempt (for the ENOSPC checks) and
            searched for temporary files.
        check: `callable(attempt)` run after every attempt (the invariants).
        extra_env: environment variables for every attempt.

    Returns:
        The list of `Attempt`s, the clean one last.
    """
    Path(workdir).mkdir(parents=True, exist_ok=True)
    attempts = []
    for index, fault in enumerate([*plan, None]):
        attempt = run_attempt(command, fault, index, workdir, watched, extra_env)
        attempts.append(attempt)
        if fault is None:
            assert attempt.returncode == 0, f"the clean rerun failed ({attempt.returncode}):\n{attempt.tail()}"
        else:
            check_fired(attempt, watched)
        if check is not None:
            check(attempt)
    missed = [str(a.fault) for a in attempts if a.fault is not None and not a.reached]
    assert not missed, f"planned sites never reached: {missed}"
    return attempts
