"""The pieces the fault harness relies on, one at a time: atomic writers and storage errors
(`keras_resnet.faults`), export-once records (`keras_resnet.export.versions.publish_once`), checkpoint
checks (`keras_resnet.training.rundir`), and the pretrained-weights cache under a kill."""

import errno
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO, env
from faults.harness import check_fired, kill, run_attempt

from keras_resnet import atomic, faults


def test_replacing_publishes_atomically_and_a_failure_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "log.csv"
    target.write_text("old")
    with atomic.replacing(target, moment="csv.replace") as tmp:
        assert tmp == f"{target}.tmp-{os.getpid()}"  # unique to the writer
        open(tmp, "w").write("new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]
    monkeypatch.setenv(faults.FAULT_ENV, "test.replacing:enospc")  # a site of its own: its first hit
    with pytest.raises(faults.StorageError) as raised:
        with atomic.replacing(target, moment="test.replacing") as tmp:
            open(tmp, "w").write("newer")
    assert str(raised.value) == f"cannot write {target}: No space left on device"
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(target)
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]
    with pytest.raises(ZeroDivisionError):  # any other error: re-raised as it is, temporary removed
        with atomic.replacing(target) as tmp:
            open(tmp, "w").write("x")
            1 / 0
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_storage_errors_are_recognised_through_wrappers_and_described_in_one_line():
    class TensorFlowLikeError(Exception):  # TensorFlow's file errors are not OSErrors
        pass

    assert faults.is_storage_error(TensorFlowLikeError("write failed: No space left on device"))
    assert faults.is_storage_error(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not faults.is_storage_error(OSError(errno.ENOENT, "No such file or directory"))
    assert not faults.is_storage_error(ValueError("bad value"))
    try:
        try:
            raise faults.StorageError(errno.ENOSPC, "No space left on device", "/run/backup/latest.weights.h5")
        except OSError as inner:
            raise RuntimeError("a trial failed") from inner
    except RuntimeError as outer:
        line = faults.describe_storage_error(outer)
    assert line.startswith("cannot write /run/backup/latest.weights.h5: No space left on device (ENOSPC).")
    assert "\n" not in line and "rerun the same command" in line
    assert faults.describe_storage_error(OSError(errno.ENOSPC, "injected"), "/models").startswith(
        "cannot write /models: No space left on device (ENOSPC)")


def test_publish_once_records_the_version_first_and_never_exports_a_key_twice(tmp_path):
    from keras_resnet.export import versions

    root, record, calls = tmp_path / "models", tmp_path / "run" / "export.json", []
    record.parent.mkdir()

    def export(version):
        calls.append(version)
        (root / str(version)).mkdir(parents=True)
        return root / str(version)

    assert versions.publish_once(record, root, {"iterations": 8}, export) == (root / "1", True)
    assert json.loads(record.read_text()) == {"key": {"iterations": 8}, "export_root": str(root), "version": 1}
    assert versions.publish_once(record, root, {"iterations": 8}, export) == (root / "1", False)
    (root / "1").rmdir()  # the recorded version is gone: exported again under its number
    assert versions.publish_once(record, root, {"iterations": 8}, export) == (root / "1", True)
    assert versions.publish_once(record, root, {"iterations": 16}, export) == (root / "2", True)  # a new key
    assert calls == [1, 1, 2]

    def full(version):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(faults.StorageError, match=f"cannot write {root / '3'}"):
        versions.publish_once(record, root, {"iterations": 24}, full)


def test_checkpoint_problems_are_named_without_loading(tmp_path):
    import zipfile

    from keras_resnet.training.rundir import checkpoint_problem

    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip")
    assert checkpoint_problem(garbage, "resnet8").startswith("is not a readable .keras archive (BadZipFile")
    other = tmp_path / "other.keras"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("config.json", json.dumps({"config": {"name": "resnet20"}}))
    assert checkpoint_problem(other, "resnet8") == "holds another model ('resnet20'; this run trains 'resnet8')"
    assert checkpoint_problem(other, "resnet20") is None


def test_weights_cache_never_holds_a_truncated_file_under_its_final_name(tmp_path):
    pytest.importorskip("h5py")
    script = (
        "import sys\n"
        "import keras_resnet\n"
        "from keras_resnet.weights.assign import write_weights\n"
        "model = keras_resnet.build('resnet8', input_shape=(8, 8, 3), classes=3)\n"
        "write_weights(model, sys.argv[1], {'written': sys.argv[2]})\n")
    path = tmp_path / "cache" / "resnet8.weights.h5"
    first = subprocess.run([sys.executable, "-c", script, str(path), "first"], cwd=REPO, env=env(),
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    killed = run_attempt([sys.executable, "-c", script, path, "second"], kill("weights.cache_write"), 0, tmp_path)
    check_fired(killed)
    from keras_resnet.weights.assign import read_metadata

    assert read_metadata(path) == {"written": "first"}  # the previous file, whole, under the final name
    again = subprocess.run([sys.executable, "-c", script, str(path), "third"], cwd=REPO, env=env(),
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert read_metadata(path) == {"written": "third"}


def test_temporaries_are_the_writers_own_and_a_killed_writers_are_removed_at_the_next_start(tmp_path):
    from keras_resnet.training.rundir import remove_stale_temporaries

    run = tmp_path / "run"
    finals = ["log.csv", "config.json", "curves.png", "checkpoints/latest.keras", "backup/latest.weights.h5",
              "backup/latest.weights.h5.bkp", "logs/train/events.out.tfevents.1.host"]
    for name in finals:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("kept")
    mine = {name: atomic.temporary_name(run / name, keep_suffix=name.endswith((".keras", ".h5", ".png")))
            for name in finals}
    assert len(set(mine.values())) == len(finals) and all(f"tmp-{os.getpid()}" in path for path in mine.values())
    assert mine["checkpoints/latest.keras"].endswith("latest.keras")  # Keras chooses the format by the suffix
    dead = 2 ** 22 + 1  # the temporaries of a killed writer (another pid), old and new names
    left = [path.replace(f"-{os.getpid()}", f"-{dead}") for name, path in mine.items() if not name.startswith("logs")]
    left += [str(run / "log.csv.tmp"), str(run / "curves.png.tmp.png"), str(run / "backup" / "tmp.weights.h5"),
             str(run / "checkpoints" / ".tmp-latest.keras"), str(run / "logs" / "train" / ".truncating.tmp"),
             str(run / "logs" / "train" / f".truncating.tmp-{dead}")]
    for path in left:
        open(path, "w").write("partial")
    assert sorted(remove_stale_temporaries(str(run))) == sorted(left)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) == sorted(finals)
