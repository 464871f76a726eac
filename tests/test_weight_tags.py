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


def test_init_from_a_tagged_set_decides_its_stride_and_transform_once(tmp_path):
    from keras_resnet.training import TrainConfig, resolve_recipe
    from keras_resnet.training.init_normalization import eval_transform_of
    from keras_resnet.training.model import build_run_model
    from keras_resnet.training.run_parts import ModelPart

    assert ModelPart(model_spec("resnet50"), init_from="imagenet-tv2").stride_in_3x3 is True
    assert ModelPart(model_spec("resnet101"), init_from="imagenet-a1").stride_in_3x3 is True
    for model, init_from in [("resnet18", "imagenet-a1"), ("resnet50", "imagenet"), ("resnet50", None),
                             ("resnet18", "imagenet-tv2"), ("resnet50", "run/checkpoints/best.keras")]:
        assert ModelPart(model_spec(model), init_from=init_from).stride_in_3x3 is None, (model, init_from)
    assert eval_transform_of("imagenet-tv2", "resnet152") == sets.TORCHVISION_V2_EVAL
    assert eval_transform_of("imagenet-a1", "resnet34") == sets.TIMM_A1_EVAL
    assert eval_transform_of("imagenet", "resnet50") is None and eval_transform_of(None, "resnet50") is None
    assert eval_transform_of("imagenet-tv2", "resnet18") is None  # no such set: loading it names the misfit
    # a checkpoint of a run that started from a tagged set passes the run's transform on
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.keras").write_bytes(b"")
    scaled = sets.TIMM_A1_EVAL.scaled_to(160)
    (tmp_path / "config.json").write_text(json.dumps({"eval_transform": scaled.to_dict()}))
    assert eval_transform_of(str(tmp_path / "checkpoints" / "best.keras"), "resnet18") == scaled
    assert (scaled.resize_size, scaled.crop_size, scaled.interpolation) == (167, 160, "bicubic")  # floor(160 / 0.95)
    assert sets.TORCHVISION_V2_EVAL.scaled_to(224) is sets.TORCHVISION_V2_EVAL
    # the run's ResNet-50 takes the stride in its 3x3 convolutions, as the tagged files need
    config = TrainConfig(model="resnet50", init_from="imagenet-tv2", model_dir=str(tmp_path / "run"))
    model = build_run_model(config, resolve_recipe(config, 1000), classes=3, input_shape=(64, 64, 3),
                            load_init=False).model
    strides = {layer.name: layer.strides for layer in model.layers if layer.name.startswith("stage2_block1_")
               and hasattr(layer, "strides")}
    assert (strides["stage2_block1_1_conv"], strides["stage2_block1_2_conv"]) == ((1, 1), (2, 2))


def test_the_run_input_evaluates_with_the_sets_transform_at_the_runs_crop(tmp_path):
    from PIL import Image

    from keras_resnet.normalization import InputNormalization
    from keras_resnet.training import ConfigError, TrainConfig
    from keras_resnet.training.streamed_input import TFDataInput

    folder = make_photo_folder(tmp_path / "photos", classes=3, train=2, val=2)
    config = TrainConfig(model="resnet18", data=str(folder), image_size=64, model_dir=str(tmp_path / "run"))
    normalization = InputNormalization(keras_resnet.weights.TORCH)
    run_input = TFDataInput(config, 2, 6, 0, "validation", normalization, sets.TIMM_A1_EVAL)
    assert run_input.eval_transform == sets.TIMM_A1_EVAL.scaled_to(64)
    batch, labels = next(run_input.eval_batches("test"))
    files = sorted((folder / "val").glob("*/*.jpg"))
    pillow = np.stack([sets.TIMM_A1_EVAL.scaled_to(64).pillow(np.asarray(Image.open(f).convert("RGB")))
                       for f in files])
    expected = keras_resnet.weights.TORCH.apply(pillow)
    assert batch.shape == (6, 64, 64, 3) and list(labels) == [0, 0, 1, 1, 2, 2]
    assert np.abs(batch - expected).max() <= 1.0 / 255.0 / min(keras_resnet.weights.TORCH.std) + 1e-5  # one level
    with pytest.raises(ConfigError, match=r"^--ten_crop: the --init_from weights are evaluated as their publisher"):
        TFDataInput(dataclasses.replace(config, ten_crop=True), 2, 6, 0, "validation", normalization, sets.TIMM_A1_EVAL)


def test_a_run_from_a_tagged_set_evaluates_and_exports_with_its_transform(weights_home, monkeypatch, tmp_path, capsys):
    pytest.importorskip("torch", reason="PyTorch not installed (pip install 'keras-resnet[torch]')")
    import keras
    from PIL import Image

    from keras_resnet.evaluate import evaluate_model_dir
    from keras_resnet.evaluate.api import EvaluationError
    from keras_resnet.export import export_from_model_dir
    from keras_resnet.training import trainer_main

    publish_random(monkeypatch, weights_home, "imagenet-a1", 18, seed=3)
    photos = make_photo_folder(tmp_path / "photos", classes=3, train=2, val=2)
    run = tmp_path / "run"
    argv = ["--model=resnet18", "--init_from=imagenet-a1", "--image_size=64", "--batch_size=2", "--train_steps=2",
            "--steps_per_epoch=2", "--seed=1", "--verbose=2", f"--data={photos}", f"--model_dir={run}"]
    capsys.readouterr()
    code = trainer_main(argv, "python -m trainers.imagenet", model="resnet50", data="imagenet2012", recipe="imagenet")
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    scaled = sets.TIMM_A1_EVAL.scaled_to(64)
    assert ("[keras_resnet] evaluation transform of --init_from=imagenet-a1: timm a1_in1k, scaled to 64: shorter "
            "side resized to 67 (Pillow bicubic, antialiased, longer side truncated), centre 64x64 crop.") in out.out
    config, summary = json.loads((run / "config.json").read_text()), json.loads((run / "summary.json").read_text())
    assert config["eval_transform"] == scaled.to_dict() and config["init_from"] == "imagenet-a1"
    # the run directory is evaluated as the run was: the same error, through the recorded transform
    result = evaluate_model_dir(run, str(photos), checkpoint="latest")
    assert result["eval_transform"] == scaled.to_dict() and result["images"] == 6
    assert result["top1_error"] == pytest.approx(summary["test_error"], abs=1e-12)
    with pytest.raises(EvaluationError, match=r"^--ten_crop: --model_dir=.* is evaluated as its --init_from weights'"):
        evaluate_model_dir(run, str(photos), ten_crop=True)
    # ... and served with it: photos of any size give the network's output on Pillow's transform
    path = export_from_model_dir(run, tmp_path / "export", checkpoint="latest")
    model = keras.saving.load_model(run / "checkpoints" / "latest.keras", safe_mode=True)
    files = sorted((photos / "val").glob("*/*.jpg"))[:3]
    arrays = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    expected = np.asarray(model.predict(keras_resnet.weights.TORCH.apply(np.stack([scaled.pillow(a) for a in arrays])),
                                        verbose=0))
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    served = np.stack([serve(images=tf.constant(a[None]))["probabilities"].numpy()[0] for a in arrays])
    assert np.abs(served - expected).max() < 1e-3  # pixels within one level of Pillow's
    card = json.loads((path / "assets" / "model_card.json").read_text())
    assert card["preprocessing"]["geometry"].startswith("timm a1_in1k, scaled to 64: shorter side resized to 67")


def test_a_litert_export_of_a_tagged_set_is_refused_by_name_and_leaves_nothing(weights_home, monkeypatch, tmp_path):
    pytest.importorskip("torch", reason="PyTorch not installed (pip install 'keras-resnet[torch]')")
    from keras_resnet.export import export_pretrained

    publish_random(monkeypatch, weights_home, "imagenet-a1", 18, seed=5)
    # Pillow's antialiased two-pass resize is not expressible in LiteRT's builtins: refused, nothing published
    with pytest.raises(ValueError, match=r"^--format=litert: this serving graph cannot be written with LiteRT's "
                                         r"builtin operators \(.*is neither a custom op nor a flex op\); export "
                                         r"--format=saved_model or onnx instead\.$"):
        export_pretrained("resnet18", "imagenet-a1", tmp_path / "export", export_format="litert")
    assert [p for p in tmp_path.glob("export/**/*") if p.is_file()] == []
