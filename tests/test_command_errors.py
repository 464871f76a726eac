"""Every command-line mistake is one line naming the flag, exit 2, nothing made (issue 24, point 5).

The trainers' mistakes are checked in-process through the library call their `main` makes (`train` with the
`TrainConfig` the flags build), and once through the real process; the export's `--weights` files are in
tests/test_export_pretrained.py.
"""

import pytest

from conftest import make_image_folder, run_cli

from keras_resnet.training import ConfigError, TrainConfig, train


def files_under(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_one_line_and_nothing_made(code, err, says, root, before, prefix="error: "):
    """Exit 2, exactly one `error:` line holding `says`, no traceback, and the files under `root` unchanged."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in err, err
    assert all(piece in lines[0] for piece in says), lines[0]
    assert files_under(root) == before  # nothing created


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


@pytest.mark.fresh_process  # what a started process prints, its imports included
def test_the_trainer_process_prints_one_line_and_exits_2(data, tmp_path):
    out = run_cli(["--model=resnet8", f"--data={data}", f"--model_dir={tmp_path / 'run'}", "--validation_split=999999"])
    assert out.returncode == 2, out.stderr[-3000:]
    assert out.stderr.strip().splitlines() == [
        "error: --validation_split=999999 holds out 999999 images, but the training split has only 96; accepted: "
        "a fraction in (0, 1) or a count below 96."]
    assert not (tmp_path / "run").exists()


# The trainers' command line in this process (`keras_resnet.training.trainer_main`, what `python -m
# trainers.cifar` runs): (arguments, the flag the one line must name, a piece of what it must say).
TRAINER_MISTAKES = [
    ([], "--model_dir", "must be set"),
    (["--data="], "--data", "must be set"),
    (["--model=resnet9"], "--model", "no valid depth"),
    (["--batch_size=0"], "--batch_size", "positive integer; received 0"),
    (["--batch_size=-8"], "--batch_size", "positive integer; received -8"),
    (["--batch_size=abc"], "--batch_size", "invalid literal"),
    (["--batch_size=4096"], "--batch_size", "larger than the 96 training images"),
    (["--train_steps=0"], "--train_steps", "positive integer; received 0"),
    (["--steps_per_epoch=-1"], "--steps_per_epoch", "positive integer"),
    (["--learning_rate=nan"], "--learning_rate", "must be positive; received nan"),
    (["--learning_rate=-0.1"], "--learning_rate", "must be positive"),
    (["--weight_decay=-1"], "--weight_decay", "must be >= 0"),
    (["--momentum=1.5"], "--momentum", "must be in [0, 1)"),
    (["--validation_split=-3"], "--validation_split", "fraction in [0, 1) or a whole number"),
    (["--validation_split=999999"], "--validation_split", "holds out 999999 images, but the training split has only 96"),
    (["--image_size=0"], "--image_size", "positive integer"),
    (["--backup_every=0"], "--backup_every", "positive number of iterations"),
    (["--backup_every=5m"], "--backup_every", "(15min, 30s, 1h)"),
    (["--boundaries=10,x"], "--boundaries", "must be integers"),
    (["--eval_split=nowhere"], "--eval_split", "nowhere"),
    (["--init_from="], "--init_from", "received an empty value"),
    (["--init_from=missing.keras"], "--init_from=missing.keras", "no such file"),
    (["--init_from={FOLDER}"], "--init_from", "FOLDER"),
    (["--init_from={GARBAGE}"], "--init_from", "GARBAGE"),
    (["--data={MISSING}"], "--data", "MISSING"),
    (["--data={PLAINFILE}"], "--data", "PLAINFILE"),
    (["--model_dir={PLAINFILE}"], "--model_dir", "is a file"),
    (["--freeze=stage9"], "--freeze", "stage9"),
    (["--unknown_flag=1"], "unknown_flag", "Unknown command line flag"),
    (["extra"], "extra", "unrecognized arguments"),
]


@pytest.mark.parametrize("args, flag, says", TRAINER_MISTAKES, ids=[" ".join(a) or "nothing" for a, _, _ in TRAINER_MISTAKES])
def test_every_trainer_mistake_is_one_line_exit_2_and_nothing_made(data, tmp_path, monkeypatch, capsys, args, flag, says):
    work = tmp_path / "work"
    (work / "FOLDER").mkdir(parents=True)
    (work / "PLAINFILE").write_text("not a data set")
    (work / "GARBAGE.keras").write_bytes(b"garbage" * 64)
    for name in ("HOME", "KERAS_HOME", "KERAS_RESNET_CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.chdir(work)
    paths = {"FOLDER": work / "FOLDER", "GARBAGE": work / "GARBAGE.keras", "MISSING": work / "MISSING",
             "PLAINFILE": work / "PLAINFILE"}
    args = [a.format(**paths) for a in args]
    base = {"--model": "--model=resnet8", "--data": f"--data={data}", "--model_dir": "--model_dir=run",
            "--train_steps": "--train_steps=2", "--batch_size": "--batch_size=16"}
    given = {a.split("=")[0] for a in args}
    argv = [value for name, value in base.items() if name not in given and not (name == "--model_dir" and not args)]
    before = files_under(tmp_path)
    from keras_resnet.training import trainer_main

    code = trainer_main([*argv, *args], "python -m trainers.cifar")
    assert_one_line_and_nothing_made(code, capsys.readouterr().err, (flag.lstrip("-"), says), tmp_path, before)


# `python -m tuning.search` in this process (`tuning.search.main`): (arguments, flag, a piece of the line).
SEARCH_MISTAKES = [
    (["--project_dir="], "--project_dir", "must be set"),
    (["--project_dir={PLAINFILE}"], "--project_dir", "is a file"),
    (["--tuner=grid"], "--tuner", "grid"),
    (["--max_trials=0"], "--max_trials", "positive integer; received 0"),
    (["--budget_iterations=1"], "--budget_iterations", "must be >= 2"),
    (["--batch_size=-16"], "--batch_size", "positive integer"),
    (["--validation_split=0"], "--validation_split", "must be > 0"),
    (["--validation_split=999999"], "--validation_split", "holds out 999999 images, but the training split has only 96"),
    (["--model=plain20"], "--model", "residual network"),
    (["--tune_depth", "--depths=20,x"], "--depths", "must be integers"),
    (["--worker_timeout=nan"], "--worker_timeout", "must be positive"),
    (["--local_workers=-1"], "--local_workers", "must be >= 0"),
    (["--data={MISSING}"], "--data", "MISSING"),
    (["--max_trials=two"], "--max_trials", "invalid literal"),
    (["--bogus=1"], "bogus", "Unknown command line flag"),
    (["extra"], "extra", "unrecognized arguments"),
]


@pytest.mark.parametrize("args, flag, says", SEARCH_MISTAKES, ids=[" ".join(a) for a, _, _ in SEARCH_MISTAKES])
def test_every_search_mistake_is_one_line_exit_2_and_nothing_made(data, tmp_path, monkeypatch, capsys, args, flag, says):
    from tuning import search

    work = tmp_path / "work"
    work.mkdir()
    (work / "PLAINFILE").write_text("not a directory")
    for name in ("HOME", "KERAS_HOME", "KERAS_RESNET_CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.chdir(work)
    args = [a.format(PLAINFILE=work / "PLAINFILE", MISSING=work / "MISSING") for a in args]
    base = {"--project_dir": "--project_dir=search", "--data": f"--data={data}", "--model": "--model=resnet8",
            "--validation_split": "--validation_split=24", "--budget_iterations": "--budget_iterations=4"}
    given = {a.split("=")[0] for a in args}
    argv = [value for name, value in base.items() if name not in given]
    before = files_under(tmp_path)
    code = search.main([*argv, *args])
    assert_one_line_and_nothing_made(code, capsys.readouterr().err, (flag.lstrip("-"), says), tmp_path, before)


# `python -m keras_resnet.weights convert` in this process: (arguments, a piece of the one line).
CONVERT_MISTAKES = [
    ([], "expected the command convert"),
    (["convert", "--model=resnet20", "--output=out.weights.h5"], "--from is required"),
    (["convert", "--from={GARBAGE_TH}", "--output=out.weights.h5"], "--model is required"),
    (["convert", "--from={GARBAGE_TH}", "--model=resnet20"], "--output is required"),
    (["convert", "--from={GARBAGE_TH}", "--model=resnet9", "--output=out.weights.h5"], "--model=resnet9: "),
    (["convert", "--from={MISSING}", "--model=resnet20", "--output=out.weights.h5"], "--from={MISSING}: no such file"),
    (["convert", "--from={FOLDER}", "--model=resnet20", "--output=out.weights.h5"], "--from={FOLDER}: a directory"),
    (["convert", "--from={GARBAGE_TH}", "--model=resnet20", "--output=out.weights.h5"],
     "--from={GARBAGE_TH}: not a readable PyTorch file"),
    (["convert", "--from={GARBAGE_H5}", "--model=resnet20", "--output=out.weights.h5"],
     "--from={GARBAGE_H5}: not a readable HDF5 file"),
    (["convert", "--from={TEXT}", "--model=resnet20", "--output=out.weights.h5"], "unknown weights format"),
    (["convert", "--from={KERAS3}", "--model=resnet20", "--output=out.weights.h5"], "is a Keras 3 file already"),
    (["convert", "--from={GARBAGE_TH}", "--model=resnet20", "--output=out.h5"], "--output=out.h5: the file must end"),
    (["convert", "--from={GARBAGE_TH}", "--model=resnet20", "--output={FOLDER_H5}"], "is a directory"),
    (["convert", "--from={GARBAGE_TH}", "--model=resnet20", "--output=o.weights.h5", "--format=onnx"], "--format"),
    (["convert", "--bogus"], "Unknown command line flag 'bogus'"),
]


@pytest.mark.parametrize("args, says", CONVERT_MISTAKES, ids=[" ".join(a) or "nothing" for a, _ in CONVERT_MISTAKES])
def test_every_convert_mistake_is_one_line_exit_2_and_nothing_made(tmp_path, monkeypatch, capsys, args, says):
    from keras_resnet.weights.__main__ import main

    work = tmp_path / "work"
    (work / "folder").mkdir(parents=True)
    (work / "folder.weights.h5").mkdir()
    paths = {"FOLDER": work / "folder", "FOLDER_H5": work / "folder.weights.h5", "MISSING": work / "missing.th",
             "GARBAGE_TH": work / "garbage.th", "GARBAGE_H5": work / "garbage.h5", "TEXT": work / "notes.txt",
             "KERAS3": work / "model.weights.h5"}
    for name in ("GARBAGE_TH", "GARBAGE_H5", "TEXT", "KERAS3"):
        paths[name].write_bytes(b"garbage" * 64)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.chdir(work)
    before = files_under(tmp_path)
    code = main([a.format(**paths) for a in args])
    assert_one_line_and_nothing_made(code, capsys.readouterr().err, (says.format(**paths),), tmp_path, before)


# `python -m keras_resnet.data.convert` in this process: (arguments, a piece of the one line).
DATA_CONVERT_MISTAKES = [
    (["--output=out", "--shards=2"], "the following arguments are required: --input"),
    (["--input={DATA}", "--output=out", "--shards=0"], "`shards` (--shards) must be a positive integer; received 0"),
    (["--input={DATA}", "--output=out", "--shards=two"], "argument --shards: invalid int value: 'two'"),
    (["--input={MISSING}", "--output=out", "--shards=2"], "--input '{MISSING}' does not exist"),
    (["--input={PLAINFILE}", "--output=out", "--shards=2"], "{PLAINFILE}"),
    (["--input={DATA}", "--output={PLAINFILE}", "--shards=2"], "--output '{PLAINFILE}' is a file"),
    (["--input={DATA}", "--output=out", "--shards=2", "--splits=train,nosuch"], "nosuch"),
    (["--input={DIFFERING}", "--output=out", "--shards=2"], "every split needs the same class folders"),
]


@pytest.mark.parametrize("args, says", DATA_CONVERT_MISTAKES, ids=[" ".join(a) for a, _ in DATA_CONVERT_MISTAKES])
def test_every_data_convert_mistake_is_one_line_exit_2_and_nothing_made(data, tmp_path, monkeypatch, capsys, args,
                                                                       says):
    import shutil

    from keras_resnet.data.convert import main

    work = tmp_path / "work"
    work.mkdir()
    (work / "PLAINFILE").write_text("not images")
    differing = work / "differing"
    shutil.copytree(data, differing)
    shutil.rmtree(differing / "test" / "class2")
    paths = {"DATA": data, "MISSING": work / "missing", "PLAINFILE": work / "PLAINFILE", "DIFFERING": differing}
    monkeypatch.chdir(work)
    before = files_under(tmp_path)
    code = main([a.format(**paths) for a in args])
    assert_one_line_and_nothing_made(code, capsys.readouterr().err, (says.format(**paths),), tmp_path, before)


def exit_code_of(main, argv):
    """The exit code of a command's `main(argv)`, whether it returns it or raises `SystemExit` with it."""
    try:
        return main(argv)
    except SystemExit as stop:
        return stop.code


def fake_run(root, checkpoint=b"garbage" * 64, dataset=None, config=b'{"model": "resnet8"}', mean=True):
    """A run directory (docs/CONTRACTS.md layout) whose files are what the case needs; `None` leaves one out."""
    import numpy as np

    root.mkdir(parents=True)
    if dataset is None:
        dataset = b'{"class_names": ["class0", "class1", "class2"], "image_shape": [8, 8, 3]}'
    for name, content in (("checkpoints/best.keras", checkpoint), ("dataset.json", dataset),
                          ("config.json", config)):
        if content is not None:
            (root / name).parent.mkdir(exist_ok=True)
            (root / name).write_bytes(content)
    if mean:
        np.save(root / "mean_image.npy", np.zeros((8, 8, 3), np.float32))
    return root


def mistake_workspace(tmp_path, monkeypatch):
    """`tmp_path/work` with the files the cases name, as `{NAME: path}`; HOME and caches inside `tmp_path`."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "PLAINFILE").write_text("not a directory")
    (work / "EMPTYFILE").write_text("\n\n")
    (work / "FOLDER").mkdir()
    paths = {"PLAINFILE": work / "PLAINFILE", "EMPTYFILE": work / "EMPTYFILE", "FOLDER": work / "FOLDER",
             "MISSING": work / "MISSING",
             "NO_CHECKPOINT": fake_run(work / "no_checkpoint", checkpoint=None),
             "NO_DATASET": fake_run(work / "no_dataset"),
             "BAD_JSON": fake_run(work / "bad_json", dataset=b"{not json"),
             "NO_MEAN": fake_run(work / "no_mean", mean=False),
             "GARBAGE_CHECKPOINT": fake_run(work / "garbage_checkpoint")}
    (paths["NO_DATASET"] / "dataset.json").unlink()
    for name in ("HOME", "KERAS_HOME", "KERAS_RESNET_CACHE_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.chdir(work)
    return paths


# `python -m keras_resnet.export` in this process (`keras_resnet.export.cli.main`): (arguments, a piece of the one
# line). The `--weights` files are in tests/test_export_pretrained.py.
EXPORT_MISTAKES = [
    ([], "the following flags are required: --model_dir, --export_dir"),
    (["--model_dir={NO_CHECKPOINT}"], "the following flags are required: --export_dir"),
    (["--model_dir={MISSING}", "--export_dir=out"], "--model_dir={MISSING}: no such directory"),
    (["--model_dir={PLAINFILE}", "--export_dir=out"], "--model_dir={PLAINFILE}: is a file"),
    (["--model_dir={FOLDER}", "--export_dir=out"], "--model_dir={FOLDER}: no checkpoint checkpoints/best.keras"),
    (["--model_dir={NO_CHECKPOINT}", "--export_dir=out"], "no checkpoint checkpoints/best.keras (found: none)"),
    (["--model_dir={NO_CHECKPOINT}", "--export_dir=out", "--checkpoint=latest"], "checkpoints/latest.keras"),
    (["--model_dir={NO_DATASET}", "--export_dir=out"], "--model_dir={NO_DATASET}: has no dataset.json"),
    (["--model_dir={BAD_JSON}", "--export_dir=out"], "--model_dir={BAD_JSON}: dataset.json is not valid JSON"),
    (["--model_dir={NO_MEAN}", "--export_dir=out"], "--model_dir={NO_MEAN}: has no mean_image.npy"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--export_dir=out"],
     "--model_dir={GARBAGE_CHECKPOINT}: checkpoints/best.keras cannot be loaded"),
    (["--model_dir={NO_CHECKPOINT}", "--export_dir=out", "--checkpoint=middle"], "--checkpoint"),
    (["--model_dir={NO_CHECKPOINT}", "--export_dir=out", "--format=tflite"], "--format"),
    (["--model_dir={NO_CHECKPOINT}", "--export_dir=out", "--version=two"], "--version"),
    (["--model=resnet20", "--weights=cifar10", "--export_dir=out", "--class_names={MISSING}"],
     "--class_names={MISSING}: cannot be read"),
    (["--model=resnet20", "--weights=cifar10", "--export_dir=out", "--class_names={FOLDER}"],
     "--class_names={FOLDER}: cannot be read"),
    (["--model=resnet20", "--weights=cifar10", "--export_dir=out", "--class_names={EMPTYFILE}"],
     "--class_names={EMPTYFILE}: holds no names"),
    (["--model=resnet20", "--export_dir=out"], "--model=resnet20 needs --weights"),
    (["--model_dir={NO_CHECKPOINT}", "--export_dir=out", "extra"], "unrecognized arguments: extra"),
]


@pytest.mark.parametrize("args, says", EXPORT_MISTAKES, ids=[" ".join(a) or "nothing" for a, _ in EXPORT_MISTAKES])
def test_every_export_mistake_is_one_line_exit_2_and_nothing_made(tmp_path, monkeypatch, capsys, args, says):
    from keras_resnet.export.cli import main

    paths = mistake_workspace(tmp_path, monkeypatch)
    before = files_under(tmp_path)
    code = exit_code_of(main, [a.format(**paths) for a in args])
    assert_one_line_and_nothing_made(code, capsys.readouterr().err, (says.format(**paths),), tmp_path, before,
                                     prefix="python -m keras_resnet.export: error: ")


# `python -m keras_resnet.evaluate` in this process (`keras_resnet.evaluate.cli.main`): (arguments, a piece of
# the one line); `--data={DATA}` is added unless the case names `--data`.
EVALUATE_MISTAKES = [
    ([], "pass either --model_dir (a training run) or --model with --weights"),
    (["--model_dir={MISSING}"], "--model_dir={MISSING}: no such directory"),
    (["--model_dir={PLAINFILE}"], "--model_dir={PLAINFILE}: is a file"),
    (["--model_dir={NO_CHECKPOINT}"], "is not a finished training run"),
    (["--model_dir={BAD_JSON}"], "--model_dir={BAD_JSON}: dataset.json cannot be read (JSONDecodeError"),
    (["--model_dir={GARBAGE_CHECKPOINT}"], "--model_dir={GARBAGE_CHECKPOINT}: checkpoints/best.keras cannot be loaded"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--data={MISSING}"], "--data={MISSING}"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--data="], "--data is required"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--data={PLAINFILE}"], "--data={PLAINFILE}"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--split=nosuch"], "nosuch"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--batch_size=0"], "--batch_size must be a positive integer; received 0"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--batch_size=x"], "--batch_size"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--output={FOLDER}"], "--output={FOLDER}: a directory"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--output={MISSING}/r.json"], "--output={MISSING}/r.json: its directory"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--checkpoint=middle"], "--checkpoint"),
    (["--model=resnet20"], "--model=resnet20 needs --weights"),
    (["--model=resnet20", "--weights={MISSING}"], "--weights={MISSING}"),
    (["--model=resnet20", "--weights={PLAINFILE}"], "--weights={PLAINFILE}"),
    (["--model=resnet9", "--weights=cifar10"], "--model"),
    (["--model=resnet20", "--weights=cifar10", "--image_size=0"], "--image_size must be a positive integer"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "--weights=cifar10"], "apply to --model only"),
    (["--model_dir={GARBAGE_CHECKPOINT}", "extra"], "unrecognized arguments: extra"),
]


@pytest.mark.parametrize("args, says", EVALUATE_MISTAKES, ids=[" ".join(a) or "nothing" for a, _ in EVALUATE_MISTAKES])
def test_every_evaluate_mistake_is_one_line_exit_2_and_nothing_made(data, tmp_path, monkeypatch, capsys, args, says):
    from keras_resnet.evaluate.cli import main

    paths = dict(mistake_workspace(tmp_path, monkeypatch), DATA=data)
    argv = [a.format(**paths) for a in args]
    if args and not any(a.startswith("--data") for a in args):
        argv.append(f"--data={data}")
    before = files_under(tmp_path)
    code = exit_code_of(main, argv)
    assert_one_line_and_nothing_made(code, capsys.readouterr().err, (says.format(**paths),), tmp_path, before,
                                     prefix="python -m keras_resnet.evaluate: error: ")


# The analysis trainers in this process (`trainers.degradation.main`, ...): (module, arguments, a piece of the
# one line). `--output_dir=out` (and for the training ones a small `--data`, steps and batch) are added unless
# the case names them.
ANALYSIS_MISTAKES = [
    ("degradation", ["--output_dir="], "--output_dir must be set"),
    ("degradation", ["--output_dir={PLAINFILE}"], "--output_dir={PLAINFILE} is a file"),
    ("degradation", ["--depths=20,x"], "--depths must be integers"),
    ("degradation", ["--depths=21"], "21"),
    ("degradation", ["--train_steps=0"], "--train_steps"),
    ("degradation", ["--batch_size=-1"], "--batch_size"),
    ("degradation", ["--learning_rate=nan"], "--learning_rate"),
    ("degradation", ["--validation_split=999999"], "--validation_split"),
    ("degradation", ["--data={MISSING}"], "--data"),
    ("degradation", ["--bogus=1"], "Unknown command line flag 'bogus'"),
    ("degradation", ["extra"], "unrecognized arguments: extra"),
    ("gradient_flow", ["--grad_batch_size=0"], "--grad_batch_size must be a positive integer; received 0"),
    ("gradient_flow", ["--output_dir={WITH_RUN}"], "already holds a run of plain20"),
    ("gradient_flow", ["--depths=20,x"], "--depths must be integers"),
    ("gradient_flow", ["--grad_batch_size=x"], "--grad_batch_size"),
    ("layer_responses", ["--output_dir=out"], "--model_dirs and --output_dir must be set"),
    ("layer_responses", ["--model_dirs={MISSING}"], "does not exist"),
    ("layer_responses", ["--model_dirs={PLAINFILE}"], "is a file"),
    ("layer_responses", ["--model_dirs={FOLDER}"], "has no config.json"),
    ("layer_responses", ["--model_dirs={NO_CHECKPOINT}"], "has no checkpoints/best.keras"),
    ("layer_responses", ["--model_dirs={BAD_CONFIG}"], "JSONDecodeError"),
    ("layer_responses", ["--model_dirs={NO_CHECKPOINT}", "--num_images=0"], "--num_images must be a positive"),
    ("layer_responses", ["--model_dirs={NO_CHECKPOINT}", "--output_dir={PLAINFILE}"], "is a file"),
    ("layer_responses", ["--model_dirs={NO_CHECKPOINT}", "--checkpoint=middle"], "--checkpoint"),
]


@pytest.mark.parametrize("module, args, says", ANALYSIS_MISTAKES,
                         ids=[f"{m} {' '.join(a)}" for m, a, _ in ANALYSIS_MISTAKES])
def test_every_analysis_trainer_mistake_is_one_line_exit_2_and_nothing_made(data, tmp_path, monkeypatch, capsys,
                                                                             module, args, says):
    import importlib

    main = importlib.import_module(f"trainers.{module}").main
    paths = dict(mistake_workspace(tmp_path, monkeypatch), DATA=data)
    paths["BAD_CONFIG"] = fake_run(paths["FOLDER"].parent / "bad_config", config=b"{not json")
    paths["WITH_RUN"] = paths["FOLDER"].parent / "with_run"
    fake_run(paths["WITH_RUN"] / "plain20")
    argv = [a.format(**paths) for a in args]
    given = {a.split("=")[0] for a in argv}
    defaults = (("output_dir", "out"),) if module == "layer_responses" else (
        ("data", data), ("output_dir", "out"), ("train_steps", 2), ("batch_size", 16))
    argv += [f"--{name}={value}" for name, value in defaults if f"--{name}" not in given]
    before = files_under(tmp_path)
    code = main(argv)
    assert_one_line_and_nothing_made(code, capsys.readouterr().err, (says.format(**paths),), tmp_path, before)


# One real process per command whose matrix above runs in-process and that no other test starts with a mistake.
PROCESS_MISTAKES = [
    ("keras_resnet.evaluate", ["--model_dir={MISSING}", "--data={MISSING}"],
     "python -m keras_resnet.evaluate: error: --model_dir={MISSING}: no such directory"),
    ("keras_resnet.data.convert", ["--input={MISSING}", "--output={OUT}", "--shards=2"], "{MISSING}"),
    ("trainers.degradation", ["--output_dir={OUT}", "--depths=20,x"], "error: --depths must be integers"),
]


@pytest.mark.fresh_process  # what a started process prints, its imports included
@pytest.mark.parametrize("module, args, says", PROCESS_MISTAKES, ids=[m for m, _, _ in PROCESS_MISTAKES])
def test_the_command_process_prints_one_line_and_exits_2(tmp_path, module, args, says):
    paths = {"MISSING": tmp_path / "missing", "OUT": tmp_path / "out"}
    out = run_cli([a.format(**paths) for a in args], module=module)
    assert out.returncode == 2, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and says.format(**paths) in lines[0], out.stderr
    assert list(tmp_path.iterdir()) == []
