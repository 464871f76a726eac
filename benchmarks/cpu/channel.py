"""JSON lines between the orchestrator and its workers: one request, one reply, over the worker's stdin/stdout.

A worker is `python -m benchmarks.cpu.<name>_worker` with the thread environment of
`benchmarks.cpu.settings.worker_env`. Inside it, `Channel` keeps the original stdout for the protocol and
points file descriptor 1 at stderr, so that whatever a library prints (TensorFlow, Keras, PyTorch) goes to
the worker's log instead of corrupting a reply. `serve(handlers)` answers requests `{"op": name, ...}`
`{"result": handlers[name](**arguments)}`; an exception becomes `{"error": traceback}`, which the orchestrator's
`Worker.call` raises as `WorkerError` (with the tail of the worker's log).

Example:
    >>> worker = Worker("benchmarks.cpu.ort_worker", env, "/tmp/ort.log", "onnxruntime")  # a benchmark's own process  # doctest: +SKIP
    >>> worker.call("versions")["onnxruntime"]  # a benchmark's own process  # doctest: +SKIP
    '1.32.0'
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback


class WorkerError(RuntimeError):
    """A worker failed or exited; the message names the worker, the request and its error."""


def log_tail(path, characters=3000):
    """The last `characters` of a worker's log (empty when unreadable)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()[-characters:]
    except OSError:
        return ""


class Worker:
    """The orchestrator's side of one worker process.

    Args:
        module: the worker's module, run with `python -m`.
        env: its environment (threads, backend).
        log_path: where its stderr (and any stray stdout) goes.
        label: its name in messages.
    """

    def __init__(self, module, env, log_path, label):
        from benchmarks.cpu import ROOT

        self.label, self.log_path = label, log_path
        self.log = open(log_path, "w", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, env=env, cwd=ROOT, text=True,
                                        bufsize=1)

    def call(self, op, **arguments):
        """Sends one request and returns its result (a dict); `WorkerError` when it failed."""
        try:
            self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone: readline() below says so
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise WorkerError(f"worker {self.label} exited with code {code} during {op!r}; "
                              f"its log ({self.log_path}) ends:\n{log_tail(self.log_path)}")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerError(f"worker {self.label} failed in {op!r}:\n{reply['error']}")
        return reply["result"]

    def close(self):
        """Asks the worker to exit; kills it (this process only) when it does not within 60 s."""
        if self.process.poll() is None:
            try:
                self.call("exit")
                self.process.wait(timeout=60)
            except (WorkerError, OSError, ValueError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self.log.close()


class Channel:
    """The worker's side: requests from stdin, replies on the original stdout (fd 1 now goes to stderr)."""

    def __init__(self):
        self.out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        sys.stdout.flush()
        os.dup2(2, 1)

    def receive(self):
        """The next request as a dict; exits the process when the orchestrator closed the pipe."""
        line = sys.stdin.readline()
        if not line:
            raise SystemExit(0)
        return json.loads(line)

    def send(self, result=None, error=None):
        """Replies with `{"result": result}` (a dict) or `{"error": text}`."""
        reply = {"error": error} if error is not None else {"result": result or {}}
        self.out.write(json.dumps(reply, default=float) + "\n")
        self.out.flush()


def answer(channel, handlers, message):
    """Runs one request; returns False for "exit"."""
    op = message.pop("op")
    if op == "exit":
        channel.send({})
        return False
    try:
        if op not in handlers:
            raise KeyError(f"unknown request {op!r}; accepted: {', '.join(sorted(handlers))}")
        result = handlers[op](**message) or {}
    except Exception:  # noqa: BLE001 - reported to the orchestrator, which raises it
        channel.send(error=traceback.format_exc(limit=12))
        return True
    channel.send(result)
    return True


def serve(handlers, channel=None):
    """Answers requests until "exit" (or end of input)."""
    channel = channel or Channel()
    while answer(channel, handlers, channel.receive()):
        pass
