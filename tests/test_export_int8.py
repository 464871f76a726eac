"""int8 exports (`--quantize=int8`): calibrated on training images, gated on top-1, served without keras_resnet.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the CIFAR-10 ResNet-20 of
section 4.2, here with akamaster's published weights, `../shared`).

A small real CIFAR-10 folder is made from the shared test archive (PNG copies of the decoded JPEGs, so the
pixels are exactly those JPEGs'): `train/` holds the first 32 images of each class (320, the calibration
pool) and `test/` the next 100 of each (1,000, the evaluation split). The pretrained ResNet-20 is exported by
the command line as a float SavedModel and as int8 ONNX and OpenVINO IR; a process that cannot import keras or
keras_resnet serves the 1,000 test images through each, at batch 1000 and one image at a time for 10.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import AKAMASTER, CIFAR_CLASSES, QUIET_ENV, write_real_cifar_folder

pytest.importorskip("tensorflow")
pytest.importorskip("onnxruntime")

CALIBRATION_IMAGES = 200

SERVE_SCRIPT = r'''
import sys
sys.modules["keras"] = sys.modules["keras_resnet"] = None  # a serving process: neither can be imported
import numpy as np
import onnxruntime
import openvino
import tensorflow as tf

root, images_path, out = sys.argv[1:4]
images = np.load(images_path)
saved = tf.saved_model.load(root + "/1").signatures["serving_default"]
session = onnxruntime.InferenceSession(root + "/onnx/1/model.onnx", providers=["CPUExecutionProvider"])
compiled = openvino.Core().compile_model(root + "/openvino/1/model.xml", "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
def run_all(x):
    return {"saved": saved(images=tf.constant(x))["probabilities"].numpy(),
            "onnx": session.run(["logits"], {"image": x})[0],
            "openvino": compiled(x)[compiled.output("logits")]}
batch = run_all(images)
single = [run_all(images[i:i + 1]) for i in range(10)]
arrays = {f"batch_{k}": v for k, v in batch.items()}
arrays.update({f"single_{k}": np.concatenate([s[k] for s in single]) for k in batch})
imported = [m for m in sys.modules if m.split(".")[0] in ("keras", "keras_resnet") and sys.modules[m]]
np.savez(out, imported=np.asarray(imported, dtype=object) if imported else np.zeros(0), **arrays)
'''


@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory):
    """A real CIFAR-10 folder: 32 training and 100 test images per class (see the module docstring)."""
    return write_real_cifar_folder(tmp_path_factory.mktemp("cifar_int8") / "cifar", 32, 100)


@pytest.fixture(scope="module")
def weights_env(tmp_path_factory):
    """KERAS_RESNET_WEIGHTS pointing at the shared akamaster checkpoints, restored afterwards."""
    if not AKAMASTER.is_dir():
        pytest.skip(f"akamaster weights not found at {AKAMASTER} (../shared absent)")
    saved = {k: os.environ.get(k) for k in ("KERAS_RESNET_WEIGHTS", "KERAS_HOME")}
    os.environ.update(KERAS_RESNET_WEIGHTS=str(AKAMASTER), KERAS_HOME=str(tmp_path_factory.mktemp("keras_home")))
    yield
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def folder_arrays(root):
    """`(uint8 images, labels)` of a split folder written by `write_real_cifar_folder`, in its order (Pillow)."""
    from PIL import Image

    images, labels = [], []
    for c, name in enumerate(CIFAR_CLASSES):
        for path in sorted((root / name).iterdir()):
            images.append(np.asarray(Image.open(path).convert("RGB"), np.uint8))
            labels.append(c)
    return np.stack(images), np.asarray(labels, np.int64)


@pytest.fixture(scope="module")
def int8_exports(cifar_folder, weights_env, tmp_path_factory):
    """The float SavedModel and the int8 ONNX and OpenVINO exports of the pretrained ResNet-20 written by the
    command line, and their logits on the 1,000 test images served by a process without keras_resnet."""
    from keras_resnet.export import signal_stack
    from keras_resnet.export.cli import main

    work = tmp_path_factory.mktemp("int8")
    root = work / "resnet20"
    assert main(["--model=resnet20", "--weights=cifar10", f"--export_dir={root}"]) == 0
    stacks = [signal_stack.current()]
    for fmt in ("onnx", "openvino"):
        assert main(["--model=resnet20", "--weights=cifar10", f"--export_dir={root}", f"--format={fmt}",
                     "--quantize=int8", f"--data={cifar_folder}", f"--calibration_images={CALIBRATION_IMAGES}"]) == 0
        stacks.append(signal_stack.current())
    images, labels = folder_arrays(cifar_folder / "test")
    np.save(work / "images.npy", images)
    (work / "serve.py").write_text(SERVE_SCRIPT)
    result = subprocess.run([sys.executable, str(work / "serve.py"), str(root), str(work / "images.npy"),
                             str(work / "served.npz")], capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, **QUIET_ENV))
    assert result.returncode == 0, result.stderr[-3000:]
    return root, dict(np.load(work / "served.npz", allow_pickle=True)), labels, stacks


def top1(logits, labels):
    return float(np.mean(np.argmax(logits, -1) == labels))


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_keeps_top1_within_the_threshold_and_its_card_says_so(int8_exports, fmt):
    root, served, labels, _ = int8_exports
    float_top1, int8_top1 = top1(served["batch_saved"], labels), top1(served[f"batch_{fmt}"], labels)
    assert float_top1 > 0.75  # JPEG q75 CIFAR-10: ~81% for this network
    assert 100 * (float_top1 - int8_top1) <= 0.5
    assert np.mean(served[f"batch_{fmt}"].argmax(1) == served["batch_saved"].argmax(1)) >= 0.97  # the same network
    evaluation = json.loads((root / fmt / "1" / "model_card.json").read_text())[fmt]["quantization"]["evaluation"]
    assert (evaluation["split"], evaluation["images"], evaluation["max_top1_drop_points"]) == ("test", 1000, 0.5)
    assert evaluation["top1_float"] == float_top1  # measured at export time on these very images
    assert evaluation["top1_int8"] == int8_top1
    assert evaluation["runtime"].startswith("onnxruntime" if fmt == "onnx" else "openvino")
    assert served["imported"].size == 0


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_int8_serves_one_image_as_in_a_batch(int8_exports, fmt):
    _, served, _, _ = int8_exports
    single, batch = served[f"single_{fmt}"], served[f"batch_{fmt}"][:10]
    assert single.shape == (10, 10)
    assert np.array_equal(single.argmax(1), batch.argmax(1))
    assert np.abs(single - batch).max() < 1e-3 * np.abs(batch).max()


def test_the_int8_graph_is_quantized_per_channel_with_uint8_input(int8_exports):
    import onnx

    root = int8_exports[0]
    graph = onnx.load(str(root / "onnx" / "1" / "model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("Conv") == 19 and ops.count("QuantizeLinear") > 19 and ops.count("DequantizeLinear") > 19  # option A: 19 convs
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    initializers = {t.name: t for t in graph.initializer}
    per_channel = [initializers[n.input[1]] for n in graph.node if n.op_type == "DequantizeLinear"
                   and n.input[0] in initializers and initializers[n.input[0]].data_type == onnx.TensorProto.INT8]
    assert len(per_channel) >= 19 and all(len(t.dims) == 1 and t.dims[0] > 1 for t in per_channel[:19])
    assert sorted(p.name for p in (root / "openvino" / "1").iterdir()) == ["labels.txt", "model.bin", "model.xml",
                                                                          "model_card.json"]


def mapped(address):
    """Whether `address` lies in a mapping of this process (/proc/self/maps)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        start, end = (int(bound, 16) for bound in line.split()[0].split("-"))
        if start <= address < end:
            return True
    return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/self/maps (Linux)")
def test_the_exports_leave_the_threads_signal_stack_as_they_found_it(int8_exports):
    # OpenVINO's compiled models (the gate makes two) restored a freed alternate signal stack on this thread, so
    # the next SIGINT / SIGTERM crashed the process (it did: the stop-request test after this file, in one worker)
    before, *after = int8_exports[3]
    assert after == [before, before]  # after the int8 ONNX export and after the int8 OpenVINO one
    address, flags, size = before
    assert flags & 2 or (size > 0 and mapped(address) and mapped(address + size - 1))  # SS_DISABLE, or live memory


def test_the_card_records_the_calibration_set(int8_exports, cifar_folder):
    import hashlib

    root = int8_exports[0]
    card = json.loads((root / "onnx" / "1" / "model_card.json").read_text())
    section = card["onnx"]["quantization"]
    calibration = section["calibration"]
    assert (calibration["source"], calibration["split"], calibration["images"], calibration["seed"]) == (
        str(cifar_folder), "train", CALIBRATION_IMAGES, 0)
    images, labels = folder_arrays(cifar_folder / "train")  # the 320 images in the folder's order
    drawn = np.sort(np.random.default_rng(0).choice(len(images), CALIBRATION_IMAGES, replace=False))
    digest = hashlib.sha256(images[drawn].tobytes())
    digest.update(labels[drawn].tobytes())
    assert calibration["sha256"] == digest.hexdigest()
    assert section["dtype"] == "int8" and "per output channel" in section["method"] and "MinMax" in section["method"]
    ov = json.loads((root / "openvino" / "1" / "model_card.json").read_text())["openvino"]
    assert ov["quantization"]["calibration"] == calibration and ov["precision"].startswith("int8")


def test_an_int8_export_that_loses_too_much_is_refused(cifar_folder, weights_env, tmp_path, capsys):
    from keras_resnet.export.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--model=resnet20", "--weights=cifar10", f"--export_dir={tmp_path / 'm'}", "--format=onnx",
              "--quantize=int8", f"--data={cifar_folder}", "--calibration_images=40", "--max_top1_drop=-100"])
    assert exit_info.value.code == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("int8: ")]
    assert len(err) == 1, err
    assert "fell from" in err[0] and "% (float) to" in err[0] and "% (int8)" in err[0]
    assert "--max_top1_drop=-100" in err[0] and "test split" in err[0] and "1,000 images" in err[0]
    assert not (tmp_path / "m" / "onnx").exists() or not any((tmp_path / "m" / "onnx").iterdir())


@pytest.mark.parametrize("args, message", [
    (["--format=saved_model"], "--quantize=int8 applies to --format=onnx or --format=openvino; received "
                               "--format=saved_model"),
    (["--format=litert"], "received --format=litert"),
    (["--format=onnx"], "--quantize=int8 with --model needs --data"),
    (["--format=onnx", "--data=x", "--calibration_images=0"], "--calibration_images must be a positive number"),
])
def test_int8_command_line_mistakes_are_one_line_exit_2(tmp_path, capsys, args, message):
    from keras_resnet.export.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--model=resnet20", "--weights=cifar10", f"--export_dir={tmp_path}", "--quantize=int8", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not any(tmp_path.iterdir())


def test_int8_flags_need_quantize(tmp_path, capsys):
    from keras_resnet.export.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--model=resnet20", "--weights=cifar10", f"--export_dir={tmp_path}", "--format=onnx", "--data=x",
              "--max_top1_drop=1"])
    assert exit_info.value.code == 2
    assert "--data, --max_top1_drop: only with --quantize=int8" in capsys.readouterr().err


def test_missing_calibration_data_names_the_flag(weights_env, tmp_path, capsys):
    from keras_resnet.export.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--model=resnet20", "--weights=cifar10", f"--export_dir={tmp_path / 'm'}", "--format=onnx",
              "--quantize=int8", f"--data={tmp_path / 'nowhere'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"python -m keras_resnet.export: error: --data={tmp_path / 'nowhere'}: ")
    assert not (tmp_path / "m" / "onnx").exists() or not any((tmp_path / "m" / "onnx").iterdir())


def test_load_draws_a_seeded_sample_in_the_splits_order(cifar_folder):
    from keras_resnet import data

    def drawn(seed, sample=50):
        ds, info = data.load(str(cifar_folder), "train", 64, training=False, mean=np.zeros((1, 1, 3), np.float32),
                             sample=sample, seed=seed)
        batches = list(ds.as_numpy_iterator())
        return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]), info

    images, labels = folder_arrays(cifar_folder / "train")
    x, y, info = drawn(0)
    index = np.sort(np.random.default_rng(0).choice(320, 50, replace=False))
    assert info.num_examples == {"train": 50} and x.shape == (50, 32, 32, 3)
    assert np.array_equal(np.rint(x * 255).astype(np.uint8), images[index]) and np.array_equal(y, labels[index])
    assert np.array_equal(drawn(0)[0], x) and not np.array_equal(drawn(1)[0], x)
    assert drawn(0, sample=1000)[0].shape[0] == 320  # more than the split: all of it
    with pytest.raises(ValueError, match="`sample` must be a positive int or None; received 0"):
        drawn(0, sample=0)


def test_a_runs_int8_plan_takes_the_runs_data_unless_data_is_given():
    from keras_resnet.export.int8 import Int8Plan

    config = {"data": "/data/cifar", "data_dir": "/tfds", "validation_split": 5000.0}
    plan = Int8Plan(calibration_images=64).for_run(config)
    assert (plan.data, plan.data_dir, plan.validation_size, plan.calibration_images) == ("/data/cifar", "/tfds",
                                                                                         5000.0, 64)
    assert Int8Plan(data="/mine").for_run(config).data == "/mine"
    with pytest.raises(ValueError, match=r"^--quantize=int8 needs --data \(the images to calibrate on and evaluate "
                                         r"with\): the run's config.json records no data source\.$"):
        Int8Plan().for_run({})
    with pytest.raises(ValueError, match="--max_top1_drop must be a number of top-1 points; received nan"):
        Int8Plan(data="x", max_top1_drop=float("nan")).checked()


def test_the_python_api_refuses_int8_for_float_only_formats(tmp_path):
    import keras_resnet
    from keras_resnet.export import export_model
    from keras_resnet.export.int8 import Int8Plan

    with pytest.raises(ValueError, match="--quantize=int8 applies to --format=onnx or --format=openvino; received "
                                         "--format=litert"):
        export_model("litert", keras_resnet.build("resnet8"), tmp_path, mean=np.zeros((32, 32, 3)),
                     quantization=Int8Plan(data="x"))
    assert not any(tmp_path.iterdir())


def test_kept_puts_back_the_signal_stack_a_library_replaced_inside():
    import ctypes

    from keras_resnet.export import signal_stack

    class Stack(ctypes.Structure):  # stack_t
        _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]

    before = signal_stack.current()
    buffer = ctypes.create_string_buffer(65536)
    with signal_stack.kept():
        replaced = Stack(ctypes.cast(buffer, ctypes.c_void_p), 0, len(buffer))
        assert ctypes.CDLL(None).sigaltstack(ctypes.byref(replaced), None) == 0
        assert signal_stack.current() == (ctypes.addressof(buffer), 0, 65536)
    assert signal_stack.current() == before
