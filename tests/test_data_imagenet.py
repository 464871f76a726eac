"""Contracts of ImageNet-style data (issue 14): split discovery and its errors, the streamed decode equal to
Pillow's for real photo oddities, `crop_size` geometry, `memory_input_reason`, Model Garden TFRecord shards
(labels from 1) and a TFDS name through `load`."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import write_tfds_metadata

tf = pytest.importorskip("tensorflow")

from keras_resnet.data import (  # noqa: E402
    available_splits,
    check_splits,
    decode_tf,
    default_eval_split,
    imagenet_eval_geometry,
    imagenet_eval_size,
    imagenet_scale_range,
    load,
    load_arrays,
    memory_input_reason,
)
from keras_resnet.data.convert import convert  # noqa: E402
from keras_resnet.data.corrupt import decode_named  # noqa: E402
from keras_resnet.data.folder import decode_images  # noqa: E402
from keras_resnet.data.pillow_rgb import rgb_array  # noqa: E402
from keras_resnet.data.reader import FolderSource  # noqa: E402
from keras_resnet.data.tfrecord import shard_name  # noqa: E402

CLASSES = ("n01", "n02", "n03", "n04", "n05", "n06")
CROP = 64  # evaluation resizes the shorter side to round(256 * 64 / 224) = 73
SPECIAL = ("gray.JPEG", "cmyk.jpg", "rotated.jpg", "png.JPEG", "small.jpg")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_RESNET_CACHE_DIR", str(tmp_path / "cache"))


def photo(h, w, mode="RGB", seed=0):
    """Smooth random content (compresses like a photo)."""
    channels = {"RGB": 3, "L": 1, "CMYK": 4, "RGBA": 4}[mode]
    small = np.random.default_rng(seed).integers(0, 255, (max(2, h // 24), max(2, w // 24), channels), np.uint8)
    return Image.fromarray(small[..., 0] if channels == 1 else small, mode).resize((w, h), Image.BILINEAR)


def encoded(image, fmt, **kwargs):
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def rotated_jpeg(h, w):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    return encoded(photo(h, w, seed=7), "JPEG", quality=90, exif=exif.tobytes())


def special_files():
    return {
        "gray.JPEG": encoded(photo(300, 200, "L", 1), "JPEG"),
        "cmyk.jpg": encoded(photo(240, 320, "CMYK", 2), "JPEG"),
        "rotated.jpg": rotated_jpeg(375, 500),
        "png.JPEG": encoded(photo(90, 120, "RGBA", 3), "PNG"),
        "small.jpg": encoded(photo(40, 52, seed=4), "JPEG"),  # smaller than the 64 crop and the 73 resize
    }


def make_imagenet_folder(root, val_name="val", train=3, val=2):
    """train/ and val/ with 6 classes, JPEG sizes from 40 to 900 pixels and the special files in train/."""
    root = Path(root)
    sizes = [(375, 500), (500, 333), (600, 900), (120, 80), (256, 256), (333, 500)]
    specials = list(special_files().items())
    for split, count in (("train", train), (val_name, val)):
        for c, cls in enumerate(CLASSES):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(count):
                h, w = sizes[(c + i) % len(sizes)]
                (d / f"{split}_{i}.jpg").write_bytes(encoded(photo(h, w, seed=c * 10 + i), "JPEG", quality=90))
            if split == "train" and c < len(specials):
                (d / specials[c][0]).write_bytes(specials[c][1])
    return root


@pytest.fixture(scope="module")
def imagenet_folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("inet") / "photos")


def pillow_rgb(path):
    """The package's Pillow decode: `convert("RGB")`, CMYK JPEGs as TensorFlow converts them."""
    with Image.open(path) as im:
        return rgb_array(im)


def streamed_decodes(source, split, skip_corrupt):
    src = FolderSource(source, split)
    ds = src.elements(split, encoded=True, named=True)
    names = [n.numpy().decode() for _, _, n in ds]
    return names, [x.numpy() for x, _ in decode_named(ds, skip_corrupt)]


@pytest.mark.parametrize("skip_corrupt", [False, True])
def test_streamed_decode_equals_pillow_for_every_file(imagenet_folder, skip_corrupt):
    names, images = streamed_decodes(imagenet_folder, "train", skip_corrupt)
    assert {Path(n).name for n in names} >= set(SPECIAL)
    for name, image in zip(names, images):
        reference = pillow_rgb(name)
        assert image.shape == reference.shape and image.shape[2] == 3, name
        np.testing.assert_array_equal(image, reference, err_msg=name)
    with Image.open(imagenet_folder / "train" / "n03" / "rotated.jpg") as im:
        assert im.getexif()[0x0112] == 6 and im.size == (500, 375)  # EXIF orientation ignored, as Pillow does
    with Image.open(imagenet_folder / "train" / "n02" / "cmyk.jpg") as im:
        assert im.mode == "CMYK"


def test_decode_tf_equals_pillow_for_rarer_formats():
    arrays = np.random.default_rng(0).integers(0, 65535, (20, 30)).astype(np.uint16)
    files = {
        "png16": encoded(Image.fromarray(arrays), "PNG"),
        "png1": encoded(photo(30, 40, "L").convert("1"), "PNG"),
        "palette": encoded(photo(30, 40).convert("P"), "PNG"),
        "gif": encoded(photo(30, 40).convert("P"), "GIF"),
        "bmp": encoded(photo(30, 40), "BMP"),
        "progressive": encoded(photo(300, 200), "JPEG", progressive=True),
        **special_files(),
    }
    for name, data in files.items():
        with Image.open(io.BytesIO(data)) as im:
            reference = rgb_array(im)
        np.testing.assert_array_equal(decode_tf(tf.constant(data)).numpy(), reference, err_msg=name)
        graph = tf.data.Dataset.from_tensors(data).map(decode_tf).get_single_element().numpy()
        np.testing.assert_array_equal(graph, reference, err_msg=f"{name} in tf.data")
    for name in ["palette", "progressive", *special_files()]:  # JPEG and 8-bit PNG: the export's decode too
        python_free = decode_tf(tf.constant(files[name]), pillow_fallback=False).numpy()
        np.testing.assert_array_equal(python_free, decode_tf(tf.constant(files[name])).numpy(), err_msg=name)


def without_adobe_marker(jpeg: bytes) -> bytes:
    start = jpeg.index(b"\xff\xee")  # APP14, "Adobe"
    return jpeg[:start] + jpeg[start + 2 + int.from_bytes(jpeg[start + 2:start + 4], "big"):]


@pytest.mark.parametrize("adobe", [True, False])
def test_cmyk_jpeg_is_converted_as_tensorflow_converts_it_everywhere(adobe):
    """The serving graph has only TensorFlow's CMYK conversion (integer division; Pillow rounds): training's
    Pillow decode and the streamed decode use it too, so all three give the same pixels, one level at most
    from Pillow's own `convert("RGB")`."""
    data = encoded(photo(60, 90, "CMYK", 2), "JPEG", quality=90)
    data = data if adobe else without_adobe_marker(data)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "CMYK" and ("adobe" in im.info) == adobe
        ours, pillows = rgb_array(im), np.asarray(im.convert("RGB"))
    serving = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    np.testing.assert_array_equal(ours, serving)
    np.testing.assert_array_equal(decode_tf(tf.constant(data)).numpy(), serving)
    np.testing.assert_array_equal(decode_tf(tf.constant(data), pillow_fallback=False).numpy(), serving)
    assert np.array_equal(decode_images([data], ["cmyk.jpg"])[0][0], serving)
    if adobe:  # Pillow's own convert assumes the Adobe convention, so without the marker it inverts the colours
        difference = np.abs(ours.astype(int) - pillows.astype(int))
        assert difference.max() == 1 and 0 < np.mean(difference > 0) < 0.75


def test_eval_pipeline_is_pillow_decode_then_geometry(imagenet_folder):
    zero = np.zeros((1, 1, 3), np.float32)
    ds, info = load(imagenet_folder, "validation", 5, crop_size=CROP, mean=zero)
    assert info.image_shape == (CROP, CROP, 3) and info.preprocessing == "imagenet"
    assert info.num_examples == {"validation": 12} and info.class_names == list(CLASSES)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    xs, ys = np.concatenate(xs), np.concatenate(ys)
    files = sorted((imagenet_folder / "val").glob("*/*.jpg"))
    assert xs.shape == (12, CROP, CROP, 3)
    np.testing.assert_array_equal(ys, [CLASSES.index(f.parent.name) for f in files])
    for x, f in zip(xs, files):
        expected = imagenet_eval_geometry(tf.constant(pillow_rgb(f)), imagenet_eval_size(CROP), CROP).numpy() / 255
        np.testing.assert_allclose(x, expected, atol=1e-6, err_msg=str(f))
    ten, _ = load(imagenet_folder, "validation", 4, crop_size=CROP, mean=zero, ten_crop=True)
    first = next(iter(ten))[0].numpy()
    assert first.shape == (4, 10, CROP, CROP, 3)
    np.testing.assert_allclose(first[:, 4], xs[:4], atol=1e-6)  # the fifth crop is the centre crop


def test_train_pipeline_streams_any_size_at_crop_size(imagenet_folder):
    assert imagenet_scale_range(CROP) == (73, 137) and imagenet_eval_size(128) == 146
    ds, info = load(imagenet_folder, "train", 6, crop_size=CROP, seed=3, mean_samples=8)
    assert info.image_shape == (CROP, CROP, 3) and info.mean.shape == (1, 1, 3)
    first = [(x.numpy(), y.numpy()) for x, y in ds]
    assert len(first) == 23 // 6 and first[0][0].shape == (6, CROP, CROP, 3)
    again, _ = load(imagenet_folder, "train", 6, crop_size=CROP, seed=3, mean_samples=8)
    for (a, la), (b, lb) in zip(first, [(x.numpy(), y.numpy()) for x, y in again]):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    with pytest.raises(ValueError, match="`crop_size` must be a positive int.*received 0"):
        load(imagenet_folder, "train", 6, crop_size=0)


def test_small_first_image_with_mixed_sizes_is_streamed(tmp_path):
    root = tmp_path / "mixed"
    for cls, (h, w) in (("a", (40, 50)), ("b", (300, 200))):
        (root / "train" / cls).mkdir(parents=True)
        (root / "train" / cls / "0.jpg").write_bytes(encoded(photo(h, w), "JPEG"))
    ds, info = load(root, "train", 2, crop_size=CROP, seed=0)
    assert info.preprocessing == "imagenet" and next(iter(ds))[0].shape == (2, CROP, CROP, 3)


def write_tar(folder, path, members=None):
    with tarfile.open(path, "w:gz") as tar:
        for f in sorted(Path(folder).rglob("*")):
            rel = f.relative_to(folder)
            if members is None or rel.parts[0] in members:
                tar.add(f, arcname=f"data/{rel}", recursive=False)
    return path


def small_folder(root, splits=("train", "val"), classes=CLASSES[:3], per_class=2, size=16):
    for split in splits:
        for c, cls in enumerate(classes):
            (Path(root) / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = np.full((size, size, 3), 40 * c + i, np.uint8)
                Image.fromarray(img).save(Path(root) / split / cls / f"{i}.png")
    return Path(root)


def test_split_discovery_folders_archives_and_shards(tmp_path):
    val = small_folder(tmp_path / "val")
    assert available_splits(val) == ["train", "validation"] and default_eval_split(val) == "validation"
    full = small_folder(tmp_path / "full", splits=("test", "validation", "train"))
    assert available_splits(full) == ["train", "validation", "test"]
    cifar_like = small_folder(tmp_path / "cifar", splits=("train", "test"))
    assert available_splits(cifar_like) == ["train", "test"] and default_eval_split(cifar_like) == "test"
    archive = write_tar(val, tmp_path / "photos.tar.gz")
    assert available_splits(archive) == ["train", "validation"] and default_eval_split(archive) == "validation"
    split_archives = tmp_path / "split_archives"
    split_archives.mkdir()
    for split in ("train", "val"):
        write_tar(val, split_archives / f"photos-{split}.tar.gz", members=(split,))
    assert available_splits(split_archives) == ["train", "validation"]
    shards = tmp_path / "shards"
    shards.mkdir()
    for name in (shard_name("train", 0, 2), shard_name("train", 1, 2), shard_name("val", 0, 1), "README"):
        (shards / name).write_bytes(b"")
    assert available_splits(shards) == ["train", "validation"]
    assert check_splits(shards, ["train", "validation"]) == {
        "train": f"{shards}/train-*", "validation": f"{shards}/val-*"}


@pytest.mark.parametrize("layout", ["folder", "archive", "split_archives"])
def test_validation_split_read_from_val_folder(tmp_path, layout):
    source = small_folder(tmp_path / "d")
    if layout == "archive":
        source = write_tar(source, tmp_path / "d.tar.gz")
    elif layout == "split_archives":
        root = tmp_path / "archives"
        root.mkdir()
        for split in ("train", "val"):
            write_tar(tmp_path / "d", root / f"d-{split}.tar.gz", members=(split,))
        source = root
    x, y, info = load_arrays(source, "validation")
    assert x.shape == (6, 16, 16, 3) and info.num_examples == {"validation": 6}
    np.testing.assert_array_equal(y, [0, 0, 1, 1, 2, 2])
    ds, dinfo = load(source, "validation", 4)
    assert sum(len(b) for _, b in ds) == 6 and dinfo.num_examples == {"validation": 6}
    assert set(check_splits(source, ["train", "validation"])) == {"train", "validation"}


def test_missing_split_names_source_split_and_available(tmp_path):
    source = small_folder(tmp_path / "d")
    expected = rf"Split 'test' not found in '{source}'.*available splits: \['train', 'validation'\]"
    for call in (lambda: load(source, "test", 4), lambda: load_arrays(source, "test"),
                 lambda: check_splits(source, ["train", "test"])):
        with pytest.raises(ValueError, match=expected):
            call()
    archive = write_tar(source, tmp_path / "d.tar.gz")
    with pytest.raises(ValueError, match=rf"Split 'test' not found in '{archive}'.*\['train', 'validation'\]"):
        load_arrays(archive, "test")
    train_only = small_folder(tmp_path / "t", splits=("train",))
    with pytest.raises(ValueError, match=r"Split 'validation' not found.*\['train'\].*validation_size"):
        load(train_only, "validation", 4)
    with pytest.raises(ValueError, match=r"neither a validation split.*nor a 'test' split.*\['train'\]"):
        default_eval_split(train_only)
    with pytest.raises(ValueError, match="`split` must be one of"):
        check_splits(source, ["train", ""])


def test_check_splits_empty_class_and_different_classes(tmp_path):
    source = small_folder(tmp_path / "d")
    assert check_splits(source, ["train", "validation"]) == {"train": str(source / "train"),
                                                             "validation": str(source / "val")}
    (source / "val" / "n09").mkdir()
    (source / "val" / "n09" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=rf"Class folder\(s\) with no images in .*\['{source / 'val' / 'n09'}'\]"):
        check_splits(source, ["train", "validation"])
    (source / "val" / "n09" / "0.png").write_bytes((source / "train" / "n01" / "0.png").read_bytes())
    for f in (source / "val" / "n02").iterdir():
        f.unlink()
    (source / "val" / "n02").rmdir()
    with pytest.raises(ValueError, match=(
            rf"Class folders differ between split 'train' \({source / 'train'}, 3 classes\) and split "
            rf"'validation' \({source / 'val'}, 3 classes\): only in 'train': \['n02'\]; only in 'validation': "
            rf"\['n09'\]")):
        check_splits(source, ["train", "validation"])
    archive = write_tar(source, tmp_path / "d.tar.gz")
    with pytest.raises(ValueError, match=r"only in 'train': \['n02'\]; only in 'validation': \['n09'\]"):
        check_splits(archive, ["validation", "train"])


def test_memory_input_reason_both_ways(imagenet_folder, tmp_path):
    ok, reason = memory_input_reason(imagenet_folder, "train")
    assert not ok and reason.startswith("streaming: ") and "image sizes in train (e.g. " in reason
    count = len({Image.open(f).size for f in (imagenet_folder / "train").glob("*/*")})
    assert reason.startswith(f"streaming: {count} image sizes in train")
    small = small_folder(tmp_path / "s")
    assert memory_input_reason(small, ["train", "validation"]) == (
        True, "in memory: 12 images of 16x16 in train and validation (9.0 KiB decoded uint8, limit 2.0 GiB)")
    ok, reason = memory_input_reason(small, "train", max_bytes=1000)
    assert not ok and reason == ("streaming: 6 images in train would take about 4.5 KiB decoded at 16x16 (the "
                                 "first image's size), over the 1000 B in-memory limit")
    ok, reason = memory_input_reason(write_tar(small, tmp_path / "s.tar.gz"), "validation")
    assert ok and reason.startswith("in memory: 6 images of 16x16 in validation")
    shards = tmp_path / "shards"
    convert(small, shards, shards=1, progress=False)
    assert json.loads((shards / "dataset.json").read_text())["same_shape"] is True
    assert memory_input_reason(shards, "train")[0]
    mixed = tmp_path / "mixed_shards"
    convert(imagenet_folder, mixed, shards=1, splits=["val"], progress=False)
    assert memory_input_reason(mixed, "validation") == (
        False, f"streaming: the TFRecord shards in {str(mixed)!r} hold images of several sizes")


def model_garden_example(data, label):
    feature = {  # the TF Model Garden / TFDS ImageNet features (labels 1..N, 0 is "background")
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "image/class/synset": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"n0%d" % label])),
        "image/height": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_model_garden_shards_with_label_offset(tmp_path):
    shards = tmp_path / "imagenet-tfrecord"
    shards.mkdir()
    labels = {}
    for split, total in (("train", 2), ("validation", 1)):
        labels[split] = []
        for s in range(total):
            with tf.io.TFRecordWriter(str(shards / shard_name(split, s, total))) as writer:
                for i in range(6):
                    label = 1 + (i + s) % 6
                    labels[split].append(label)
                    writer.write(model_garden_example(encoded(photo(90 + 10 * i, 120), "JPEG"), label))
    assert available_splits(shards) == ["train", "validation"] and default_eval_split(shards) == "validation"
    ds, info = load(shards, "validation", 3, label_offset=1, crop_size=CROP, mean_samples=4)
    assert info.image_shape == (CROP, CROP, 3) and info.class_names == [str(i) for i in range(6)]
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in ds]), np.array(labels["validation"]) - 1)
    _, y, _ = load_arrays(shards, "validation", label_offset=1, image_size=(32, 32))
    np.testing.assert_array_equal(y, np.array(labels["validation"]) - 1)
    ds, info = load(shards, "validation", 3, crop_size=CROP, mean_samples=4)
    np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in ds]), labels["validation"])
    assert len(info.class_names) == 7  # without the offset label 0 is a class of its own
    with pytest.raises(ValueError, match=r"split 'test'.*splits found: \['train', 'validation'\]"):
        load(shards, "test", 3)


def test_tfds_name_through_load_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    write_tfds_metadata(tmp_path / "tfds", "imagenette", {"train": 8, "validation": 8})
    with tfds.testing.mock_data(num_examples=8, policy=tfds.testing.MockPolicy.USE_FILES,
                                data_dir=str(tmp_path / "tfds")):
        kwargs = {"data_dir": str(tmp_path / "tfds")}
        assert available_splits("imagenette", **kwargs) == ["train", "validation"]
        assert default_eval_split("imagenette", **kwargs) == "validation"
        assert check_splits("imagenette", ["train", "validation"], **kwargs) == {
            "train": "imagenette:train", "validation": "imagenette:validation"}
        with pytest.raises(ValueError, match=r"Split 'test' not found in 'imagenette' \(a TFDS dataset\); "
                                             r"available splits: \['train', 'validation'\]"):
            check_splits("imagenette", ["test"], **kwargs)
        ds, info = load("imagenette", "validation", 4, crop_size=CROP, mean_samples=4, **kwargs)
        x, y = next(iter(ds))
        assert x.shape == (4, CROP, CROP, 3) and info.num_classes == 10 and info.preprocessing == "imagenet"
        train, _ = load("imagenette", "train", 4, crop_size=CROP, seed=0, mean_samples=4, **kwargs)
        assert next(iter(train))[0].shape == (4, CROP, CROP, 3)
        ok, reason = memory_input_reason("imagenette", "train", **kwargs)
        assert not ok and reason == "streaming: TFDS 'imagenette' has images of no fixed size (shape (None, None, 3))"
    with tfds.testing.mock_data(num_examples=4):  # no metadata: TFDS accepts any split, probed by name
        assert available_splits("imagenet2012") == ["train", "validation", "test"]
        assert default_eval_split("imagenet2012") == "validation"


def test_convert_never_publishes_a_partial_shard_or_metadata(tmp_path, monkeypatch):
    source, out = small_folder(tmp_path / "s"), tmp_path / "shards"
    monkeypatch.setenv("KERAS_RESNET_FAULT", "convert.shard:enospc")
    with pytest.raises(OSError):
        convert(source, out, shards=2, progress=False)
    assert not list(out.glob("train-*")) and [p.name for p in out.glob(".tmp-*")] == [".tmp-train-00000-of-00002"]
    monkeypatch.setenv("KERAS_RESNET_FAULT", "convert.metadata:enospc")
    with pytest.raises(OSError):
        convert(source, out, shards=2, progress=False)
    assert len(list(out.glob("train-*"))) == 2 and len(list(out.glob("validation-*"))) == 2
    assert not (out / "dataset.json").exists()
