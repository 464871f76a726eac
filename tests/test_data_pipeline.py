"""Contracts of the tf.data pipelines: folders/archives, TFRecord via the converter CLI, mocked TFDS,
the paper's augmentation, determinism, sharding and bad input."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from keras_resnet.data import DatasetInfo, load, load_arrays  # noqa: E402
from keras_resnet.data.augment import cifar_crop_flip, imagenet_eval_geometry, ten_crop  # noqa: E402
from keras_resnet.data.convert import convert  # noqa: E402
from keras_resnet.data.tfrecord import make_example  # noqa: E402

from conftest import CIFAR, CIFAR_CLASSES, make_folder, make_tar, png_bytes, run_cli  # noqa: E402


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_RESNET_CACHE_DIR", str(tmp_path / "cache"))


def jpeg_bytes(h, w, seed=0):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def make_jpeg_folder(root, size=(60, 80), per_class=3, classes=("a", "b"), splits=("train", "test")):
    for split in splits:
        for c in classes:
            d = Path(root) / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                (d / f"{i}.jpg").write_bytes(jpeg_bytes(*size, seed=i))
    return Path(root)


def as_numpy(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_cifar_crop_flip_tf_offsets_and_flips():
    b, h, w = 1024, 32, 32
    cols = np.tile(np.arange(1, w + 1, dtype=np.int32)[None, :, None], (h, 1, 1))
    out = cifar_crop_flip(tf.constant(np.stack([cols] * b)), tf.constant([3, 4], tf.int64)).numpy()[..., 0]
    assert out.shape == (b, h, w)
    offsets, flipped = [], []
    for r in out[:, h // 2]:  # a middle row: never in the vertical padding
        j = np.flatnonzero(r > 0)[:2]  # padded columns hold 0, image column c holds c + 1
        flip = r[j[1]] < r[j[0]]
        flipped.append(flip)
        # output column j reads padded column ox + j (or ox + w - 1 - j when flipped) = image column + 4
        offsets.append(r[j[0]] - 1 + 4 - ((w - 1 - j[0]) if flip else j[0]))
    assert 0.4 < np.mean(flipped) < 0.6
    assert min(offsets) == 0 and max(offsets) == 8  # within the padded bounds, extremes reached
    same = cifar_crop_flip(tf.constant(np.stack([cols] * b)), tf.constant([3, 4], tf.int64)).numpy()[..., 0]
    np.testing.assert_array_equal(out, same)


def test_imagenet_geometry_shapes():
    img = tf.zeros([375, 500, 3], tf.uint8)
    assert imagenet_eval_geometry(img).shape == (224, 224, 3)
    assert ten_crop(img).shape == (10, 224, 224, 3)
    pattern = tf.constant(np.tile(np.arange(500, dtype=np.float32)[None, :, None], (375, 1, 3)))
    crops = ten_crop(pattern).numpy()
    np.testing.assert_allclose(crops[5], crops[0][:, ::-1])  # second half are the flips


def test_folder_pipeline_cifar_style_deterministic(tmp_path):
    folder = make_folder(tmp_path / "d", per_class=20, size=32)
    ds, info = load(folder, "train", 16, seed=1)
    assert info.preprocessing == "cifar" and info.image_shape == (32, 32, 3)
    assert info.num_examples == {"train": 60}
    first = as_numpy(ds)
    assert len(first) == 3  # drop_remainder when training: 60 // 16
    x, y = first[0]
    assert x.shape == (16, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    second_epoch = as_numpy(ds)
    assert not np.array_equal(first[0][1], second_epoch[0][1])
    ds2, _ = load(folder, "train", 16, seed=1)
    for (a, la), (b, lb) in zip(first, as_numpy(ds2)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    ev, _ = load(folder, "test", 7)
    xs = np.concatenate([x for x, _ in as_numpy(ev)])
    assert len(xs) == 60
    raw = np.asarray(Image.open(folder / "test" / "cat" / "0.png"), np.float32)
    np.testing.assert_allclose(xs[0], (raw - info.mean) / 255.0, atol=1e-6)


def test_sharding_with_input_context(tmp_path):
    folder = make_folder(tmp_path / "d", per_class=8, size=32)
    seen = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid, num_replicas_in_sync=2)
        ds, _ = load(folder, "test", 8, input_context=ctx)
        batches = as_numpy(ds)
        assert batches[0][0].shape[0] == 4  # per-replica batch size
        seen.append(np.concatenate([x[:, 0, 0, 0] for x, _ in batches]))
    assert len(seen[0]) == len(seen[1]) == 12
    assert not set(np.round(seen[0], 5)) & set(np.round(seen[1], 5))  # disjoint shards


def test_convert_cli_tfrecord_round_trip_imagenet_style(tmp_path):
    folder = make_jpeg_folder(tmp_path / "imgs")
    archive = make_tar(folder, tmp_path / "imgs.tar.gz")
    out = tmp_path / "shards"
    res = run_cli([f"--input={archive}", f"--output={out}", "--shards=2"], module="keras_resnet.data.convert",
                  timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    names = sorted(p.name for p in out.iterdir())
    assert names == ["dataset.json", "test-00000-of-00002", "test-00001-of-00002",
                     "train-00000-of-00002", "train-00001-of-00002"]
    assert "img" in res.stderr  # tqdm progress bar
    ds, info = load(out, "test", 4, training=False)
    assert info.preprocessing == "imagenet" and info.class_names == ["a", "b"]
    assert info.mean.shape == (1, 1, 3) and info.num_examples == {"test": 6}
    batches = as_numpy(ds)
    labels = np.concatenate([y for _, y in batches])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert batches[0][0].shape == (4, 224, 224, 3)
    tr, _ = load(out, "train", 3, seed=0, pca_lighting=True)
    x, y = next(iter(tr))
    assert x.shape == (3, 224, 224, 3) and x.dtype == tf.float32
    tc, _ = load(out, "test", 2, training=False, ten_crop=True)
    assert next(iter(tc))[0].shape == (2, 10, 224, 224, 3)
    val, vinfo = load(out, "validation", 2, validation_size=2)
    assert vinfo.num_examples == {"validation": 2}
    assert sorted(np.concatenate([y for _, y in as_numpy(val)]).tolist()) == [0, 1]


def test_a_source_is_resolved_once_into_an_object_that_answers_for_it(tmp_path):
    from keras_resnet.data import available_splits, check_splits, memory_input_reason
    from keras_resnet.data.sources import ImageFolder, ShardDirectory, TFDSDataset, resolve

    folder = make_jpeg_folder(tmp_path / "imgs", size=(30, 40))
    archive = make_tar(folder, tmp_path / "imgs.tar.gz")
    convert(folder, tmp_path / "shards", shards=2, progress=False)
    found = {name: resolve(path) for name, path in
             (("folder", folder), ("archive", archive), ("shards", tmp_path / "shards"))}
    assert [type(s) for s in found.values()] == [ImageFolder, ImageFolder, ShardDirectory]
    assert [s.kind for s in found.values()] == ["folder", "folder", "tfrecord"]
    for name, source in found.items():
        assert resolve(source) is source and source.local
        assert source.splits() == ["train", "test"] == available_splits(source) == available_splits(source.name)
        assert sorted(source.check_splits(["train", "test"])) == ["test", "train"]
        assert source.first_image_size() == (30, 40), name
        assert source.memory_reason(["train", "test"]) == memory_input_reason(source.name, ["train", "test"])
    assert found["folder"].memory_reason(["train"]) == (
        True, "in memory: 6 images of 30x40 in train (21.1 KiB decoded uint8, limit 2.0 GiB)")
    assert check_splits(folder, "train") == {"train": str(folder / "train")}
    assert check_splits(archive, "test") == {"test": f"{archive}:test/"}
    assert found["folder"].decodes_up_front("train", 0, None, None)  # 30x40: small, decoded at once
    assert not found["folder"].decodes_up_front("train", 0, "imagenet", None)
    assert not found["shards"].decodes_up_front("train", 0, "cifar", None)  # shards are always streamed
    tfds_name = resolve("cifar10", data_dir=str(tmp_path / "tfds"))
    assert isinstance(tfds_name, TFDSDataset) and tfds_name.kind == "tfds" and not tfds_name.local
    with pytest.raises(FileNotFoundError, match=re.escape(f"Data source '{tmp_path / 'nope'}' does not exist")):
        resolve(tmp_path / "nope")
    with pytest.raises(ValueError, match="`source` must be a TFDS name, an image folder.*received ''"):
        resolve("")


@pytest.mark.parametrize("kind", ["small folder", "large folder", "shards"])
def test_held_out_training_images_leave_the_test_split_whole(tmp_path, kind):
    """`validation_size` holds images out of the training split only: the test split is read whole on every
    path (it used to lose `validation_size` of its own images, or fail when it had no more than that)."""
    size = (30, 40) if kind == "small folder" else (70, 90)
    source = make_jpeg_folder(tmp_path / "imgs", size=size, per_class=3)
    if kind == "shards":
        convert(source, tmp_path / "shards", shards=1, progress=False)
        source = tmp_path / "shards"
    ds, info = load(source, "test", 4, training=False, validation_size=2)
    labels = np.concatenate([y for _, y in as_numpy(ds)])
    assert info.num_examples == {"test": 6} and sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    train, train_info = load(source, "train", 2, training=False, validation_size=2)
    assert train_info.num_examples == {"train": 4}


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_tf_decoder_gives_exactly_the_pillow_pixels(mode):
    from keras_resnet.data.augment import decode

    for seed, quality in ((0, 75), (1, 95), (2, 50)):
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)  # smooth-ish content, like photographs
        image = Image.fromarray(small).resize((37, 29), Image.BILINEAR).convert(mode)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality)
        want = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        np.testing.assert_array_equal(decode(tf.constant(buf.getvalue())).numpy(), want)
    np.testing.assert_array_equal(decode(tf.constant(png_bytes(np.full((3, 4, 3), 7, np.uint8)))).numpy(),
                                  np.full((3, 4, 3), 7, np.uint8))


def test_streamed_shards_and_in_memory_folder_give_the_same_images(tmp_path):
    folder = make_jpeg_folder(tmp_path / "imgs", size=(32, 32), per_class=4)  # CIFAR-style: 32x32 JPEGs
    convert(folder, tmp_path / "shards", shards=2, progress=False)
    memory, minfo = load(folder, "test", 8, training=False)  # decoded once with Pillow, kept in memory
    streamed, sinfo = load(tmp_path / "shards", "test", 8, training=False)  # decoded by tf.data
    np.testing.assert_allclose(sinfo.mean, minfo.mean, atol=1e-4)

    def by_content(batches):
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        order = sorted(range(len(y)), key=lambda i: (np.round(x[i], 4).tobytes(), int(y[i])))
        return x[order], y[order]

    (xm, ym), (xs, ys) = by_content(as_numpy(memory)), by_content(as_numpy(streamed))
    np.testing.assert_array_equal(ys, ym)
    np.testing.assert_allclose(xs, xm, atol=1e-5)


def test_tfrecord_without_expected_features(tmp_path):
    out = tmp_path / "bad"
    out.mkdir()
    with tf.io.TFRecordWriter(str(out / "train-00000-of-00001")) as w:
        feat = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}
        w.write(tf.train.Example(features=tf.train.Features(feature=feat)).SerializeToString())
    with pytest.raises(ValueError, match="train-00000-of-00001.*image/encoded"):
        load(out, "train", 2)
    with pytest.raises(ValueError, match="split 'test'.*splits found: \\['train'\\]"):
        load(out, "test", 2)


def truncate(path):
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


BYTES = {
    "jpeg": (jpeg_bytes(40, 50), True),
    "jpeg-with-trailing-bytes": (jpeg_bytes(40, 50) + b"bytes after the EOI marker", True),  # not corrupt
    "truncated-jpeg": (jpeg_bytes(40, 50)[:300], False),
    "png": (png_bytes(np.zeros((40, 50, 3), np.uint8)), True),
    "truncated-png": (png_bytes(np.zeros((40, 50, 3), np.uint8))[:-20], False),
    "empty": (b"", False),
    "html": (b"<html>404 Not Found</html>", False),
}


@pytest.mark.parametrize("encoded, decodes", BYTES.values(), ids=BYTES.keys())
def test_decode_or_raise_names_file_only_for_undecodable_bytes(encoded, decodes):
    from keras_resnet.data.corrupt import decode_or_raise, try_decode

    image, ok = try_decode(tf.constant(encoded))
    assert bool(ok) == decodes and image.shape[2] == 3 and (image.shape[0] > 0) == decodes
    fn = tf.function(lambda e: decode_or_raise(e, tf.constant("some/dir/x.jpg")))
    if decodes:
        assert fn(tf.constant(encoded)).shape == (40, 50, 3)
    else:
        with pytest.raises(tf.errors.InvalidArgumentError, match="some/dir/x.jpg.*skip_corrupt=True"):
            fn(tf.constant(encoded))


def _bare_shards(out, bad_split="test", bad_index=2):
    """Hand-written shards of 300x300 JPEGs without `image/filename`; one record is truncated."""
    out.mkdir()
    good = jpeg_bytes(300, 300)
    for split in ("test", "train"):
        with tf.io.TFRecordWriter(str(out / f"{split}-00000-of-00001")) as w:
            for i in range(4):
                w.write(make_example(good[:1000] if (split, i) == (bad_split, bad_index) else good, i % 2))
    return out


@pytest.mark.parametrize("kind", ["bare-300px", "converted-32px"])
def test_streamed_tfrecord_truncated_jpeg_named_or_skipped_and_counted(tmp_path, kind, capfd):
    if kind == "bare-300px":  # ImageNet-style streamed branch, records named <shard>#<index>
        out = _bare_shards(tmp_path / "shards")
        bad, labels = re.escape(str(out / "test-00000-of-00001")) + "#2", [0, 1, 1]
    else:  # CIFAR-style (small images) streamed branch; the converter writes image/filename
        folder = make_jpeg_folder(tmp_path / "imgs", size=(32, 32), per_class=2)
        truncate(folder / "test" / "b" / "1.jpg")
        out = tmp_path / "shards"
        convert(folder, out, shards=1, progress=False)
        bad, labels = r"test/b/1\.jpg \(" + re.escape(str(out / "test-00000-of-00001")) + r"#\d\)", [0, 0, 1]
    ds, info = load(out, "test", 4, training=False)
    assert info.num_skipped == {}
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"Cannot decode image file {bad}.*skip_corrupt=True"):
        as_numpy(ds)
    with pytest.raises(ValueError, match=f"Cannot decode image file {bad}"):
        load_arrays(out, "test")

    ds, info = load(out, "test", 4, training=False, skip_corrupt=True)
    assert info.num_skipped == {"test": 0}  # counted while iterating
    got = np.concatenate([y for _, y in as_numpy(ds)])
    assert sorted(got.tolist()) == labels
    assert info.num_skipped == {"test": 1}
    assert len(info.num_skipped.files("test")) == 1 and re.fullmatch(bad, info.num_skipped.files("test")[0])
    assert re.search(f'skipped undecodable image file "{bad}"', capfd.readouterr().err)
    assert len(as_numpy(ds)[0][1]) == 3 and info.num_skipped["test"] == 1  # a second epoch: same file
    assert json.loads(info.to_json())["num_skipped"] == {"test": 1}
    assert DatasetInfo.from_json(info.to_json()).num_skipped == {"test": 1}
    _, _, info_arrays = load_arrays(out, "test", skip_corrupt=True)
    assert info_arrays.num_skipped == {"test": 1}


def test_streamed_tfrecord_training_split_truncated_jpeg(tmp_path):
    out = _bare_shards(tmp_path / "shards", bad_split="train", bad_index=1)
    # the mean of the training split is computed in `load`: the truncated record fails there, named
    with pytest.raises(ValueError, match="Cannot decode image file .*train-00000-of-00001#1 .*skip_corrupt"):
        load(out, "train", 2, seed=0)
    ds, _ = load(out, "train", 2, seed=0, mean=np.full((1, 1, 3), 127.0))  # no mean pass: fails in training
    with pytest.raises(tf.errors.InvalidArgumentError, match="Cannot decode image file .*train-00000-of-00001#1 "):
        as_numpy(ds)
    ds, info = load(out, "train", 1, seed=0, skip_corrupt=True)
    assert info.num_skipped == {"train": 1}  # recorded by the mean pass, before any iteration
    assert len(as_numpy(ds)) == 3 and info.num_skipped == {"train": 1}
    assert info.num_skipped.files("train") == [f"{out / 'train-00000-of-00001'}#1"]


@pytest.mark.parametrize("kind", ["dir", "tar.gz"])
def test_streamed_folder_truncated_jpeg_named_or_skipped_and_counted(tmp_path, kind, capfd):
    folder = make_jpeg_folder(tmp_path / "imgs", size=(72, 96), per_class=2)  # > 64 px: streamed
    truncate(folder / "test" / "b" / "1.jpg")
    source = folder if kind == "dir" else make_tar(folder, tmp_path / "imgs.tar.gz")
    bad = str(folder / "test" / "b" / "1.jpg") if kind == "dir" else f"{source}:test/b/1.jpg"
    ds, info = load(source, "test", 4, training=False)
    assert info.preprocessing == "imagenet"
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"Cannot decode image file {re.escape(bad)} "):
        as_numpy(ds)
    ds, info = load(source, "test", 4, training=False, skip_corrupt=True)
    assert sorted(np.concatenate([y for _, y in as_numpy(ds)]).tolist()) == [0, 0, 1]
    assert info.num_skipped == {"test": 1} and info.num_skipped.files("test") == [bad]
    assert f'skipped undecodable image file "{bad}"' in capfd.readouterr().err
    tr, tr_info = load(source, "train", 2, seed=0, skip_corrupt=True)  # nothing to skip in the training split
    assert len(as_numpy(tr)) == 2 and tr_info.num_skipped == {"train": 0}


def test_tfds_mock(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        ds, info = load("cifar10", "train", 8, seed=0, validation_size=10)
        assert info.preprocessing == "cifar" and info.image_shape == (32, 32, 3)
        assert info.num_examples == {"train": 30} and len(info.class_names) == 10
        assert info.mean.shape == (32, 32, 3)
        batches = as_numpy(ds)
        assert len(batches) == 3 and batches[0][0].shape == (8, 32, 32, 3)
        v, vinfo = load("cifar10", "validation", 8, validation_size=10)
        assert sum(len(y) for _, y in as_numpy(v)) == 10
        np.testing.assert_allclose(vinfo.mean, info.mean)
    with pytest.raises(ValueError, match="not_a_dataset_xyz"):
        load("not_a_dataset_xyz", "train", 8)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        load("cifar10", "train", 0)
    with pytest.raises(FileNotFoundError, match="missing/dir"):
        load("missing/dir", "train", 8)
    with pytest.raises(ValueError, match="preprocessing"):
        load("cifar10", "train", 8, preprocessing="vgg")


def test_real_cifar10_test_archive_pipeline():
    if not (CIFAR / "cifar10-test.tar.gz").is_file():
        pytest.skip(f"real CIFAR-10 archives not found at {CIFAR} (../shared absent)")
    ds, info = load(CIFAR, "test", 1000, training=False)
    assert info.num_examples == {"test": 10000} and info.class_names == CIFAR_CLASSES
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert np.bincount(labels).tolist() == [1000] * 10
