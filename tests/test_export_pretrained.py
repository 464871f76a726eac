"""Exports of pretrained weights (issue 13, points 3 and 4): the weights' normalisation travels into the graph.

`python -m keras_resnet.export --model=resnet20 --weights=cifar10` exports the published akamaster ResNet-20
(from ../shared/weights/akamaster through KERAS_RESNET_WEIGHTS) with its normalisation
`(x / 255 - mean) / std` in all three signatures. A separate process that imports TensorFlow only (keras and
keras_resnet blocked) serves the 10,000 real CIFAR-10 test JPEGs through `serve_bytes` and must agree with
the PyTorch original (tests/conftest.py `akamaster_published`) on >= 99.9% of them; the ONNX export agrees
on a subset. BGR (Caffe) normalisation, a run that records `input_normalization`, and the command line's
errors are checked on small models.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_resnet
from conftest import (
    AKAMASTER,
    CIFAR,
    CIFAR_CLASSES,
    QUIET_ENV,
    REPO,
    TORCH_MEAN,
    TORCH_STD,
    akamaster_published,
    akamaster_test_set,
    randomise_batch_norms,
    real_cifar_test_images,
    relative_difference,
    run_cli,
    torch_nhwc_logits,
)
from keras_resnet import export
from keras_resnet.weights import CAFFE, TORCH

SERVE_SCRIPT = r'''
import sys
sys.modules["keras"] = sys.modules["keras_resnet"] = None  # a serving process: neither can be imported
import json, tarfile
import numpy as np
import tensorflow as tf

archive, version, out = sys.argv[1:4]
names, data = [], []
with tarfile.open(archive) as tar:  # the order of conftest.real_cifar_test_images
    for member in tar:
        if member.isfile() and len(member.name.split("/")) == 3:
            names.append(member.name)
            data.append(tar.extractfile(member).read())
serve = tf.saved_model.load(version).signatures["serve_bytes"]
probabilities, classes, labels = [], [], []
for start in range(0, len(data), 1000):
    result = serve(images=tf.constant(data[start:start + 1000]))
    probabilities.append(result["probabilities"].numpy())
    classes.append(result["classes"].numpy())
    labels += [name.decode() for name in result["class_names"].numpy()]
imported = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "keras_resnet") and sys.modules[m])
np.savez(out, probabilities=np.concatenate(probabilities), classes=np.concatenate(classes))
with open(out + ".json", "w") as f:
    json.dump({"names": names, "class_names": labels, "imported": imported}, f)
'''


@pytest.fixture
def offline_weights(tmp_path, monkeypatch):
    """The akamaster files through KERAS_RESNET_WEIGHTS and an empty Keras cache (nothing downloaded)."""
    if not AKAMASTER.is_dir():
        pytest.skip(f"akamaster weights not found at {AKAMASTER} (../shared absent)")
    monkeypatch.setenv("KERAS_RESNET_WEIGHTS", str(AKAMASTER))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return {"KERAS_RESNET_WEIGHTS": str(AKAMASTER), "KERAS_HOME": str(tmp_path / "keras_home")}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`python -m keras_resnet.export --model=resnet20 --weights=cifar10`, then `serve_bytes` on the 10,000 test
    JPEGs in a TensorFlow-only process; and the PyTorch original's logits on the same files."""
    akamaster_published(20)  # skips without PyTorch or ../shared
    archive = CIFAR / "cifar10-test.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 test archive not found at {archive} (../shared absent)")
    base = tmp_path_factory.mktemp("pretrained")
    root = base / "saved_models" / "resnet20"
    result = run_cli(["--model=resnet20", "--weights=cifar10", f"--export_dir={root}"], module="keras_resnet.export",
                     KERAS_RESNET_WEIGHTS=AKAMASTER, KERAS_HOME=base / "keras_home")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == str(root.absolute() / "1")
    (base / "serve.py").write_text(SERVE_SCRIPT)
    out = str(base / "served.npz")
    serving = subprocess.run([sys.executable, str(base / "serve.py"), str(archive), str(root / "1"), out],
                             capture_output=True, text=True, timeout=600, cwd=str(base),
                             env=dict(os.environ, **QUIET_ENV))
    assert serving.returncode == 0, serving.stderr[-3000:]
    images, labels, names, logits = akamaster_test_set(tmp_path_factory)
    return {"root": root, "version": root / "1", "arrays": dict(np.load(out)),
            "info": json.loads((base / "served.npz.json").read_text()), "images": images, "labels": labels,
            "names": names, "torch_logits": logits}


def test_serve_bytes_on_the_10000_test_jpegs_agrees_with_pytorch(served):
    arrays, info, expected = served["arrays"], served["info"], served["torch_logits"]
    assert info["imported"] == [] and info["names"] == served["names"] and len(info["names"]) == 10000
    agreement = float(np.mean(arrays["classes"] == expected.argmax(1)))
    assert agreement >= 0.999, agreement
    softmax = tf.nn.softmax(expected).numpy()
    assert np.abs(arrays["probabilities"] - softmax).max() < 1e-3  # the same pixels, normalisation and network
    assert info["class_names"] == [CIFAR_CLASSES[i] for i in arrays["classes"]]
    accuracy = float(np.mean(arrays["classes"] == served["labels"]))
    assert accuracy == pytest.approx(float(np.mean(expected.argmax(1) == served["labels"])), abs=1e-3)


def test_card_and_labels_record_the_weights_normalisation(served):
    version = served["version"]
    assert (version / "assets" / "labels.txt").read_text().splitlines() == CIFAR_CLASSES
    card = json.loads((version / "assets" / "model_card.json").read_text())
    preprocessing = card["preprocessing"]
    assert preprocessing["normalization"] == TORCH.to_dict() and preprocessing["channel_order"] == "RGB"
    assert preprocessing["kind"] == "cifar" and preprocessing["mean_shape"] == [1, 1, 3]
    np.testing.assert_allclose(preprocessing["mean_image"], 255 * TORCH_MEAN, rtol=1e-6)
    np.testing.assert_allclose(preprocessing["multiplier"], 1 / (255 * TORCH_STD), rtol=1e-6)
    assert "(x / 255 - mean [0.485, 0.456, 0.406]) / std [0.229, 0.224, 0.225]" in preprocessing["formula"]
    source = card["source"]["pretrained"]
    assert (source["model"], source["set"], source["file"]) == ("resnet20", "cifar10", "resnet20-12fca82f.th")
    assert card["model_name"] == "resnet20" and card["graph"]["batch_norm_folded"] == 19


def test_logits_signature_takes_preprocess_input(served):
    loaded = tf.saved_model.load(str(served["version"]))
    images = served["images"][:200]
    pre = keras_resnet.preprocess_input(images, weights="cifar10")
    out = loaded.signatures["logits"](images=tf.constant(pre))
    assert np.abs(out["logits"].numpy() - served["torch_logits"][:200]).max() < 1e-3
    pixels = loaded.signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(pixels["probabilities"].numpy(), out["probabilities"].numpy(), atol=1e-5)
    np.testing.assert_allclose(loaded.mean_image.numpy().ravel(), 255 * TORCH_MEAN, rtol=1e-6)


def test_onnx_export_of_the_same_weights_agrees_with_pytorch(offline_weights, tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is installed by .ci/run (the onnx extra)")
    reference = akamaster_published(20)
    images, _, _ = real_cifar_test_images(per_class=20)
    names = tmp_path / "names.txt"
    names.write_text("".join(f"class {i}\n" for i in range(10)))
    root = tmp_path / "saved_models" / "resnet20"
    result = run_cli(["--model=resnet20", "--weights=cifar10", f"--export_dir={root}", "--format=onnx",
                      f"--class_names={names}"], module="keras_resnet.export", **offline_weights)
    assert result.returncode == 0, result.stderr[-3000:]
    version = root / "onnx" / "1"
    assert (version / "labels.txt").read_text().splitlines() == [f"class {i}" for i in range(10)]
    card = json.loads((version / "model_card.json").read_text())
    np.testing.assert_allclose(card["onnx"]["offset"], 255 * TORCH_MEAN, rtol=1e-6)  # (x - 255 mean) / (255 std)
    np.testing.assert_allclose(card["onnx"]["scale"], 1 / (255 * TORCH_STD), rtol=1e-6)
    assert card["preprocessing"]["normalization"] == TORCH.to_dict()
    session = ort.InferenceSession(str(version / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, = session.run(["logits"], {"image": images})
    expected = torch_nhwc_logits(reference, (images / np.float32(255.0) - TORCH_MEAN) / TORCH_STD)
    assert np.abs(logits - expected).max() < 1e-3
    np.testing.assert_array_equal(logits.argmax(1), expected.argmax(1))


def test_bgr_caffe_normalisation_in_the_saved_model_and_onnx(tmp_path):
    """Caffe weights take BGR minus the mean pixel: both graphs take RGB pixels and give the logits of
    `model(CAFFE.apply(pixels))`; ONNX reverses the stem's input channels instead of the pixels."""
    model = randomise_batch_norms(keras_resnet.ResNet20(classifier_activation=None), seed=11)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    expected = keras.ops.convert_to_numpy(model(CAFFE.apply(images), training=False))
    path = export.export_saved_model(model, tmp_path / "sm", normalization=CAFFE)
    loaded = tf.saved_model.load(str(path))
    served = loaded.signatures["serving_default"](images=tf.constant(images))["probabilities"].numpy()
    # As close as the logits below allow: within 1e-4 of the largest logit, which Caffe's unscaled pixels and random
    # BN statistics put in the thousands, and a softmax moves by at most half its logits' largest change (an
    # unseeded network whose two best logits nearly tie was 1.5e-4 apart, more than a fixed 1e-5 allowed).
    bound = max(1e-5, 0.5 * 1e-4 * float(np.abs(expected).max()))
    assert np.abs(served - tf.nn.softmax(expected).numpy()).max() <= bound
    logits = loaded.signatures["logits"](images=tf.constant(CAFFE.apply(images)))["logits"].numpy()
    assert relative_difference(logits, expected) < 1e-4
    card = json.loads((path / "assets" / "model_card.json").read_text())
    assert card["preprocessing"]["channel_order"] == "BGR" and card["preprocessing"]["normalization"]["name"] == "caffe"
    ort = pytest.importorskip("onnxruntime", reason="ONNX Runtime is installed by .ci/run (the onnx extra)")
    onnx_path = export.export_onnx(model, tmp_path / "sm", normalization=CAFFE)
    session = ort.InferenceSession(str(onnx_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert relative_difference(session.run(["logits"], {"image": images})[0], expected) < 1e-4
    card = json.loads((onnx_path / "model_card.json").read_text())
    np.testing.assert_allclose(card["onnx"]["offset"], CAFFE.mean[::-1], rtol=1e-6)  # RGB order
    with pytest.raises(ValueError, match="either `mean`.*or `normalization`"):
        export.export_saved_model(model, tmp_path / "x", mean=np.zeros(3), normalization=CAFFE)
    assert not (tmp_path / "x").exists()


def test_a_run_recording_input_normalization_serves_it(tmp_path):
    """A fine-tuning run started from pretrained weights records their normalisation as `input_normalization`
    in dataset.json (or config.json); its export serves it, with no mean_image.npy needed."""
    model = randomise_batch_norms(keras_resnet.build("resnet8"), seed=2)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    model.save(run / "checkpoints" / "best.keras")
    dataset = {"name": "pets", "class_names": [f"c{i}" for i in range(10)], "image_shape": [32, 32, 3],
               "num_examples": {"train": 8}, "mean": None, "preprocessing": "cifar"}
    (run / "dataset.json").write_text(json.dumps(dataset))
    (run / "config.json").write_text(json.dumps({"model": "resnet8", "input_normalization": TORCH.to_dict()}))
    path = export.export_from_model_dir(run, tmp_path / "out")
    images = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(images))
    np.testing.assert_allclose(served["probabilities"].numpy(), model.predict(TORCH.apply(images), verbose=0),
                               atol=1e-5)
    card = json.loads((path / "assets" / "model_card.json").read_text())
    assert card["preprocessing"]["normalization"] == TORCH.to_dict()
    (run / "config.json").write_text(json.dumps({"input_normalization": {"name": "x", "channel_order": "RGB",
                                                                         "scale": 1.0, "mean": [0, 0, 0],
                                                                         "std": [1, 0, 1]}}))
    with pytest.raises(ValueError, match="config.json input_normalization must have 3 channels and finite, non-zero"):
        export.export_from_model_dir(run, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("argv, message", [
    (["--model_dir=run", "--model=resnet20", "--weights=cifar10", "--export_dir=out"],
     "--model_dir=run and --model=resnet20 are exclusive"),
    (["--model=resnet20", "--export_dir=out"], "--model=resnet20 needs --weights"),
    (["--model=resnet20", "--weights=cifar10"], "required: --export_dir"),
    (["--model_dir=run", "--weights=cifar10", "--export_dir=out"], "--weights: only with --model"),
    (["--model=resnet20", "--weights=cifar10", "--checkpoint=best", "--export_dir=out"],
     "--checkpoint applies to --model_dir only"),
])
def test_cli_bad_pretrained_command_lines_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        export.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "usage: python -m keras_resnet.export" in err, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["--model=resnet8", "--weights=cifar10"], "`weights`='cifar10' does not fit the CIFAR resnet8"),
    (["--model=resnet20", "--weights=cifar10", "--class_names=names.txt"],
     "`class_names` has 3 names but model 'resnet20' has 10 classes"),
])
def test_cli_failed_pretrained_exports_exit_1_and_write_nothing(offline_weights, tmp_path, monkeypatch, capsys,
                                                               argv, message):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "names.txt").write_text("a\nb\nc\n")
    with pytest.raises(SystemExit) as exit_info:
        export.main([*argv, "--export_dir=out"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and message in err, err
    assert sorted(p.name for p in work.iterdir()) == ["names.txt"]


@pytest.mark.parametrize("name, content, reason", [
    ("missing.th", None, "no such file; accepted: cifar10, imagenet, imagenet-tv2, imagenet-a1 or a weights file"),
    ("folder.th", "dir", "a directory; accepted: cifar10, imagenet, imagenet-tv2, imagenet-a1 or a weights file"),
    ("garbage.th", b"garbage" * 100, "not a readable PyTorch file (UnpicklingError: "),
    ("garbage.keras", b"garbage" * 100, "does not fit resnet20 or is unreadable (BadZipFile: File is not a zip file)"),
    ("garbage.weights.h5", b"garbage" * 100, "does not fit resnet20 or is unreadable (OSError: "),
    ("garbage.h5", b"garbage" * 100, "not a readable HDF5 file (OSError: "),
    ("weights.txt", b"garbage", "unknown weights format; accepted: .weights.h5 or .keras"),
])
def test_cli_weights_file_that_cannot_be_used_exits_2_with_one_line_and_writes_nothing(
        tmp_path, monkeypatch, capsys, name, content, reason):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if content == "dir":
        (work / name).mkdir()
    elif content is not None:
        (work / name).write_bytes(content)
    before = sorted(p.name for p in work.iterdir())
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--model=resnet20", f"--weights={name}", "--export_dir=out"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"python -m keras_resnet.export: error: --weights={name}: {reason}"), line
    assert sorted(p.name for p in work.iterdir()) == before  # no export directory, nothing else


def test_readme_gives_the_pretrained_export_command():
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    assert "python -m keras_resnet.export --model=resnet56 --weights=cifar10 --export_dir=saved_models/resnet56" in readme


def test_normalization_argument_forms():
    from keras_resnet.export.serving_inputs import resolve_normalization

    model = keras_resnet.build("resnet50", weights=None)
    assert resolve_normalization("cifar10") == TORCH and resolve_normalization(TORCH.to_dict()) == TORCH
    assert resolve_normalization("imagenet", model) == CAFFE  # keras.applications' ResNet50: Caffe
    assert resolve_normalization(None, model, {}, {"input_normalization": None}) is None
    assert resolve_normalization(None, model, {"input_normalization": CAFFE.to_dict()}, {}) == CAFFE
    with pytest.raises(ValueError, match="`normalization` takes a Preprocessing.*received 'bogus'"):
        resolve_normalization("bogus")
    with pytest.raises(ValueError, match="malformed preprocessing record"):
        resolve_normalization({"name": "x"})


def test_a_converted_weights_file_exports_with_its_recorded_normalisation(tmp_path):
    """`--weights=FILE`: the classes and the normalisation come from the file's record (here Caffe, BGR)."""
    keras.utils.set_random_seed(7)  # the same network whichever tests ran before in this process
    model = randomise_batch_norms(keras_resnet.build("resnet8", classes=4), seed=7)
    classifier = model.get_layer("predictions")  # logits scaled into softmax's unsaturated range: on raw Caffe
    classifier.set_weights([w / 100 for w in classifier.get_weights()])  # inputs they are ~100x a unit scale's
    path = keras_resnet.weights.write_weights(model, tmp_path / "mine.weights.h5", {
        "model": "resnet8", "classes": 4, "source": "mine.h5", "source_format": "keras_applications",
        "preprocessing": CAFFE.to_dict()})
    version = export.export_pretrained("resnet8", path, tmp_path / "out", class_names=["a", "b", "c", "d"])
    images = np.random.default_rng(3).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    served = tf.saved_model.load(str(version)).signatures["serving_default"](images=tf.constant(images))
    expected = model.predict(CAFFE.apply(images), verbose=0)
    assert expected.max(axis=1).max() < 0.99, expected  # spread out: a wrong normalisation could not match them
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)
    assert [n.decode() for n in served["class_names"].numpy()] == ["abcd"[i] for i in served["classes"].numpy()]
    card = json.loads((version / "assets" / "model_card.json").read_text())
    assert card["preprocessing"]["normalization"] == CAFFE.to_dict() and card["preprocessing"]["kind"] == "cifar"
    assert card["source"]["pretrained"]["source_format"] == "keras_applications"
