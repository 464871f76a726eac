"""Chief and workers of a distributed search: keras-tuner's gRPC protocol with a bounded wait.

The chief serves the oracle (`serve_oracle`), the workers run trials. Each process reads
`KERASTUNER_TUNER_ID` ("chief" or a unique worker id), `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT`.
keras-tuner's own chief waits forever for a trial whose worker died; here a worker reports while its trial
runs (`Heartbeat`), a trial whose worker is silent for `--worker_timeout` seconds goes back to the queue for
another worker, and the chief stops when no worker has contacted it for `--worker_timeout` seconds or when
all its local workers (`launch_local_workers`) have exited.

Example:
    >>> from tuning.distributed import worker_argv
    >>> worker_argv(["--model=resnet8", "--local_workers=2", "--project_dir=p"])
    ['--model=resnet8', '--project_dir=p', '--role=worker']
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tuning import kt_compat

CHIEF_ONLY_FLAGS = ("--local_workers", "--overwrite", "--nooverwrite", "--export_best", "--noexport_best", "--role")
DONE = "done"
STOPPED = "stopped"  # a stop request (SIGTERM / SIGINT, `keras_resnet.stop_request`)


def free_port():
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def heartbeat_interval(worker_timeout):
    """Seconds between a worker's reports: a quarter of `--worker_timeout`, within [1, 10]."""
    return max(1.0, min(10.0, worker_timeout / 4))


class Heartbeat:
    """While a trial runs on a worker, asks the chief for the trial every `interval` seconds (it is alive).

    Example:
        >>> with Heartbeat(oracle, "3", interval=5.0):  # runs a search  # doctest: +SKIP
        ...     train()
    """

    def __init__(self, oracle, trial_id, interval):
        self.oracle, self.trial_id, self.interval = oracle, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name="tuning-heartbeat", daemon=True)

    def run(self):
        while not self.stop.wait(self.interval):
            try:
                self.oracle.get_trial(self.trial_id)
            except Exception:  # the chief is gone or busy: the trial itself will notice when it reports
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()


class WatchedServicer:
    """keras-tuner's oracle servicer, noting when the chief last heard from any worker and about each trial.

    It forwards every RPC to `inner` (`tuning.kt_compat.oracle_servicer(oracle)`); gRPC only needs the
    method names.
    """

    def __init__(self, inner):
        self.inner = inner
        self.last_contact = time.monotonic()
        self.seen = {}

    def touch(self, trial_id=None):
        self.last_contact = time.monotonic()
        if trial_id:
            self.seen[trial_id] = self.last_contact

    @property
    def stop_triggered(self):
        """Whether a worker has been told that the search is over."""
        return kt_compat.stop_triggered(self.inner)

    def GetSpace(self, request, context):
        self.touch()
        return self.inner.GetSpace(request, context)

    def UpdateSpace(self, request, context):
        self.touch()
        return self.inner.UpdateSpace(request, context)

    def CreateTrial(self, request, context):
        response = self.inner.CreateTrial(request, context)
        self.touch(response.trial.trial_id)
        return response

    def UpdateTrial(self, request, context):
        self.touch(request.trial_id)
        return self.inner.UpdateTrial(request, context)

    def EndTrial(self, request, context):
        self.touch(request.trial.trial_id)
        return self.inner.EndTrial(request, context)

    def GetTrial(self, request, context):
        self.touch(request.trial_id)
        return self.inner.GetTrial(request, context)

    def GetBestTrials(self, request, context):
        self.touch()
        return self.inner.GetBestTrials(request, context)


def start_oracle_server(oracle, address, max_workers=8):
    """Starts a gRPC server of `oracle` on `address` ("ip:port"); returns (server, WatchedServicer)."""
    from concurrent import futures

    import grpc

    from tuning.options import SearchError

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    servicer = WatchedServicer(kt_compat.oracle_servicer(oracle))
    kt_compat.add_oracle_servicer(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise SearchError(f"the chief cannot listen on {address} (KERASTUNER_ORACLE_IP / KERASTUNER_ORACLE_PORT).")
    server.start()
    return server, servicer


def requeue_silent_trials(oracle, servicer, ongoing, since, worker_timeout, log=print):
    """Sends back to the queue each ongoing trial not heard of for `worker_timeout` seconds."""
    now = time.monotonic()
    for tuner_id, trial in ongoing.items():
        silent = now - servicer.seen.get(trial.trial_id, since)
        if silent > worker_timeout:
            log(f"[tuning] chief: worker {tuner_id!r} has not reported on trial {trial.trial_id} for "
                f"{silent:.0f} s (--worker_timeout={worker_timeout:g}); presumed dead, the trial goes back "
                "to the queue for another worker.")
            kt_compat.requeue_lost_trial(oracle, tuner_id, trial)


def stop_reason(servicer, workers, worker_timeout):
    """Why the chief should give up now (all local workers gone, or none heard of), else None."""
    if workers and all(w.poll() is not None for w in workers):
        codes = [w.returncode for w in workers]
        return f"all {len(workers)} local workers exited (exit codes {codes}) before the search finished"
    silent = time.monotonic() - servicer.last_contact
    if silent > worker_timeout:
        return f"no worker has contacted the chief for {silent:.0f} s (--worker_timeout={worker_timeout:g})"
    return None


def serve_oracle(oracle, worker_timeout, workers=(), poll=0.5, log=print, stop=None):
    """Serves `oracle` to the workers until the search is over, a worker is lost for good, or all are gone.

    Args:
        oracle: the chief's `keras_tuner.Oracle` (project directory set).
        worker_timeout: float, seconds of silence after which a worker (or all of them) is presumed dead.
        workers: sequence of `subprocess.Popen` (local workers), optional.
        poll: float, seconds between checks.
        log: callable for the messages.
        stop: the chief's `keras_resnet.stop_request.StopRequest`, if any.

    Returns:
        "done" when every trial finished, "stopped" on a stop request, else a one-line reason the search
        stopped early.
    """
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server, servicer = start_oracle_server(oracle, address)
    log(f"[tuning] chief: oracle serving on {address}; waiting for workers (--worker_timeout={worker_timeout:g} s).")
    start, stopped_at = time.monotonic(), None
    try:
        while True:
            time.sleep(poll)
            if stop is not None and stop.requested:
                return STOPPED
            ongoing, tuner_ids, _ = kt_compat.ongoing_snapshot(oracle)
            if servicer.stop_triggered and not ongoing:
                stopped_at = stopped_at or time.monotonic()
                # Every trial is done; wait briefly for the other workers to ask and be told to stop.
                if not tuner_ids or time.monotonic() - stopped_at > min(worker_timeout, 10.0):
                    return DONE
                continue
            requeue_silent_trials(oracle, servicer, ongoing, start, worker_timeout, log=log)
            reason = stop_reason(servicer, workers, worker_timeout)
            if reason:
                return reason
    finally:
        server.stop(grace=1.0)


def worker_argv(argv):
    """The chief's command line for its local workers: same search, --role=worker, no chief-only flags."""
    out = [a for a in argv if not any(a == d or a.startswith(d + "=") for d in CHIEF_ONLY_FLAGS)]
    return out + ["--role=worker"]


def launch_local_workers(n, argv, project_dir):
    """Starts `n` workers (`python -m tuning.search ... --role=worker`) talking to this chief; logs in
    `<project_dir>/workers/worker<i>.log`."""
    log_dir = os.path.join(project_dir, "workers")
    os.makedirs(log_dir, exist_ok=True)
    workers = []
    for i in range(n):
        env = dict(os.environ, KERASTUNER_TUNER_ID=f"worker{i}")
        with open(os.path.join(log_dir, f"worker{i}.log"), "ab") as log:
            workers.append(subprocess.Popen([sys.executable, "-m", "tuning.search", *worker_argv(argv)], env=env,
                                            stdout=log, stderr=subprocess.STDOUT, cwd=os.getcwd()))
    return workers


def stop_workers(workers, timeout=10.0, signal_name="SIGTERM"):
    """Sends `signal_name` to each live worker and waits for them; SIGKILLs those still alive after `timeout`
    seconds (None: waits for every one, as a stop request does: they back up their trials, then exit)."""
    for w in workers:
        if w.poll() is None:
            w.send_signal(getattr(signal, signal_name))
    deadline = None if timeout is None else time.monotonic() + timeout
    for w in workers:
        try:
            w.wait(None if deadline is None else max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
