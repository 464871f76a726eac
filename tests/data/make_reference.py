"""Records the behaviour reference of the trainer that `tests/test_training_reference.py` checks.

Not a test (pytest does not collect it). Run it at a commit whose trainer is the reference, from the
repository root, with the code to record in `--code` (default: this checkout):

    git worktree add /tmp/old <commit>      # the commit before `keras_resnet/training.py` was split
    OMP_NUM_THREADS=2 python tests/data/make_reference.py --code=/tmp/old

It writes one reference per CPU, under `tests/data/training_references/<machine>-<hash of the CPU's vector
flags>/` (bitwise equality holds for one kind of CPU: TensorFlow's kernels follow its vector instructions):

- `reference.json`: the command (`ARGS`), its environment (`ENV`), the image folder (`FOLDER`), the library
  versions and the CPU it was recorded on;
- `final_weights.npz`: `w0..` the final model weights and `opt0..` the optimizer variables of
  `checkpoints/latest.keras` after the uninterrupted run;
- `log.json`: the rows of its `log.csv` without the timing columns (as written: strings);
- `old_backup_run/`: the `model_dir` of the same command killed (SIGKILL) right after its first epoch's
  backup was written, to be resumed by the code under test.

The command runs in a work directory holding `data/` (the image folder) and `run/` (the model_dir) with
relative paths, so `config.json` does not name a temporary directory and the recorded run can be resumed
from any copy. `KERAS_RESNET_FUSED_BN=0` keeps Keras' own BatchNormalization (the reference predates the
fused one). Before writing, the script runs the command twice and checks the two runs are bitwise equal,
and checks that resuming the killed run reaches the same weights: a reference that is not reproducible on
the machine that records it is refused.

Example:
    >>> import subprocess, sys
    >>> subprocess.run([sys.executable, "tests/data/make_reference.py"], check=True)  # doctest: +SKIP
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
REFERENCES_DIR = os.path.join(HERE, "training_references")

# 12 iterations in 3 epochs of 4; the CIFAR recipe's boundaries move with --train_steps to 6 and 9, so the
# learning rate changes twice inside the run (0.025 -> 0.0025 -> 0.00025 at batch 32).
ARGS = ["--model=resnet8", "--data=data", "--model_dir=run", "--batch_size=32", "--train_steps=12",
        "--steps_per_epoch=4", "--validation_split=0.1", "--seed=3", "--deterministic", "--verbose=0"]
FOLDER = {"train": 240, "test": 60, "size": 8, "classes": 3}
ENV = {"KERAS_BACKEND": "tensorflow", "KERAS_RESNET_FUSED_BN": "0", "OMP_NUM_THREADS": "2",
       "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}
TIMING_COLUMNS = ("wall_time_s", "images_per_second")

# Trains with the flags of `trainers.cifar` and dies (SIGKILL, nothing cleaned up) at the end of the first
# epoch, after the trainer wrote that epoch's checkpoints, log row and backup.
KILLED_AFTER_FIRST_EPOCH = """
import os, signal, sys
from absl import flags
import keras
from keras_resnet import training

training.define_flags(model="resnet20", data="cifar10", recipe="cifar")
flags.FLAGS(["trainer", *sys.argv[1:]])


class KillAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        os.kill(os.getpid(), signal.SIGKILL)


training.train(training.config_from_flags(flags.FLAGS), callbacks=[KillAfterFirstEpoch()])
"""


def cpu_flags():
    """The vector-instruction flags of this CPU (the kernels TensorFlow picks, hence the rounding, follow them)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next(line for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return []
    return sorted(flag for flag in line.split(":", 1)[1].split() if flag.startswith(("avx", "fma", "sse4")))


def platform_key(machine_name, flags):
    """The directory name of a CPU's reference: `<machine>-<first 10 hex digits of sha1(its vector flags)>`."""
    return f"{machine_name}-{hashlib.sha1(' '.join(flags).encode()).hexdigest()[:10]}"


def machine():
    """What the numbers depend on besides the code: CPU architecture and flags, library versions."""
    import keras
    import tensorflow as tf

    return {"machine": platform.machine(), "cpu_flags": cpu_flags(), "keras": keras.__version__,
            "tensorflow": tf.__version__, "numpy": np.__version__, "python": platform.python_version()}


def make_workdir(root):
    """`root/data`: the toy image folder of `FOLDER` (tests/conftest.make_image_folder)."""
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from conftest import make_image_folder

    make_image_folder(os.path.join(root, "data"), train=FOLDER["train"], test=FOLDER["test"],
                      size=FOLDER["size"], classes=FOLDER["classes"])
    return root


def command_env(code):
    env = dict(os.environ)
    env.update(ENV)
    env["PYTHONPATH"] = code
    return env


def run_trainer(workdir, code, script=None):
    """Runs `python -m trainers.cifar ARGS` (or `script` with ARGS) in `workdir` with the code in `code`."""
    head = ["-c", script] if script else ["-m", "trainers.cifar"]
    return subprocess.run([sys.executable, *head, *ARGS], cwd=workdir, env=command_env(code),
                          capture_output=True, text=True, timeout=900)


def final_state(run_dir):
    """{"w<i>": model weight i, "opt<i>": optimizer variable i} of `run_dir/checkpoints/latest.keras`."""
    import keras

    import keras_resnet  # noqa: F401  (registers the layers and schedules the checkpoint names)

    model = keras.saving.load_model(os.path.join(run_dir, "checkpoints", "latest.keras"))
    state = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    state.update({f"opt{i}": np.asarray(keras.ops.convert_to_numpy(v))
                  for i, v in enumerate(model.optimizer.variables)})
    return state


def log_rows(run_dir):
    """The rows of `run_dir/log.csv` as strings, timing columns dropped."""
    import csv

    with open(os.path.join(run_dir, "log.csv"), newline="") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(f)]


def same_state(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def record(code, root):
    """Runs everything in `root` and returns (state, rows, killed model_dir); raises if not reproducible."""
    runs = []
    for name in ("first", "second"):
        workdir = make_workdir(os.path.join(root, name))
        out = run_trainer(workdir, code)
        if out.returncode:
            raise SystemExit(f"the trainer failed ({out.returncode}):\n{out.stderr[-3000:]}")
        runs.append((final_state(os.path.join(workdir, "run")), log_rows(os.path.join(workdir, "run"))))
    if not same_state(runs[0][0], runs[1][0]) or runs[0][1] != runs[1][1]:
        raise SystemExit("two runs of the same command differ: the reference would not be reproducible.")
    killed = make_workdir(os.path.join(root, "killed"))
    out = run_trainer(killed, code, KILLED_AFTER_FIRST_EPOCH)
    if out.returncode != -9:
        raise SystemExit(f"the killed run did not die by SIGKILL ({out.returncode}):\n{out.stderr[-3000:]}")
    kept = os.path.join(root, "killed_run")
    shutil.copytree(os.path.join(killed, "run"), kept)
    resumed = run_trainer(killed, code)
    if resumed.returncode or not same_state(final_state(os.path.join(killed, "run")), runs[0][0]):
        raise SystemExit("resuming the killed run does not reach the uninterrupted run's weights.")
    if log_rows(os.path.join(killed, "run")) != runs[0][1]:
        raise SystemExit("resuming the killed run does not give the uninterrupted run's log.csv.")
    return runs[0][0], runs[0][1], kept


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", default=REPO, help="checkout whose trainer is recorded (default: this one)")
    args = parser.parse_args(argv)
    code = os.path.abspath(args.code)
    here = machine()
    out = os.path.join(REFERENCES_DIR, platform_key(here["machine"], here["cpu_flags"]))
    with tempfile.TemporaryDirectory() as root:
        state, rows, killed = record(code, root)
        staging = os.path.join(root, "reference")
        os.makedirs(staging)
        np.savez(os.path.join(staging, "final_weights.npz"), **state)
        with open(os.path.join(staging, "log.json"), "w") as f:
            json.dump(rows, f, indent=1)
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=code, capture_output=True, text=True).stdout
        with open(os.path.join(staging, "reference.json"), "w") as f:
            json.dump({"args": ARGS, "env": ENV, "folder": FOLDER, "commit": commit.strip(), **here}, f, indent=1)
        shutil.copytree(killed, os.path.join(staging, "old_backup_run"))
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(REFERENCES_DIR, exist_ok=True)
        shutil.move(staging, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
