"""benchmarks/gpu_cifar.py (issue 8) in its CPU smoke mode, and the on-device augmentation it uses.

The GPU machine has JAX and PyTorch but neither TensorFlow nor matplotlib, so the smoke run blocks both
(`--block_modules`) and runs on Keras' JAX backend in a subprocess: the throughput part (the fused
device-augmentation program checked against the package's step, and `training.train()` itself) and the
PyTorch reference (checked against the Keras model with copied weights), tiny sizes, synthetic data.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_cifar.py")


def test_device_crop_flip_equals_numpy_augmentation():
    """`device_augment.crop_flip` (keras.ops, and its TensorFlow fast path) == the numpy in-memory augmentation."""
    from keras import ops

    from keras_resnet.data import device_augment
    from keras_resnet.data.in_memory import random_crop_flip

    images = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    expected, (oy, ox, flip) = random_crop_flip(images, np.random.default_rng(1), return_params=True)
    out = ops.convert_to_numpy(device_augment.crop_flip(images, oy, ox, flip))
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(ops.convert_to_numpy(device_augment.ops_crop_flip(images, oy, ox, flip)), expected)
    if importlib.util.find_spec("tensorflow") is not None:  # the TensorFlow fast path, whatever the backend
        np.testing.assert_array_equal(device_augment.tf_crop_flip(images, oy, ox, flip).numpy(), expected)
    normalised = ops.convert_to_numpy(device_augment.augment_normalize(images, np.full((32, 32, 3), 10.0, np.float32),
                                                                       oy, ox, flip))
    np.testing.assert_allclose(normalised, (expected.astype(np.float32) - 10.0) / 255.0, rtol=1e-6, atol=1e-6)
    drawn = ops.convert_to_numpy(device_augment.random_crop_flip(images, seed=3))
    assert drawn.shape == images.shape and drawn.dtype == np.uint8


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_gpu_benchmark_smoke_throughput_and_torch(tmp_path):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", OUT=str(tmp_path))
    cmd = [sys.executable, SCRIPT, "--smoke", "--part=throughput,torch", "--precisions=fp32", "--batch_sizes=16",
           "--variants=fused,package", "--windows=1", "--window_steps=2", "--torch_setups=eager", "--jax_cache_dir=",
           "--block_modules=tensorflow,matplotlib"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    out = result.stdout
    # The table is printed last.
    tail = out.strip().splitlines()
    assert tail[-1].startswith("Checks: ") and "FAILED" not in tail[-1], tail[-1]
    assert any(line.startswith("| part | model | setup |") for line in tail[-12:])
    results = json.loads((tmp_path / "results_throughput_torch.json").read_text())
    assert results["env"]["keras_backend"] == "jax"
    names = {c["name"]: c["ok"] for c in results["checks"]}
    assert all(names.values()) and len(names) >= 3, names
    setups = {(r["part"], r["setup"]) for r in results["rows"]}
    assert ("throughput", "jax fused (k=1)") in setups
    assert ("throughput", "jax package train()") in setups
    assert ("torch", "torch eager") in setups
    for row in results["rows"]:
        assert row["images_per_s"] > 0 and row["batch"] == 16
    assert "tensorflow" not in " ".join(results["errors"] and [e["error"] for e in results["errors"]] or [])
    assert (tmp_path / "log_throughput_torch.txt").exists()
