"""The training library in-process and on JAX: NaN handling, configuration errors, precision."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras
from keras_resnet import run_log, training
from conftest import REPO, array_data, env, make_image_folder, read_json


def tiny(tmp_path, **kw):
    base = dict(model="resnet8", data="toy", model_dir=str(tmp_path / "run"), batch_size=32, train_steps=8,
                steps_per_epoch=4, learning_rate=0.05, seed=0, verbose=0)
    base.update(kw)
    return training.TrainConfig(**base)


class PoisonAt(keras.callbacks.Callback):
    """Turns a kernel into NaN at the start of `epoch`: the next loss is NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            kernel = self.model.get_layer("predictions").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


def test_nan_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny(tmp_path, train_steps=12)
    with pytest.raises(training.NaNLossError, match=r"NaN.*iteration 5 .*last good checkpoint"):
        training.train(config, data=array_data(train=128, test=32), callbacks=[PoisonAt(1)])
    run = tmp_path / "run"
    model = keras.saving.load_model(run / "checkpoints" / "latest.keras")
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert read_json(run / "backup" / "training_metadata.json")["iteration"] == 4
    rows = run_log.read_csv(run / "log.csv")
    assert [int(r["iteration"]) for r in rows] == [4]


class PoisonAtBatch(keras.callbacks.Callback):
    """Turns a kernel into NaN before batch `batch` of `epoch` is dispatched."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            kernel = self.model.get_layer("predictions").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append((batch, logs["iteration"], logs["learning_rate"], logs["loss"]))


def test_nan_inside_a_sync_window_names_the_iteration_where_it_appeared(tmp_path):
    config = tiny(tmp_path, train_steps=12, sync_every=4)
    with pytest.raises(training.NaNLossError, match=r"NaN.*iteration 7 "):
        training.train(config, data=array_data(train=128, test=32), callbacks=[PoisonAtBatch(1, 2)])
    assert [int(r["iteration"]) for r in run_log.read_csv(tmp_path / "run" / "log.csv")] == [4]


def test_reading_the_loss_less_often_changes_nothing_computed_or_reported(tmp_path):
    runs = {}
    for sync_every in (1, 3):
        recorder = Recorder()
        config = tiny(tmp_path / str(sync_every), sync_every=sync_every, schedule="cosine")
        summary = training.train(config, data=array_data(train=128, test=32), callbacks=[recorder])
        rows = run_log.read_csv(tmp_path / str(sync_every) / "run" / "log.csv")
        runs[sync_every] = (recorder.logs, [(r["loss"], r["error"], r["learning_rate"]) for r in rows], summary)
    (logs1, rows1, s1), (logs3, rows3, s3) = runs[1], runs[3]
    assert [(b, it) for b, it, _, _ in logs3] == [(b % 4, b + 1) for b in range(8)]
    assert [(b, it, lr) for b, it, lr, _ in logs1] == [(b, it, lr) for b, it, lr, _ in logs3]
    assert len({lr for _, _, lr, _ in logs3}) == 8  # cosine: a new learning rate every iteration
    np.testing.assert_allclose([l for *_, l in logs1], [l for *_, l in logs3], rtol=1e-6)
    assert rows1 == rows3 and s1["test_error"] == s3["test_error"]


def test_config_errors_name_the_flag(tmp_path):
    with pytest.raises(training.ConfigError, match="--model"):
        tiny(tmp_path, model="resnet9")
    with pytest.raises(training.ConfigError, match="--train_steps"):
        tiny(tmp_path, train_steps=-5)
    with pytest.raises(training.ConfigError, match="--batch_size"):
        tiny(tmp_path, batch_size=0)
    with pytest.raises(training.ConfigError, match="--sync_every must be a positive integer; received 0"):
        tiny(tmp_path, sync_every=0)
    with pytest.raises(training.ConfigError, match="--shortcut"):
        tiny(tmp_path, model="plain20", shortcut="B")
    with pytest.raises(training.ConfigError, match="--precision"):
        tiny(tmp_path, precision="float8")


def test_resolve_recipe_applies_flags_and_scales_the_learning_rate():
    config = training.TrainConfig(model="resnet110", model_dir="x", batch_size=256)
    recipe = training.resolve_recipe(config, 50000, 256)
    assert recipe.learning_rate == pytest.approx(0.2) and recipe.warmup_learning_rate == pytest.approx(0.02)
    config = training.TrainConfig(model="resnet110", model_dir="x", learning_rate=0.05, train_steps=100,
                                  boundaries=(50, 80))
    recipe = training.resolve_recipe(config, 50000, 128)
    assert (recipe.learning_rate, recipe.train_steps, recipe.boundaries) == (0.05, 100, (50, 80))
    assert recipe.warmup_learning_rate == pytest.approx(0.005)
    imagenet = training.resolve_recipe(training.TrainConfig(model="resnet50", model_dir="x"), 1281167)
    assert imagenet.train_steps == 90 * 5005


def test_shorter_runs_keep_the_recipe_proportions():
    short = training.resolve_recipe(training.TrainConfig(model="resnet110", model_dir="x", train_steps=6400), 50000)
    assert short.boundaries == (3200, 4800) and short.warmup_steps == 400
    paper = training.resolve_recipe(training.TrainConfig(model="resnet56", model_dir="x"), 50000)
    assert paper.boundaries == (32000, 48000) and paper.train_steps == 64000


def test_precision_selection_and_mixed_output_dtype():
    assert training.select_precision("auto") == "float32"  # CPU
    try:
        for policy in ("mixed_float16", "mixed_bfloat16"):
            assert training.set_precision(policy) == policy
            assert keras.mixed_precision.global_policy().name == policy
            model = keras_resnet_build()
            assert model.layers[-1].compute_dtype == "float32" or model.output.dtype == "float32"
            assert model(np.zeros((1, 8, 8, 3), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def keras_resnet_build():
    import keras_resnet

    return keras_resnet.build("resnet8", input_shape=(8, 8, 3), classes=3)


JAX_SCRIPT = """
import sys
sys.modules["tensorflow"] = None  # the GPU machines have JAX but no TensorFlow
import keras
assert keras.backend.backend() == "jax"
from keras_resnet import training
s = training.train(training.TrainConfig(model="resnet8", data=sys.argv[1], model_dir=sys.argv[2], batch_size=32,
                                        train_steps=4, steps_per_epoch=2, seed=0, verbose=1, validation_split=0.1))
print("RESULT", s["backend"], s["iterations"])
"""


def test_trains_on_jax_without_tensorflow(tmp_path):
    data = make_image_folder(tmp_path / "data", train=120, test=30)
    out = subprocess.run([sys.executable, "-c", JAX_SCRIPT, data, str(tmp_path / "run")], cwd=REPO,
                         env=env(KERAS_BACKEND="jax"), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "RESULT jax 4" in out.stdout
    assert "TensorBoard" in out.stdout and "skipped" in out.stdout
    run = tmp_path / "run"
    for name in ("config.json", "dataset.json", "mean_image.npy", "summary.json", "log.csv", "curves.png",
                 "checkpoints/latest.keras", "checkpoints/best.keras"):
        assert (run / name).exists(), name
    assert read_json(run / "summary.json")["iterations"] == 4


JAX_DEVICE_INPUT_SCRIPT = r"""
import json, sys
sys.modules["tensorflow"] = None
sys.path.insert(0, "tests")
import keras
import numpy as np
from keras_resnet import run_log, training
import conftest as u

out, result = sys.argv[1], {}
for choice in ("memory", "device", "auto"):
    cfg = training.TrainConfig(model="resnet8", data="toy", model_dir=f"{out}/{choice}", batch_size=32,
                               train_steps=10, steps_per_epoch=4, learning_rate=0.05, seed=5, verbose=2,
                               input=choice, sync_every=3)
    s = training.train(cfg, data=u.array_data(train=128, test=32))
    model = keras.saving.load_model(f"{out}/{choice}/checkpoints/latest.keras")
    np.savez(f"{out}/{choice}.npz", *model.get_weights())
    result[choice] = [float(r["loss"]) for r in run_log.read_csv(f"{out}/{choice}/log.csv")] + [s["test_loss"]]
print("RESULT" + json.dumps(result))
"""


def test_device_input_on_jax_trains_exactly_like_host_batches(tmp_path):
    out = subprocess.run([sys.executable, "-c", JAX_DEVICE_INPUT_SCRIPT, str(tmp_path)], cwd=REPO,
                         env=env(KERAS_BACKEND="jax"), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    result = __import__("json").loads(out.stdout.split("RESULT")[-1])
    assert out.stdout.count("input: uint8 training images on the device") == 2  # "device" and "auto"
    assert out.stdout.count("input: in-memory arrays, batches augmented on the host") == 1
    np.testing.assert_allclose(result["device"], result["memory"], rtol=1e-5)
    assert result["auto"] == result["device"]
    host, device = np.load(tmp_path / "memory.npz"), np.load(tmp_path / "device.npz")
    for key in host.files:
        np.testing.assert_allclose(device[key], host[key], rtol=1e-4, atol=1e-5)


def test_device_input_on_tensorflow_trains_exactly_like_host_batches(tmp_path, capsys):
    """The TensorFlow step gathers, crops, flips and normalises its batches from the uint8 images it holds
    (`--input=device`, and `auto` for CIFAR-style data in memory on one device): the same batches as the
    host's numpy augmentation, so the same losses and weights, bit for bit."""
    result, weights = {}, {}
    for choice in ("memory", "device", "auto"):
        config = tiny(tmp_path / choice, input=choice, train_steps=10, seed=5, sync_every=3, verbose=2)
        summary = training.train(config, data=array_data(train=128, test=32))
        result[choice] = [float(r["loss"]) for r in run_log.read_csv(tmp_path / choice / "run" / "log.csv")]
        result[choice].append(summary["test_loss"])
        weights[choice] = keras.saving.load_model(tmp_path / choice / "run" / "checkpoints" / "latest.keras")
    out = capsys.readouterr().out
    assert out.count("input: uint8 training images on the device") == 2  # "device" and "auto"
    assert out.count("input: in-memory arrays, batches augmented on the host") == 1
    assert result["device"] == result["memory"] == result["auto"]
    for got, want in zip(weights["device"].get_weights(), weights["memory"].get_weights()):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("skip, steps", [(0, 3), (5, 150)])
def test_tensorflow_plan_iterator_yields_the_epoch_plans_across_chunks(skip, steps):
    """The plans reach the TensorFlow step stacked `PLAN_CHUNK` batches at a time: the iterator yields
    exactly `epoch_plans(epoch, skip)`, also across chunk boundaries and after a resume's skip."""
    import itertools

    from keras_resnet.training import inputs
    from keras_resnet.training.runtime import make_runtime

    assert steps > 2 * inputs.PLAN_CHUNK or steps < inputs.PLAN_CHUNK
    memory = inputs.MemoryInput(array_data(train=40, test=8), global_batch=8, eval_batch=8, seed=3)
    runtime = make_runtime("none")
    iterator = memory.tf_distributed_plans(runtime, epoch=2, skip=skip, steps=steps)
    got = [tuple(np.asarray(t) for t in next(iterator)) for _ in range(steps)]
    with pytest.raises(StopIteration):
        next(iterator)
    want = list(itertools.islice(memory.epoch_plans(2, skip), steps))
    assert len(got) == len(want) == steps
    for (indices, offset_y, offset_x, flip), (w_indices, (w_y, w_x, w_flip)) in zip(got, want):
        np.testing.assert_array_equal(indices, w_indices)
        np.testing.assert_array_equal(offset_y, w_y)
        np.testing.assert_array_equal(offset_x, w_x)
        np.testing.assert_array_equal(flip, np.asarray(w_flip, bool))
        assert indices.dtype == np.int32 and flip.dtype == bool and indices.shape == (8,)


def test_the_input_path_is_chosen_once_with_its_reason(tmp_path):
    from keras_resnet.training.data_spec import InputPath, choose_input, data_spec
    from keras_resnet.training.runtime import Runtime

    folder = make_image_folder(tmp_path / "data", train=24, test=6)
    one = Runtime("tensorflow")

    def chosen(backend="tensorflow", runtime=one, **flags):
        return choose_input(data_spec(tiny(tmp_path, data=str(folder), **flags)), backend, runtime)

    auto = chosen()
    assert auto == InputPath("device", "in memory: 30 images of 8x8 in train and test (5.6 KiB decoded uint8, "
                                       "limit 2.0 GiB)")
    assert auto.describe().startswith("uint8 training images on the device, batches gathered and augmented")
    assert chosen(input="memory") == InputPath("memory", "in memory: --input=memory")
    assert chosen(input="tfdata") == InputPath("tfdata", "tf.data: --input=tfdata")
    assert chosen(runtime=Runtime("tensorflow", replicas=2)).kind == "memory"  # device input is single-device
    assert chosen("torch") == InputPath("memory", "in memory: the torch backend has no tf.data")
    with pytest.raises(training.ConfigError, match="--input=tfdata needs TensorFlow; the backend is jax"):
        chosen("jax", input="tfdata")
    with pytest.raises(training.ConfigError, match="--input=device is not possible here: the backend is torch "
                                                   r"\(device input is the JAX and TensorFlow path\); several "
                                                   "devices are in use"):
        chosen("torch", Runtime("torch", replicas=2), input="device")
    with pytest.raises(training.ConfigError, match=f"--data={tmp_path / 'nowhere'}: Data source .* does not exist"):
        data_spec(tiny(tmp_path, data=str(tmp_path / "nowhere")))


def test_device_input_is_refused_where_it_cannot_run(tmp_path):
    from keras_resnet.data import DatasetInfo

    data = array_data(train=64, test=16)
    info = DatasetInfo(name="photos", class_names=data.info.class_names, image_shape=data.info.image_shape,
                       num_examples=data.info.num_examples, mean=data.info.mean, preprocessing="imagenet")
    config = tiny(tmp_path, input="device")
    with pytest.raises(training.ConfigError, match="--input=device is not possible here: the images are not "
                                                   "CIFAR-style"):
        training.train(config, data=training.ArrayData(info, data.train, data.test))
    assert not (tmp_path / "run" / "config.json").exists()


def cli_weights(run):
    import keras_resnet  # noqa: F401  (registers the layers and schedules the checkpoint names)

    return keras.saving.load_model(run / "checkpoints" / "latest.keras").get_weights()


def test_steps_per_call_gives_bitwise_the_weights_of_one_iteration_per_call(tmp_path):
    from conftest import run_cli

    data = make_image_folder(tmp_path / "data", train=128, test=32)
    runs = {}
    for k in (1, 4):
        run = tmp_path / f"k{k}"
        out = run_cli(["--model=resnet8", f"--data={data}", f"--model_dir={run}", "--batch_size=32",
                       "--train_steps=8", "--steps_per_epoch=4", "--seed=1", "--deterministic", "--verbose=0",
                       "--sync_every=3", f"--steps_per_call={k}"])
        assert out.returncode == 0, out.stderr[-3000:]
        rows = [{c: r[c] for c in ("iteration", "learning_rate", "loss", "error", "test_loss")}
                for r in run_log.read_csv(run / "log.csv")]
        runs[k] = (cli_weights(run), rows, read_json(run / "config.json")["steps_per_call"])
    (w1, rows1, k1), (w4, rows4, k4) = runs[1], runs[4]
    assert (k1, k4) == (1, 4) and [r["iteration"] for r in rows4] == ["4", "8"]
    assert rows1 == rows4
    assert len(w1) == len(w4) and all(np.array_equal(a, b) for a, b in zip(w1, w4))


# Coupled weight decay of 10 at a learning rate of 10 multiplies the kernels by about -199 per iteration: the
# L2 loss overflows to inf at iteration 10, the second iteration of a 4-iteration call (9..12).
EXPLODES = dict(train_steps=24, steps_per_epoch=8, learning_rate=10.0, weight_decay=10.0, sync_every=20)


@pytest.mark.parametrize("steps_per_call", [1, 3, 4])
def test_nan_inside_a_compiled_call_is_named_at_its_own_iteration(tmp_path, steps_per_call):
    config = tiny(tmp_path, steps_per_call=steps_per_call, **EXPLODES)
    with pytest.raises(training.NaNLossError, match=r"NaN/inf training loss \(inf\) at iteration 10 \(epoch 2,"):
        training.train(config, data=array_data(train=128, test=32),
                       callbacks=[keras.callbacks.TerminateOnNaN()])
    run = tmp_path / "run"
    assert [int(r["iteration"]) for r in run_log.read_csv(run / "log.csv")] == [8]
    # Neither the NaN nor Keras' TerminateOnNaN removes the backup of the last good epoch.
    assert read_json(run / "backup" / "training_metadata.json")["iteration"] == 8


JAX_STEPS_PER_CALL_SCRIPT = r"""
import json, sys
sys.modules["tensorflow"] = None
sys.path.insert(0, "tests")
import keras
import numpy as np
from keras_resnet import training
import conftest as u

out, result = sys.argv[1], {}
for choice in ("memory", "device"):
    weights = {}
    for k in (1, 4):
        cfg = training.TrainConfig(model="resnet8", data="toy", model_dir=f"{out}/{choice}{k}", batch_size=32,
                                   train_steps=8, steps_per_epoch=4, learning_rate=0.05, seed=5, verbose=0,
                                   input=choice, steps_per_call=k)
        training.train(cfg, data=u.array_data(train=128, test=32))
        weights[k] = keras.saving.load_model(f"{out}/{choice}{k}/checkpoints/latest.keras").get_weights()
    result[choice] = max(float(np.abs(a - b).max()) for a, b in zip(weights[1], weights[4]))
cfg = training.TrainConfig(model="resnet8", data="toy", model_dir=f"{out}/nan", batch_size=32, seed=0, verbose=0,
                           steps_per_call=4, **json.loads(sys.argv[2]))
try:
    training.train(cfg, data=u.array_data(train=128, test=32))
except training.NaNLossError as e:
    result["nan"] = str(e)
print("RESULT" + json.dumps(result))
"""


def test_steps_per_call_on_jax_runs_the_same_iterations(tmp_path):
    import json

    out = subprocess.run([sys.executable, "-c", JAX_STEPS_PER_CALL_SCRIPT, str(tmp_path), json.dumps(EXPLODES)],
                         cwd=REPO, env=env(KERAS_BACKEND="jax"), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.split("RESULT")[-1])
    # `jax.lax.scan` compiles the k iterations as one loop body: equal up to float32 rounding, not bitwise.
    assert result["memory"] < 1e-5 and result["device"] < 1e-5, result
    assert "at iteration 10 (epoch 2," in result["nan"]


def test_tensorboard_holds_each_step_once_when_log_every_meets_an_epoch_end(tmp_path):
    """Per-step scalars every 2 iterations, epochs of 4: steps 2, 4, 6, 8 -- 4 and 8 carry the epoch values."""
    from conftest import scalar_steps

    config = tiny(tmp_path, log_every=2)
    training.train(config, data=array_data(train=128, test=32))
    for tag in ("loss", "learning_rate", "images_per_second"):
        steps = [step for step, _ in scalar_steps(tmp_path / "run" / "logs" / "train", tag)]
        assert steps == [2, 4, 6, 8], (tag, steps)
    rows = run_log.read_csv(tmp_path / "run" / "log.csv")
    epoch_losses = dict(scalar_steps(tmp_path / "run" / "logs" / "train", "loss"))
    assert [epoch_losses[int(r["iteration"])] for r in rows] == pytest.approx([float(r["loss"]) for r in rows])


@pytest.mark.parametrize("train_steps", [7, 8], ids=["last-epoch-short", "whole-epochs"])
def test_rerunning_a_finished_run_trains_nothing_and_writes_the_same_summary(tmp_path, capsys, train_steps):
    """The same command again on a finished run (as the degradation experiment does for the networks it
    finished before a stop): no epoch row is added, log.csv, the checkpoints and summary.json stay as they
    were (a run whose last epoch is shorter than the others once logged a 100%-error, zero-loss row and
    wrote its zeros into summary.json), and the summary returned is the logged one."""
    data = array_data(train=128, test=32)
    config = tiny(tmp_path, train_steps=train_steps, verbose=1)
    first = training.train(config, data=data)
    run = tmp_path / "run"
    files = {name: (run / name).read_bytes() for name in ("log.csv", "summary.json", "checkpoints/latest.keras")}
    capsys.readouterr()
    again = training.train(config, data=data)
    assert f"at iteration {train_steps} (finished: nothing left to train)" in capsys.readouterr().out
    assert {name: (run / name).read_bytes() for name in files} == files
    rows = run_log.read_csv(run / "log.csv")
    assert [int(r["iteration"]) for r in rows] == [4, train_steps]
    assert again == first and again["train_error"] == pytest.approx(float(rows[-1]["error"]))
    assert again["train_loss"] > 0 and again["train_cross_entropy"] > 0
