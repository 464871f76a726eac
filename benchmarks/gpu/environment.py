"""The environment report printed first by every run: versions, devices, the card, the git commit.

Example:
    >>> from benchmarks.gpu.environment import environment, on_gpu
    >>> env = environment(report)  # prints it and stores it in report.data["env"]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import subprocess
import sys

import numpy as np

from benchmarks.gpu import ROOT
from benchmarks.gpu.report import now


def jax_environment(env, report):
    """JAX's versions and devices into `env`; sets `report.device` (the card, or the CPU and its cores)."""
    try:
        import jax
        import jaxlib

        env["jax"], env["jaxlib"] = jax.__version__, jaxlib.__version__
        devices = jax.devices()
        env["jax_devices"] = [f"{d.platform}:{getattr(d, 'device_kind', d)}" for d in devices]
        report.device = getattr(devices[0], "device_kind", str(devices[0]))
        if devices[0].platform == "cpu":
            report.device = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    except Exception as e:  # pragma: no cover
        env["jax"] = f"unavailable: {e}"


def torch_environment(env):
    """PyTorch's, CUDA's, cuDNN's and torchvision's versions into `env` (None where not installed)."""
    if importlib.util.find_spec("torch") is None:
        env["torch"] = None
        return
    import torch

    env["torch"] = torch.__version__
    env["torch_cuda"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        env["torch_device"] = torch.cuda.get_device_name(0)
        env["cudnn"] = torch.backends.cudnn.version()
    env["torchvision"] = (importlib.import_module("torchvision").__version__
                          if importlib.util.find_spec("torchvision") else None)


def command_output(cmd, timeout, or_stderr):
    """The stripped stdout of `cmd` (else its stderr if `or_stderr`, else None); None where it cannot run."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except Exception:
        return None
    return out.stdout.strip() or (out.stderr.strip() if or_stderr else None)


def environment(report):
    """Collects, stores (`report.data["env"]`) and prints the environment; returns it as a dict."""
    env = {"date": now(), "python": sys.version.split()[0], "platform": platform.platform(),
           "cpus": os.cpu_count(), "keras_backend": os.environ.get("KERAS_BACKEND"),
           "numpy": np.__version__, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
    jax_environment(env, report)
    try:
        import keras

        env["keras"] = keras.__version__
    except Exception as e:  # pragma: no cover
        env["keras"] = f"unavailable: {e}"
    torch_environment(env)
    env["nvidia_smi"] = command_output(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                                        "--format=csv,noheader"], 20, or_stderr=True)
    env["git"] = command_output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], 10, or_stderr=False)
    report.data["env"] = env
    report.save()
    print("== environment")
    for k, v in env.items():
        print(f"  {k}: {v}")
    print(f"  device: {report.device}", flush=True)
    return env


def on_gpu():
    """Whether JAX's first device is a GPU."""
    import jax

    return jax.devices()[0].platform == "gpu"
