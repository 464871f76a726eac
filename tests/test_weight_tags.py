"""Contracts of the tagged weight sets ("imagenet-tv2", "imagenet-a1") and their evaluation transforms.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (ResNet-18..152, Table 1;
evaluation on a centre crop, section 3.4); torchvision's IMAGENET1K_V2 and timm's a1_in1k weights of the
same networks (stride in the 3x3 convolution, "ResNet v1.5").
"""

import dataclasses
import hashlib
import json
import re

import numpy as np
import pytest
import tensorflow as tf

import keras_resnet
from conftest import make_photo_folder, photo_array, randomise_torch, relative_difference, torch_nhwc_logits, torchvision_torch_classes
from keras_resnet.data.augment import published_eval_geometry
from keras_resnet.eval_transform import EvalTransform
from keras_resnet.registry import model_spec
from keras_resnet.weights import sets

TAGGED = {
    ("imagenet-tv2", "resnet50"): ("resnet50-11ad3fa6.pth", 80.858),
    ("imagenet-tv2", "resnet101"): ("resnet101-cd907fc2.pth", 81.886),
    ("imagenet-tv2", "resnet152"): ("resnet152-f82ba261.pth", 82.284),
    ("imagenet-a1", "resnet18"): ("resnet18_a1_0-d63eafa0.pth", 71.504),
    ("imagenet-a1", "resnet34"): ("resnet34_a1_0-46f8f793.pth", 76.420),
    ("imagenet-a1", "resnet50"): ("resnet50_a1_0-14fe96d1.pth", 80.382),
    ("imagenet-a1", "resnet101"): ("resnet101_a1_0-cdcb52a9.pth", 81.494),
    ("imagenet-a1", "resnet152"): ("resnet152_a1_0-2eee8a7a.pth", 81.998),
}
"""Each tagged set's file and the top-1 (%) its publisher reports: torchvision's `_metrics` acc@1, timm's
results-imagenet.csv at 224 / crop_pct 0.95."""


def test_every_tagged_set_has_its_metadata():
    tagged = {(s.name, s.model): s for s in sets.NAMED_SETS if s.name in sets.TAGGED_SETS}
    assert sorted(tagged) == sorted(TAGGED)
    for (name, model), (file_name, top1) in TAGGED.items():
        entry = tagged[name, model]
        assert (entry.file_name, entry.top1) == (file_name, top1)
        assert entry.url.startswith("https://") and entry.url.endswith("/" + file_name)
        assert entry.file_hash == re.search(r"-([0-9a-f]{8})\.pth$", file_name).group(1)
        assert entry.hash_algorithm == "sha256-prefix" and entry.source_format == "torchvision"
        assert entry.stride_in_3x3 == (model not in ("resnet18", "resnet34")) and entry.classes == 1000
        assert entry.preprocessing == keras_resnet.weights.TORCH and entry.verified == "same format"
        assert ("BSD-3-Clause" if name == "imagenet-tv2" else "Apache-2.0") in entry.licence
        expected = ((232, "bilinear") if name == "imagenet-tv2" else (235, "bicubic"))
        assert (entry.evaluation.resize_size, entry.evaluation.interpolation, entry.evaluation.crop_size) == \
            (*expected, 224)
    assert round(sets.TIMM_A1_EVAL.crop_fraction, 2) == 0.95  # timm's crop_pct: 235 = floor(224 / 0.95)


@pytest.mark.parametrize("transform", [sets.TORCHVISION_V2_EVAL, sets.TIMM_A1_EVAL], ids=lambda t: t.name)
def test_each_transform_matches_pillow_within_one_level(transform):
    shapes = [(375, 500), (500, 375), (333, 333), (240, 321), (601, 457), (120, 90), (231, 233)]
    differing = 0
    for index, (height, width) in enumerate(shapes):
        image = photo_array(height, width, index % 6, 6, seed=index)
        expected = transform.pillow(image).astype(np.float32)
        ours = published_eval_geometry(tf.constant(image), transform).numpy()
        assert ours.shape == expected.shape == (224, 224, 3)
        assert np.abs(ours - expected).max() <= 1.0, (transform.name, height, width)
        differing += int(np.count_nonzero(ours != expected))
    assert differing / (len(shapes) * 224 * 224 * 3) < 0.01  # off by one level on rounding ties only


def test_the_transform_geometry_is_torchvisions():
    transform = sets.TORCHVISION_V2_EVAL
    assert transform.resized_shape(375, 500) == (232, 309)  # int(232 * 500 / 375) = int(309.33)
    assert transform.resized_shape(500, 375) == (309, 232)
    assert transform.resized_shape(100, 151) == (232, 350)  # int(350.32): truncated, not rounded
    assert transform.crop_offsets(232, 309) == (4, 42)  # round(42.5) = 42, halves to even
    assert transform.crop_offsets(232, 311) == (4, 44)  # round(43.5) = 44
    assert EvalTransform.from_dict(transform.to_dict()) == transform
    with pytest.raises(ValueError, match="`interpolation` must be one of"):
        EvalTransform("x", 232, 224, "nearest")
    with pytest.raises(ValueError, match="malformed evaluation transform record"):
        EvalTransform.from_dict({"name": "x"})


def publish_random(monkeypatch, directory, name, depth, seed):
    """A random torchvision-layout state dict written as the set's file into `directory`, the table's hash
    replaced by the file's own; returns the PyTorch model."""
    import torch

    basic, bottleneck, resnet = torchvision_torch_classes()
    block, layers = {18: (basic, (2, 2, 2, 2)), 50: (bottleneck, (3, 4, 6, 3))}[depth]
    reference = randomise_torch(resnet(block, layers), seed=seed).eval()
    original = next(s for s in sets.NAMED_SETS if s.name == name and s.model == f"resnet{depth}")
    path = directory / original.file_name
    torch.save(reference.state_dict(), path)
    entry = dataclasses.replace(original, file_hash=hashlib.sha256(path.read_bytes()).hexdigest()[:8])
    monkeypatch.setattr(sets, "NAMED_SETS", tuple(entry if s is original else s for s in sets.NAMED_SETS))
    return reference


@pytest.fixture
def weights_home(tmp_path, monkeypatch):
    offline = tmp_path / "offline"
    offline.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("KERAS_RESNET_WEIGHTS", str(offline))
    return offline


@pytest.mark.parametrize("name, depth", [("imagenet-tv2", 50), ("imagenet-a1", 18), ("imagenet-a1", 50)])
def test_a_file_of_each_sets_format_converts(name, depth, weights_home, monkeypatch):
    pytest.importorskip("torch", reason="PyTorch not installed (pip install 'keras-resnet[torch]')")
    reference = publish_random(monkeypatch, weights_home, name, depth, seed=depth)
    photos = np.stack([photo_array(64, 64, label, 6, seed=label) for label in (1, 4)])
    images = keras_resnet.weights.TORCH.apply(photos)
    expected = torch_nhwc_logits(reference, images)
    model = keras_resnet.build(f"resnet{depth}", weights=name, input_shape=(64, 64, 3), classifier_activation=None,
                               **({"stride_in_3x3": True} if depth == 50 else {}))
    assert relative_difference(np.asarray(model.predict(images, verbose=0)), expected) < 1e-4


def test_a_bottleneck_without_the_3x3_stride_is_refused_by_name():
    with pytest.raises(ValueError, match=r"`weights`='imagenet-tv2' .* build the ResNet-50 with stride_in_3x3=True; "
                                         r"received stride_in_3x3=False"):
        keras_resnet.ResNet50(weights="imagenet-tv2")
    with pytest.raises(ValueError, match=r"'imagenet-tv2' exists for resnet50, resnet101, resnet152"):
        keras_resnet.ResNet18(weights="imagenet-tv2")
    with pytest.raises(ValueError, match=r"'imagenet-a1' exists for resnet18, resnet34, resnet50, resnet101, resnet152"):
        keras_resnet.ResNet56(weights="imagenet-a1")


@pytest.mark.parametrize("name, model", [("imagenet-tv2", "resnet101"), ("imagenet-a1", "resnet34")])
def test_offline_the_error_names_the_file_and_where_to_place_it(name, model, weights_home, monkeypatch):
    entry = keras_resnet.weights.named_set_entry(name, model_spec(model))
    missing = weights_home.parent / "nowhere" / entry.file_name
    replaced = dataclasses.replace(entry, url=missing.as_uri())
    monkeypatch.setattr(sets, "NAMED_SETS", tuple(replaced if s is entry else s for s in sets.NAMED_SETS))
    message = (rf"needs {re.escape(entry.file_name)}, which is not in .*place {re.escape(entry.file_name)} \(hash "
               rf"{entry.file_hash}\) in the directory {re.escape(str(weights_home))} \(\$KERAS_RESNET_WEIGHTS\)")
    with pytest.raises(keras_resnet.weights.WeightsUnavailableError, match=message):
        keras_resnet.build(model, weights=name, input_shape=(64, 64, 3),
                           **({"stride_in_3x3": True} if model != "resnet34" else {}))


def test_evaluation_pipeline_applies_the_sets_transform(tmp_path):
    from PIL import Image

    from keras_resnet.evaluate.api import eval_dataset

    folder = make_photo_folder(tmp_path / "photos", classes=3, train=1, val=2)
    transform = sets.TIMM_A1_EVAL
    ds, info = eval_dataset(str(folder), "validation", 8, kind="imagenet", size=224, mean=np.zeros((1, 1, 3)),
                            ten_crop=False, normalization=None, eval_transform=transform)
    batch, _ = next(iter(ds))
    files = sorted((folder / "val").glob("*/*.jpg"))
    expected = np.stack([transform.pillow(np.asarray(Image.open(f).convert("RGB"))) for f in files]) / 255.0
    assert batch.shape == (6, 224, 224, 3) and info.num_examples["validation"] == 6
    assert np.abs(batch.numpy() - expected).max() <= 1.0 / 255.0 + 1e-6


def test_export_of_a_tagged_set_serves_its_transform_names_and_card(weights_home, monkeypatch, tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed (pip install 'keras-resnet[torch]')")
    from PIL import Image

    from keras_resnet.export import export_pretrained

    reference = publish_random(monkeypatch, weights_home, "imagenet-a1", 18, seed=7)
    path = export_pretrained("resnet18", "imagenet-a1", tmp_path / "export")
    photos = [photo_array(h, w, label, 6, seed=label) for label, (h, w) in enumerate([(300, 400), (260, 240)])]
    transform = sets.TIMM_A1_EVAL
    expected = torch_nhwc_logits(reference, keras_resnet.weights.TORCH.apply(np.stack([transform.pillow(p)
                                                                                       for p in photos])))
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    served = [serve(images=tf.constant(p[None]))["probabilities"].numpy()[0] for p in photos]
    assert [int(np.argmax(p)) for p in served] == [int(np.argmax(e)) for e in expected]
    softmax = np.exp(expected - expected.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    assert np.abs(np.stack(served) - softmax).max() < 1e-3  # pixels within one level of Pillow's
    card = json.loads((path / "assets" / "model_card.json").read_text())
    pretrained = card["source"]["pretrained"]
    assert pretrained["set"] == "imagenet-a1" and pretrained["published_top1"] == 71.504
    assert pretrained["evaluation"] == transform.to_dict()
    assert "timm a1_in1k: shorter side resized to 235 (Pillow bicubic" in json.dumps(card)
    labels = (path / "assets" / "labels.txt").read_text().splitlines()
    assert labels[:2] == ["tench", "goldfish"] and len(labels) == 1000


def test_evaluate_refuses_other_geometries_for_a_tagged_set_by_flag():
    from keras_resnet.evaluate.api import EvaluationError, published_transform

    assert published_transform("resnet50", "imagenet-tv2", None, 224, False) == (sets.TORCHVISION_V2_EVAL, True)
    assert published_transform("resnet50", "imagenet", None, 224, False) == (None, None)
    with pytest.raises(EvaluationError, match=r"^--ten_crop: --weights=imagenet-a1 is evaluated as its publisher"):
        published_transform("resnet18", "imagenet-a1", None, 224, True)
    with pytest.raises(EvaluationError, match=r"^--image_size=160: --weights=imagenet-a1 is evaluated on the centre 224"):
        published_transform("resnet18", "imagenet-a1", None, 160, False)
    with pytest.raises(EvaluationError, match=r"^--weights=imagenet-tv2 for --model=resnet18: `weights`='imagenet-tv2'"):
        published_transform("resnet18", "imagenet-tv2", None, 224, False)
