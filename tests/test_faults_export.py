"""The export under the fault harness (issue 16): `python -m keras_resnet.export` killed at each of its
sites, out of disk space, and an `--overwrite` killed half-way; with no timer.

Invariants after every attempt: every numeric version directory (what TF Serving sees) is complete and
loads; a published version is never changed by a rerun without `--overwrite`; with `--overwrite` the
version number is never empty; no staging directory survives the clean rerun.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, env
from faults.harness import enospc, kill, run_with_faults, temporaries
from faults.invariants import ONNX_FILES, Loaded, check_versions

pytest.importorskip("tensorflow")

CLASSES = ["cat", "dog", "emu"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A training run's model_dir (docs/CONTRACTS.md) with an untrained ResNet-8 on 8x8 images."""
    import keras_resnet

    path = tmp_path_factory.mktemp("run")
    (path / "checkpoints").mkdir()
    model = keras_resnet.build("resnet8", input_shape=(8, 8, 3), classes=len(CLASSES))
    model.save(path / "checkpoints" / "best.keras")
    np.save(path / "mean_image.npy", np.full((8, 8, 3), 120.0, np.float32))
    dataset = {"name": "toy", "class_names": CLASSES, "image_shape": [8, 8, 3], "num_examples": {"train": 96},
               "mean": None, "preprocessing": "cifar", "num_skipped": {}}
    (path / "dataset.json").write_text(json.dumps(dataset))
    return path


@pytest.fixture(scope="module")
def loaded():
    return Loaded()


def export_command(model_dir, root, *extra):
    return [sys.executable, "-m", "keras_resnet.export", f"--model_dir={model_dir}", f"--export_dir={root}", *extra]


def test_killed_or_out_of_space_export_never_shows_a_partial_version(model_dir, loaded, tmp_path):
    root = tmp_path / "models"

    def nothing_published_until_the_end(attempt):
        versions = check_versions(root, loaded)
        assert list(versions) == ([1] if attempt.fault is None else []), versions

    run_with_faults(export_command(model_dir, root), [
        kill("export.saved_model_written"),   # the SavedModel in the staging directory, no labels or card yet
        enospc("export.saved_model_written"),  # disk full there: staging removed, exit 5
        kill("export.version_written"),       # staging complete, not yet renamed to 1
    ], workdir=tmp_path, watched=[root], check=nothing_published_until_the_end)
    assert sorted(p.name for p in root.iterdir()) == ["1"]  # the killed stagings were swept
    card = json.loads((root / "1" / "assets" / "model_card.json").read_text())
    assert card["version"] == 1 and (root / "1" / "assets" / "labels.txt").read_text().split() == CLASSES

    # A rerun without --overwrite never touches the published version (the real CLI, in process).
    from keras_resnet.export import cli

    published = loaded.version(root / "1")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([f"--model_dir={model_dir}", f"--export_dir={root}", "--version=1"])
    assert exit_info.value.code == 1 and loaded.version(root / "1") == published

    # --overwrite killed before and after its swap: version 1 is there, complete, at every moment.
    def version_one_never_empty(attempt):
        assert list(check_versions(root, loaded)) == [1]

    run_with_faults(export_command(model_dir, root, "--version=1", "--overwrite"), [
        kill("export.version_written"),       # the new version staged, the old one still published
        kill("export.overwrite"),             # swapped in, the old one not yet removed
    ], workdir=tmp_path / "overwrite", watched=[root], check=version_one_never_empty)
    assert sorted(p.name for p in root.iterdir()) == ["1"]


def test_killed_onnx_export_leaves_no_partial_version(model_dir, loaded, tmp_path):
    pytest.importorskip("onnx")
    root = tmp_path / "models"

    def check(attempt):
        versions = check_versions(root / "onnx", loaded, files=ONNX_FILES)
        assert list(versions) == ([1] if attempt.fault is None else []), versions

    run_with_faults(export_command(model_dir, root, "--format=onnx"), [kill("export.onnx_written")],
                    workdir=tmp_path, watched=[root], check=check)
    assert sorted(p.name for p in (root / "onnx").iterdir()) == ["1"]


def dead_pid():
    """The id of a process that has exited (its number is not reused this soon)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_overwrite_without_atomic_exchange_is_repaired_by_the_next_export(tmp_path, capsys):
    from keras_resnet.export import versions

    root = tmp_path / "models"
    (root / "1").mkdir(parents=True)
    (root / "1" / "saved_model.pb").write_text("old")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from keras_resnet.export import versions\n"
        "versions.exchange = lambda a, b: False  # a file system without renameat2(RENAME_EXCHANGE)\n"
        "staging = versions.Staging(*versions.plan_destination(sys.argv[1], 1, overwrite=True))\n"
        "(staging.path / 'saved_model.pb').write_text('new')\n"
        "staging.publish(overwrite=True)\n")
    killed = subprocess.run([sys.executable, "-c", script, str(root)], cwd=REPO, capture_output=True, text=True,
                            env=env(KERAS_RESNET_FAULT="export.overwrite"))
    assert killed.returncode == -9, killed.stderr[-2000:]
    left = sorted(p.name for p in root.iterdir())
    assert "1" not in left and [name[:len(".tmp-old-1-")] for name in left if "old" in name] == [".tmp-old-1-"]
    versions.plan_destination(root, None, overwrite=False)  # the next export repairs it first
    assert (root / "1" / "saved_model.pb").read_text() == "old"
    assert sorted(p.name for p in root.iterdir()) == ["1"]  # the dead exporter's staging removed too
    assert "was missing (an overwrite was killed half-way); restored the previous version" in capsys.readouterr().err


def test_recover_removes_only_dead_exporters_directories_on_this_host(tmp_path):
    from keras_resnet.export import versions

    root = tmp_path / "models"
    names = {
        "dead": f".tmp-next-{versions.HOST}-{dead_pid()}-abc",
        "dead_old": f".tmp-old-2-{versions.HOST}-{dead_pid()}-abc",
        "alive": f".tmp-3-{versions.HOST}-{os.getpid()}-abc",
        "other_host": f".tmp-next-{'0' * 8 if versions.HOST != '0' * 8 else '1' * 8}-{dead_pid()}-abc",
        "unknown": ".tmp-9-stale",
    }
    for name in names.values():
        (root / name).mkdir(parents=True)
    (root / "2").mkdir()
    assert versions.recover(root) == []
    assert sorted(p.name for p in root.iterdir()) == sorted(["2", names["alive"], names["other_host"],
                                                             names["unknown"]])
    assert temporaries(root)  # the live and foreign ones are still there, by design
