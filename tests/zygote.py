"""The command-line processes the suite starts, forked from one that has imported TensorFlow already.

Every `python -m trainers.cifar ...` (and the other command lines of the package) that a test starts used to pay
TensorFlow + Keras's import, about 3 CPU-s, before reading its first flag: about 100 such processes in a run of the
suite. Each pytest worker now starts one *zygote* process in the same environment as those processes, which imports
`keras_resnet` (and through it Keras and TensorFlow, which start no thread and create no TensorFlow runtime at
import) and then waits. A test's `subprocess.Popen` / `subprocess.run` of such a command line is answered by a
process forked from the zygote: it takes the test's pipes as its standard streams, the test's environment, working
directory and arguments, and runs the module as `python -m` does (`runpy`), then exits through the interpreter's
normal shutdown. A test's `python -c` program or `python SCRIPT` that imports the package or KerasTuner is forked
the same way (`forkable_code`: not one that hides or checks modules or sets the environment before its imports) and
run as Python runs it: the multi-worker processes, the fault harness's small programs, the toy searches. It is a
real process of its own: the test holds a `subprocess.Popen` for it (the worker is made its parent,
`PR_SET_CHILD_SUBREAPER`), signals and kills reach it, its exit status is its own.

What differs from a fresh interpreter is only what happened before the command line was known: the imports, in the
environment of `conftest.env()` (their objects frozen, `gc.freeze`, as they would live to the end). So a process is
forked only when the test's environment differs from that one in variables the imports do not read
(`IMPORT_PREFIXES`, `RUNTIME_ENV`) or in the values the imports set themselves, for the package's own modules, and
without options that a fork cannot honour (`preexec_fn`, `pass_fds`, users, groups); anything else, and every test
marked `fresh_process` (the tests of what a process prints from its first instruction on), starts a fresh
interpreter as before. `KERAS_RESNET_TESTS_ZYGOTE=0` turns the zygote off.

A second zygote, `SERVING`, forks the tests' serving scripts: the processes that load an export as TF Serving
would, with TensorFlow and neither Keras nor the package (their first lines are `SERVING_HEAD`, which blocks both).
It imports TensorFlow so, in the environment of the first such script of its worker, and drops TensorFlow's
start-up lines, which a fresh script prints on its stderr; variables only Keras reads (`KERAS_ONLY_ENV`) do not
matter to it. Eight scripts a run, about 3 CPU-s of imports each.

Measured on 2026-12-04 (2-core Xeon VM, the whole suite, one run each, benchmarks/BENCHMARKS.md): 863 s wall
and 1,534 CPU-s against 903 s and 1,694 CPU-s without it; the fault-harness, stop-request and trainer files
take about half their time. Forking the tests' `python -c` programs and scripts too (27 fresh interpreters fewer a
run, of 108): 729-762 s and 1,367-1,394 CPU-s against 865 s and 1,610 CPU-s, with the other changes of that
session (BENCHMARKS.md, "Fresh interpreters: ..."). With the imports' objects frozen before the forks and each
test's survivors frozen after it (`conftest.pytest_runtest_teardown`): 655-746 s and 1,232-1,383 CPU-s
(BENCHMARKS.md, "Python's garbage collector walking a heap of models"). With every process's objects frozen at its
exit (tests/cli_site) and the serving zygote: 639-680 s and 1,192-1,262 CPU-s (BENCHMARKS.md, "Interpreters'
exits and the serving scripts").
"""

import ctypes
import inspect
import json
import os
import signal
import socket
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWITCH_ENV = "KERAS_RESNET_TESTS_ZYGOTE"
# Modules a forked process may run: the package's command lines. The zygote imports `PRELOADED` (not the
# command-line modules themselves: `runpy` warns when the module it runs as `__main__` is imported already).
MODULE_PREFIXES = ("trainers.", "tuning.", "keras_resnet.")
PRELOADED = ("keras_resnet", "keras_resnet.training", "keras_resnet.export", "keras_resnet.evaluate",
             "keras_tuner")
# Variables the package and its libraries read only after start-up, when a command runs: a test may set
# them, although some match `IMPORT_PREFIXES` below.
RUNTIME_ENV = ("KERAS_RESNET_FAULT", "KERAS_RESNET_FAULT_LOG", "KERAS_RESNET_WEIGHTS", "KERAS_RESNET_CACHE_DIR",
               "KERAS_RESNET_FUSED_BN", "TF_CONFIG", "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP",
               "KERASTUNER_ORACLE_PORT")
# Variables the zygote's imports (Python, NumPy, TensorFlow, Keras, the test site) can read: a command whose value of
# one of them differs starts fresh. Others (PyTorch's, scikit-learn's, JAX's, pytest's, which tests and the
# worker's own imports put in its environment) are read by nothing the zygote has loaded.
IMPORT_PREFIXES = ("TF_", "KERAS", "CUDA", "XLA_", "JAX_", "PYTHON", "LD_", "OMP_", "MKL_", "OPENBLAS_", "HOME", "XDG_",
                   "LANG", "LC_", "TMPDIR", "MPL")
# The first line of a test's serving script: a process with TensorFlow and neither Keras nor the package, as TF
# Serving loads an export. Such scripts are forked from a second zygote, `SERVING`, which imported TensorFlow so.
SERVING_HEAD = 'import sys\nsys.modules["keras"] = sys.modules["keras_resnet"] = None'
KERAS_ONLY_ENV = ("KERAS_HOME", "KERAS_BACKEND")  # read by Keras alone: not by a serving process's imports
PR_SET_CHILD_SUBREAPER = 36
# private: the arguments `Popen` hands its process-starting step, which `Popen` below answers by a fork
EXECUTE_CHILD = list(inspect.signature(subprocess.Popen._execute_child).parameters)[1:]


# --- the zygote process ---------------------------------------------------------------------------------

def _read_line(sock):
    data = b""
    while not data.endswith(b"\n"):
        part = sock.recv(65536)
        if not part:
            return None
        data += part
    return data


def _serve(sock):
    """Answers requests until the worker closes the socket (then exits); returns, in a forked process only,
    `(request, fds)` of the command that process is to run."""
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
        if not message:
            os._exit(0)  # private: the worker has gone; nothing of this process's to clean up
        while not message.endswith(b"\n"):
            more = sock.recv(1 << 20)
            if not more:
                os._exit(0)  # private: the worker has gone mid-request
            message += more
        request = json.loads(message)
        read_end, write_end = os.pipe()
        middle = os.fork()
        if middle == 0:  # forks the command's process and exits, so that it is handed to the worker
            os.close(read_end)
            pid = os.fork()
            if pid == 0:
                os.close(write_end)
                return request, fds
            os.write(write_end, str(pid).encode())
            os._exit(0)  # private: a forked copy of the zygote leaves without its exit handlers
        os.close(write_end)
        with os.fdopen(read_end, "rb") as f:
            pid = f.read().decode()
        os.waitpid(middle, 0)
        for fd in fds:
            os.close(fd)
        sock.sendall(f"{pid}\n".encode())


def _become(request, fds, sock):
    """In the forked process: takes the test's streams, environment, directory and arguments, and runs."""
    sock.close()
    if request["new_session"]:
        os.setsid()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds) - {0, 1, 2}:
        os.close(fd)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(request["env"])
    for name, value in request["startup_env"].items():
        os.environ.setdefault(name, value)
    os.chdir(request["cwd"])
    sys.path[0] = os.getcwd()  # as `python -m` has it
    sys.stdout.reconfigure(line_buffering=os.isatty(1))
    import numpy as np

    np.random.seed()  # a fresh process's NumPy draws differ from its siblings'; Python's `random` reseeds itself
    import runpy

    if request["option"] == "-m":
        sys.argv = ["-m", *request["args"]]
        runpy.run_module(request["target"], run_name="__main__", alter_sys=True)
    elif request["option"] == "-c":  # as `python -c CODE ARGS` runs it: a fresh `__main__`, the path starting at ""
        import builtins
        import types

        sys.argv = ["-c", *request["args"]]
        sys.path[0] = ""
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        exec(compile(request["target"], "<string>", "exec"), main.__dict__)
    else:  # `python SCRIPT ARGS`: the path starting at the script's directory
        sys.argv = [request["target"], *request["args"]]
        sys.path[0] = os.path.dirname(os.path.abspath(request["target"]))
        runpy.run_path(request["target"], run_name="__main__")


def _import_package():
    """The package zygote's imports: `PRELOADED`, their objects frozen as the package's tools freeze theirs."""
    sys.argv = ["-m"]  # as `python -m <tool>` starts: `keras_resnet.startup` imports TensorFlow without its banners
    for name in PRELOADED:
        __import__(name)
    # The imports' objects frozen as the package's tools freeze theirs (`import keras_resnet` froze its own; this
    # adds the rest of `PRELOADED`), and as Python's documentation advises before forking: a forked process's
    # garbage collections, and its exit, walk only what it creates (copying none of the zygote's pages to do so).
    # test_faults_trainer, test_stop_request and test_command_errors: 116 CPU-s against 135 (2-core Xeon).
    from keras_resnet import startup

    startup.freeze_if_command_line_tool()


def _import_serving():
    """The serving zygote's imports: TensorFlow with Keras and the package blocked (`SERVING_HEAD`), frozen as
    above (by hand: the package, whose `startup.freeze_if_command_line_tool` does it, is what is blocked)."""
    exec(SERVING_HEAD, {})
    import gc

    import numpy  # noqa: F401

    saved = os.dup(2)  # TensorFlow's start-up lines (a fresh script prints them on its own stderr) are dropped
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    gc.collect()
    gc.freeze()


IMPORTS = {"package": _import_package, "serving": _import_serving}  # each zygote kind's start-up imports


def _main(fd, kind):
    sock = socket.socket(fileno=fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the test run is the worker's to handle
    initial = dict(os.environ)
    sys.path[0] = os.getcwd()
    IMPORTS[kind]()
    from tensorflow.python.eager import context

    import threading

    # private: whether importing created TensorFlow's runtime (its thread pools would not survive a fork)
    safe = threading.active_count() == 1 and context.context()._context_handle is None
    added = {k: v for k, v in os.environ.items() if k not in initial}
    sys.stdout.flush()
    sys.stderr.flush()
    sock.sendall((json.dumps({"safe": safe, "added": added}) + "\n").encode())
    if not safe:
        return
    request, fds = _serve(sock)
    request["startup_env"] = added  # what a fresh process's imports would have set too
    _become(request, fds, sock)


# --- the worker's side ----------------------------------------------------------------------------------

def program(args, cwd):
    """`(zygote kind, option, target, arguments)` of a command line a zygote may fork (`"-m"` and a module of the
    package's, `"-c"` and its code, `"script"` and its path), or None. The kind is "serving" for a serving
    script (`SERVING_HEAD`), "package" for the others."""
    if len(args) >= 3 and args[1] == "-m" and args[2].startswith(MODULE_PREFIXES):
        return "package", "-m", args[2], args[3:]
    if len(args) >= 3 and args[1] == "-c":
        kind = code_kind(args[2])
        return (kind, "-c", args[2], args[3:]) if kind else None
    if args[1].endswith(".py"):
        try:
            with open(os.path.join(cwd or os.getcwd(), args[1]), encoding="utf-8") as f:
                code = f.read()
        except (OSError, UnicodeDecodeError):
            return None
        kind = code_kind(code)
        return (kind, "script", args[1], args[2:]) if kind else None
    return None


def forkable_call(call):
    """`program()` of a `Popen` call (`EXECUTE_CHILD`'s values by name) that a fork can honour, or None: this
    interpreter with arguments, no shell, no `preexec_fn`, `pass_fds`, users, groups, umask or process group."""
    if call["executable"] not in (None, sys.executable) or call["shell"] or call["preexec_fn"] is not None \
            or call["pass_fds"] or call["gid"] is not None or call["gids"] is not None or call["uid"] is not None \
            or call["umask"] >= 0 or call["process_group"] != -1 or not call["close_fds"]:
        return None
    args = call["args"]
    args = [os.fspath(a) for a in args] if not isinstance(args, (str, bytes)) else None
    if not args or len(args) < 2 or args[0] != sys.executable:
        return None
    return program(args, call["cwd"])


def code_kind(code):
    """The zygote that may fork a test's program: "serving" for one that starts with `SERVING_HEAD` (and then
    imports what it likes), "package" for a `forkable_code` one, or None."""
    if code.lstrip().startswith(SERVING_HEAD):
        return "serving"
    return "package" if forkable_code(code) else None


def forkable_code(code):
    """Whether a test's `python -c` program or script may be forked: one that imports what the zygote has imported
    (the package, KerasTuner) and reads neither `sys.modules` nor the environment before its imports could (a
    program that hides or checks a module, or sets a variable the imports read, needs the fresh interpreter)."""
    return any(name in code for name in ("keras_resnet", "keras_tuner")) and not any(
        word in code for word in ("sys.modules", "environ", "KERAS_BACKEND"))


class _Zygote:
    """One of each kind ("package", "serving") per pytest worker, started at its first eligible command."""

    fresh = False  # set by the `fresh_process` marker for the current test (`start_fresh`), for every kind

    def __init__(self, kind):
        self.kind = kind
        # variables that its imports do not read at start-up (Keras' own, too, where Keras is blocked)
        self.unread = RUNTIME_ENV + (KERAS_ONLY_ENV if kind == "serving" else ())
        self.process = self.sock = self.base = self.added = None
        self.refused = ""  # why the last command line started a fresh interpreter
        self.failed = not sys.platform.startswith("linux") or os.environ.get(SWITCH_ENV, "1") == "0"
        self.forked = 0  # processes forked so far

    def start(self):
        ours, theirs = socket.socketpair()
        self.process = _ORIGINAL_POPEN([sys.executable, os.path.abspath(__file__), str(theirs.fileno()), self.kind],
                                       pass_fds=[theirs.fileno()], cwd=REPO, env=self.base,
                                       stdin=subprocess.DEVNULL)
        theirs.close()
        line = _read_line(ours)
        ready = json.loads(line) if line else {"safe": False}
        if not ready["safe"]:
            ours.close()
            self.failed = True
            return
        self.sock, self.added = ours, ready["added"]  # the variables the zygote's imports set

    def request(self, found, call):
        """The request for `found` (`program()` of the `Popen` call `call`), or None when a fresh interpreter must
        run it."""
        if self.failed or self.fresh or call["env"] is None:
            return None
        mine = {str(k): str(v) for k, v in call["env"].items()}
        if self.base is None:  # the serving zygote starts in the environment of the first script it is to fork
            self.base = {k: v for k, v in mine.items() if k not in self.unread}
        if self.sock is None:
            self.start()
            if self.failed:
                return None
        differing = sorted(k for k in set(mine) | set(self.base) if not self.same_start(k, mine.get(k)))
        if differing:
            self.refused = f"the environment differs before start-up in {differing}"
            return None
        self.refused = ""
        _, option, target, arguments = found
        return {"option": option, "target": target, "args": arguments, "env": mine,
                "cwd": os.path.abspath(call["cwd"] or os.getcwd()), "new_session": bool(call["start_new_session"])}

    def same_start(self, name, value):
        """Whether a process started with `name=value` imports as the zygote did: a variable its imports do not
        read (`IMPORT_PREFIXES`) or read only later (`RUNTIME_ENV`), the value it had, or the value its imports set
        (TensorFlow's `TF2_BEHAVIOR`, `keras_resnet.startup`'s `TF_ENABLE_ONEDNN_OPTS`, ... which the worker's own
        imports put in its environment too); for the serving zygote also one only Keras reads (`KERAS_ONLY_ENV`)."""
        if name in self.unread or not name.startswith(IMPORT_PREFIXES) or value == self.base.get(name):
            return True
        return name not in self.base and value == self.added.get(name)

    def spawn(self, request, fds):
        """Forks `request`'s process with `fds` as its standard streams; returns its pid, a child of ours, or
        None (and no more forks in this worker) when the zygote cannot (it ended, the kernel refused)."""
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
            try:
                socket.send_fds(self.sock, [(json.dumps(request) + "\n").encode()], list(fds))
                line = _read_line(self.sock)
            finally:
                libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
            if line is None:
                raise OSError(f"the zygote (pid {self.process.pid}) ended")
        except OSError as error:
            print(f"tests/zygote.py: {error}; command lines start fresh interpreters from now on", file=sys.stderr)
            self.failed = True
            return None
        pid = int(line)
        self.forked += 1
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)  # ChildProcessError unless it is ours
        return pid

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.process.wait(timeout=60)
            self.sock = None


ZYGOTE = _Zygote("package")
SERVING = _Zygote("serving")
ZYGOTES = {zygote.kind: zygote for zygote in (ZYGOTE, SERVING)}
_ORIGINAL_POPEN = subprocess.Popen


class Popen(subprocess.Popen):
    """`subprocess.Popen` whose eligible command lines are forked from the zygote (see the module's text)."""

    def _execute_child(self, *values):
        call = dict(zip(EXECUTE_CHILD, values))
        found = forkable_call(call)
        zygote = ZYGOTES[found[0]] if found else None
        request = zygote.request(found, call) if zygote else None
        if request is None:
            return super()._execute_child(*values)  # private: the fresh interpreter, as before
        streams = [call["p2cread"], call["c2pwrite"], call["errwrite"]]
        pid = zygote.spawn(request, [fd if fd != -1 else i for i, fd in enumerate(streams)])
        if pid is None:
            return super()._execute_child(*values)  # private: the fresh interpreter, as before
        self.pid = pid
        # private: what `Popen` records once its child runs: it waits for it and closes the child's pipe ends
        self._child_created = True
        self._close_pipe_fds(call["p2cread"], call["p2cwrite"], call["c2pread"], call["c2pwrite"],
                             call["errread"], call["errwrite"])


def install(base_env):
    """Makes `subprocess.Popen` (and so `subprocess.run`) of this process fork eligible commands from a zygote
    started, at the first of them, in `base_env` (the environment of the suite's command-line processes)."""
    ZYGOTE.base = {k: v for k, v in base_env.items() if k not in ZYGOTE.unread}
    subprocess.Popen = Popen


def start_fresh(fresh):
    """Whether the current test's command lines all start fresh interpreters (the `fresh_process` marker)."""
    _Zygote.fresh = fresh


def close():
    for zygote in ZYGOTES.values():
        zygote.close()


if __name__ == "__main__":
    _main(int(sys.argv[1]), sys.argv[2])
