"""Contracts of the TF Serving export (issue 5): layout, atomic versions, signatures, preprocessing, errors.

One module-scoped export of a tiny ResNet-8 (from a hand-made `model_dir` following docs/CONTRACTS.md) is
checked by many assertions. The serving side runs in a separate Python process that imports neither
`keras_resnet` nor `keras` (as TF Serving would not), on real CIFAR-10 JPEGs from `../shared` when present
and generated images otherwise.
"""

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import keras_resnet
from conftest import QUIET_ENV, REPO
from keras_resnet import export

ROOT = Path(__file__).resolve().parents[1]
CIFAR_TEST = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg" / "cifar10-test.tar.gz"
CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SPEC_32 = "serving_default expects uint8 [None, 32, 32, 3]"


# --------------------------------------------------------------------------------------------------------
# Fixtures: a hand-made model_dir, images, one export, one serving process


def _randomize(model, seed):
    """Non-trivial weights and BN statistics, so that inference-mode BN and every weight matter."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = weights
            weights = [rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                       rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2.0, var.shape)]
        else:
            weights = [w + rng.normal(0, 0.05, w.shape) for w in weights]
        layer.set_weights([np.asarray(w, np.float32) for w in weights])


def test_the_served_float32_copy_has_the_models_weights_and_draws_none(eager_draws):
    from keras_resnet.export.serving_model import float32_logits_clone

    model = keras_resnet.cifar_resnet(8, shortcut="B")
    _randomize(model, 3)
    eager_draws.clear()
    clone = float32_logits_clone(model)
    assert eager_draws == []  # each variable's first value is its source's
    assert clone.get_layer("predictions").get_config()["activation"] == "linear"
    assert [v.path for v in clone.weights] == [v.path for v in model.weights]
    for source, copied in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(copied), keras.ops.convert_to_numpy(source))


def _write_model_dir(path, preprocessing="cifar", seed=0):
    """A training run's model_dir as in docs/CONTRACTS.md, with a ResNet-8: best.keras in float32,
    latest.keras the same weights under the mixed_float16 policy."""
    (path / "checkpoints").mkdir(parents=True)
    model = keras_resnet.build("resnet8")
    _randomize(model, seed)
    model.save(path / "checkpoints" / "best.keras")
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = keras_resnet.build("resnet8")
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(model.get_weights())
    mixed.save(path / "checkpoints" / "latest.keras")
    rng = np.random.default_rng(seed)
    shape = (32, 32, 3) if preprocessing == "cifar" else (1, 1, 3)
    mean = rng.uniform(90, 150, shape).astype(np.float32)
    np.save(path / "mean_image.npy", mean)
    dataset = {"name": "cifar10-jpeg", "class_names": CLASS_NAMES, "image_shape": [32, 32, 3],
               "num_examples": {"train": 45000, "validation": 5000, "test": 10000}, "mean": None,
               "preprocessing": preprocessing, "num_skipped": {}}
    (path / "dataset.json").write_text(json.dumps(dataset))
    (path / "config.json").write_text(json.dumps({"model": "resnet8", "precision": "float32"}))
    (path / "summary.json").write_text(json.dumps({"test_error": 0.5, "test_accuracy": 0.5}))
    return model, mean


def _images():
    """JPEG bytes of up to 2 test images per CIFAR-10 class (or 16 generated 32x32 images)."""
    if CIFAR_TEST.is_file():
        found = {}
        with tarfile.open(CIFAR_TEST, "r:gz") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".jpg"):
                    label = member.name.split("/")[-2]
                    if len(found.setdefault(label, [])) < 2:
                        found[label].append(archive.extractfile(member).read())
        return [data for label in sorted(found) for data in found[label]], "cifar10-jpeg"
    rng = np.random.default_rng(1)
    out = []
    for _ in range(16):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((32, 32), Image.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out, "generated"


def _png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


SERVING_SCRIPT = r'''
import sys
sys.modules["keras"] = sys.modules["keras_resnet"] = None  # a serving process: neither can be imported
import base64, json
from pathlib import Path
import numpy as np
import tensorflow as tf

work = Path(sys.argv[1]); root = Path(sys.argv[2])
jpegs = [p.read_bytes() for p in sorted(work.glob("img_*.jpg"))]
mean = np.load(work / "mean_image.npy")
loaded = tf.saved_model.load(str(root / "1"))
sd, sb, lg = (loaded.signatures[k] for k in ("serving_default", "serve_bytes", "logits"))
import io
from PIL import Image  # the decoder of the package's in-memory training path
pixels = np.stack([np.asarray(Image.open(io.BytesIO(j)).convert("RGB")) for j in jpegs])
pngs = [tf.io.encode_png(p).numpy() for p in pixels]
pre = (pixels.astype(np.float32) - mean) * np.float32(1.0 / 255.0)
arrays, info = {"pixels": pixels, "pre": pre}, {}

def put(prefix, out):
    for key, value in out.items():
        value = value.numpy()
        if value.dtype == object:
            info[f"{prefix}_{key}"] = [v.decode() for v in value]
        else:
            arrays[f"{prefix}_{key}"] = value

put("sd", sd(images=tf.constant(pixels)))
put("jpeg", sb(images=tf.constant(jpegs)))
put("png", sb(images=tf.constant(pngs)))
put("lg", lg(images=tf.constant(pre)))
arrays["mean_image"] = loaded.mean_image.numpy()

def rest_predict(model, body):
    """TF Serving's REST predict (row format) mapped onto a signature: {"b64": ...} -> bytes."""
    body = json.loads(body)
    fn = model.signatures[body.get("signature_name", "serving_default")]
    (name, spec), = fn.structured_input_signature[1].items()
    def value(v):
        return base64.b64decode(v["b64"]) if isinstance(v, dict) and set(v) == {"b64"} else v
    rows = [value(r[name]) if isinstance(r, dict) and "b64" not in r else value(r) for r in body["instances"]]
    out = fn(**{name: tf.constant(rows, dtype=spec.dtype)})
    def plain(x):
        return x.decode() if isinstance(x, bytes) else x.tolist() if hasattr(x, "tolist") else x
    n = len(rows)
    return json.dumps({"predictions": [{k: plain(v.numpy()[i]) for k, v in out.items()} for i in range(n)]})

info["rest_bytes"] = json.loads(rest_predict(loaded, json.dumps(
    {"signature_name": "serve_bytes", "instances": [{"b64": base64.b64encode(j).decode()} for j in jpegs]})))
info["rest_pixels"] = json.loads(rest_predict(loaded, json.dumps(
    {"instances": [{"images": p.tolist()} for p in pixels[:3]]})))

v2 = tf.saved_model.load(str(root / "2"))
put("v2", v2.signatures["serving_default"](images=tf.constant(pixels)))
dtypes = tf.train.load_checkpoint(str(root / "2" / "variables" / "variables")).get_variable_to_dtype_map()
info["v2_variable_dtypes"] = sorted({d.name for k, d in dtypes.items() if k.endswith("VARIABLE_VALUE")})
info["v2_variable_count"] = sum(k.endswith("VARIABLE_VALUE") for k in dtypes)

def error(fn, **kwargs):
    try:
        fn(**kwargs)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None

bad_png = _ = None
small = tf.io.encode_png(tf.zeros([28, 28, 3], tf.uint8)).numpy()
info["errors"] = {
    "rank3": error(sd, images=tf.constant(pixels[0])),
    "channels1": error(sd, images=tf.constant(pixels[:2, :, :, :1])),
    "size28": error(sd, images=tf.zeros([2, 28, 28, 3], tf.uint8)),
    "rank5": error(sd, images=tf.constant(pixels[:2, None])),
    "dtype": error(sd, images=tf.constant(pre[:2])),
    "bytes_garbage": error(sb, images=tf.constant([jpegs[0], b"not an image", jpegs[1], b""])),
    "bytes_corrupt": error(sb, images=tf.constant([jpegs[0], jpegs[1][:40]])),
    "bytes_size": error(sb, images=tf.constant([jpegs[0], jpegs[1], small])),
    "bytes_rank2": error(sb, images=tf.constant([[jpegs[0]]])),
    "bytes_dtype": error(sb, images=tf.constant(pixels[:1])),
    "logits_shape": error(lg, images=tf.zeros([1, 28, 28, 3])),
    "logits_dtype": error(lg, images=tf.constant(pixels[:1])),
}
info["signatures"] = {k: [str(f.structured_input_signature), str(f.structured_outputs)]
                      for k, f in loaded.signatures.items()}
info["imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "keras_resnet") and sys.modules[m])
np.savez(work / "served.npz", **arrays)
(work / "served.json").write_text(json.dumps(info))
'''


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The model_dir, two exports (best -> version 1, mixed-precision latest -> version 2) and the serving
    process's results."""
    base = tmp_path_factory.mktemp("export")
    model_dir = base / "run"
    model, mean = _write_model_dir(model_dir)
    root = base / "saved_models" / "resnet8"
    v1 = export.export_from_model_dir(model_dir, root)
    v2 = export.export_from_model_dir(model_dir, root, checkpoint="latest")
    jpegs, source = _images()
    work = base / "serving"
    work.mkdir()
    for i, data in enumerate(jpegs):
        (work / f"img_{i:03d}.jpg").write_bytes(data)
    np.save(work / "mean_image.npy", mean)
    (work / "serve.py").write_text(SERVING_SCRIPT)
    env = dict(os.environ, **QUIET_ENV)
    cli = subprocess.Popen(["saved_model_cli", "show", "--dir", str(v1), "--all"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)  # runs alongside the serving process
    result = subprocess.run([sys.executable, str(work / "serve.py"), str(work), str(root)], capture_output=True,
                            text=True, timeout=240, env=env, cwd=str(work))
    cli_out, cli_err = cli.communicate(timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    served = dict(np.load(work / "served.npz"))
    info = json.loads((work / "served.json").read_text())
    return {"model_dir": model_dir, "model": model, "mean": mean, "root": root, "v1": v1, "v2": v2,
            "served": served, "info": info, "source": source,
            "saved_model_cli": (cli.returncode, cli_out, cli_err)}


def _keras_reference(model, pre):
    """Probabilities and logits of the Keras model on preprocessed input (logits from the penultimate
    layer through the classifier's kernel and bias)."""
    probabilities = model.predict(pre, verbose=0)
    features = keras.Model(model.inputs, model.get_layer("avg_pool").output).predict(pre, verbose=0)
    kernel, bias = model.get_layer("predictions").get_weights()
    return probabilities, features @ kernel + bias


# --------------------------------------------------------------------------------------------------------
# Layout, versions, atomicity


def test_layout_and_assets(run):
    version = run["v1"]
    assert version == run["root"].absolute() / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables" / "variables.index").is_file()
    assert (version / "assets" / "labels.txt").read_text().splitlines() == CLASS_NAMES
    card = json.loads((version / "assets" / "model_card.json").read_text())
    assert card["model_name"] == "resnet8"
    assert card["version"] == 1
    assert card["dataset"]["name"] == "cifar10-jpeg" and card["dataset"]["num_classes"] == 10
    assert card["signatures"]["serving_default"]["inputs"]["images"] == {"dtype": "uint8", "shape": [None, 32, 32, 3]}
    assert card["signatures"]["serve_bytes"]["inputs"]["images"] == {"dtype": "string", "shape": [None]}
    assert card["preprocessing"]["kind"] == "cifar" and card["preprocessing"]["mean_shape"] == [32, 32, 3]
    assert card["test_accuracy"] == 0.5
    assert card["package"]["keras_resnet"] == keras_resnet.__version__
    assert card["source"]["checkpoint"] == "checkpoints/best.keras"
    assert card["xla"] is False and card["export_dtype"] == "float32"
    assert sorted(p.name for p in run["root"].iterdir()) == ["1", "2"]  # no temporary directories left


def test_next_free_version_and_no_silent_overwrite(run, tmp_path):
    assert run["v2"].name == "2" and export.existing_versions(run["root"]) == [1, 2]
    assert json.loads((run["v2"] / "assets" / "model_card.json").read_text())["version"] == 2
    assert export.next_version(run["root"]) == 3
    digest = hashlib.sha256((run["v1"] / "saved_model.pb").read_bytes()).hexdigest()
    with pytest.raises(FileExistsError, match="Version 1 already exists"):
        export.export_from_model_dir(run["model_dir"], run["root"], version=1)
    assert hashlib.sha256((run["v1"] / "saved_model.pb").read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in run["root"].iterdir()) == ["1", "2"]
    # An explicit version, then --overwrite replaces it (and only with --overwrite).
    root = tmp_path / "models"
    (root / ".tmp-9-stale").mkdir(parents=True)  # not a version: ignored
    assert export.existing_versions(root) == [] and export.next_version(root) == 1
    first = export.export_from_model_dir(run["model_dir"], root, version=7)
    assert first.name == "7"
    second = export.export_from_model_dir(run["model_dir"], root, checkpoint="latest", version=7, overwrite=True)
    assert second == first
    card = json.loads((second / "assets" / "model_card.json").read_text())
    assert card["source"]["checkpoint"] == "checkpoints/latest.keras" and card["version"] == 7
    assert sorted(p.name for p in root.iterdir()) == [".tmp-9-stale", "7"]


def test_written_beside_target_then_renamed(run, tmp_path, monkeypatch):
    save = tf.saved_model.save
    seen = []

    def spy(obj, path, *args, **kwargs):
        seen.append((Path(path), (root / "1").exists()))
        if len(seen) == 2:  # a half-written second export
            (Path(path) / "saved_model.pb").write_bytes(b"partial")
            raise RuntimeError("disk full")
        save(obj, path, *args, **kwargs)

    monkeypatch.setattr(tf.saved_model, "save", spy)
    from keras_resnet.data.info import DatasetInfo

    root = tmp_path / "m"
    info = DatasetInfo(name="toy", class_names=[f"k{i}" for i in range(10)], image_shape=(32, 32, 3),
                       num_examples={"train": 1}, mean=run["mean"], preprocessing="cifar")
    target = export.export_saved_model(run["model"], root, dataset_info=info)  # as a trainer calls it
    assert (target / "assets" / "labels.txt").read_text().split() == info.class_names
    staged, existed = seen[0]
    assert staged.parent == root.absolute() and staged.name.startswith(".tmp-") and not existed
    assert not staged.exists() and target == root.absolute() / "1"
    # A failure after writing leaves no version and no temporary directory behind.
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_saved_model(run["model"], root, mean=run["mean"], class_names=CLASS_NAMES)
    assert sorted(p.name for p in root.iterdir()) == ["1"]


def test_fails_before_writing_without_checkpoint_or_writable_destination(run, tmp_path, monkeypatch):
    empty = tmp_path / "run"
    (empty / "checkpoints").mkdir(parents=True)
    for name in ("dataset.json", "mean_image.npy", "config.json"):
        (empty / name).write_bytes((run["model_dir"] / name).read_bytes())
    dest = tmp_path / "out" / "resnet8"
    with pytest.raises(export.ExportInputError, match="no checkpoint checkpoints/best.keras"):
        export.export_from_model_dir(empty, dest)
    with pytest.raises(export.ExportInputError, match="latest.keras"):
        export.export_from_model_dir(empty, dest, checkpoint="latest")
    assert not (tmp_path / "out").exists()

    def no_load(*args, **kwargs):
        raise AssertionError("the checkpoint must not be loaded before the destination is checked")

    monkeypatch.setattr(keras.saving, "load_model", no_load)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a directory"):
        export.export_from_model_dir(run["model_dir"], blocker / "models")
    assert blocker.read_text() == "x"
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="not writable"):
            export.export_from_model_dir(run["model_dir"], locked / "models")
        assert list(locked.iterdir()) == []
    # A destination the OS refuses (here a read-only pseudo file system) also fails before loading.
    with pytest.raises(OSError):
        export.export_from_model_dir(run["model_dir"], "/proc/keras_resnet_export_test")


def test_bad_arguments_fail_before_writing(run, tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(ValueError, match="checkpoint"):
        export.export_from_model_dir(run["model_dir"], dest, checkpoint="last")
    with pytest.raises(ValueError, match="version"):
        export.export_saved_model(run["model"], dest, mean=run["mean"], version=0)
    with pytest.raises(ValueError, match=r"mean.*\(32, 32, 3\)"):
        export.export_saved_model(run["model"], dest, mean=np.zeros((16, 16, 3)))
    with pytest.raises(ValueError, match="10 classes"):
        export.export_saved_model(run["model"], dest, mean=run["mean"], class_names=["a", "b"])
    headless = keras_resnet.build("resnet8", include_top=False, pooling="avg")
    with pytest.raises(ValueError, match="predictions"):
        export.export_saved_model(headless, dest, mean=run["mean"])
    assert not dest.exists()


# --------------------------------------------------------------------------------------------------------
# Signatures, as a serving process sees them


def test_saved_model_cli_lists_the_three_signatures(run):
    returncode, stdout, stderr = run["saved_model_cli"]  # `saved_model_cli show --dir <v1> --all`
    assert returncode == 0, stderr[-2000:]
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:(.*?)(?=signature_def\[|\Z)", stdout, re.S))
    assert set(export.SIGNATURES) <= set(blocks)

    def tensors(text):
        return {m[0]: (m[1], m[2]) for m in re.findall(r"\w+\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\S+)", text)}

    outputs = {"probabilities": ("DT_FLOAT", "(-1,"), "classes": ("DT_INT64", "(-1)"), "class_names": ("DT_STRING", "(-1)")}
    expected_inputs = {"serving_default": ("DT_UINT8", "(-1,"), "serve_bytes": ("DT_STRING", "(-1)"),
                       "logits": ("DT_FLOAT", "(-1,")}
    for name, (dtype, shape) in expected_inputs.items():
        found = tensors(blocks[name])
        assert found["images"][0] == dtype
        for key, (out_dtype, _) in outputs.items():
            assert found[key][0] == out_dtype, (name, key)
    assert "shape: (-1, 32, 32, 3)" in blocks["serving_default"].split("output(s)")[0]
    assert "shape: (-1, 32, 32, 3)" in blocks["logits"].split("output(s)")[0]
    assert "shape: (-1, 10)" in blocks["serving_default"].split("output(s)")[1]


def test_serving_process_imports_neither_keras_nor_keras_resnet(run):
    assert run["info"]["imported"] == []
    assert 'sys.modules["keras"] = sys.modules["keras_resnet"] = None' in SERVING_SCRIPT  # blocked, not absent


def test_serving_default_matches_keras_on_same_preprocessed_input(run):
    served = run["served"]
    assert len(served["pixels"]) >= 10, run["source"]
    probabilities, _ = _keras_reference(run["model"], served["pre"])
    np.testing.assert_allclose(served["sd_probabilities"], probabilities, atol=1e-5, rtol=0)
    assert served["sd_probabilities"].dtype == np.float32
    assert served["sd_classes"].dtype == np.int64
    np.testing.assert_array_equal(served["sd_classes"], probabilities.argmax(-1))
    assert run["info"]["sd_class_names"] == [CLASS_NAMES[i] for i in served["sd_classes"]]
    np.testing.assert_array_equal(served["mean_image"], run["mean"])  # the mean image lives in the SavedModel


def test_preprocessing_is_the_training_formula(run):
    from keras_resnet.data.preprocessing import normalize

    np.testing.assert_array_equal(run["served"]["pre"], normalize(run["served"]["pixels"], run["mean"]))


def test_serve_bytes_equals_serving_default(run):
    served = run["served"]
    assert set(run["info"]["sd_class_names"]) <= set(CLASS_NAMES)
    # JPEG decoded in the graph exactly as Pillow decodes it for training; PNG is lossless
    for encoding in ("jpeg", "png"):
        np.testing.assert_array_equal(served[f"{encoding}_probabilities"], served["sd_probabilities"])
        np.testing.assert_array_equal(served[f"{encoding}_classes"], served["sd_classes"])
        assert run["info"][f"{encoding}_class_names"] == run["info"]["sd_class_names"]


def test_logits_signature(run):
    served = run["served"]
    _, logits = _keras_reference(run["model"], served["pre"])
    np.testing.assert_allclose(served["lg_logits"], logits, atol=1e-5, rtol=0)
    softmax = tf.nn.softmax(served["lg_logits"]).numpy()
    np.testing.assert_allclose(served["lg_probabilities"], softmax, atol=1e-6, rtol=0)
    np.testing.assert_allclose(served["sd_probabilities"], softmax, atol=1e-6, rtol=0)


def test_rest_request_bodies_give_the_same_answers(run):
    served, info = run["served"], run["info"]
    for body, count in (("rest_bytes", len(served["pixels"])), ("rest_pixels", 3)):
        rows = info[body]["predictions"]
        assert len(rows) == count
        np.testing.assert_allclose([r["probabilities"] for r in rows], served["sd_probabilities"][:count], atol=1e-6)
        assert [r["classes"] for r in rows] == served["sd_classes"][:count].tolist()
        assert [r["class_names"] for r in rows] == [CLASS_NAMES[i] for i in served["sd_classes"][:count]]


def test_mixed_precision_checkpoint_exports_float32(run):
    info, served = run["info"], run["served"]
    assert info["v2_variable_dtypes"] == ["float32"]
    convs = [layer for layer in run["model"].layers if isinstance(layer, keras.layers.Conv2D)]
    # BN folded into each convolution (kernel + bias), the classifier's kernel and bias, and the mean image.
    assert info["v2_variable_count"] == 2 * len(convs) + 2 + 1
    card = json.loads((run["v2"] / "assets" / "model_card.json").read_text())
    assert card["training_dtype_policy"] == "mixed_float16" and card["export_dtype"] == "float32"
    probabilities, _ = _keras_reference(run["model"], served["pre"])
    np.testing.assert_allclose(served["v2_probabilities"], probabilities, atol=1e-5, rtol=0)


def _graph_nodes(version_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(version_dir) / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    for function in graph.library.function:
        yield function.attr, function.node_def
    yield {}, graph.node


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_no_xla_and_no_half_precision_in_the_graph(run, version):
    half = {tf.float16.as_datatype_enum, tf.bfloat16.as_datatype_enum}
    for attrs, nodes in _graph_nodes(run[version]):
        assert not attrs.get("_XlaMustCompile", tf.compat.v1.AttrValue()).b
        for node in nodes:
            assert not node.op.startswith("Xla"), node.op
            assert not node.attr["_XlaMustCompile"].b, node.name
            for key in ("T", "dtype", "DstT", "SrcT"):
                assert node.attr[key].type not in half, (node.name, key)


def test_bad_input_names_the_expected_spec(run):
    errors = run["info"]["errors"]
    for case in ("rank3", "channels1", "size28", "rank5"):
        assert errors[case] is not None and SPEC_32 in errors[case], (case, errors[case])
    assert "received shape" in errors["rank3"] and "[32 32 3]" in errors["rank3"]
    assert "[2 32 32 1]" in errors["channels1"] and "[2 28 28 3]" in errors["size28"]
    assert re.search(r"expected to be a uint8 tensor but is a float tensor", errors["dtype"])
    assert "serve_bytes expects string [None]" in errors["bytes_rank2"]
    assert re.search(r"expected to be a string tensor", errors["bytes_dtype"])
    assert "logits expects float32 [None, 32, 32, 3]" in errors["logits_shape"]
    assert re.search(r"expected to be a float tensor", errors["logits_dtype"])


def test_undecodable_bytes_name_the_batch_element(run):
    errors = run["info"]["errors"]
    assert "cannot decode batch element(s)] [1 3]" in errors["bytes_garbage"], errors["bytes_garbage"]
    assert "not a JPEG or PNG image" in errors["bytes_garbage"]
    # A truncated JPEG has a valid header: TensorFlow's decoder reports it (without the element index).
    assert errors["bytes_corrupt"] is not None and "InvalidArgumentError" in errors["bytes_corrupt"]
    assert re.search(r"batch element\] \[2\].*\[28 28\].*expects 32x32", errors["bytes_size"]), errors["bytes_size"]


# --------------------------------------------------------------------------------------------------------
# ImageNet-style export through the command line: any input size, shorter side + centre crop in the graph


def test_cli_imagenet_geometry_any_size(tmp_path, capsys):
    from keras_resnet.data.augment import imagenet_eval_geometry

    model_dir = tmp_path / "run"
    model, mean = _write_model_dir(model_dir, preprocessing="imagenet", seed=3)
    dest = tmp_path / "saved_models" / "imagenet8"
    assert export.main([f"--model_dir={model_dir}", f"--export_dir={dest}", "--checkpoint", "latest"]) == 0
    assert capsys.readouterr().out.strip() == str(dest.absolute() / "1")
    loaded = tf.saved_model.load(str(dest / "1"))
    sd, sb = loaded.signatures["serving_default"], loaded.signatures["serve_bytes"]
    assert sd.structured_input_signature[1]["images"].shape.as_list() == [None, None, None, 3]
    rng = np.random.default_rng(0)
    sizes = [(45, 60), (80, 37)]
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in sizes]
    # The crop size is the model's 32; the shorter side goes to round(32 * 256 / 224) = 37.
    crops = np.stack([imagenet_eval_geometry(tf.constant(i), 37, 32).numpy() for i in images])
    reference = model.predict((crops - mean) * np.float32(1 / 255), verbose=0)
    per_image = np.concatenate([sd(images=tf.constant(i[None]))["probabilities"].numpy() for i in images])
    np.testing.assert_allclose(per_image, reference, atol=1e-5, rtol=0)
    mixed_sizes = sb(images=tf.constant([_png(i) for i in images]))  # one batch, two sizes
    # The same pixels reach the network (a batch of 2 here, of 1 above): equal up to the last bits that
    # oneDNN's convolutions may round differently for another batch size (1.6e-7 seen on an AVX2 EPYC).
    np.testing.assert_allclose(mixed_sizes["probabilities"].numpy(), per_image, atol=1e-6, rtol=0)
    card = json.loads((dest / "1" / "assets" / "model_card.json").read_text())
    assert card["preprocessing"]["kind"] == "imagenet" and card["preprocessing"]["mean_shape"] == [1, 1, 3]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"serving_default expects uint8 \[None, None, None, 3\]"):
        sd(images=tf.zeros([1, 40, 40, 4], tf.uint8))
    # Command-line errors exit non-zero with the reason and write nothing.
    with pytest.raises(SystemExit) as exit_info:
        export.main([f"--model_dir={tmp_path / 'missing'}", f"--export_dir={tmp_path / 'x'}"])
    assert exit_info.value.code == 2 and "missing: no such directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        export.main([f"--model_dir={model_dir}", f"--export_dir={dest}", "--version", "1"])
    assert exit_info.value.code == 1 and "--overwrite" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and export.existing_versions(dest) == [1]


# --------------------------------------------------------------------------------------------------------
# The command line's absl flags and exit codes; the fault sites of publishing a version


@pytest.mark.parametrize("argv, message", [
    ([], "required: --model_dir, --export_dir"),
    (["--model_dir=run"], "required: --export_dir"),
    (["--model_dir=run", "--export_dir=out", "--checkpoint=last"], "--checkpoint=last: value should be one of"),
    (["--model_dir=run", "--export_dir=out", "--version=abc"], "--version=abc"),
    (["--model_dir=run", "--export_dir=out", "--bogus"], "Unknown command line flag 'bogus'"),
    (["--model_dir=run", "--export_dir=out", "extra"], "unrecognized arguments: extra"),
])
def test_cli_bad_command_line_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        export.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "usage: python -m keras_resnet.export" in err, err
    assert list(tmp_path.iterdir()) == []


def test_cli_flags_stay_out_of_absl_global_flags(capsys):
    from absl import flags

    before = set(flags.FLAGS)
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert all(f"--{name}" in out for name in ("model_dir", "export_dir", "version", "checkpoint")), out
    assert "--[no]overwrite" in out and set(flags.FLAGS) == before


def test_python_m_export_beside_the_trainer_flags(tmp_path):
    """`python -m keras_resnet.export` (its `__main__`) in a process that already holds the trainers'
    absl flags (`--model_dir`, ...): no duplicate flag, exit 2 for a missing --model_dir and for a bad command."""
    script = textwrap.dedent(f"""
        import runpy, sys
        import trainers.cifar  # noqa: F401  (defines --model_dir, ... in absl's global FLAGS)
        codes = []
        for argv in (["--model_dir={tmp_path / 'missing'}", "--export_dir={tmp_path / 'out'}"], []):
            sys.argv = ["keras_resnet.export", *argv]
            try:
                runpy.run_module("keras_resnet.export", run_name="__main__", alter_sys=True)
            except SystemExit as stop:
                codes.append(stop.code)
        print("codes", codes)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240,
                            cwd=REPO, env=dict(os.environ, **QUIET_ENV))
    assert "codes [2, 2]" in result.stdout, result.stderr[-3000:]
    assert "missing: no such directory" in result.stderr and "required: --model_dir, --export_dir" in result.stderr
    assert not (tmp_path / "out").exists()


def test_publishing_marks_its_fault_sites(tmp_path, monkeypatch):
    from keras_resnet.export import versions

    log = tmp_path / "hits.log"
    monkeypatch.setenv("KERAS_RESNET_FAULT_LOG", str(log))
    root = tmp_path / "models"

    def stage(text):
        staging = versions.Staging(*versions.plan_destination(root, 1, overwrite=True))
        (staging.path / "saved_model.pb").write_text(text)
        return staging

    stage("old").publish(overwrite=False)
    stage("new").publish(overwrite=True)
    hits = [line.split() for line in log.read_text().splitlines()]
    assert [site for site, _ in hits] == ["export.version_written", "export.version_written", "export.overwrite"]
    # A full disk injected at the rename: the complete temporary directory is not published.
    monkeypatch.setenv("KERAS_RESNET_FAULT", f"export.version_written@{int(hits[1][1]) + 1}:enospc")
    staging = stage("newer")
    with pytest.raises(OSError, match="No space left on device"):
        staging.publish(overwrite=True)
    staging.abort()
    assert (root / "1" / "saved_model.pb").read_text() == "new" and [p.name for p in root.iterdir()] == ["1"]
