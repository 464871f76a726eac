"""Helpers shared by the training and trainer tests (no tests here): tiny datasets and subprocess runs."""

import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": "",
             "OMP_NUM_THREADS": "2"}


def toy_arrays(n, size=8, classes=3, seed=0):
    """Images whose class is visible in their brightness: a few steps of SGD learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 70, (n, size, size, 3)) + (labels * 90)[:, None, None, None]
    return images.astype(np.uint8), labels.astype(np.int64)


def make_image_folder(root, train=240, test=60, size=8, classes=3):
    """Writes `root/{train,test}/<class>/*.png` and returns `root`."""
    from PIL import Image

    for split, n, seed in (("train", train, 0), ("test", test, 1)):
        images, labels = toy_arrays(n, size, classes, seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            d = os.path.join(root, split, f"class{label}")
            os.makedirs(d, exist_ok=True)
            Image.fromarray(image).save(os.path.join(d, f"{i:04d}.png"))
    return str(root)


def array_data(train=256, test=64, size=8, classes=3, validation=0):
    """A `training.ArrayData` of toy images (in-process runs)."""
    from keras_resnet import training
    from keras_resnet.data import DatasetInfo

    tr, te = toy_arrays(train, size, classes, 0), toy_arrays(test, size, classes, 1)
    val = None
    if validation:
        val = (tr[0][-validation:], tr[1][-validation:])
        tr = (tr[0][:-validation], tr[1][:-validation])
    info = DatasetInfo(name="toy", class_names=[f"class{i}" for i in range(classes)], image_shape=(size, size, 3),
                       num_examples={"train": len(tr[1]), "test": test}, mean=tr[0].mean(0).astype(np.float32))
    return training.ArrayData(info, tr, te, val)


def env(**extra):
    out = dict(os.environ)
    out.update(QUIET_ENV)
    out.update({k: str(v) for k, v in extra.items()})
    return out


def run_cli(args, module="trainers.cifar", timeout=300, **env_extra):
    """Runs `python -m <module> <args>` and returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env(**env_extra),
                          capture_output=True, text=True, timeout=timeout)


def read_json(path):
    with open(path) as f:
        return json.load(f)
