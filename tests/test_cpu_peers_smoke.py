"""benchmarks/cpu_peers.py (issue 15) with the smallest settings: an inference row and a latency row in one run
(shared by two tests), tiny batch, one window.

What is checked is the contract of the script, never a speed: every engine (our SavedModel in a process
without `keras_resnet`, PyTorch NCHW and channels_last, ONNX Runtime on both ONNX files) passed the
output-match check against our Keras logits before it was timed, channels_last was in effect, the JSON has
its fields, and a bad flag is exit code 2 naming the flag.
"""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import AKAMASTER, QUIET_ENV, REPO, write_real_cifar_folder

SCRIPT = os.path.join(REPO, "benchmarks", "cpu_peers.py")
MISSING = [name for name in ("torch", "onnxruntime", "onnx", "openvino", "ai_edge_litert")
           if importlib.util.find_spec(name) is None]
COLUMNS = {"ours", "torch_nchw", "torch_cl", "ort_torch", "ort_ours"}
RUNTIME_COLUMNS = {"ort_keras", "ov_torch", "ov_torch_f32", "ov_ours", "ov_ours_f32", "litert_ours", "ort_ours_int8",
                   "ov_ours_int8"}
"""Issue 27: Keras' own ONNX export (tf2onnx), OpenVINO (default precision and f32) on PyTorch's ONNX and our IR,
LiteRT, and the int8 exports."""
LOW_PRECISION = {"ov_torch", "ov_ours", "ort_ours_int8", "ov_ours_int8"}
LATENCY_THREAD_COLUMNS = {"ours_lt", "ort_torch_lt"}
"""`--latency-threads`: our SavedModel and ONNX Runtime again on the batch-1 rows with their own threads."""


def run_peers(tmp_path, *flags, env=None):
    """Runs the script with `flags`, one window and no pause between windows (nothing here is timed); returns
    `(stdout, results JSON)` (exit code 0 asserted)."""
    out = tmp_path / "results.json"
    cmd = [sys.executable, SCRIPT, *flags, "--windows=1", "--window-seconds=0.01", "--pause=0", f"--json={out}",
           f"--work-dir={tmp_path / 'work'}"]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **QUIET_ENV, **(env or {})},
                            cwd=REPO, timeout=900)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result.stdout, json.loads(out.read_text())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One run for the two random-weight tests, its networks prepared and exported once: the tiny inference row
    with every column at 2 threads, and the latency row with its own-thread columns (`--latency-threads=1`)."""
    if MISSING:
        pytest.skip(f"benchmarks/cpu_peers.py needs {', '.join(MISSING)}")
    return run_peers(tmp_path_factory.mktemp("peers"), "--rows=infer20,latency20", "--batch=2", "--threads=2",
                     "--latency-threads=1")


def test_cpu_peers_smoke_one_tiny_row(tiny_run):
    stdout, results = tiny_run
    assert "Checks: all passed" in stdout
    all_columns = COLUMNS | RUNTIME_COLUMNS
    assert {"command", "date_utc", "settings", "environment", "rows", "prepared", "engines", "checks", "targets",
            "checks_ok"} <= set(results)
    assert results["checks_ok"] is True
    assert results["settings"]["threads"] == 2 and results["settings"]["row_batches"]["infer20"] == 2
    assert results["environment"]["versions"]["torch"] and results["environment"]["versions"]["onnxruntime"]
    checks = {check["column"]: check for check in results["checks"]}
    assert set(checks) == all_columns | LATENCY_THREAD_COLUMNS
    assert all(check["ok"] for check in checks.values()), checks
    assert all(checks[c]["relative"] < 1e-4 for c in all_columns - LOW_PRECISION), checks  # float32 engines
    assert all(checks[c]["tolerance"] == 0.1 for c in LOW_PRECISION), checks  # bf16 / int8: loosely, then top-1
    assert checks["ours"]["keras_resnet_imported"] is False
    assert checks["ours"]["serving_default_probabilities"]["ok"] is True
    row = results["rows"]["infer20"]
    assert row["batch"] == 2 and row["unit"] == "img/s" and set(row["cells"]) == all_columns
    for column, cell in row["cells"].items():
        assert cell["check_ok"] is True and len(cell["values"]) == 1 and cell["median"] > 0, column
    assert row["cells"]["torch_cl"]["setup"]["layout"] == {"input": True, "weights": True,
                                                          "first_conv_output": True, "ok": True}
    assert row["cells"]["ours"]["setup"]["input"] == {"dtype": "uint8", "shape": [None, 32, 32, 3]}
    assert {"ours/torch_cl", "ours/ort_torch", "ort_ours/ort_torch", "ort_ours/ort_keras", "ov_ours_int8/ov_torch",
            "fastest_ours/ov_torch"} <= set(row["ratios"])
    assert row["cells"]["ov_torch_f32"]["setup"]["precision"] == "f32"
    assert row["cells"]["litert_ours"]["setup"]["output"] == "probabilities"
    prepared = results["prepared"]["resnet20"]
    assert prepared["torch_parameters"] == prepared["keras_parameters"] == 269722
    assert prepared["int8_calibration"].startswith("synthetic")  # random BN: no accuracy claim
    assert prepared["onnx_keras_exporter"].startswith("keras.Model.export(format='onnx'), tf2onnx")
    assert {"fastest_ours/ov_torch"} <= {t["ratio"] for t in results["targets"]}


def test_cpu_peers_bad_flag_is_exit_2_naming_it():
    result = subprocess.run([sys.executable, SCRIPT, "--rows=infer20,nope"], capture_output=True, text=True,
                            env={**os.environ, **QUIET_ENV}, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert "--rows" in result.stderr and "'infer20,nope'" in result.stderr and "latency50" in result.stderr


def test_cpu_peers_latency_threads_adds_two_checked_columns_with_their_own_threads(tiny_run):
    _, results = tiny_run
    row = results["rows"]["latency20"]
    assert set(row["cells"]) == COLUMNS | RUNTIME_COLUMNS | LATENCY_THREAD_COLUMNS
    assert {check["column"] for check in results["checks"] if check["ok"]} == set(row["cells"])
    assert {"ours_lt/ort_torch", "ours_lt/ort_torch_lt"} <= set(row["ratios"])
    engines = results["engines"]
    assert (engines["serving"]["intra_op_threads"], engines["serving"]["inter_op_threads"]) == (2, 2)
    assert (engines["serving_lt"]["intra_op_threads"], engines["serving_lt"]["inter_op_threads"]) == (1, 1)
    assert (engines["ort"]["intra_op_num_threads"], engines["ort_lt"]["intra_op_num_threads"]) == (2, 1)
    assert engines["serving_lt"]["keras_resnet_imported"] is False
    assert {t["ratio"] for t in results["targets"]} >= {"ours/ort_torch", "ours_lt/ort_torch", "ours_lt/ort_torch_lt"}


@pytest.mark.skipif(bool(MISSING), reason=f"benchmarks/cpu_peers.py needs {', '.join(MISSING)}")
def test_cpu_peers_on_published_weights_measures_every_columns_top1(tmp_path):
    if not AKAMASTER.is_dir():
        pytest.skip(f"akamaster weights not found at {AKAMASTER} (../shared absent)")
    data = write_real_cifar_folder(tmp_path / "cifar", 32, 10)  # 320 calibration images, 100 test images
    columns = ["ort_torch", "ort_ours", "ov_torch", "ort_ours_int8", "ov_ours_int8", "litert_ours"]
    stdout, results = run_peers(tmp_path, "--rows=infer20", "--batch=2", "--threads=1", "--weights=cifar10",
                                f"--data={data}", f"--columns={','.join(columns)}",
                                env={"KERAS_RESNET_WEIGHTS": str(AKAMASTER)})
    assert "Checks: all passed" in stdout
    top1 = {value["column"]: value for value in results["top1"]}
    assert set(top1) == set(columns) and all(value["images"] == 100 for value in top1.values())
    assert all(0.7 <= value["top1"] <= 0.95 for value in top1.values()), top1  # JPEG q75 CIFAR-10: ~81%
    assert top1["ort_torch"]["top1"] == top1["ort_ours"]["top1"] == top1["litert_ours"]["top1"]  # float32 alike
    prepared = results["prepared"]["resnet20"]
    assert prepared["weights"] == "cifar10 (akamaster)"
    gate = prepared["int8_onnx"]["evaluation"]  # measured by the export's own gate on the same 100 images
    assert (gate["images"], gate["split"]) == (100, "test")
    assert gate["top1_float"] == top1["ort_ours"]["top1"] and gate["top1_int8"] == top1["ort_ours_int8"]["top1"]
    assert prepared["int8_openvino"]["evaluation"]["top1_int8"] == top1["ov_ours_int8"]["top1"]
    assert prepared["int8_onnx"]["calibration"]["images"] == 320
    assert "top-1 resnet20 ONNX Runtime int8 (ours):" in stdout


def test_cpu_peers_published_weights_need_data():
    result = subprocess.run([sys.executable, SCRIPT, "--weights=cifar10"], capture_output=True, text=True,
                            env={**os.environ, **QUIET_ENV}, cwd=REPO, timeout=120)
    assert result.returncode == 2 and "--weights=cifar10 needs --data" in result.stderr
