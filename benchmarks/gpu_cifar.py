"""GPU speed and accuracy of the package on Keras' JAX backend, against PyTorch references (issue 8).

Run on the GPU machine (no TensorFlow, no Keras there; see ../shared/device/README.md):

    bash ../shared/device/prepare.sh                          # here, once per session
    # device run, carry [".device"]:
    source .device/setup.sh && python benchmarks/gpu_cifar.py --part=throughput,torch

One part (or a comma list of parts) per invocation, since everything does not fit one session's 15 minutes
(benchmarks/run_on_device.sh has the planned split):

* `throughput`: end-to-end training images/s of ResNet-20/56/110 at batch 128 and 512, bf16 mixed precision
  and float32, on the JPEG CIFAR-10 with the paper's augmentation. Variants (`--variants`):
  - `fused` (the headline): the package's own jitted step (`keras_resnet.training._StatelessStepper._step`:
    `model.stateless_call` + the recipe's SGD via `optimizer.stateless_apply`, exactly what `train()` runs
    on JAX) called inside one jitted program that also gathers the batch from the uint8 training set
    resident on the GPU, augments it there (`keras_resnet.data.device_augment`: pad 4, random crop, flip,
    normalise) and runs `--steps_per_call` iterations in a `lax.scan`, state buffers donated. Only the
    batch indices (a host permutation per epoch) cross host -> device per call.
  - `host`: the same scan, fed with batches augmented on the host by the package's numpy `ArrayIterator`
    and transferred every call (the in-memory path's augmentation, for comparison).
  - `package`: `keras_resnet.training.train()` itself (`input="auto"`: on one GPU the uint8 training set
    lives on the device and each compiled step gathers and augments its batch there, as `fused` does, but
    one dispatch per iteration and the loss read on the host every `sync_every` iterations); images/s of its
    epochs (`log.csv`), the first epoch (compilation) dropped.
  - `compute`: the scan on one fixed, already normalised batch (no gather, no augmentation): the model's
    compute + dispatch ceiling, so that `fused` - `compute` is the input's cost (the profile the issue asks
    for where a target is missed).
* `torch`: a PyTorch ResNet written here (same architecture as `keras_resnet.cifar_resnet`, option A,
  checked against the Keras model by copying weights), AMP bf16, channels-last, data resident on the GPU and
  augmented there, in two setups in the same run: `eager` and `compiled` (`torch.compile(mode=
  "max-autotune")`, CUDA graphs through it, the optimizer step compiled too). With `throughput` in the same
  invocation the table gives the ratios.
* `imagenet`: `keras_resnet.ResNet50()` (stride in the 3x3 conv, torchvision's v1.5, by default: the same
  FLOPs as torchvision) training images/s at 224x224, synthetic data, bf16, batch 256 (halved on OOM),
  against `torchvision.models.resnet50` (AMP bf16, channels-last, eager and compiled).
* `accuracy`: the paper's recipe (64k iterations, batch 128, 0.1 / 10 at 32k and 48k, SGD 0.9, wd 1e-4) on
  the JPEG CIFAR-10 ($CIFAR10_JPEG_DIR), test accuracy on the 10,000 test images every `--eval_every`
  epochs and at the end; `--train_steps` shortens it (boundaries keep their proportions, as in `train()`).
  `--accuracy_loop=fused` (default: the fused step above) or `package` (`training.train()` itself).
* `all-quick`: throughput (ResNet-56, bf16, fused) + torch + imagenet with few windows.

Every invocation prints an environment report, correctness checks, the measurements, and a markdown table
LAST; logs and JSON go to $OUT (else runs/gpu_cifar/<time>). `--smoke` shrinks everything for a CPU test.
Nothing here imports TensorFlow (it is blocked in `sys.modules` unless `--block_modules=`).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gc
import importlib
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PARTS = ("throughput", "torch", "imagenet", "accuracy", "all-quick")
PRECISIONS = {"bf16": "mixed_bfloat16", "fp32": "float32"}
TARGET_ACCURACY = {"resnet20": 0.88, "resnet56": 0.90}
CIFAR_TRAIN_SIZE = 50_000


# ----------------------------------------------------------------------------------------------------------
# Arguments.


def csv_list(kind=str):
    return lambda text: [kind(t) for t in text.split(",") if t.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", type=csv_list(), default=["all-quick"], help=f"comma list of {PARTS}")
    p.add_argument("--smoke", action="store_true", help="tiny sizes and few steps, for a CPU test")
    p.add_argument("--models", type=csv_list(), default=None,
                   help="CIFAR models (throughput: resnet20,resnet56,resnet110; accuracy: resnet56)")
    p.add_argument("--batch_sizes", type=csv_list(int), default=None, help="default 128,512")
    p.add_argument("--precisions", type=csv_list(), default=None, help="bf16,fp32 (default both; all-quick bf16)")
    p.add_argument("--variants", type=csv_list(), default=None,
                   help="fused,host,package,compute (default fused); NAME@K overrides --steps_per_call, e.g. fused@1")
    p.add_argument("--windows", type=int, default=None, help="timed windows (median reported); default 5")
    p.add_argument("--window_steps", type=int, default=None,
                   help="iterations per window at batch 128 (scaled by 128/batch, min 2 calls); default 300")
    p.add_argument("--warmup_calls", type=int, default=None, help="calls after compilation before timing")
    p.add_argument("--steps_per_call", type=int, default=None,
                   help="iterations per jitted call (lax.scan; 1: no loop); default 10 (smoke 1)")
    p.add_argument("--scan_unroll", type=int, default=1, help="lax.scan unroll factor")
    p.add_argument("--data", default=None, help="CIFAR-10 JPEG folder/archive, or 'synthetic' "
                   "(default $CIFAR10_JPEG_DIR, else ../shared/datasets/cifar10-jpeg; smoke: synthetic)")
    p.add_argument("--train_images", type=int, default=None, help="use only the first N training images")
    p.add_argument("--test_images", type=int, default=None, help="use only the first N test images")
    p.add_argument("--torch_depth", type=int, default=None, help="depth of the PyTorch CIFAR ResNet (56)")
    p.add_argument("--torch_setups", type=csv_list(), default=None, help="eager,compiled")
    p.add_argument("--torch_compile_mode", default="max-autotune")
    p.add_argument("--torch_precision", default="bf16", choices=("bf16", "fp32"))
    p.add_argument("--imagenet_model", default=None, help="keras_resnet model (resnet50)")
    p.add_argument("--imagenet_size", type=int, default=None, help="image size (224)")
    p.add_argument("--imagenet_batch", type=int, default=None, help="batch (256; halved on OOM)")
    p.add_argument("--imagenet_stride_in_3x3", type=int, default=1,
                   help="1: torchvision's v1.5 (same FLOPs as torchvision); 0: the paper's Caffe v1")
    p.add_argument("--imagenet_compile_mode", default=None, help="torch.compile mode for torchvision "
                   "(default --torch_compile_mode)")
    p.add_argument("--train_steps", type=int, default=None, help="accuracy: iterations (64000)")
    p.add_argument("--accuracy_batch", type=int, default=128)
    p.add_argument("--accuracy_precision", default="bf16", choices=tuple(PRECISIONS))
    p.add_argument("--accuracy_loop", default="fused", choices=("fused", "package"))
    p.add_argument("--eval_every", type=float, default=None, help="accuracy: epochs between evaluations (8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budget_s", type=float, default=None,
                   help="stop starting new measurements (and stop training) after this many seconds "
                        "(default 560: under the device's 10-minute command limit)")
    p.add_argument("--out", default=None, help="output folder (default $OUT, else runs/gpu_cifar/<time>)")
    p.add_argument("--jax_cache_dir", default=None,
                   help="persistent XLA compilation cache (default runs/jax_cache on a GPU; '' disables)")
    p.add_argument("--block_modules", type=csv_list(), default=["tensorflow"],
                   help="modules made unimportable before anything is imported (default tensorflow)")
    args = p.parse_args(argv)
    parts = []
    for part in args.part:
        if part not in PARTS:
            p.error(f"--part: {part!r} is not one of {PARTS}")
        parts += ["throughput", "torch", "imagenet"] if part == "all-quick" else [part]
    args.parts = list(dict.fromkeys(parts))
    quick = "all-quick" in args.part
    smoke = args.smoke

    def default(name, value):
        if getattr(args, name) is None:
            setattr(args, name, value)

    default("models", ["resnet8"] if smoke else (["resnet56"] if quick or args.parts == ["accuracy"]
                                                  else ["resnet20", "resnet56", "resnet110"]))
    default("batch_sizes", [16, 32] if smoke else [128, 512])
    default("precisions", ["bf16"] if quick else ["bf16", "fp32"])
    default("variants", ["fused"])
    default("windows", 2 if smoke else (3 if quick else 5))
    default("window_steps", 4 if smoke else 300)
    default("warmup_calls", 1 if smoke else 3)
    default("steps_per_call", 1 if smoke else 10)
    default("data", "synthetic" if smoke else (os.environ.get("CIFAR10_JPEG_DIR")
                                                or os.path.join(ROOT, "..", "shared", "datasets", "cifar10-jpeg")))
    default("train_images", 512 if smoke else None)
    default("test_images", 256 if smoke else None)
    default("torch_depth", 8 if smoke else 56)
    default("torch_setups", ["eager"] if smoke else ["eager", "compiled"])
    default("imagenet_model", "resnet18" if smoke else "resnet50")
    default("imagenet_size", 32 if smoke else 224)
    default("imagenet_batch", 2 if smoke else 256)
    default("imagenet_compile_mode", args.torch_compile_mode)
    default("train_steps", 24 if smoke else None)
    default("eval_every", 1.0 if smoke else 8.0)
    default("budget_s", 560.0)
    if smoke and args.accuracy_batch == 128:
        args.accuracy_batch = 32
    for v in args.variants:
        name, _, k = v.partition("@")
        if name not in ("fused", "host", "package", "compute") or (k and not k.isdigit()):
            p.error(f"--variants: {v!r} is not one of fused, host, package, compute")
    for v in args.precisions:
        if v not in PRECISIONS:
            p.error(f"--precisions: {v!r} is not one of {list(PRECISIONS)}")
    for v in args.torch_setups:
        if v not in ("eager", "compiled"):
            p.error(f"--torch_setups: {v!r} is not one of eager, compiled")
    return args


# ----------------------------------------------------------------------------------------------------------
# Output: a log tee, JSON results written as they come, the table printed last.


class Tee:
    def __init__(self, stream, path):
        self.stream, self.file = stream, open(path, "a", buffering=1)

    def write(self, text):
        self.stream.write(text)
        self.file.write(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


class Report:
    def __init__(self, out_dir, args):
        self.out_dir, self.t0 = out_dir, time.perf_counter()
        self.path = os.path.join(out_dir, f"results_{'_'.join(args.parts)}.json")
        self.data = {"argv": sys.argv[1:], "args": vars(args), "started": _now(), "env": {}, "checks": [],
                     "rows": [], "skipped": [], "errors": []}
        self.device = "?"
        self.costs = {}

    def elapsed(self):
        return time.perf_counter() - self.t0

    def fits(self, budget_s, kind):
        """Whether a measurement of `kind` is expected to end within the budget (from the last one's cost)."""
        return self.elapsed() + 0.8 * self.costs.get(kind, 0.0) <= budget_s

    def cost(self, kind, seconds):
        self.costs[kind] = seconds

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            from keras_resnet.run_log import json_default  # KERAS_BACKEND is set by main() first

            json.dump(self.data, f, indent=1, default=json_default)
        os.replace(tmp, self.path)

    def check(self, name, ok, detail):
        print(f"[check] {'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
        self.data["checks"].append({"name": name, "ok": bool(ok), "detail": detail})
        self.save()

    def row(self, **row):
        row.setdefault("device", self.device)
        self.data["rows"].append(row)
        self.save()
        return row

    def skip(self, what, why):
        print(f"[skip] {what}: {why}", flush=True)
        self.data["skipped"].append({"what": what, "why": why})
        self.save()

    def error(self, what, exc):
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        print(f"[error] {what}: {text}", flush=True)
        traceback.print_exc()
        self.data["errors"].append({"what": what, "error": text[-2000:]})
        self.save()

    def table(self):
        rows = self.data["rows"]
        torch_best, torch_eager = {}, {}
        for r in rows:
            if r.get("framework") == "torch" and r.get("images_per_s"):
                key = (r["part"], r["model"], r["batch"])
                torch_best[key] = max(torch_best.get(key, 0), r["images_per_s"])
                if r["setup"].startswith("torch eager"):
                    torch_eager[key] = r["images_per_s"]
        lines = [f"Device: {self.device}. Parts: {', '.join(self.data['args']['parts'])}. "
                 f"{'CPU SMOKE (tiny sizes, not a measurement). ' if self.data['args']['smoke'] else ''}"
                 f"Wall time {self.elapsed():.0f} s.", "",
                 "| part | model | setup | batch | precision | result | range / notes | x torch eager | x torch best |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            if r["part"] == "accuracy":
                result = f"{100 * r['test_accuracy']:.2f}% test acc"
                notes = (f"{r['iterations']} it, train {r['train_s']:.0f} s, total {r['total_s']:.0f} s, "
                         f"{r['images_per_s']:,.0f} img/s")
                if r.get("time_to_target_s") is not None:
                    notes += f", {100 * r['target']:.0f}% at {r['time_to_target_s']:.0f} s"
                ratios = ("", "")
            else:
                result = f"{r['images_per_s']:,.0f} img/s"
                notes = f"{r['min']:,.0f} - {r['max']:,.0f}; compile {r.get('compile_s', 0):.0f} s"
                ratios = ("", "")
                if r.get("framework") == "jax":
                    depth_model = r.get("torch_twin", r["model"])
                    key = ("torch" if r["part"] == "throughput" else r["part"], depth_model, r["batch"])
                    e, b = torch_eager.get(key), torch_best.get(key)
                    ratios = (f"{r['images_per_s'] / e:.2f}x" if e else "", f"{r['images_per_s'] / b:.2f}x" if b else "")
            lines.append(f"| {r['part']} | {r['model']} | {r['setup']} | {r['batch']} | {r['precision']} | "
                         f"{result} | {notes} | {ratios[0]} | {ratios[1]} |")
        checks = self.data["checks"]
        failed = [c["name"] for c in checks if not c["ok"]]
        lines.append("")
        lines.append(f"Checks: {len(checks) - len(failed)}/{len(checks)} passed"
                     + (f" (FAILED: {', '.join(failed)})" if failed else "")
                     + (f"; {len(self.data['skipped'])} skipped" if self.data["skipped"] else "")
                     + (f"; {len(self.data['errors'])} errors" if self.data["errors"] else "") + ".")
        return "\n".join(lines)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def summarize(times, images_per_window):
    rates = [images_per_window / t for t in times]
    return {"images_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
            "windows_s": [round(t, 4) for t in times], "images_per_window": images_per_window}


# ----------------------------------------------------------------------------------------------------------
# Environment.


def environment(report):
    env = {"date": _now(), "python": sys.version.split()[0], "platform": platform.platform(),
           "cpus": os.cpu_count(), "keras_backend": os.environ.get("KERAS_BACKEND"),
           "numpy": np.__version__, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
    try:
        import jax
        import jaxlib

        env["jax"], env["jaxlib"] = jax.__version__, jaxlib.__version__
        devices = jax.devices()
        env["jax_devices"] = [f"{d.platform}:{getattr(d, 'device_kind', d)}" for d in devices]
        report.device = getattr(devices[0], "device_kind", str(devices[0]))
        if devices[0].platform == "cpu":
            report.device = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    except Exception as e:  # pragma: no cover
        env["jax"] = f"unavailable: {e}"
    try:
        import keras

        env["keras"] = keras.__version__
    except Exception as e:  # pragma: no cover
        env["keras"] = f"unavailable: {e}"
    if importlib.util.find_spec("torch") is not None:
        import torch

        env["torch"] = torch.__version__
        env["torch_cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            env["torch_device"] = torch.cuda.get_device_name(0)
            env["cudnn"] = torch.backends.cudnn.version()
        env["torchvision"] = (importlib.import_module("torchvision").__version__
                              if importlib.util.find_spec("torchvision") else None)
    else:
        env["torch"] = None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        env["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
    except Exception:
        env["nvidia_smi"] = None
    try:
        env["git"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                    text=True, timeout=10).stdout.strip() or None
    except Exception:
        env["git"] = None
    report.data["env"] = env
    report.save()
    print("== environment")
    for k, v in env.items():
        print(f"  {k}: {v}")
    print(f"  device: {report.device}", flush=True)
    return env


def on_gpu():
    import jax

    return jax.devices()[0].platform == "gpu"


# ----------------------------------------------------------------------------------------------------------
# Data.


class CifarArrays:
    """uint8 train/test arrays, the per-pixel mean and an `ArrayData` for `training.train`."""

    def __init__(self, args):
        from keras_resnet import training
        from keras_resnet.data import DatasetInfo

        t0 = time.perf_counter()
        if args.data == "synthetic":
            rng = np.random.default_rng(args.seed)
            n_train, n_test = args.train_images or CIFAR_TRAIN_SIZE, args.test_images or 10_000
            # Learnable synthetic data: class-dependent mean colour plus noise.
            train_y = rng.integers(0, 10, n_train)
            test_y = rng.integers(0, 10, n_test)
            palette = rng.integers(40, 216, (10, 1, 1, 3))

            def images(y):
                noise = rng.integers(-40, 41, (len(y), 32, 32, 3))
                return np.clip(palette[y] + noise, 0, 255).astype(np.uint8)

            train_x, test_x = images(train_y), images(test_y)
            mean = train_x.astype(np.float64).mean(0).astype(np.float32)
            info = DatasetInfo(name="synthetic", class_names=[str(i) for i in range(10)], image_shape=(32, 32, 3),
                               num_examples={"train": n_train, "test": n_test}, mean=mean, preprocessing="cifar")
            self.data = training.ArrayData(info, (train_x, train_y), (test_x, test_y))
        else:
            self.data = training.load_array_data(args.data)
            info = self.data.info
            (train_x, train_y), (test_x, test_y) = self.data.train, self.data.test
            if args.train_images or args.test_images:
                train_x, train_y = train_x[: args.train_images], train_y[: args.train_images]
                test_x, test_y = test_x[: args.test_images], test_y[: args.test_images]
                if args.train_images:  # keep the classes mixed in a subset of a class-sorted folder
                    order = np.random.default_rng(args.seed).permutation(len(self.data.train[1]))[: args.train_images]
                    train_x, train_y = self.data.train[0][order], self.data.train[1][order]
                if args.test_images:
                    order = np.random.default_rng(args.seed + 1).permutation(len(self.data.test[1]))[: args.test_images]
                    test_x, test_y = self.data.test[0][order], self.data.test[1][order]
                self.data = training.ArrayData(info, (train_x, train_y), (test_x, test_y))
        self.train_x, self.train_y = self.data.train[0], self.data.train[1].astype(np.int32)
        self.test_x, self.test_y = self.data.test[0], self.data.test[1].astype(np.int32)
        self.mean = np.asarray(self.data.info.mean, np.float32)
        self.load_s = time.perf_counter() - t0
        print(f"== data: {args.data}: {len(self.train_y)} train / {len(self.test_y)} test images, "
              f"{self.train_x.dtype} {self.train_x.shape[1:]}, loaded in {self.load_s:.1f} s", flush=True)


class IndexStream:
    """Batch indices `[K, B]` int32: a fresh permutation per epoch (remainder dropped), continuous across
    epochs (so every call has the same shape)."""

    def __init__(self, n, batch, k, seed):
        self.n, self.batch, self.k = n, batch, k
        self.rng = np.random.default_rng(seed)
        self.steps_per_epoch = n // batch
        self._epoch, self._pos = None, 0

    def next(self):
        out = np.empty((self.k, self.batch), np.int32)
        for i in range(self.k):
            if self._epoch is None or self._pos == self.steps_per_epoch:
                self._epoch = self.rng.permutation(self.n)[: self.steps_per_epoch * self.batch].reshape(
                    self.steps_per_epoch, self.batch).astype(np.int32)
                self._pos = 0
            out[i] = self._epoch[self._pos]
            self._pos += 1
        return out


# ----------------------------------------------------------------------------------------------------------
# JAX: the package's model, recipe and step; the fused on-device program around it.


def block(tree):
    import jax

    return jax.block_until_ready(tree)


def build_package_model(model_name, batch, precision, num_train, args, train_steps=None, **build_kwargs):
    """Model, recipe and `_StatelessStepper` exactly as `keras_resnet.training.train` makes them."""
    import keras

    from keras_resnet import training
    from keras_resnet.registry import build, family_of

    keras.backend.clear_session()
    gc.collect()
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])
    keras.utils.set_random_seed(args.seed)
    family = family_of(model_name)[0]
    config = training.TrainConfig(model=model_name, data="unused", model_dir="unused", batch_size=batch,
                                  train_steps=train_steps, seed=args.seed, precision=PRECISIONS[precision],
                                  verbose=0)
    recipe = training.resolve_recipe(config, num_train, batch)
    kwargs = dict(kernel_regularizer=recipe.regularizer(), **build_kwargs)
    if family == "cifar":
        kwargs.update(classes=10, input_shape=(32, 32, 3))
    model = build(model_name, **kwargs)
    model.compile(optimizer=recipe.optimizer(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.optimizer.build(model.trainable_variables)
    stepper = training._StatelessStepper(model, training.Runtime("jax"))
    return model, recipe, stepper


def copy_state(state):
    import jax
    import jax.numpy as jnp

    return jax.tree_util.tree_map(lambda a: jnp.array(a, copy=True), state)


def make_scan_program(stepper, batch, k, pad, mean, mode, unroll=1):
    """One jitted call = `k` iterations of the package's step (`stepper._step`) in a `lax.scan`.

    mode "fused": `(state, images_u8, labels, idx[k, B], counter)`: gather + device augmentation + step.
    mode "host": `(state, x[k, B, H, W, C], y[k, B])`: batches augmented on the host.
    mode "compute": `(state, x[B, H, W, C], y[B])`: the same batch k times (no input work).
    Returns `(state, loss_sum, correct_sum, last_loss)`; the state is donated. `k == 1`: no loop; `unroll`
    is passed to `lax.scan` (XLA:CPU runs while-loop bodies far slower than straight-line code; GPUs do not
    have that problem as far as is known, which the `fused@1` variant checks).
    """
    import jax
    import jax.numpy as jnp

    from keras_resnet.data.device_augment import augment_normalize, jax_crop_flip_params

    inner = stepper._step  # the package's jitted step: (state, x, y) -> (state, loss, correct)
    mean = None if mean is None else jnp.asarray(mean, jnp.float32)
    base_key = jax.random.PRNGKey(1234)

    def run(state, xs, body, length=None):
        init = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))
        if k == 1:  # no loop at all: one iteration per call
            (state, loss_sum, correct_sum), loss = body(init, jax.tree_util.tree_map(lambda a: a[0], xs))
            return state, loss_sum, correct_sum, loss
        (state, loss_sum, correct_sum), losses = jax.lax.scan(body, init, xs, length=length, unroll=unroll)
        return state, loss_sum, correct_sum, losses[-1]

    if mode == "fused":
        def program(state, images, labels, idx, counter):
            keys = jax.random.split(jax.random.fold_in(base_key, counter), k)

            def body(carry, inp):
                state, loss_sum, correct_sum = carry
                i, key = inp
                oy, ox, flip = jax_crop_flip_params(key, batch, pad)
                x = augment_normalize(jnp.take(images, i, axis=0), mean, oy, ox, flip, pad)
                state, loss, correct = inner(state, x, jnp.take(labels, i, axis=0))
                return (state, loss_sum + loss, correct_sum + correct), loss

            return run(state, (idx, keys), body)
    elif mode == "host":
        def program(state, xs, ys):
            def body(carry, inp):
                state, loss_sum, correct_sum = carry
                state, loss, correct = inner(state, *inp)
                return (state, loss_sum + loss, correct_sum + correct), loss

            return run(state, (xs, ys), body)
    elif mode == "compute":
        def program(state, x, y):
            def body(carry, _):
                state, loss_sum, correct_sum = carry
                state, loss, correct = inner(state, x, y)
                return (state, loss_sum + loss, correct_sum + correct), loss

            return run(state, None, body, length=k)
    else:
        raise ValueError(mode)
    return jax.jit(program, donate_argnums=(0,))


def timed_windows(advance, calls_per_window, windows, warmup_calls, report, what, budget_s):
    """Warm-up (compilation + `warmup_calls`), then `windows` timed windows; `advance(n)` dispatches n calls
    and blocks on the last result, returning its loss. Returns (times, compile_s, losses)."""
    t0 = time.perf_counter()
    losses = [advance(1)]
    compile_s = time.perf_counter() - t0
    if warmup_calls:
        losses.append(advance(warmup_calls))
    times = []
    for w in range(windows):
        if report.elapsed() > budget_s:
            print(f"  {what}: budget reached after {w} windows", flush=True)
            break
        t = time.perf_counter()
        losses.append(advance(calls_per_window))
        times.append(time.perf_counter() - t)
    return times, compile_s, losses


def steps_for_window(args, batch, k):
    steps = max(2 * k, int(round(args.window_steps * 128 / batch)))
    return max(2, math.ceil(steps / k))  # calls per window


def jax_throughput_config(model_name, batch, precision, variant, cifar, args, report):
    import jax
    import jax.numpy as jnp

    variant, _, k = variant.partition("@")
    k = int(k) if k else args.steps_per_call
    setup = f"jax {variant} (k={k})"
    if variant == "package":
        return package_throughput(model_name, batch, precision, cifar, args, report)
    t_build = time.perf_counter()
    model, recipe, stepper = build_package_model(model_name, batch, precision, len(cifar.train_y), args)
    build_s = time.perf_counter() - t_build
    program = make_scan_program(stepper, batch, k, 4, cifar.mean, variant, args.scan_unroll)
    state = copy_state(stepper.state)
    calls = steps_for_window(args, batch, k)
    holder = {"state": state, "counter": 0}
    if variant == "fused":
        t = time.perf_counter()
        images, labels = jax.device_put(cifar.train_x), jax.device_put(cifar.train_y)
        block((images, labels))
        put_s = time.perf_counter() - t
        stream = IndexStream(len(cifar.train_y), batch, k, args.seed)

        def advance(n):
            for _ in range(n):
                holder["state"], ls, cs, last = program(holder["state"], images, labels, stream.next(),
                                                        np.uint32(holder["counter"]))
                holder["counter"] += 1
            return float(block(ls)) / k
    elif variant == "host":
        from keras_resnet.data.memory import ArrayIterator

        put_s = 0.0
        it = ArrayIterator(cifar.train_x, cifar.train_y, batch, training=True, mean=cifar.mean, seed=args.seed)

        def batches():
            while True:
                yield from it

        gen = batches()

        def advance(n):
            for _ in range(n):
                xs, ys = zip(*(next(gen) for _ in range(k)))
                holder["state"], ls, cs, last = program(holder["state"], jnp.asarray(np.stack(xs)),
                                                        jnp.asarray(np.stack(ys)))
            return float(block(ls)) / k
    else:  # compute
        put_s = 0.0
        from keras_resnet.data.preprocessing import normalize

        x = jax.device_put(normalize(cifar.train_x[:batch], cifar.mean))
        y = jax.device_put(cifar.train_y[:batch])

        def advance(n):
            for _ in range(n):
                holder["state"], ls, cs, last = program(holder["state"], x, y)
            return float(block(ls)) / k

    times, compile_s, losses = timed_windows(advance, calls, args.windows, args.warmup_calls, report,
                                             f"{model_name} b{batch} {precision} {variant}", args.budget_s)
    del holder, program
    if not times:
        report.skip(f"throughput {model_name} b{batch} {precision} {variant}", "budget reached before timing")
        return None
    row = report.row(part="throughput", framework="jax", model=model_name, setup=setup, batch=batch,
                     precision=precision, steps_per_call=k, compile_s=compile_s, build_s=build_s,
                     dataset_to_device_s=put_s, losses=losses, **summarize(times, calls * k * batch))
    print(f"  {model_name} b{batch} {precision} {setup}: {row['images_per_s']:,.0f} img/s "
          f"(windows {row['min']:,.0f}-{row['max']:,.0f}, compile {compile_s:.1f} s, loss {losses[0]:.3f} -> "
          f"{losses[-1]:.3f})", flush=True)
    return row


def package_throughput(model_name, batch, precision, cifar, args, report):
    """`training.train()` itself: epochs of `window` iterations, images/s per epoch from log.csv."""
    from keras_resnet import training

    steps = max(2, int(round(args.window_steps * 128 / batch)))
    windows = args.windows
    test_n = min(len(cifar.test_y), 2 * batch)  # evaluation between epochs is not what is measured
    data = training.ArrayData(cifar.data.info, cifar.data.train, (cifar.test_x[:test_n], cifar.test_y[:test_n]))
    with tempfile.TemporaryDirectory() as model_dir:
        config = training.TrainConfig(model=model_name, data="in-memory", model_dir=model_dir, batch_size=batch,
                                      train_steps=steps * (windows + 1), steps_per_epoch=steps,
                                      precision=PRECISIONS[precision], seed=args.seed, verbose=0, input="auto",
                                      distribution="none")
        t0 = time.perf_counter()
        summary = training.train(config, data=data)
        total = time.perf_counter() - t0
        rows = list(csv.DictReader(open(os.path.join(model_dir, "log.csv"))))
    rates = [float(r["images_per_second"]) for r in rows[1:]]  # epoch 1 includes compilation
    if not rates:
        report.skip(f"throughput {model_name} b{batch} {precision} package", "no timed epoch")
        return None
    row = report.row(part="throughput", framework="jax", model=model_name, setup="jax package train()",
                     batch=batch, precision=precision, images_per_s=statistics.median(rates), min=min(rates),
                     max=max(rates), compile_s=steps * batch / float(rows[0]["images_per_second"]),
                     total_s=total, epoch_rates=rates, losses=[float(r["loss"]) for r in rows],
                     final_test_error=summary["test_error"], images_per_window=steps * batch)
    print(f"  {model_name} b{batch} {precision} package train(): {row['images_per_s']:,.0f} img/s "
          f"(epochs {row['min']:,.0f}-{row['max']:,.0f}, first epoch incl. compile {row['compile_s']:.1f} s, "
          f"{total:.0f} s in all)", flush=True)
    return row


def check_fused_matches_package(cifar, args, report):
    """The fused program (device augmentation + scan) computes what the package's step computes: same
    augmentation as the numpy path for the same crop/flip parameters, same losses and weights after 2 steps."""
    import jax
    import jax.numpy as jnp

    from keras_resnet.data import device_augment
    from keras_resnet.data.memory import random_crop_flip
    from keras_resnet.data.preprocessing import normalize

    x = cifar.train_x[:64]
    ref, (oy, ox, flip) = random_crop_flip(x, np.random.default_rng(0), return_params=True)
    dev = np.asarray(jax.jit(device_augment.crop_flip)(jnp.asarray(x), oy, ox, flip))
    report.check("device augmentation == numpy ArrayIterator augmentation (same crop/flip parameters)",
                 bool((dev == ref).all()), f"{int((dev != ref).sum())} differing values of {ref.size}")

    batch, k = 16, 2
    with jax.default_matmul_precision("highest"):
        model, recipe, stepper = build_package_model("resnet8", batch, "fp32", len(cifar.train_y), args)
        program = make_scan_program(stepper, batch, k, 4, cifar.mean, "fused")
        images, labels = jnp.asarray(cifar.train_x), jnp.asarray(cifar.train_y)
        idx = IndexStream(len(cifar.train_y), batch, k, 0).next()
        state0 = copy_state(stepper.state)
        state, loss_sum, _, _ = program(copy_state(state0), images, labels, idx, np.uint32(7))
        # The same two steps through the package's step, with the parameters the fused program drew.
        keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(1234), np.uint32(7)), k)
        ref_state, ref_losses = state0, []
        for i in range(k):
            oy, ox, flip = (np.asarray(a) for a in device_augment.jax_crop_flip_params(keys[i], batch))
            xb = cifar.train_x[idx[i]]
            padded = np.pad(xb, ((0, 0), (4, 4), (4, 4), (0, 0)))
            cols = np.where(flip[:, None], 31 - np.arange(32)[None], np.arange(32)[None]) + ox[:, None]
            rows = oy[:, None] + np.arange(32)[None]
            xa = padded[np.arange(batch)[:, None, None], rows[:, :, None], cols[:, None, :]]
            ref_state, loss, _ = stepper._step(ref_state, normalize(xa, cifar.mean), cifar.train_y[idx[i]])
            ref_losses.append(float(loss))
    tol = 2e-3 if on_gpu() else 1e-4  # GPU: the two programs may pick different cuDNN algorithms
    flat = jax.tree_util.tree_leaves(state[0])
    flat_ref = jax.tree_util.tree_leaves(ref_state[0])
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(flat, flat_ref))
    loss_diff = abs(float(loss_sum) - sum(ref_losses))
    report.check("fused program == package step (resnet8, fp32, 2 iterations, weights and losses)",
                 diff < tol and loss_diff < tol * k,
                 f"max |weight diff| {diff:.2e}, |loss sum diff| {loss_diff:.2e}, losses {ref_losses}")
    import keras

    keras.mixed_precision.set_global_policy("float32")


def part_throughput(args, report, cifar):
    print("== throughput (JAX backend, end to end: data resident on the device, augmentation included)")
    try:
        check_fused_matches_package(cifar, args, report)
    except Exception as e:
        report.error("fused vs package check", e)
    for model_name in args.models:
        for precision in args.precisions:
            for batch in args.batch_sizes:
                for variant in args.variants:
                    what = f"throughput {model_name} b{batch} {precision} {variant}"
                    kind = f"jax {model_name} {variant}"
                    if not report.fits(args.budget_s, kind):
                        report.skip(what, f"time budget {args.budget_s:.0f} s would be exceeded")
                        continue
                    t = time.perf_counter()
                    try:
                        jax_throughput_config(model_name, batch, precision, variant, cifar, args, report)
                    except Exception as e:
                        report.error(what, e)
                    report.cost(kind, time.perf_counter() - t)
                    gc.collect()


# ----------------------------------------------------------------------------------------------------------
# PyTorch references.


def torch_available(report, what):
    if importlib.util.find_spec("torch") is None:
        report.skip(what, "PyTorch is not installed")
        return False
    return True


def torch_cifar_resnet(depth, classes=10):
    """The CIFAR ResNet of `keras_resnet.cifar_resnet(depth, shortcut="A")` in PyTorch: 3x3 convs without
    bias (pad 1, also at stride 2: symmetric), BN (momentum 0.1, eps 1e-5), ReLU after the addition, option A
    shortcut `x[:, :, ::2, ::2]` with the new channels zero-padded equally on both sides, He-normal init."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    n = (depth - 2) // 6
    assert depth == 6 * n + 2 and n >= 1, depth

    def conv(cin, cout, stride):
        c = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        nn.init.kaiming_normal_(c.weight, mode="fan_in", nonlinearity="relu")
        return c

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = conv(cin, cout, stride), bn(cout)
            self.conv2, self.bn2 = conv(cout, cout, 1), bn(cout)
            self.stride, self.extra = stride, cout - cin

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            s = x
            if self.stride > 1:
                s = s[:, :, :: self.stride, :: self.stride]
            if self.extra:
                before = self.extra // 2
                s = F.pad(s, (0, 0, 0, 0, before, self.extra - before))
            return F.relu(y + s)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem_conv, self.stem_bn = conv(3, 16, 1), bn(16)
            blocks, cin = [], 16
            for stage, cout in enumerate((16, 32, 64), start=1):
                for b in range(1, n + 1):
                    blocks.append(Block(cin, cout, 2 if stage > 1 and b == 1 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.fc = nn.Linear(64, classes)

        def forward(self, x):
            x = F.relu(self.stem_bn(self.stem_conv(x)))
            x = self.blocks(x)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return Net()


def copy_keras_to_torch(keras_model, net):
    """Copies a float32 `keras_resnet.cifar_resnet` model's weights (and BN statistics) into `net`."""
    import torch

    def conv(name, c):
        c.weight.data = torch.from_numpy(np.transpose(np.asarray(keras_model.get_layer(name).kernel), (3, 2, 0, 1)).copy())

    def bn(name, b):
        layer = keras_model.get_layer(name)
        for attr, value in (("weight", layer.gamma), ("bias", layer.beta), ("running_mean", layer.moving_mean),
                            ("running_var", layer.moving_variance)):
            getattr(b, attr).data = torch.from_numpy(np.asarray(value).copy())

    conv("stem_conv", net.stem_conv)
    bn("stem_bn", net.stem_bn)
    n = len(net.blocks) // 3
    for i, block in enumerate(net.blocks):
        prefix = f"stage{i // n + 1}_block{i % n + 1}"
        conv(f"{prefix}_1_conv", block.conv1)
        bn(f"{prefix}_1_bn", block.bn1)
        conv(f"{prefix}_2_conv", block.conv2)
        bn(f"{prefix}_2_bn", block.bn2)
    dense = keras_model.get_layer("predictions")
    net.fc.weight.data = torch.from_numpy(np.asarray(dense.kernel).T.copy())
    net.fc.bias.data = torch.from_numpy(np.asarray(dense.bias).copy())


def check_torch_matches_keras(depth, report):
    """The PyTorch reference is the same network: same parameter count, same outputs for the same weights."""
    import jax
    import keras
    import torch

    import keras_resnet

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(0)
    km = keras_resnet.cifar_resnet(depth, shortcut="A")
    rng = np.random.default_rng(0)
    for layer in km.layers:  # non-trivial BN statistics, so that inference mode tests them too
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
    net = torch_cifar_resnet(depth)
    copy_keras_to_torch(km, net)
    net.eval()
    x = rng.normal(size=(8, 32, 32, 3)).astype("float32")
    with jax.default_matmul_precision("highest"):
        ref = np.asarray(km(x, training=False))
    with torch.no_grad():
        out = torch.softmax(net(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()), -1).numpy()
    keras_params = sum(int(np.prod(w.shape)) for w in km.trainable_weights)
    torch_params = sum(p.numel() for p in net.parameters())
    diff = float(np.abs(out - ref).max())
    report.check(f"PyTorch reference ResNet-{depth} == keras_resnet.cifar_resnet({depth}) (CPU, fp32)",
                 keras_params == torch_params and diff < 1e-4,
                 f"params {torch_params:,} vs {keras_params:,}; max |softmax diff| {diff:.2e}")
    keras.backend.clear_session()


def torch_train_throughput(label, model, make_batch, batch, setup, args, report, part, model_name,
                           compile_mode, classes, lr=0.1):
    """Training images/s of `model` (AMP bf16 / fp32, channels-last) in the `eager` or `compiled` setup.
    `make_batch()` returns `(x NCHW channels-last float32, y)` on the device."""
    import torch
    import torch.nn.functional as F

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    model = model.to(device).to(memory_format=torch.channels_last)
    model.train()
    decay = [p for n_, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n_, p in model.named_parameters() if p.ndim <= 1]
    compiled = setup == "compiled"
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=torch.tensor(lr, device=device) if compiled else lr, momentum=0.9)
    amp = args.torch_precision == "bf16"

    class WithLoss(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x, y):
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp):
                out = self.net(x)
            return F.cross_entropy(out.float(), y)

    fwd = WithLoss(model)
    opt_step = opt.step
    if compiled:
        fwd = torch.compile(fwd, mode=compile_mode, dynamic=False)
        opt_step = torch.compile(opt.step, mode=compile_mode, dynamic=False)
    mark = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def advance(n):
        loss_sum = torch.zeros((), device=device)
        for _ in range(n):
            x, y = make_batch()
            if compiled and mark is not None:
                mark()
            loss = fwd(x, y)
            loss.backward()
            opt_step()
            opt.zero_grad(set_to_none=True)
            loss_sum = loss_sum + loss.detach()
        sync()
        return float(loss_sum) / n

    steps = max(2, int(round(args.window_steps * 128 / batch))) if part == "torch" else args.imagenet_steps
    times, compile_s, losses = timed_windows(advance, steps, args.windows, args.warmup_calls * (
        args.steps_per_call if part == "torch" else 1), report, label, args.budget_s)
    if not times:
        report.skip(label, "budget reached before timing")
        return None
    precision = "bf16 AMP" if amp else "fp32"
    row = report.row(part=part, framework="torch", model=model_name, setup=f"torch {setup}"
                     + (f" ({compile_mode})" if compiled else ""), batch=batch, precision=precision,
                     compile_s=compile_s, losses=losses, **summarize(times, steps * batch))
    print(f"  {label}: {row['images_per_s']:,.0f} img/s (windows {row['min']:,.0f}-{row['max']:,.0f}, first "
          f"step incl. compile {compile_s:.1f} s, loss {losses[0]:.3f} -> {losses[-1]:.3f})", flush=True)
    return row


def part_torch(args, report, cifar):
    print(f"== torch: PyTorch reference ResNet-{args.torch_depth} (option A), AMP {args.torch_precision}, "
          "channels-last, data resident on the device and augmented there")
    if not torch_available(report, "torch part"):
        return
    import torch

    try:
        check_torch_matches_keras(args.torch_depth, report)
    except Exception as e:
        report.error("torch vs keras check", e)
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        report.skip("torch part", "CUDA is not available (use --smoke for a CPU run)")
        return
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
    images = torch.from_numpy(cifar.train_x).to(device)  # [N, 32, 32, 3] uint8
    labels = torch.from_numpy(cifar.train_y.astype(np.int64)).to(device)
    mean = torch.from_numpy(cifar.mean).to(device)
    n = len(cifar.train_y)
    arange = torch.arange(32, device=device)
    model_name = f"resnet{args.torch_depth}"
    for batch in args.batch_sizes:
        state = {"perm": None, "pos": 0}
        steps_per_epoch = n // batch
        bidx = torch.arange(batch, device=device)

        def make_batch(batch=batch, state=state, steps_per_epoch=steps_per_epoch, bidx=bidx):
            if state["perm"] is None or state["pos"] == steps_per_epoch:
                state["perm"], state["pos"] = torch.randperm(n, device=device), 0
            idx = state["perm"][state["pos"] * batch:(state["pos"] + 1) * batch]
            state["pos"] += 1
            padded = torch.nn.functional.pad(images[idx], (0, 0, 4, 4, 4, 4))  # [B, 40, 40, 3]
            oy = torch.randint(0, 9, (batch,), device=device)
            ox = torch.randint(0, 9, (batch,), device=device)
            flip = torch.rand(batch, device=device) < 0.5
            rows = oy[:, None] + arange[None]
            cols = ox[:, None] + torch.where(flip[:, None], 31 - arange[None], arange[None])
            x = padded[bidx[:, None, None], rows[:, :, None], cols[:, None, :]]  # [B, 32, 32, 3]
            x = (x.float() - mean) * (1.0 / 255.0)
            return x.permute(0, 3, 1, 2), labels[idx]  # NCHW view of NHWC memory: channels-last

        for setup in args.torch_setups:
            label = f"torch {model_name} b{batch} {setup}"
            if not report.fits(args.budget_s, f"torch {setup}"):
                report.skip(label, f"time budget {args.budget_s:.0f} s would be exceeded")
                continue
            t = time.perf_counter()
            try:
                torch.manual_seed(args.seed)
                torch_train_throughput(label, torch_cifar_resnet(args.torch_depth), make_batch, batch, setup, args,
                                       report, "torch", model_name, args.torch_compile_mode, 10,
                                       lr=0.1 * batch / 128)
            except Exception as e:
                report.error(label, e)
            report.cost(f"torch {setup}", time.perf_counter() - t)
            gc.collect()
            if cuda:
                torch.cuda.empty_cache()
    del images, labels


# ----------------------------------------------------------------------------------------------------------
# ImageNet scale.


def _is_oom(exc):
    text = str(exc).lower()
    return "resource_exhausted" in text or "out of memory" in text or "outofmemory" in text


def part_imagenet(args, report):
    import jax
    import jax.numpy as jnp
    import keras

    size, model_name = args.imagenet_size, args.imagenet_model
    args.imagenet_steps = 3 if args.smoke else 20
    variant = "v1.5" if args.imagenet_stride_in_3x3 else "v1"
    print(f"== imagenet: keras_resnet {model_name} ({variant}) vs torchvision, {size}x{size} synthetic, bf16")
    batch = args.imagenet_batch
    jax_row = None
    while batch >= 1:
        what = f"imagenet jax {model_name} b{batch}"
        if report.elapsed() > args.budget_s:
            report.skip(what, "time budget reached")
            break
        try:
            model, recipe, stepper = build_package_model(model_name, batch, "bf16", 1_281_167, args,
                                                         stride_in_3x3=bool(args.imagenet_stride_in_3x3),
                                                         input_shape=(size, size, 3))
            step = jax.jit(lambda s, x, y: stepper._step(s, x, y), donate_argnums=(0,))
            rng = np.random.default_rng(0)
            x = jax.device_put(rng.normal(size=(batch, size, size, 3)).astype(np.float32))
            y = jax.device_put(rng.integers(0, 1000, batch).astype(np.int32))
            holder = {"state": copy_state(stepper.state)}

            def advance(n):
                for _ in range(n):
                    holder["state"], loss, _ = step(holder["state"], x, y)
                return float(block(loss))

            times, compile_s, losses = timed_windows(advance, args.imagenet_steps, args.windows, 2, report, what,
                                                     args.budget_s)
            del holder
            if times:
                jax_row = report.row(part="imagenet", framework="jax", model=f"{model_name} {variant}",
                                     torch_twin=model_name, setup="jax package step", batch=batch, precision="bf16",
                                     compile_s=compile_s, losses=losses,
                                     **summarize(times, args.imagenet_steps * batch))
                print(f"  {what}: {jax_row['images_per_s']:,.0f} img/s (windows {jax_row['min']:,.0f}-"
                      f"{jax_row['max']:,.0f}, compile {compile_s:.1f} s)", flush=True)
            break
        except Exception as e:
            if _is_oom(e) and batch > 1:
                print(f"  {what}: out of memory; halving the batch", flush=True)
                batch //= 2
                keras.backend.clear_session()
                gc.collect()
                continue
            report.error(what, e)
            break
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    gc.collect()
    if not torch_available(report, "imagenet torchvision"):
        return
    import torch

    if importlib.util.find_spec("torchvision") is None:
        report.skip("imagenet torchvision", "torchvision is not installed")
        return
    import torchvision

    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        report.skip("imagenet torchvision", "CUDA is not available")
        return
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cudnn.benchmark = True
    tbatch = jax_row["batch"] if jax_row else batch
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(tbatch, 3, size, size, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (tbatch,), generator=g).to(device)
    for setup in args.torch_setups:
        label = f"imagenet torchvision {model_name} b{tbatch} {setup}"
        if report.elapsed() > args.budget_s:
            report.skip(label, "time budget reached")
            continue
        try:
            net = getattr(torchvision.models, model_name)(weights=None)
            torch_train_throughput(label, net, lambda: (x, y), tbatch, setup, args, report, "imagenet", model_name,
                                   args.imagenet_compile_mode, 1000, lr=0.1 * tbatch / 256)
        except Exception as e:
            report.error(label, e)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------------------
# Time to accuracy.


def _divisor_at_most(n, k):
    for d in range(min(k, n), 0, -1):
        if n % d == 0:
            return d
    return 1


def part_accuracy(args, report, cifar):
    for model_name in args.models:
        if report.elapsed() > args.budget_s:
            report.skip(f"accuracy {model_name}", "time budget reached")
            continue
        try:
            if args.accuracy_loop == "package":
                accuracy_package(model_name, args, report, cifar)
            else:
                accuracy_fused(model_name, args, report, cifar)
        except Exception as e:
            report.error(f"accuracy {model_name}", e)


def accuracy_fused(model_name, args, report, cifar):
    import jax
    import jax.numpy as jnp
    import keras

    batch, precision = args.accuracy_batch, args.accuracy_precision
    num_train = len(cifar.train_y)
    model, recipe, stepper = build_package_model(model_name, batch, precision, num_train, args,
                                                 train_steps=args.train_steps)
    total = recipe.train_steps
    k = _divisor_at_most(total, args.steps_per_call)
    steps_per_epoch = num_train // batch
    eval_every = max(1, int(round(args.eval_every * steps_per_epoch)))
    print(f"== accuracy: {model_name}, {precision}, batch {batch}, {total} iterations "
          f"({total / steps_per_epoch:.1f} epochs of {steps_per_epoch}), lr {recipe.learning_rate:g} / 10 at "
          f"{list(recipe.boundaries)}, warm-up {recipe.warmup} {recipe.warmup_steps}, wd {recipe.weight_decay:g}, "
          f"{k} iterations per call, test every {eval_every} iterations, fused step (device augmentation)",
          flush=True)
    t_start = time.perf_counter()
    program = make_scan_program(stepper, batch, k, 4, cifar.mean, "fused", args.scan_unroll)
    images, labels = jax.device_put(cifar.train_x), jax.device_put(cifar.train_y)
    from keras_resnet.data.preprocessing import normalize

    eval_batch = 1000 if len(cifar.test_y) >= 1000 else len(cifar.test_y)
    n_test = len(cifar.test_y)
    padded_n = -(-n_test // eval_batch) * eval_batch
    test_x = np.zeros((padded_n, 32, 32, 3), np.float32)
    test_x[:n_test] = normalize(cifar.test_x, cifar.mean)
    test_x = jax.device_put(test_x.reshape(-1, eval_batch, 32, 32, 3))
    test_y = jnp.asarray(cifar.test_y)

    @jax.jit
    def evaluate(trainable, non_trainable):
        def body(_, xb):
            probs = stepper.model.stateless_call(trainable, non_trainable, xb, training=False)[0]
            return None, jnp.argmax(probs, -1)

        _, pred = jax.lax.scan(body, None, test_x)
        return jnp.sum((pred.reshape(-1)[:n_test] == test_y).astype(jnp.float32)) / n_test

    state = copy_state(stepper.state)
    stream = IndexStream(num_train, batch, k, args.seed)
    schedule = recipe.learning_rate_schedule()
    csv_path = os.path.join(report.out_dir, f"accuracy_{model_name}.csv")
    fields = ["iteration", "epoch", "learning_rate", "train_loss", "train_error", "test_accuracy", "train_s",
              "wall_s"]
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerow(fields)
    curve, it, train_s, eval_s, time_to_target = [], 0, 0.0, 0.0, None
    target = TARGET_ACCURACY.get(model_name)
    loss_acc, correct_acc, seen, compile_s, stopped, last_train_s = 0.0, 0.0, 0, None, False, 0.0
    t_train = time.perf_counter()
    pending = []
    while it < total:
        state, ls, cs, _ = program(state, images, labels, stream.next(), np.uint32(it // k))
        pending.append((ls, cs))
        it += k
        if compile_s is None:
            block(ls)
            compile_s = time.perf_counter() - t_train
        if it % eval_every < k or it >= total:
            sums = block(pending)
            loss_acc += sum(float(a) for a, _ in sums)
            correct_acc += sum(float(b) for _, b in sums)
            seen += len(sums) * k
            pending = []
            train_s = time.perf_counter() - t_train - eval_s
            te = time.perf_counter()
            acc = float(evaluate(state[0], state[1]))
            eval_s += time.perf_counter() - te
            wall = time.perf_counter() - t_start
            lr = float(keras.ops.convert_to_numpy(schedule(it - 1)))
            point = {"iteration": it, "epoch": round(it / steps_per_epoch, 2), "learning_rate": lr,
                     "train_loss": loss_acc / max(seen, 1), "train_error": 1 - correct_acc / max(seen * batch, 1),
                     "test_accuracy": acc, "train_s": round(train_s, 2), "wall_s": round(wall, 2)}
            curve.append(point)
            with open(csv_path, "a", newline="") as f:
                csv.writer(f).writerow([point[k_] for k_ in fields])
            if target is not None and time_to_target is None and acc >= target:
                time_to_target = wall
            window_rate = seen * batch / max(train_s - last_train_s, 1e-9)
            point["window_images_per_s"] = round(window_rate, 1)
            print(f"  it {it:6d} ep {point['epoch']:6.1f} lr {lr:.4g} train loss {point['train_loss']:.4f} err "
                  f"{100 * point['train_error']:5.2f}% | test acc {100 * acc:5.2f}% | train {train_s:6.1f} s, "
                  f"{window_rate:,.0f} img/s since last test | wall {wall:6.1f} s", flush=True)
            loss_acc, correct_acc, seen, last_train_s = 0.0, 0.0, 0, train_s
            if report.elapsed() > args.budget_s and it < total:
                print(f"  STOPPED EARLY at iteration {it} of {total}: time budget {args.budget_s:.0f} s", flush=True)
                stopped = True
                break
    total_s = time.perf_counter() - t_start
    final = curve[-1]
    # Write the state back into the Keras model (as `_StatelessStepper.sync`) and keep it.
    for variables, values in zip((stepper.model.trainable_variables, stepper.model.non_trainable_variables,
                                  stepper.model.optimizer.variables), state):
        for variable, value in zip(variables, values):
            variable.assign(value)
    try:
        stepper.model.save(os.path.join(report.out_dir, f"accuracy_{model_name}.keras"))
    except Exception as e:  # pragma: no cover - the result matters more than the file
        report.error("saving the trained model", e)
    row = report.row(part="accuracy", framework="jax", model=model_name, setup="jax fused step", batch=batch,
                     precision=precision, iterations=it, planned_iterations=total, stopped_early=stopped,
                     test_accuracy=final["test_accuracy"], train_s=final["train_s"], total_s=total_s,
                     compile_s=compile_s, eval_s=eval_s, images_per_s=it * batch / max(final["train_s"], 1e-9),
                     images_per_s_after_compile=(it - k) * batch / max(final["train_s"] - compile_s, 1e-9),
                     target=target, time_to_target_s=time_to_target, curve=curve,
                     recipe=recipe.to_dict())
    if target is not None and not args.smoke and not stopped:
        report.check(f"{model_name} test accuracy >= {100 * target:.0f}% (issue 8 target)",
                     final["test_accuracy"] >= target, f"{100 * final['test_accuracy']:.2f}%")
    report.check(f"accuracy {model_name}: training loss decreased",
                 curve[-1]["train_loss"] < curve[0]["train_loss"] or len(curve) == 1,
                 f"{curve[0]['train_loss']:.4f} -> {curve[-1]['train_loss']:.4f}")
    print(f"  {model_name}: test accuracy {100 * final['test_accuracy']:.2f}% after {it} iterations; training "
          f"{final['train_s']:.0f} s ({row['images_per_s']:,.0f} img/s incl. the first call's compilation "
          f"{compile_s:.1f} s; {row['images_per_s_after_compile']:,.0f} img/s after it), evaluations {eval_s:.1f} s, total {total_s:.0f} s -> {csv_path}", flush=True)
    keras.mixed_precision.set_global_policy("float32")


def accuracy_package(model_name, args, report, cifar):
    """`keras_resnet.training.train()` itself on the in-memory JPEG CIFAR-10 (loss read every `sync_every` steps)."""
    from keras_resnet import training

    batch = args.accuracy_batch
    steps_per_epoch = len(cifar.train_y) // batch
    model_dir = os.path.join(report.out_dir, f"train_{model_name}")
    config = training.TrainConfig(model=model_name, data="in-memory", model_dir=model_dir, batch_size=batch,
                                  train_steps=args.train_steps, steps_per_epoch=max(1, int(round(
                                      args.eval_every * steps_per_epoch))), precision=PRECISIONS[args.accuracy_precision],
                                  seed=args.seed, verbose=2, input="auto", distribution="none")
    print(f"== accuracy: {model_name} through training.train() -> {model_dir}", flush=True)
    t0 = time.perf_counter()
    summary = training.train(config, data=cifar.data)
    total_s = time.perf_counter() - t0
    rows = list(csv.DictReader(open(os.path.join(model_dir, "log.csv"))))
    curve = [{"iteration": int(r["iteration"]), "test_accuracy": 1 - float(r["test_error"]),
              "train_loss": float(r["loss"]), "wall_s": float(r["wall_time_s"])} for r in rows]
    target = TARGET_ACCURACY.get(model_name)
    ttt = next((c["wall_s"] for c in curve if target is not None and c["test_accuracy"] >= target), None)
    report.row(part="accuracy", framework="jax", model=model_name, setup="jax package train()", batch=batch,
               precision=args.accuracy_precision, iterations=summary["iterations"],
               test_accuracy=summary["test_accuracy"], train_s=summary["wall_time_s"], total_s=total_s,
               images_per_s=summary["images_per_second"], target=target, time_to_target_s=ttt, curve=curve)
    report.check(f"accuracy {model_name} (train()): training loss decreased",
                 curve[-1]["train_loss"] < curve[0]["train_loss"] or len(curve) == 1,
                 f"{curve[0]['train_loss']:.4f} -> {curve[-1]['train_loss']:.4f}")


# ----------------------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    for name in args.block_modules:
        if name and name not in sys.modules:
            sys.modules[name] = None  # `import tensorflow` now raises ImportError
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if os.environ["KERAS_BACKEND"] != "jax":
        print(f"error: KERAS_BACKEND={os.environ['KERAS_BACKEND']}; this benchmark runs on the JAX backend.",
              file=sys.stderr)
        return 2
    out_dir = args.out or os.environ.get("OUT") or os.path.join(
        ROOT, "runs", "gpu_cifar", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)
    sys.stdout = Tee(sys.stdout, os.path.join(out_dir, f"log_{'_'.join(args.parts)}.txt"))
    report = Report(out_dir, args)
    print(f"== gpu_cifar.py {' '.join(sys.argv[1:])}  ({_now()}) -> {out_dir}")
    env = environment(report)
    import jax

    cache = args.jax_cache_dir
    if cache is None:
        cache = os.path.join(ROOT, "runs", "jax_cache") if on_gpu() else ""
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 2.0)
        print(f"  XLA compilation cache: {cache}")
    if args.smoke:
        print("  SMOKE MODE: tiny sizes and few steps; the numbers are not measurements.")
    if "jax" not in str(env.get("jax_devices")) and not env.get("jax_devices"):
        report.skip("all JAX parts", "JAX has no device")
    needs_cifar = any(p in args.parts for p in ("throughput", "torch", "accuracy"))
    cifar = CifarArrays(args) if needs_cifar else None
    for part in args.parts:
        if report.elapsed() > args.budget_s:
            report.skip(f"part {part}", "time budget reached")
            continue
        t = time.perf_counter()
        try:
            if part == "throughput":
                part_throughput(args, report, cifar)
            elif part == "torch":
                part_torch(args, report, cifar)
            elif part == "imagenet":
                part_imagenet(args, report)
            elif part == "accuracy":
                part_accuracy(args, report, cifar)
        except Exception as e:
            report.error(f"part {part}", e)
        print(f"== {part}: {time.perf_counter() - t:.0f} s", flush=True)
    report.data["finished"] = _now()
    report.data["wall_s"] = report.elapsed()
    table = report.table()
    report.data["table"] = table
    report.save()
    with open(os.path.join(out_dir, f"table_{'_'.join(args.parts)}.md"), "w") as f:
        f.write(table + "\n")
    print("\n" + table, flush=True)
    failed = any(not c["ok"] for c in report.data["checks"]) or report.data["errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
