"""Helpers shared by the test modules: tiny datasets, image files, subprocess runs, TensorBoard events.

Test modules import these as `from conftest import ...` (pytest puts `tests/` on `sys.path`); fixtures
used by more than one module live here too.
"""

import ctypes
import functools
import gc
import glob
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest

import zygote

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR = Path(REPO).parent / "shared" / "datasets" / "cifar10-jpeg"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def share_cores_between_workers():
    """Under pytest-xdist, each worker's OpenMP libraries (PyTorch, ONNX Runtime's MLAS) get its share of the
    cores instead of all of them: two workers each running 2-thread OpenMP kernels on 2 cores wait at every
    barrier for a thread the other worker has descheduled (the PyTorch differential fixture took 512 s
    instead of 101 s). Set before any test module imports them; subprocesses keep `QUIET_ENV`'s setting."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))


share_cores_between_workers()


def share_jax_compilations():
    """One persistent XLA compilation cache for the whole run, a fresh directory (removed at its end), set in the
    environment the workers and every process they start inherit: the JAX-backend command lines of the suite
    compile the same steps again and again (`test_training.py`'s three JAX tests: 46 CPU-s against 58 without).
    A directory the user set is kept. Returns the directory this run made, or None (a worker, or the user's)."""
    if "PYTEST_XDIST_WORKER" in os.environ or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return None
    directory = tempfile.mkdtemp(prefix="keras-resnet-tests-jax-")
    os.environ.update({"JAX_COMPILATION_CACHE_DIR": directory, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                       "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"})
    return directory


JAX_CACHE = share_jax_compilations()
CLI_SITE = os.path.join(REPO, "tests", "cli_site")


def freeze_every_process_at_exit():
    """Puts tests/cli_site on `PYTHONPATH` for the workers and every process they start (`QUIET_ENV` and `env()`
    keep it too): its sitecustomize freezes a process's objects as it exits, so that the interpreter's exit
    does not walk what TensorFlow, Keras or JAX made (about 1 CPU-s of each such process)."""
    paths = list(filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    if CLI_SITE not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([CLI_SITE, *paths])


freeze_every_process_at_exit()


def pytest_unconfigure(config):
    if JAX_CACHE is not None:
        shutil.rmtree(JAX_CACHE, ignore_errors=True)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>


@pytest.fixture(scope="session", autouse=True)
def unpinned_malloc():
    """Lets the process that runs the tests keep glibc's large allocations on its heap. The first
    `tf.data.Dataset.from_generator` a process iterates makes TensorFlow 2.21 (on Python 3.11) call
    `mallopt(M_MMAP_THRESHOLD, 128 KiB)`, once per process (`ApplyPython311MemoryPatch`, against a memory growth
    of generator datasets): from then on every allocation of 128 KiB or more that the heap cannot serve is a fresh
    `mmap`, page-faulted in and unmapped again when freed, for the rest of the process. A pytest worker runs ~40
    files, and the package's training input is such a generator; PyTorch's float64 convolutions take 9 MiB buffers
    at every call. Measured on the 2-core Xeon, the PyTorch differential fixture's steps in one process: 19.5
    million page faults, 91 CPU-s (30 of them in the kernel) pinned, against 0.9 million and 53 CPU-s (2.4) with
    the thresholds set back. So the patch is triggered once here, before any test, and the thresholds are then
    set where glibc's own dynamic threshold would take them: 32 MiB to `mmap`, 64 MiB kept free before trimming.
    Subprocesses are left as the package runs them. A no-op where TensorFlow is not imported (the collection of
    any file that uses it imports it: a run of only TensorFlow-free files does not pay for its import) or there is
    no glibc."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    for _ in tf.data.Dataset.from_generator(lambda: iter(()), output_signature=tf.TensorSpec((), tf.int32)):
        pass
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
    libc.mallopt(M_TRIM_THRESHOLD, 64 << 20)


@pytest.fixture
def eager_draws(monkeypatch):
    """The shapes of the truncated-normal draws TensorFlow runs during the test (Keras' He initialisation of
    convolution kernels; a graph traced for output shapes runs none): a list that grows as draws run."""
    import tensorflow as tf

    draws, original = [], tf.random.stateless_truncated_normal

    def counted(*args, **kwargs):
        if tf.executing_eagerly():
            draws.append(tuple(kwargs["shape"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(tf.random, "stateless_truncated_normal", counted)
    return draws


@pytest.fixture(autouse=True)
def fresh_process(request):
    """Tests marked `fresh_process` start every command line in a fresh interpreter (what a process prints from
    its first instruction on is their contract); the others may fork them from the zygote."""
    zygote.start_fresh(request.node.get_closest_marker("fresh_process") is not None)
    yield
    zygote.start_fresh(False)


def pytest_sessionfinish(session):
    zygote.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After each test (its fixtures finalised), collects the garbage it left and freezes what survives
    (`gc.freeze`): Python's automatic full collections, and pytest's five at the end of the session, then walk only
    what later tests create, not the TensorFlow / Keras modules and the cached models of earlier ones. Measured on
    the 2-core Xeon (test_models, test_backbone, test_imagenet_v2, test_weight_tags in one process): 28 full
    collections took 20 s of 221 s; with the freeze 200 s, and a lower peak memory (5.5 GB against 6.5 GB).
    What survives a test is kept to the process's end (cached models, module fixtures), as it mostly was."""
    yield
    gc.collect()
    gc.freeze()


@functools.lru_cache(maxsize=None)
def file_seconds():
    """`{test file: seconds}` of one measured run of the suite (`tests/data/file_seconds.json`, written by
    `tests/data/measure_file_seconds.py`) and the seconds a file not in it counts as (the median file's)."""
    with open(os.path.join(REPO, "tests", "data", "file_seconds.json")) as f:
        seconds = json.load(f)["seconds"]
    return seconds, float(np.median(list(seconds.values()))) if seconds else 0.0


def file_of(item):
    """The path of a collected test's file relative to the repository, as `tests/test_x.py`."""
    return os.path.relpath(str(item.path), REPO).replace(os.sep, "/")


def pytest_collection_modifyitems(session, config, items):
    """Costliest test files first, each file's tests together and in their own order.

    `--dist loadfile` hands whole files to the workers in collection order; handing the long ones out first
    lets the two workers end together (`file_seconds`). Nothing is deselected."""
    seconds, default = file_seconds()

    def cost(item):
        path = file_of(item)
        return -seconds.get(path, default), path

    items.sort(key=cost)  # stable: each file's tests keep their order


QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join([CLI_SITE, REPO]),
             "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "2"}
"""The environment every process the suite starts gets: quiet, CPU only, the repository importable, and
tests/cli_site/sitecustomize.py (each process's objects frozen at its exit)."""
# Optional packages TensorFlow / Keras import at start-up when installed, absent from a user's install of the
# package; `env()` starts its processes without them (tests/cli_site/sitecustomize.py), JAX kept for the JAX
# backend.
ABSENT_IN_PROCESSES = ("jax", "IPython", "sklearn")


def toy_arrays(n, size=8, classes=3, seed=0):
    """Images whose class is visible in their brightness: a few steps of SGD learn them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 70, (n, size, size, 3)) + (labels * 90)[:, None, None, None]
    return images.astype(np.uint8), labels.astype(np.int64)


def make_image_folder(root, train=240, test=60, size=8, classes=3):
    """Writes `root/{train,test}/<class>/*.png` and returns `root`."""
    from PIL import Image

    for split, n, seed in (("train", train, 0), ("test", test, 1)):
        images, labels = toy_arrays(n, size, classes, seed)
        for i, (image, label) in enumerate(zip(images, labels)):
            d = os.path.join(root, split, f"class{label}")
            os.makedirs(d, exist_ok=True)
            Image.fromarray(image).save(os.path.join(d, f"{i:04d}.png"))
    return str(root)


def array_data(train=256, test=64, size=8, classes=3, validation=0):
    """A `training.ArrayData` of toy images (in-process runs)."""
    from keras_resnet import training
    from keras_resnet.data import DatasetInfo

    tr, te = toy_arrays(train, size, classes, 0), toy_arrays(test, size, classes, 1)
    val = None
    if validation:
        val = (tr[0][-validation:], tr[1][-validation:])
        tr = (tr[0][:-validation], tr[1][:-validation])
    info = DatasetInfo(name="toy", class_names=[f"class{i}" for i in range(classes)], image_shape=(size, size, 3),
                       num_examples={"train": len(tr[1]), "test": test}, mean=tr[0].mean(0).astype(np.float32))
    return training.ArrayData(info, tr, te, val)


def env(**extra):
    """The environment of a process the suite starts: quiet, CPU only, the repository on `PYTHONPATH`, without
    the optional packages of `ABSENT_IN_PROCESSES` (JAX kept when `KERAS_BACKEND=jax`), and `extra`."""
    out = dict(os.environ)
    out.update(QUIET_ENV)
    out.update({k: str(v) for k, v in extra.items()})
    absent = [name for name in ABSENT_IN_PROCESSES if not (name == "jax" and out.get("KERAS_BACKEND") == "jax")]
    out["KERAS_RESNET_TESTS_ABSENT"] = ",".join(absent)
    return out


# The package's command lines a test starts are forked from a process that has imported TensorFlow in this
# environment (tests/zygote.py).
zygote.install(env())


def run_cli(args, module="trainers.cifar", timeout=300, **env_extra):
    """Runs `python -m <module> <args>` and returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env(**env_extra),
                          capture_output=True, text=True, timeout=timeout)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def png_bytes(array):
    """PNG encoding of a uint8 array (lossless)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def make_folder(root, splits=("train", "test"), classes=("cat", "dog", "emu"), per_class=4, size=8, fmt="png"):
    """root/<split>/<class>/<i>.png with pixel value 10*label + i (lossless PNG)."""
    for split in splits:
        for label, cls in enumerate(classes):
            d = Path(root) / split / cls
            d.mkdir(parents=True)
            for i in range(per_class):
                img = np.full((size, size, 3), 10 * label + i, np.uint8)
                (d / f"{i}.{fmt}").write_bytes(png_bytes(img))
    return Path(root)


def make_tar(folder, path, prefix=""):
    """A .tar / .tar.gz of `folder` (members relative to it, behind `prefix`)."""
    with tarfile.open(path, "w:gz" if str(path).endswith("gz") else "w") as tar:
        for p in sorted(Path(folder).rglob("*")):
            tar.add(p, arcname=prefix + str(p.relative_to(folder)), recursive=False)
    return Path(path)


def scalar_steps(log_dir, tag):
    """Every (step, value) of `tag` in the raw event files under `log_dir`, duplicates included, file order."""
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    found = []
    for path in sorted(glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))):
        for record in tf.data.TFRecordDataset(path):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == tag:
                    found.append((event.step, float(tf.make_ndarray(value.tensor))))
    return found


def real_cifar_test_images(per_class=10):
    """`(uint8 images [N, 32, 32, 3], int64 labels, member names)`: the first `per_class` JPEGs of each class
    of the real CIFAR-10 test archive in ../shared, decoded with Pillow; skips the test when it is absent."""
    import pytest
    from PIL import Image

    archive = CIFAR / "cifar10-test.tar.gz"
    if not archive.is_file():
        pytest.skip(f"real CIFAR-10 test archive not found at {archive} (../shared absent)")
    images, labels, names, taken = [], [], [], {}
    with tarfile.open(archive) as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or taken.get(parts[1], 0) >= per_class:
                continue
            taken[parts[1]] = taken.get(parts[1], 0) + 1
            image = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
            images.append(np.asarray(image, np.uint8))
            labels.append(CIFAR_CLASSES.index(parts[1]))
            names.append(member.name)
    return np.stack(images), np.asarray(labels, np.int64), names


def write_real_cifar_folder(root, train_per_class=32, test_per_class=100):
    """A real CIFAR-10 image folder at `root` from the shared test archive (PNG copies of the decoded JPEGs, so
    the pixels are exactly those JPEGs'): `train/<class>/NNNN.png` holds the first `train_per_class` images of
    each class, `test/<class>/` the next `test_per_class`; skips the test when ../shared is absent."""
    from PIL import Image

    images, labels, _ = real_cifar_test_images(per_class=train_per_class + test_per_class)
    for split, first, count in (("train", 0, train_per_class), ("test", train_per_class, test_per_class)):
        for c, name in enumerate(CIFAR_CLASSES):
            (root / split / name).mkdir(parents=True)
            for i, index in enumerate(np.flatnonzero(labels == c)[first:first + count]):
                Image.fromarray(images[index]).save(root / split / name / f"{i:04d}.png")
    return root


def randomise_batch_norms(model, seed=0):
    """Every BN of `model` gets random gamma, beta, moving mean and variance (as a trained net has)."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n), rng.normal(0, 0.3, n),
                               rng.uniform(0.3, 2.0, n)])
    return model


def relative_difference(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def layer_inputs(model):
    """`{layer name: [names of the layers feeding it, in call order]}` from the public functional config."""
    def sources(node, found):
        if isinstance(node, dict):
            if node.get("class_name") == "__keras_tensor__":
                found.append(node["config"]["keras_history"][0])
            else:
                for value in node.values():
                    sources(value, found)
        elif isinstance(node, (list, tuple)):
            for value in node:
                sources(value, found)
        return found

    return {layer["name"]: sources(layer["inbound_nodes"], []) for layer in model.get_config()["layers"]}


AKAMASTER = Path(REPO).parent / "shared" / "weights" / "akamaster"
"""The published akamaster/pytorch_resnet_cifar10 checkpoints (ResNet-20/32/44/56), when ../shared is present."""
TORCH_MEAN, TORCH_STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
"""The akamaster (and torchvision) input normalisation: `(x / 255 - TORCH_MEAN) / TORCH_STD` on RGB."""


@functools.lru_cache(maxsize=None)
def akamaster_torch_classes():
    """`(AkamasterBlock, AkamasterResNet)`: akamaster's resnet.py in PyTorch (option A), defined once in
    `benchmarks/akamaster.py` (which `benchmarks/torch_cifar_recipe.py` trains); `residual=False` is the paper's
    plain network. Skips the test when PyTorch is absent.
    """
    import pytest

    torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install 'keras-resnet[torch]')")
    if os.path.join(REPO, "benchmarks") not in sys.path:
        sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    from akamaster import akamaster_classes

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    return akamaster_classes()


def akamaster_published(depth):
    """The published akamaster ResNet-`depth` (PyTorch, eval mode) from ../shared; skips when it is absent."""
    import pytest

    _, AkamasterResNet = akamaster_torch_classes()
    import torch

    files = sorted(AKAMASTER.glob(f"resnet{depth}-*.th")) if AKAMASTER.is_dir() else []
    if not files:
        pytest.skip(f"akamaster ResNet-{depth} checkpoint not found in {AKAMASTER} (../shared absent)")
    model = AkamasterResNet(depth)
    checkpoint = torch.load(files[0], map_location="cpu", weights_only=True)
    model.load_state_dict({k.removeprefix("module."): v for k, v in checkpoint["state_dict"].items()})
    return model.eval()


def torch_nhwc_logits(model, images_nhwc, batch_size=500):
    """Logits of a PyTorch model on float NHWC images (already normalised), in batches, without gradients."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(images_nhwc), batch_size):
            batch = np.ascontiguousarray(images_nhwc[start:start + batch_size].transpose(0, 3, 1, 2), np.float32)
            out.append(model(torch.from_numpy(batch)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def akamaster_test_set(tmp_path_factory, depth=20):
    """`(images, labels, names, logits)`: the 10,000 real CIFAR-10 test JPEGs (`real_cifar_test_images`) and the
    published akamaster ResNet-`depth`'s logits on them (PyTorch, `(x / 255 - TORCH_MEAN) / TORCH_STD`). Computed
    once per run (decoding and a PyTorch pass, about 10 CPU-s) and shared by the pytest-xdist workers through a
    file in the run's temporary directory (written whole, then renamed); skips when ../shared is absent."""
    base = tmp_path_factory.getbasetemp()
    cache = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"akamaster{depth}-test-set.npz"
    if not cache.is_file():
        reference = akamaster_published(depth)
        images, labels, names = real_cifar_test_images(per_class=1000)
        logits = torch_nhwc_logits(reference, (images / np.float32(255.0) - TORCH_MEAN) / TORCH_STD)
        partial = cache.with_name(f"{cache.name}.{os.getpid()}.npz")
        np.savez(partial, images=images, labels=labels, names=np.array(names), logits=logits)
        os.replace(partial, cache)
    with np.load(cache) as arrays:
        return arrays["images"], arrays["labels"], arrays["names"].tolist(), arrays["logits"]


@functools.lru_cache(maxsize=None)
def torchvision_torch_classes():
    """`(TVBasic, TVBottleneck, TVResNet)`: torchvision's ResNet in PyTorch with its state-dict names (`conv1`,
    `bn1`, `layerS.B.convK` / `bnK`, `downsample.0/1`, `fc`), which timm's ResNets share; written here because
    torchvision does not import against this PyTorch. Skips the test when PyTorch is absent.
    """
    import pytest

    torch = pytest.importorskip("torch", reason="PyTorch not installed (pip install 'keras-resnet[torch]')")
    import torch.nn.functional as F
    from torch import nn

    class TVBasic(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TVBottleneck(nn.Module):
        """torchvision's Bottleneck ("v1.5"): the stride is on the 3x3 convolution."""

        expansion = 4

        def __init__(self, inplanes, planes, stride, downsample):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.downsample = downsample

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(out)))))
            return F.relu(out + (x if self.downsample is None else self.downsample(x)))

    class TVResNet(nn.Module):
        """torchvision's ResNet with its state-dict names (conv1, bn1, layerS.B..., downsample.0/1, fc)."""

        def __init__(self, block, layers, classes=1000):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            inplanes = 64
            for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), layers), start=1):
                blocks = []
                for index in range(count):
                    stride = 2 if stage > 1 and index == 0 else 1
                    downsample = None
                    if stride != 1 or inplanes != planes * block.expansion:
                        downsample = nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
                                                   nn.BatchNorm2d(planes * block.expansion))
                    blocks.append(block(inplanes, planes, stride, downsample))
                    inplanes = planes * block.expansion
                setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            self.fc = nn.Linear(inplanes, classes)

        def forward(self, x):
            x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return TVBasic, TVBottleneck, TVResNet


def randomise_torch(model, seed):
    """Every tensor random: conv/linear weights and biases, BN gamma, beta, running mean and variance."""
    import torch

    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            shape = tuple(tensor.shape)
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                value = rng.uniform(0.5, 2.0, shape)
            elif tensor.ndim == 1 and name.endswith("weight"):  # BN gamma
                value = rng.uniform(0.5, 1.5, shape)
            elif tensor.ndim == 1:  # BN beta / running mean, linear bias
                value = rng.normal(0.0, 0.2, shape)
            else:
                value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
            tensor.copy_(torch.from_numpy(value.astype(np.float32)))
    return model.eval()


PHOTO_SIDES = (40, 900, 57, 96, 130, 75, 200, 333, 48, 64, 120, 517)
"""Longer sides of the generated photos, cycled (40 to 900 pixels, as in ImageNet)."""


def photo_array(height, width, label, classes, seed):
    """An RGB photo whose colour says its class: a hue per class, a gradient and noise."""
    rng = np.random.default_rng(seed)
    hue = 2 * np.pi * label / classes
    colour = 128 + 100 * np.array([np.cos(hue), np.cos(hue - 2.1), np.cos(hue + 2.1)])
    ramp = np.linspace(-30, 30, width)[None, :, None]
    image = colour[None, None, :] + ramp + rng.normal(0, 20, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def make_photo_folder(root, classes=6, train=4, val=2, test=0, seed=0):
    """`root/{train,val[,test]}/n<k>/*.jpg`: an ImageNet-style folder of JPEGs of many sizes (40..900 pixels a
    side, `PHOTO_SIDES`), whose colour tells the class; among the training images a grayscale JPEG
    (`train/n00/gray.jpg`), a CMYK JPEG (`train/n01/cmyk.jpg`), an EXIF-rotated photo (`train/n02/rotated.jpg`,
    orientation 6) and a PNG named `.JPEG` (`train/n03/png_named.JPEG`). Returns `root` as a Path."""
    from PIL import Image

    root, index = Path(root), 0
    for split, per_class in (("train", train), ("val", val), ("test", test)):
        for label in range(classes if per_class else 0):
            d = root / split / f"n{label:02d}"
            d.mkdir(parents=True)
            for i in range(per_class):
                side = PHOTO_SIDES[index % len(PHOTO_SIDES)]
                h, w = (side, max(side * 3 // 4, 32)) if index % 2 else (max(side * 3 // 4, 32), side)
                image = Image.fromarray(photo_array(h, w, label, classes, seed * 1000 + index))
                index += 1
                special = (split, label, i) if i == 0 else None
                if special == ("train", 0, 0):
                    image.convert("L").save(d / "gray.jpg", quality=90)
                elif special == ("train", 1, 0):
                    image.convert("CMYK").save(d / "cmyk.jpg", quality=90)
                elif special == ("train", 2, 0):
                    exif = Image.Exif()
                    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
                    image.save(d / "rotated.jpg", quality=90, exif=exif)
                elif special == ("train", 3, 0):
                    image.save(d / "png_named.JPEG", format="PNG")
                else:
                    image.save(d / f"{i:03d}.jpg", quality=90)
    return root


def write_tfds_metadata(data_dir, name, splits):
    """Writes the TFDS metadata of dataset `name` with `{split: examples}` under `data_dir`, so that
    `tfds.testing.mock_data(policy=MockPolicy.USE_FILES, data_dir=data_dir)` serves exactly those splits."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(data_dir))
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=split, shard_lengths=[n], num_bytes=0, filename_template=None)
        for split, n in splits.items()]))
    Path(builder.data_dir).mkdir(parents=True, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)


SERVE_BYTES_SCRIPT = r'''
import sys
sys.modules["keras"] = sys.modules["keras_resnet"] = None  # a serving process: neither can be imported
import json
from pathlib import Path
import numpy as np
import tensorflow as tf

version, listing, out = sys.argv[1:4]
files = json.loads(Path(listing).read_text())
sb = tf.saved_model.load(version).signatures["serve_bytes"]
data = [Path(f).read_bytes() for f in files]
batch = sb(images=tf.constant(data))  # one batch of mixed sizes and formats
single = [sb(images=tf.constant([d]))["probabilities"].numpy()[0] for d in data]
np.savez(out, batch=batch["probabilities"].numpy(), single=np.stack(single))
imported = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "keras_resnet") and sys.modules[m])
Path(out + ".json").write_text(json.dumps({"class_names": [n.decode() for n in batch["class_names"].numpy()],
                                           "imported": imported}))
'''


def serve_bytes_elsewhere(version, files, workdir):
    """Serves `files` through the export `version`'s `serve_bytes` in a process that imports TensorFlow only
    (keras and keras_resnet cannot be imported there), once as one batch of mixed sizes and formats and once
    a file at a time. Returns `({"batch": probabilities, "single": probabilities}, {"class_names": top-1
    labels of the batch, "imported": keras / keras_resnet modules the process imported (none)})`."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "files.json").write_text(json.dumps([str(f) for f in files]))
    (workdir / "serve.py").write_text(SERVE_BYTES_SCRIPT)
    out = str(workdir / "served.npz")
    result = subprocess.run([sys.executable, str(workdir / "serve.py"), str(version), str(workdir / "files.json"), out],
                            capture_output=True, text=True, timeout=600, env=dict(os.environ, **QUIET_ENV))
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(np.load(out)), json.loads(Path(out + ".json").read_text())
