"""`import keras_resnet` turns TensorFlow's oneDNN kernels on for every x86-64 CPU unless the user chose.

TensorFlow enables oneDNN by default only on AVX-512 VNNI (and newer) x86 processors; on an AVX2 machine
its convolutions otherwise run on Eigen, 3.3x slower for a ResNet-20 training step (benchmarks/BENCHMARKS.md).
"""

import os
import platform
import subprocess
import sys

import pytest

from conftest import REPO

from keras_resnet import startup

pytest.importorskip("tensorflow")

PROBE = "import os, keras_resnet; print('TF_ENABLE_ONEDNN_OPTS=' + os.environ.get('TF_ENABLE_ONEDNN_OPTS', ''))"


def import_package(**env_extra):
    env = {k: v for k, v in os.environ.items() if k != startup.ONEDNN_ENV}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="0", CUDA_VISIBLE_DEVICES="", **env_extra)
    return subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="oneDNN default is x86-64 only")
def test_importing_the_package_turns_onednn_on_unless_the_user_set_it():
    out = import_package()
    assert out.returncode == 0, out.stderr[-2000:]
    assert "TF_ENABLE_ONEDNN_OPTS=1" in out.stdout
    assert "oneDNN custom operations are on" in out.stderr  # TensorFlow's own word that it took effect
    kept = import_package(TF_ENABLE_ONEDNN_OPTS="0")
    assert "TF_ENABLE_ONEDNN_OPTS=0" in kept.stdout and "oneDNN custom operations are on" not in kept.stderr


def test_prefer_onednn_leaves_other_processors_and_an_imported_tensorflow_alone(monkeypatch):
    monkeypatch.delenv(startup.ONEDNN_ENV, raising=False)
    assert startup.prefer_onednn(machine="aarch64") is False and startup.ONEDNN_ENV not in os.environ
    assert "tensorflow" in sys.modules  # imported by the package in this process: too late to choose
    assert startup.prefer_onednn(machine="x86_64") is False and startup.ONEDNN_ENV not in os.environ


def test_only_a_command_line_tool_freezes_its_start_up_objects(monkeypatch):
    """`python -m <tool>`'s start-up objects are frozen (`gc.freeze`: its collections and its exit then skip them);
    a program or notebook importing the package keeps Python's collector as it was."""
    import gc

    survivors = [[i] for i in range(1000)]  # objects this test made, not frozen yet
    before = gc.get_freeze_count()
    assert startup.freeze_if_command_line_tool() is False  # pytest's process: not one of the tools
    assert gc.get_freeze_count() <= before  # none frozen (frozen objects may still be freed meanwhile)
    monkeypatch.setattr(sys, "argv", ["-m"])  # as `python -m keras_resnet.<tool>` has it while importing
    assert startup.freeze_if_command_line_tool() is True
    assert gc.get_freeze_count() >= before + len(survivors)
