"""Every command-line mistake is one line naming the flag, exit 2, nothing made (issue 24, point 5).

The trainers' mistakes are checked in-process through the library call their `main` makes (`train` with the
`TrainConfig` the flags build), and once through the real process; the export's `--weights` files are in
tests/test_export_pretrained.py.
"""

import pytest

from conftest import make_image_folder, run_cli

from keras_resnet.training import ConfigError, TrainConfig, train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data"), train=96, test=24)


def test_model_dir_naming_a_file_is_refused_naming_the_flag(data, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    with pytest.raises(ConfigError) as error:
        train(TrainConfig(model="resnet8", data=data, model_dir=str(path), train_steps=2))
    assert str(error.value) == (f"--model_dir={path} is a file; accepted: a run directory (a new one, or one to "
                                "resume).")
    assert path.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("split, held_out", [(999999, 999999), (96, 96), (0.999, 96)])
def test_validation_split_beyond_the_data_names_the_flag_and_makes_nothing(data, tmp_path, monkeypatch, split,
                                                                           held_out):
    monkeypatch.setenv("KERAS_RESNET_CACHE_DIR", str(tmp_path / "cache"))
    model_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as error:
        train(TrainConfig(model="resnet8", data=data, model_dir=str(model_dir), train_steps=2,
                          validation_split=split))
    assert str(error.value) == (f"--validation_split={split:g} holds out {held_out} images, but the training split "
                                "has only 96; accepted: a fraction in (0, 1) or a count below 96.")
    cache = tmp_path / "cache"
    assert not model_dir.exists() and (not cache.exists() or not list(cache.rglob("*")))  # no run, no cached mean


def test_the_trainer_process_prints_one_line_and_exits_2(data, tmp_path):
    out = run_cli(["--model=resnet8", f"--data={data}", f"--model_dir={tmp_path / 'run'}", "--validation_split=999999"])
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines() == [
        "error: --validation_split=999999 holds out 999999 images, but the training split has only 96; accepted: "
        "a fraction in (0, 1) or a count below 96."]
    assert not (tmp_path / "run").exists()
