"""`benchmarks/torch_cifar_recipe.py` (issue 21): the PyTorch run of the paper's recipe that the package's
ResNet-20 result is compared with. Its recipe must be the package's (split, schedule, augmentation), and a
tiny run must write its log and summary."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, env

pytest.importorskip("torch", reason="PyTorch not installed (pip install 'keras-resnet[torch]')")
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import torch_cifar_recipe as recipe_script  # noqa: E402

SCRIPT = os.path.join(REPO, "benchmarks", "torch_cifar_recipe.py")


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    """`train/` (3 classes x 8 images) and `test/` (3 x 2) folders of 32x32 JPEGs with class-coloured pixels."""
    from PIL import Image

    root = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 2)):
        for c, name in enumerate(("cat", "dog", "emu")):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (32, 32, 3)) + np.array([80 * c, 40, 200 - 80 * c])
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(root / split / name / f"{i:04d}.jpg")
    return root


def test_holds_out_the_packages_images_and_reads_them_as_the_package_does(jpeg_folder):
    from keras_resnet.data import load_arrays
    from keras_resnet.data.preprocessing import stratified_split

    images, labels, classes = recipe_script.read_split(str(jpeg_folder), "train")
    assert classes == ["cat", "dog", "emu"] and images.shape == (24, 32, 32, 3) and images.dtype == np.uint8
    package_images, package_labels, _ = load_arrays(str(jpeg_folder), "train", validation_size=6)
    train_idx, _ = recipe_script.package_split_rule()(labels, 6)
    np.testing.assert_array_equal(images[train_idx], package_images)
    np.testing.assert_array_equal(labels[train_idx], package_labels)
    for a, b in zip(recipe_script.package_split_rule()(labels, 6), stratified_split(labels, 6)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("steps", [6400, 16000, 64000])
def test_learning_rate_drops_where_the_package_compresses_the_papers_boundaries(steps):
    from keras_resnet.training.config import TrainConfig
    from keras_resnet.training.run_recipe import resolve_recipe

    boundaries = resolve_recipe(TrainConfig(model="resnet20", model_dir="x", train_steps=steps), 45000).boundaries
    args = recipe_script.parse(["--data", REPO, "--output", "x", "--train_steps", str(steps)])
    lrs = [recipe_script.learning_rate(args, i) for i in (0, boundaries[0] - 1, boundaries[0], boundaries[1] - 1,
                                                          boundaries[1], steps - 1)]
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-12)


def test_crop_flip_takes_a_window_of_the_zero_padded_image_or_its_mirror():
    rng = np.random.default_rng(1)
    images = rng.integers(1, 256, (64, 8, 8, 3)).astype(np.uint8)
    out = recipe_script.crop_flip(images, rng, pad=2)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
    kinds = set()
    for image, crop in zip(padded, out):
        windows = {(dy, dx, flip) for dy in range(5) for dx in range(5) for flip in (False, True)
                   if np.array_equal(crop, image[dy:dy + 8, dx:dx + 8][:, ::-1] if flip else image[dy:dy + 8, dx:dx + 8])}
        assert len(windows) == 1
        kinds |= windows
    assert {flip for _, _, flip in kinds} == {False, True} and len({(dy, dx) for dy, dx, _ in kinds}) > 10


def test_a_short_run_writes_its_log_and_summary(jpeg_folder, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, SCRIPT, f"--data={jpeg_folder}", f"--output={out}", "--train_steps=5",
                             "--batch_size=8", "--validation_split=6", "--threads=1", "--eval_batch_size=4"],
                            env=env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["epoch"]), int(r["iteration"])) for r in rows] == [(0, 2), (1, 4), (2, 5)]  # 18 // 8 = 2 per epoch
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train_images"] == 18 and summary["epochs"] == 3 and summary["boundaries"] == [2, 4]
    assert summary["final_test_error"] == float(rows[-1]["test_error"])
    assert 0.0 <= summary["final_val_error"] <= 1.0 and summary["images_per_second"] > 0
    assert sorted(p.name for p in out.iterdir()) == ["log.csv", "summary.json"]


@pytest.mark.parametrize("argv, message", [
    (["--train_steps=0"], "--train_steps=0: must be a positive integer"),
    (["--depth=21"], "--depth=21: a CIFAR ResNet has depth 6n + 2"),
])
def test_bad_flags_exit_2_with_one_line_naming_the_flag(jpeg_folder, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        recipe_script.parse([f"--data={jpeg_folder}", f"--output={tmp_path}", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_folder_without_the_split_is_named(tmp_path):
    with pytest.raises(SystemExit, match=r"--data=.*: no train/<class>/<image> files"):
        recipe_script.read_split(str(tmp_path), "train")
