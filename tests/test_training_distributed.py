"""tf.distribute: MirroredStrategy over 2 logical CPUs equals 1 device; 2-worker MultiWorkerMirroredStrategy."""

import json
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, env

pytest.importorskip("tensorflow")

COMMON = """
import json, sys
sys.path.insert(0, "tests")
from keras_resnet import run_log, training
import conftest as u
"""

MIRRORED = COMMON.replace("from keras_resnet", """import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from keras_resnet""") + """
out, result = sys.argv[1], {}
for dist in ("none", "mirrored"):
    cfg = training.TrainConfig(model="resnet8", data="toy", model_dir=f"{out}/{dist}", batch_size=32,
                               train_steps=8, steps_per_epoch=4, learning_rate=0.05, seed=3, verbose=0,
                               distribution=dist, sync_batch_norm=True)
    s = training.train(cfg, data=u.array_data(train=128, test=32))
    result[dist] = {"loss": [float(r["loss"]) for r in run_log.read_csv(f"{out}/{dist}/log.csv")],
                    "replicas": s["replicas"], "test_loss": s["test_loss"]}
print("RESULT" + json.dumps(result))
"""

WORKER = COMMON + """
import keras, numpy as np
out, index = sys.argv[1], int(sys.argv[2])
cfg = training.TrainConfig(model="resnet8", data="toy", model_dir=f"{out}/run", batch_size=32, train_steps=6,
                           steps_per_epoch=3, learning_rate=0.05, seed=3, verbose=0, distribution="multi_worker")
weights = {}
class Grab(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        weights["w"] = self.model.get_weights()
s = training.train(cfg, data=u.array_data(train=128, test=32), callbacks=[Grab()])
np.savez(f"{out}/weights{index}.npz", *weights["w"])
print("RESULT" + json.dumps(s))
"""


def result(stdout):
    return json.loads(next(line for line in stdout.splitlines() if line.startswith("RESULT"))[6:])


def test_mirrored_over_two_logical_cpus_matches_one_device(tmp_path):
    out = subprocess.run([sys.executable, "-c", MIRRORED, str(tmp_path)], cwd=REPO, env=env(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    r = result(out.stdout)
    assert (r["none"]["replicas"], r["mirrored"]["replicas"]) == (1, 2)
    np.testing.assert_allclose(r["mirrored"]["loss"], r["none"]["loss"], rtol=1e-4)
    assert r["mirrored"]["test_loss"] == pytest.approx(r["none"]["test_loss"], rel=1e-3)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_worker_multi_worker_mirrored_run_agrees_on_the_weights(tmp_path):
    ports = free_ports(2)
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": i}}
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(i)], cwd=REPO,
                                      env=env(TF_CONFIG=json.dumps(tf_config)), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    try:
        outs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr[-3000:]
    summaries = [result(stdout) for stdout, _ in outs]
    assert [s["iterations"] for s in summaries] == [6, 6] and summaries[0]["replicas"] == 2
    a, b = np.load(tmp_path / "weights0.npz"), np.load(tmp_path / "weights1.npz")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert (tmp_path / "run" / "summary.json").exists() and (tmp_path / "run" / "checkpoints" / "latest.keras").exists()


STOPPING_WORKER = COMMON + """
import keras, numpy as np
from keras_resnet.stop_request import Stopped
out, index, run = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = training.TrainConfig(model="resnet8", data="toy", model_dir=f"{out}/{run}", batch_size=32, train_steps=9,
                           steps_per_epoch=3, sync_every=1, learning_rate=0.05, seed=3, verbose=0,
                           distribution="multi_worker", sync_batch_norm=True, deterministic=True)
weights = {}
class Grab(keras.callbacks.Callback):
    def on_train_end(self, logs=None):
        weights["w"] = self.model.get_weights()
try:
    s = training.train(cfg, data=u.array_data(train=128, test=32), callbacks=[Grab()])
except Stopped as e:
    print("STOPPED" + json.dumps(e.iteration))
    sys.exit(4)
np.savez(f"{out}/{run}-weights{index}.npz", *weights["w"])
print("RESULT" + json.dumps(s))
"""


def run_workers(tmp_path, run, fault_on=None):
    """Two multi-worker processes of `STOPPING_WORKER` on `run`; `fault_on`: (worker index, KERAS_RESNET_FAULT)."""
    ports = free_ports(2)
    procs = []
    for i in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": i}}
        extra = {"KERAS_RESNET_FAULT": fault_on[1]} if fault_on and fault_on[0] == i else {}
        procs.append(subprocess.Popen([sys.executable, "-c", STOPPING_WORKER, str(tmp_path), str(i), run], cwd=REPO,
                                      env=env(TF_CONFIG=json.dumps(tf_config), **extra), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    try:
        return [(p, *p.communicate(timeout=300)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_a_stop_asked_of_one_worker_stops_every_worker_at_the_same_iteration(tmp_path):
    for p, _, stderr in run_workers(tmp_path, "reference"):
        assert p.returncode == 0, stderr[-3000:]
    # Worker 1 (not the chief) is asked to stop in the middle of epoch 2; the chief has to stop there too.
    stopped = run_workers(tmp_path, "run", fault_on=(1, "train.epoch_middle@2:sigterm"))
    for p, stdout, stderr in stopped:
        assert p.returncode == 4, stderr[-3000:]
    iterations = [json.loads(next(l for l in stdout.splitlines() if l.startswith("STOPPED"))[7:]) for _, stdout, _ in stopped]
    assert iterations == [5, 5], iterations  # one host read per iteration: the middle of epoch 2
    assert json.loads((tmp_path / "run" / "backup" / "training_metadata.json").read_text())["iteration"] == 5
    for p, _, stderr in run_workers(tmp_path, "run"):
        assert p.returncode == 0, stderr[-3000:]
    reference = np.load(tmp_path / "reference-weights0.npz")
    for index in range(2):
        resumed = np.load(tmp_path / f"run-weights{index}.npz")
        for key in reference:
            np.testing.assert_array_equal(resumed[key], reference[key], err_msg=f"worker {index}, {key}")
