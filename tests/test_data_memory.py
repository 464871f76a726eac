"""Contracts of the TensorFlow-free data path: preprocessing, in-memory augmentation, folders, load_arrays."""

import io
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from PIL import Image

from keras_resnet.data import ArrayIterator, DatasetInfo, load_arrays, random_crop_flip
from keras_resnet.data.preprocessing import mean_image, normalize, stratified_split

from conftest import CIFAR, CIFAR_CLASSES, REPO, make_folder, make_tar, png_bytes

@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_RESNET_CACHE_DIR", str(tmp_path / "cache"))


def test_normalize_formula():
    img = np.array([[[0, 128, 255]]], np.uint8)
    mean = np.array([[[10.0, 20.0, 30.0]]], np.float32)
    np.testing.assert_allclose(normalize(img, mean), (img.astype(np.float32) - mean) / 255.0, rtol=1e-6)
    assert normalize(img, mean).dtype == np.float32


def test_stratified_split_is_deterministic_and_stratified():
    labels = np.repeat(np.arange(10), 5000)
    train, val = stratified_split(labels, 5000)
    assert len(train) == 45000 and len(val) == 5000
    assert np.bincount(labels[val]).tolist() == [500] * 10
    assert not set(train) & set(val)
    np.testing.assert_array_equal(val, stratified_split(labels, 5000)[1])
    with pytest.raises(ValueError, match="validation_size"):
        stratified_split(labels, 50000)


def test_random_crop_flip_offsets_flips_and_seed():
    # Image i has value 1 + column index in every row: offsets and flips are readable from the output.
    b, h, w = 512, 32, 32
    cols = np.tile(np.arange(1, w + 1, dtype=np.uint8)[None, :, None], (h, 1, 3))
    rows = np.tile(np.arange(1, h + 1, dtype=np.uint8)[:, None, None], (1, w, 3))
    images = np.stack([cols] * b)
    out, (oy, ox, flip) = random_crop_flip(images, np.random.default_rng(0), return_params=True)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert oy.min() >= 0 and oy.max() <= 8 and ox.min() >= 0 and ox.max() <= 8
    assert {0, 8} <= set(ox.tolist())  # the extreme offsets do occur
    assert 0.4 < flip.mean() < 0.6
    for k in range(16):
        expected = np.pad(images[k], ((4, 4), (4, 4), (0, 0)))[oy[k]:oy[k] + h, ox[k]:ox[k] + w]
        if flip[k]:
            expected = expected[:, ::-1]
        np.testing.assert_array_equal(out[k], expected)
    # Offsets inferred from the pattern alone lie within the padded bounds.
    row_out = random_crop_flip(np.stack([rows] * b), np.random.default_rng(1))
    first_row = np.array([np.flatnonzero(img[:, :, 0].max(axis=1) > 0)[0] for img in row_out])
    assert first_row.min() >= 0 and first_row.max() <= 4
    a = random_crop_flip(images, np.random.default_rng(7))
    np.testing.assert_array_equal(a, random_crop_flip(images, np.random.default_rng(7)))


def test_array_iterator_epochs_and_seed():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(300)
    mean = mean_image(images)
    it = ArrayIterator(images, labels, 128, training=True, mean=mean, seed=3)
    assert len(it) == 2
    e1, e2 = list(it), list(it)
    again = list(ArrayIterator(images, labels, 128, training=True, mean=mean, seed=3))
    for (x, y), (x2, y2) in zip(e1, again):
        assert x.dtype == np.float32 and y.dtype == np.int32 and x.shape == (128, 32, 32, 3)
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(e1[0][1], e2[0][1])  # reshuffled each epoch
    ev = list(ArrayIterator(images, labels, 128, training=False, mean=mean))
    assert [len(y) for _, y in ev] == [128, 128, 44]
    np.testing.assert_allclose(ev[0][0], normalize(images[:128], mean))
    with pytest.raises(ValueError, match="batch_size"):
        ArrayIterator(images, labels, 0, training=True)


def test_dataset_info_json_round_trip():
    info = DatasetInfo("x", ["a", "b"], (32, 32, 3), {"train": 3}, np.ones((32, 32, 3), np.float32), "cifar")
    back = DatasetInfo.from_json(info.to_json())
    assert back.class_names == ["a", "b"] and back.image_shape == (32, 32, 3) and back.num_classes == 2
    assert back.mean.dtype == np.float32 and np.array_equal(back.mean, info.mean)
    with pytest.raises(ValueError, match="preprocessing"):
        DatasetInfo("x", ["a"], (1, 1, 3), {}, None, "vgg")


@pytest.mark.parametrize("kind", ["dir", "tar", "tar.gz", "split-archives"])
def test_load_arrays_from_folders_and_archives(tmp_path, kind):
    folder = make_folder(tmp_path / "data")
    if kind == "dir":
        source = folder
    elif kind == "split-archives":
        source = tmp_path / "archives"
        source.mkdir()
        make_tar(folder / "train", source / "toy-train.tar.gz", prefix="train/")
        make_tar(folder / "test", source / "toy-test.tar.gz", prefix="test/")
    else:
        source = make_tar(folder, tmp_path / f"data.{kind}", prefix="toy/")
    x, y, info = load_arrays(source, "train")
    assert x.shape == (12, 8, 8, 3) and x.dtype == np.uint8
    assert y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert info.class_names == ["cat", "dog", "emu"] and info.preprocessing == "cifar"
    np.testing.assert_array_equal(x[:, 0, 0, 0], [10 * c + i for c in range(3) for i in range(4)])
    np.testing.assert_allclose(info.mean, x.astype(np.float64).mean(0), rtol=1e-6)
    xt, yt, info_t = load_arrays(source, "test")
    np.testing.assert_allclose(info_t.mean, info.mean)  # test uses the training mean
    xv, yv, info_v = load_arrays(source, "validation", validation_size=3)
    assert len(xv) == 3 and sorted(yv.tolist()) == [0, 1, 2]
    xr, yr, info_r = load_arrays(source, "train", validation_size=3)
    assert len(xr) == 9 and info_r.num_examples == {"train": 9}
    np.testing.assert_allclose(info_r.mean, xr.astype(np.float64).mean(0), rtol=1e-6)


def test_mean_is_cached_on_disk(tmp_path):
    folder = make_folder(tmp_path / "data")
    _, _, info = load_arrays(folder, "test")
    cached = list((tmp_path / "cache" / "means").glob("*.npy"))
    assert len(cached) == 1
    np.testing.assert_allclose(np.load(cached[0]), info.mean)
    assert not list(folder.rglob("*.npy"))  # nothing written next to the data


def test_bad_inputs_name_path_and_expectation(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_arrays(tmp_path / "nope", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="Split 'train' not found.*available splits"):
        load_arrays(tmp_path / "empty", "train")
    (tmp_path / "empty" / "train").mkdir()
    with pytest.raises(ValueError, match="no class folders"):
        load_arrays(tmp_path / "empty", "train")
    folder = make_folder(tmp_path / "d", splits=("train",))
    (folder / "train" / "zebra").mkdir()
    (folder / "train" / "zebra" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="no images.*zebra"):
        load_arrays(folder, "train")
    with pytest.raises(ValueError, match="'test' not found"):
        load_arrays(folder, "test")
    with pytest.raises(ValueError, match="validation_size"):
        load_arrays(make_folder(tmp_path / "ok", splits=("train",)), "validation")
    bogus = tmp_path / "bogus.tar"
    with tarfile.open(bogus, "w") as tar:
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ValueError, match="not an image folder.*readme.txt"):
        load_arrays(bogus, "train")
    with pytest.raises(ValueError, match="validation_size"):
        load_arrays(folder, "train", validation_size=-1)


def test_truncated_jpeg_names_file_or_is_skipped(tmp_path):
    folder = make_folder(tmp_path / "d", splits=("train",), fmt="png")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, "JPEG")
    bad = folder / "train" / "dog" / "broken.jpg"
    bad.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ValueError, match="broken.jpg"):
        load_arrays(folder, "train")
    x, y, info = load_arrays(folder, "train", skip_corrupt=True)
    assert len(x) == 12 and info.num_skipped == {"train": 1}


def test_mixed_sizes_need_image_size(tmp_path):
    folder = make_folder(tmp_path / "d", splits=("train",))
    (folder / "train" / "cat" / "big.png").write_bytes(png_bytes(np.zeros((10, 12, 3), np.uint8)))
    with pytest.raises(ValueError, match="big.png.*image_size"):
        load_arrays(folder, "train")
    x, _, _ = load_arrays(folder, "train", image_size=(8, 8))
    assert x.shape == (13, 8, 8, 3)


def test_works_without_tensorflow_on_jax(tmp_path):
    folder = make_folder(tmp_path / "d")
    archive = make_tar(folder, tmp_path / "d.tar.gz")
    code = f"""
import sys
sys.modules['tensorflow'] = None  # any `import tensorflow` now fails
import keras
from keras_resnet.data import ArrayIterator, load_arrays
from keras_resnet.data import preprocessing, in_memory
x, y, info = load_arrays({str(archive)!r}, 'train')
batches = list(ArrayIterator(x, y, 4, training=True, mean=info.mean, seed=0))
out = preprocessing.normalize_ops(x[:2], info.mean)
assert keras.backend.backend() == 'jax', keras.backend.backend()
assert not any(m.startswith('tensorflow') and sys.modules[m] is not None for m in sys.modules)
print(len(batches), batches[0][0].shape, tuple(out.shape))
"""
    env = {**os.environ, "KERAS_BACKEND": "jax", "KERAS_RESNET_CACHE_DIR": str(tmp_path / "c")}
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "3 (4, 8, 8, 3) (2, 8, 8, 3)" in res.stdout


@pytest.fixture(scope="module")
def cifar_arrays():
    if not (CIFAR / "cifar10-train.tar.gz").is_file():
        pytest.skip(f"real CIFAR-10 archives not found at {CIFAR} (../shared absent)")
    return load_arrays(CIFAR, "train"), load_arrays(CIFAR, "test")


def test_real_cifar10_archives(cifar_arrays):
    (x, y, info), (xt, yt, info_t) = cifar_arrays
    assert x.shape == (50000, 32, 32, 3) and x.dtype == np.uint8 and xt.shape == (10000, 32, 32, 3)
    assert np.bincount(y).tolist() == [5000] * 10 and np.bincount(yt).tolist() == [1000] * 10
    assert info.class_names == CIFAR_CLASSES == info_t.class_names
    assert info.num_examples == {"train": 50000} and info_t.num_examples == {"test": 10000}
    expected = x.reshape(50000, -1).mean(axis=0, dtype=np.float64).reshape(32, 32, 3)
    np.testing.assert_allclose(info.mean, expected, rtol=1e-5)  # the per-pixel training mean
    np.testing.assert_allclose(info_t.mean, info.mean)  # the test split uses the training mean
    assert 100 < info.mean.mean() < 140
