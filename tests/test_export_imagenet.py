"""Export and serving of an ImageNet-style run (issue 14, point 4): its image size, resize, centre crop and
mean in the graph; `serve_bytes` on JPEG/PNG of any size, grayscale and CMYK included; its class names.

A hand-made run directory (docs/CONTRACTS.md layout) holds a ResNet-18 of undeclared input size trained at
`image_size` 32 (config.json) on a generated ImageNet-style folder (6 classes, JPEG sizes 40..900, a
grayscale JPEG, a PNG named `.JPEG`, a CMYK JPEG, a grayscale PNG, an image smaller than the crop). It is
exported with `python -m keras_resnet.export --model_dir=...` and served in a process that imports
TensorFlow only; for every file of `val/` the served probabilities equal those of the evaluation path
(`keras_resnet.data.load(..., crop_size=32)`, shorter side round(256 * 32 / 224) = 37, centre 32 crop)
within 1e-4, the CMYK JPEG included: training, evaluation and serving all convert CMYK to RGB as
TensorFlow's decoder does (`keras_resnet.data.pillow_rgb`; Pillow's own `convert("RGB")` rounds, one level
away at most).
"""

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

import keras_resnet  # noqa: E402
from conftest import randomise_batch_norms, serve_bytes_elsewhere  # noqa: E402
from keras_resnet import export  # noqa: E402
from keras_resnet.data import imagenet_eval_geometry, imagenet_eval_size, load  # noqa: E402
from keras_resnet.data.reader import FolderSource  # noqa: E402

CLASSES = ("n01", "n02", "n03", "n04", "n05", "n06")
CROP = 32
SIZES = [(40, 52), (900, 600), (375, 500), (500, 333), (120, 80), (256, 256), (333, 500), (64, 900)]

def photo(h, w, mode="RGB", seed=0):
    """Smooth random content (compresses like a photo)."""
    channels = {"RGB": 3, "L": 1, "CMYK": 4, "RGBA": 4}[mode]
    small = np.random.default_rng(seed).integers(0, 255, (max(2, h // 16), max(2, w // 16), channels), np.uint8)
    return Image.fromarray(small[..., 0] if channels == 1 else small, mode).resize((w, h), Image.BILINEAR)


def encoded(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


SPECIAL = {
    "gray.JPEG": lambda: encoded(photo(300, 200, "L", 1), "JPEG", quality=90),
    "cmyk.jpg": lambda: encoded(photo(240, 320, "CMYK", 2), "JPEG", quality=90),
    "png.JPEG": lambda: encoded(photo(90, 120, "RGBA", 3), "PNG"),
    "gray.png": lambda: encoded(photo(70, 45, "L", 4), "PNG"),
    "tiny.jpg": lambda: encoded(photo(20, 28, seed=5), "JPEG", quality=90),  # smaller than the crop
}


def make_folder(root):
    """train/ and val/ with 6 classes; val/ holds every size of SIZES and every SPECIAL file."""
    specials = list(SPECIAL.items())
    for split, count in (("train", 2), ("val", 2)):
        for c, cls in enumerate(CLASSES):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                h, w = SIZES[(2 * c + i) % len(SIZES)]
                (folder / f"{split}_{i}.jpg").write_bytes(encoded(photo(h, w, seed=c * 10 + i), "JPEG", quality=90))
            if split == "val" and c < len(specials):
                (folder / specials[c][0]).write_bytes(specials[c][1]())
    return root


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("imagenet_export")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KERAS_RESNET_CACHE_DIR", str(base / "cache"))  # the training mean's cache, not ~/.cache
        yield export_and_serve(base)


def export_and_serve(base):
    """The run directory, its export through the command line, the serving process and the evaluation path."""
    data = make_folder(base / "photos")
    model = randomise_batch_norms(keras_resnet.build("resnet18", classes=len(CLASSES), input_shape=(None, None, 3)),
                                  seed=4)
    assert model.input_shape == (None, None, None, 3)  # the crop size comes from the run's config.json
    ds, info = load(data, "validation", 4, training=False, crop_size=CROP, preprocessing="imagenet")
    run = base / "run"
    (run / "checkpoints").mkdir(parents=True)
    model.save(run / "checkpoints" / "best.keras")
    (run / "dataset.json").write_text(info.to_json())
    np.save(run / "mean_image.npy", info.mean)
    (run / "config.json").write_text(json.dumps({"model": "resnet18", "image_size": CROP}))
    root = base / "saved_models" / "resnet18"
    assert export.main([f"--model_dir={run}", f"--export_dir={root}"]) == 0
    names = [n.numpy().decode() for _, _, n in FolderSource(data, "validation").elements(
        "validation", encoded=True, named=True)]
    served, serving = serve_bytes_elsewhere(root / "1", names, base / "serving")
    evaluation = model.predict(ds, verbose=0)
    return {"model": model, "info": info, "version": root / "1", "names": names, "evaluation": evaluation,
            "served": served, "serving": serving}


def pillow_rgb(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_every_file_served_as_the_evaluation_path(exported):
    names, served, evaluation = exported["names"], exported["served"], exported["evaluation"]
    assert exported["serving"]["imported"] == []
    assert len(names) == len(evaluation) == len(served["batch"]) == 2 * len(CLASSES) + len(SPECIAL)
    assert {Path(n).name for n in names} >= set(SPECIAL)
    sizes = {pillow_rgb(n).shape[:2] for n in names}
    assert min(min(s) for s in sizes) < CROP and max(max(s) for s in sizes) == 900
    np.testing.assert_allclose(served["batch"], served["single"], atol=1e-5)  # a batch of mixed sizes
    gaps = np.abs(served["batch"] - evaluation).max(axis=1)
    assert gaps.max() < 1e-4, {Path(n).name: float(g) for n, g in zip(names, gaps)}
    assert exported["serving"]["class_names"] == [CLASSES[i] for i in served["batch"].argmax(1)]


def test_cmyk_jpeg_is_served_the_pixels_it_is_evaluated_on(exported):
    """The serving graph's only CMYK conversion is TensorFlow's (integer division; Pillow rounds): the
    evaluation decode gives exactly its pixels, and the served probabilities are the evaluation geometry's
    and mean's on them, within 1e-4."""
    names, served = exported["names"], exported["served"]
    index = next(i for i, n in enumerate(names) if Path(n).name == "cmyk.jpg")
    data = Path(names[index]).read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "CMYK"
        pillows = np.asarray(image.convert("RGB"))
    tf_pixels = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    np.testing.assert_array_equal(keras_resnet.data.decode_tf(tf.constant(data)).numpy(), tf_pixels)
    assert np.abs(tf_pixels.astype(int) - pillows.astype(int)).max() == 1
    crop = imagenet_eval_geometry(tf.constant(tf_pixels), imagenet_eval_size(CROP), CROP).numpy()
    expected = exported["model"].predict(((crop - exported["info"].mean) / 255.0)[None], verbose=0)[0]
    assert np.abs(served["batch"][index] - expected).max() < 1e-4


def test_labels_and_card_carry_the_folder_class_names_and_geometry(exported):
    version = exported["version"]
    assert (version / "assets" / "labels.txt").read_text().splitlines() == list(CLASSES)
    card = json.loads((version / "assets" / "model_card.json").read_text())
    assert card["dataset"]["image_shape"] == [CROP, CROP, 3] and card["dataset"]["num_classes"] == len(CLASSES)
    assert card["preprocessing"]["kind"] == "imagenet" and card["preprocessing"]["mean_shape"] == [1, 1, 3]
    assert card["preprocessing"]["geometry"].startswith("shorter side resized to 37 (bilinear), centre 32x32 crop")
    assert card["preprocessing"]["normalization"] is None
    assert card["training_config"]["image_size"] == CROP
    assert card["signatures"]["serving_default"]["inputs"]["images"]["shape"] == [None, None, None, 3]
    assert card["signatures"]["logits"]["inputs"]["images"]["shape"] == [None, CROP, CROP, 3]
    loaded = tf.saved_model.load(str(version))
    np.testing.assert_array_equal(loaded.mean_image.numpy(), exported["info"].mean)


def test_image_size_conflicts_and_bad_values_are_refused(tmp_path):
    model = keras_resnet.build("resnet8", classes=3)  # input fixed at 32x32
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    model.save(run / "checkpoints" / "best.keras")
    (run / "dataset.json").write_text(json.dumps({"class_names": ["a", "b", "c"], "preprocessing": "imagenet"}))
    np.save(run / "mean_image.npy", np.full((1, 1, 3), 120.0, np.float32))
    for image_size, message in ((48, r"`image_size` 48 \(config.json\) differs from the model's input size \(32, 32\)"),
                                ("big", r"`image_size` \(config.json image_size\) must be a positive int; received 'big'")):
        (run / "config.json").write_text(json.dumps({"image_size": image_size}))
        with pytest.raises(ValueError, match=message):
            export.export_from_model_dir(run, tmp_path / "out")
        assert not (tmp_path / "out").exists()
