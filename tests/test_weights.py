"""Contracts of the pretrained weights (issue 13): named sets, converters, fetching, preprocessing, errors.

The akamaster CIFAR-10 models are checked against the published files in ../shared/weights/akamaster and a
PyTorch reference defined here (the architecture of akamaster's resnet.py); the torchvision and
keras.applications converters against files of the published formats made here with every tensor
randomised (fresh models have zero biases and identity BN statistics, which would hide a wrong mapping).
"""

import dataclasses
import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
from conftest import (REPO, akamaster_torch_classes, env, randomise_torch, real_cifar_test_images,
                      relative_difference, torch_nhwc_logits, torchvision_torch_classes)

import keras_resnet
from keras_resnet import faults
from keras_resnet.weights import assign as assigning
from keras_resnet.weights import sets

AKAMASTER = Path(REPO).parent / "shared" / "weights" / "akamaster"
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch not installed (pip install 'keras-resnet[torch]')")
MEAN, STD = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)

if HAS_TORCH:
    import torch

    torch.set_num_threads(2)

    AkamasterBlock, AkamasterResNet = akamaster_torch_classes()  # the one definition, in conftest
    TVBasic, TVBottleneck, TVResNet = torchvision_torch_classes()  # shared with test_safetensors, in conftest


def logits(model, images):
    return keras.ops.convert_to_numpy(model(images, training=False))


@pytest.fixture(scope="module")
def cifar_images():
    images, labels, _ = real_cifar_test_images(per_class=30)
    return images, labels


@pytest.fixture(scope="module")
def images64(cifar_images):
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(i).resize((64, 64), Image.BILINEAR)) for i in cifar_images[0][:32]])


@pytest.fixture
def weights_home(tmp_path, monkeypatch):
    """An empty Keras cache and an empty KERAS_RESNET_WEIGHTS directory; returns (weights dir, cache dir)."""
    home, offline = tmp_path / "keras_home", tmp_path / "offline"
    home.mkdir()
    offline.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(home))
    monkeypatch.setenv("KERAS_RESNET_WEIGHTS", str(offline))
    monkeypatch.delenv("KERAS_RESNET_FAULT", raising=False)
    return offline, home / "models"


def files_in(directory):
    return sorted(p.name for p in Path(directory).rglob("*") if p.is_file()) if Path(directory).exists() else []


def save_akamaster_file(path, depth=20, seed=0):
    """A file in akamaster's published format: {"state_dict": module.-prefixed tensors, "best_prec1": ...}."""
    model = randomise_torch(AkamasterResNet(depth), seed)
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "best_prec1": 91.7}, path)
    return model


def replace_set(monkeypatch, **changes):
    """Replaces the cifar10 set of ResNet-20 in the table by a copy with `changes`; returns the copy."""
    original = sets.find_set("cifar10", family="cifar", depth=20, shortcut="A")
    entry = dataclasses.replace(original, **changes)
    monkeypatch.setattr(sets, "NAMED_SETS", tuple(entry if s is original else s for s in sets.NAMED_SETS))
    return entry


def publish(monkeypatch, path, file_hash=None):
    """Makes the file at `path` ResNet-20's cifar10 set, served from its file:// URL."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return replace_set(monkeypatch, file_name=Path(path).name, url=Path(path).as_uri(), file_hash=file_hash or digest)


# --- akamaster CIFAR-10: the published files against the PyTorch original -----------------------------------


@needs_torch
@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_akamaster_cifar10_equals_pytorch_on_real_jpegs(depth, cifar_images, weights_home, monkeypatch):
    if not AKAMASTER.is_dir():
        pytest.skip(f"akamaster weights not found at {AKAMASTER} (../shared absent)")
    monkeypatch.setenv("KERAS_RESNET_WEIGHTS", str(AKAMASTER))
    images, _ = cifar_images
    entry = sets.find_set("cifar10", family="cifar", depth=depth, shortcut="A")
    reference = AkamasterResNet(depth)
    checkpoint = torch.load(AKAMASTER / entry.file_name, map_location="cpu", weights_only=True)
    reference.load_state_dict({k.removeprefix("module."): v for k, v in checkpoint["state_dict"].items()})
    expected = torch_nhwc_logits(reference.eval(), (images / 255.0 - MEAN) / STD)

    model = getattr(keras_resnet, f"ResNet{depth}")(weights="cifar10", classifier_activation=None)
    ours = logits(model, keras_resnet.preprocess_input(images, weights="cifar10"))
    assert np.max(np.abs(ours - expected)) < 1e-3
    np.testing.assert_array_equal(ours.argmax(1), expected.argmax(1))

    cached = weights_home[1] / entry.cache_name
    assert files_in(weights_home[1]) == [entry.cache_name]  # converted once, nothing else written
    record = keras_resnet.weights.read_metadata(cached)
    assert record["preprocessing"] == keras_resnet.weights.TORCH.to_dict()
    assert (record["source"], record["set"], record["model"]) == (entry.file_name, "cifar10", f"resnet{depth}")
    assert keras_resnet.weights.preprocessing_of(cached) == keras_resnet.weights.TORCH


@needs_torch
def test_cached_conversion_is_used_without_the_source(cifar_images, weights_home, monkeypatch):
    """A second build reads the cached .weights.h5 only, and a headless model gets the same features."""
    images = keras_resnet.preprocess_input(cifar_images[0][:20], weights="cifar10")
    source = weights_home[0] / "resnet20-made.th"
    save_akamaster_file(source)
    publish(monkeypatch, source)
    first = keras_resnet.ResNet20(weights="cifar10", classifier_activation=None)
    source.unlink()  # from now on only the cache exists; the "upstream" URL is gone too
    second = keras_resnet.ResNet20(weights="cifar10", classifier_activation=None)
    np.testing.assert_array_equal(logits(second, images), logits(first, images))
    features = keras_resnet.ResNet20(weights="cifar10", include_top=False, pooling="avg", input_shape=(None, None, 3))
    pooled = keras.Model(first.input, first.get_layer("avg_pool").output)
    np.testing.assert_array_equal(logits(features, images), logits(pooled, images))
    other_classes = keras_resnet.ResNet20(weights="cifar10", include_top=False, classes=100)
    assert other_classes.output_shape == (None, 8, 8, 64)


# --- torchvision and keras.applications formats: randomised files made here --------------------------------


@needs_torch
@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_state_dict_converts_exactly(depth, images64, tmp_path, weights_home):
    block, layers = (TVBasic, (2, 2, 2, 2)) if depth == 18 else (TVBottleneck, (3, 4, 6, 3))
    reference = randomise_torch(TVResNet(block, layers), seed=depth)
    path = tmp_path / f"resnet{depth}-abcdef12.pth"
    torch.save(reference.state_dict(), path)
    x = keras_resnet.weights.TORCH.apply(images64)
    expected = torch_nhwc_logits(reference, x)
    model = keras_resnet.build(f"resnet{depth}", weights=str(path), input_shape=(64, 64, 3),
                               classifier_activation=None, stride_in_3x3=depth == 50)
    assert relative_difference(logits(model, x), expected) < 1e-4
    if depth == 50:  # the paper's stride placement is another network: the same file does not reproduce it
        caffe = keras_resnet.ResNet50(weights=str(path), input_shape=(64, 64, 3), classifier_activation=None)
        assert relative_difference(logits(caffe, x), expected) > 1e-2


def randomise_keras(model, seed):
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape, name = tuple(variable.shape), variable.name
        if name == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif name == "gamma":
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 1:  # beta, moving mean, conv and dense biases
            value = rng.normal(0.0, 0.2, shape)
        else:
            value = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[:-1])), shape)
        variable.assign(value.astype(np.float32))
    return model


def save_legacy_h5(model, path):
    """The Keras-2-era weights-only HDF5 layout of keras.applications' published files."""
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        handle.attrs["backend"], handle.attrs["keras_version"] = b"tensorflow", b"2.2.4"
        for layer in model.layers:
            group = handle.create_group(layer.name)
            names = [f"{layer.name}/{variable.name}:0" for variable in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, variable in zip(names, layer.weights):
                group.create_dataset(name, data=variable.numpy())


def test_keras_applications_h5_converts_exactly(images64, tmp_path, weights_home):
    reference = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    randomise_keras(reference, seed=7)
    assert reference.get_layer("conv2_block1_1_conv").use_bias  # Caffe's biases, folded by the converter
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    save_legacy_h5(reference, path)
    x = keras_resnet.preprocess_input(images64, weights="imagenet", model="resnet50")
    np.testing.assert_allclose(x, keras.applications.resnet.preprocess_input(images64.astype("float32")), atol=1e-4)
    expected = logits(reference, x)
    model = keras_resnet.ResNet50(weights=path, input_shape=(64, 64, 3), classifier_activation=None)
    assert relative_difference(logits(model, x), expected) < 1e-4

    output = tmp_path / "converted.weights.h5"
    keras_resnet.weights.convert(path, keras_resnet.ResNet50(), output)
    assert keras_resnet.weights.preprocessing_of(output) == keras_resnet.weights.CAFFE
    headless = keras_resnet.ResNet50(weights=output, include_top=False, pooling="avg", input_shape=(64, 64, 3))
    pooled = keras.Model(model.input, model.get_layer("avg_pool").output)
    np.testing.assert_allclose(logits(headless, x), logits(pooled, x), rtol=1e-6, atol=1e-6)


@needs_torch
def test_convert_cli_writes_a_loadable_file_with_its_preprocessing(tmp_path, cifar_images):
    source, output = tmp_path / "resnet20-made.th", tmp_path / "out" / "resnet20.weights.h5"
    reference = save_akamaster_file(source, seed=3)
    result = subprocess.run([sys.executable, "-m", "keras_resnet.weights", "convert", f"--from={source}",
                             "--model=resnet20", f"--output={output}"], cwd=REPO, env=env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert files_in(output.parent) == ["resnet20.weights.h5"]
    assert keras_resnet.weights.read_metadata(output)["source_format"] == "akamaster"
    x = keras_resnet.preprocess_input(cifar_images[0][:20], weights=output)
    model = keras_resnet.ResNet20(weights=output, classifier_activation=None)
    np.testing.assert_allclose(logits(model, x), torch_nhwc_logits(reference, x), atol=1e-4)
    bad = subprocess.run([sys.executable, "-m", "keras_resnet.weights", "convert", f"--from={source}",
                          "--model=resnet32", f"--output={tmp_path / 'bad.weights.h5'}"], cwd=REPO, env=env(),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert "no tensor for stage1_block4_1_conv/kernel of resnet32" in bad.stderr
    assert not (tmp_path / "bad.weights.h5").exists()


# --- fetching: keras.utils.get_file over file:// URLs --------------------------------------------------------


@needs_torch
@pytest.mark.parametrize("hash_kind", ["sha256", "prefix"])
def test_download_with_the_right_hash_is_cached_and_converted(hash_kind, tmp_path, weights_home, monkeypatch):
    served = tmp_path / "served" / "resnet20-made.th"
    served.parent.mkdir()
    save_akamaster_file(served, seed=5)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    entry = publish(monkeypatch, served, file_hash=digest if hash_kind == "sha256" else digest[:8])
    model = keras_resnet.ResNet20(weights="cifar10")
    assert files_in(weights_home[1]) == sorted([entry.cache_name, "resnet20-made.th"])
    assert hashlib.sha256((weights_home[1] / "resnet20-made.th").read_bytes()).hexdigest() == digest
    direct = keras_resnet.ResNet20(weights=served)
    for a, b in zip(model.weights, direct.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@needs_torch
@pytest.mark.parametrize("hash_kind", ["sha256", "prefix"])
def test_download_with_a_wrong_hash_is_refused_and_nothing_cached(hash_kind, tmp_path, weights_home, monkeypatch):
    served = tmp_path / "served" / "resnet20-made.th"
    served.parent.mkdir()
    save_akamaster_file(served)
    publish(monkeypatch, served, file_hash="0" * 64 if hash_kind == "sha256" else "0badf00d")
    with pytest.raises(ValueError, match=r"download of file://.*resnet20-made\.th refused"):
        keras_resnet.ResNet20(weights="cifar10")
    assert files_in(weights_home[1]) == []


def test_no_network_and_no_file_names_the_file_and_where_to_put_it(tmp_path, weights_home, monkeypatch):
    missing = tmp_path / "nowhere" / "resnet20-12fca82f.th"
    entry = replace_set(monkeypatch, url=missing.as_uri())
    message = (rf"needs resnet20-12fca82f\.th, which is not in .*could not be downloaded from "
               rf"{re.escape(missing.as_uri())}.*place resnet20-12fca82f\.th \(hash {entry.file_hash}\) in the "
               rf"directory {re.escape(str(weights_home[0]))} \(\$KERAS_RESNET_WEIGHTS\)")
    with pytest.raises(keras_resnet.weights.WeightsUnavailableError, match=message):
        keras_resnet.ResNet20(weights="cifar10")
    assert files_in(weights_home[1]) == []


@needs_torch
def test_a_truncated_file_is_refused(tmp_path, weights_home, monkeypatch):
    made = tmp_path / "resnet20-made.th"
    save_akamaster_file(made)
    publish(monkeypatch, made)
    truncated = weights_home[0] / made.name
    truncated.write_bytes(made.read_bytes()[:50_000])  # a partial copy in KERAS_RESNET_WEIGHTS
    with pytest.raises(ValueError, match=rf"{re.escape(str(truncated))}: SHA-256 [0-9a-f]{{64}} does not match the published .*truncated"):
        keras_resnet.ResNet20(weights="cifar10")
    with pytest.raises(ValueError, match=rf"{re.escape(str(truncated))}: not a readable PyTorch file.*truncated"):
        keras_resnet.ResNet20(weights=truncated)
    legacy = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    save_legacy_h5(keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3)), legacy)
    legacy.write_bytes(legacy.read_bytes()[:100_000])
    with pytest.raises(ValueError, match=rf"{re.escape(str(legacy))}: (not a readable HDF5 file|unreadable Keras-2 weights)"):
        keras_resnet.ResNet50(weights=legacy, input_shape=(32, 32, 3))
    assert files_in(weights_home[1]) == []


@needs_torch
def test_a_crash_while_caching_leaves_no_cached_file(tmp_path, weights_home, monkeypatch):
    """Killed at `weights.cache_write` (temporary file written, not yet renamed): no cache; the next run converts."""
    made = tmp_path / "resnet20-made.th"
    save_akamaster_file(made)
    digest = hashlib.sha256(made.read_bytes()).hexdigest()
    (weights_home[0] / "resnet20-12fca82f.th").write_bytes(made.read_bytes())
    script = ("import dataclasses, keras_resnet\nfrom keras_resnet.weights import sets\n"
              "e = sets.find_set('cifar10', family='cifar', depth=20, shortcut='A')\n"
              f"sets.NAMED_SETS = (dataclasses.replace(e, file_hash={digest!r}),)\n"
              "keras_resnet.ResNet20(weights='cifar10')\nprint('loaded')\n")
    run = lambda **extra: subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                                         timeout=300, env=env(**extra))
    killed = run(KERAS_RESNET_FAULT="weights.cache_write:kill")
    assert killed.returncode == -9, killed.stderr
    assert not any(name.startswith("keras_resnet-") for name in files_in(weights_home[1]))
    leftovers = [name for name in files_in(weights_home[1]) if name.endswith(".tmp.weights.h5")]
    assert len(leftovers) == 1  # the killed writer's complete temporary file, never under the final name
    finished = run()
    assert not [name for name in files_in(weights_home[1]) if name.endswith(".tmp.weights.h5")]  # swept
    assert finished.returncode == 0 and "loaded" in finished.stdout, finished.stderr
    cache_name = dataclasses.replace(sets.find_set("cifar10", family="cifar", depth=20, shortcut="A"),
                                     file_hash=digest).cache_name
    assert cache_name in files_in(weights_home[1])


@needs_torch
def test_a_cache_write_failure_still_loads_the_weights(tmp_path, weights_home, monkeypatch):
    made = tmp_path / "resnet20-made.th"
    save_akamaster_file(made)
    publish(monkeypatch, made)
    (weights_home[0] / made.name).write_bytes(made.read_bytes())
    monkeypatch.setattr(faults, "site", _raise_enospc)  # as KERAS_RESNET_FAULT=weights.cache_write:enospc
    with pytest.warns(UserWarning, match="could not be cached"):
        model = keras_resnet.ResNet20(weights="cifar10")
    direct = keras_resnet.ResNet20(weights=made)
    np.testing.assert_array_equal(model.weights[0].numpy(), direct.weights[0].numpy())
    assert files_in(weights_home[1]) == []  # the temporary file is gone


def _raise_enospc(name):
    raise OSError(28, f"No space left on device (test, at {name})")


# --- strictness: a file for another network never loads partly ------------------------------------------------


@needs_torch
def test_a_file_for_another_network_fails_on_its_first_misfit(tmp_path, weights_home):
    path20, path32 = tmp_path / "resnet20-a.th", tmp_path / "resnet32-b.th"
    save_akamaster_file(path20, depth=20)
    save_akamaster_file(path32, depth=32)
    with pytest.raises(ValueError, match=r"no tensor for stage1_block4_1_conv/kernel of resnet32 \(expected shape "
                                         r"\(3, 3, 16, 16\)\); found for stage1_block4_1_conv: nothing"):
        keras_resnet.ResNet32(weights=path20)
    with pytest.raises(ValueError, match=r"tensor 'layer1.3.conv1.weight' \(shape \(3, 3, 16, 16\), for "
                                         r"stage1_block4_1_conv/kernel\) has no place in resnet20"):
        keras_resnet.ResNet20(weights=path32)
    with pytest.raises(ValueError, match=r"tensor 'linear.weight' for predictions/kernel of resnet20: expected "
                                         r"shape \(64, 5\), found \(64, 10\)"):
        keras_resnet.ResNet20(weights=path20, classes=5)
    assert keras_resnet.ResNet20(weights=path20, include_top=False).output_shape == (None, 8, 8, 64)


def test_nothing_is_assigned_when_the_last_tensor_does_not_fit():
    model = keras_resnet.cifar_resnet(8)
    before = [v.numpy().copy() for v in model.weights]
    table = {layer: {role: (np.ones_like(a), key) for role, (a, key) in entry.items()}
             for layer, entry in assigning.table_of(model).items()}
    kernel, key = table["predictions"]["kernel"]
    table["predictions"]["kernel"] = (kernel[:, :3], key)
    with pytest.raises(ValueError, match=r"predictions/kernel of resnet8: expected shape \(64, 10\), found \(64, 3\)"):
        assigning.assign(model, table, "test table")
    for variable, value in zip(model.weights, before):
        np.testing.assert_array_equal(variable.numpy(), value)


@pytest.mark.parametrize("source_format", ["weights.h5", "th"])
@pytest.mark.parametrize("head", ["top", "no_top"])
def test_a_network_built_from_a_file_draws_no_random_initial_values(source_format, head, tmp_path, eager_draws):
    if source_format == "th":
        if not HAS_TORCH:
            pytest.skip("PyTorch not installed (pip install 'keras-resnet[torch]')")
        path = tmp_path / "resnet20-x.th"
        save_akamaster_file(path, depth=20)
        reference = keras_resnet.ResNet20(weights=path)
    else:
        path = tmp_path / "resnet20.weights.h5"
        reference = randomise_keras(keras_resnet.ResNet20(), 0)
        reference.save_weights(path)
    kwargs = {} if head == "top" else {"include_top": False, "pooling": "avg"}
    eager_draws.clear()
    fresh = keras_resnet.ResNet20(**kwargs)
    kernels = [tuple(v.shape) for v in fresh.weights if v.name == "kernel" and len(v.shape) == 4]
    assert sorted(eager_draws) == sorted(kernels) and len(kernels) == 19, "the random build draws every conv kernel"
    eager_draws.clear()
    model = keras_resnet.ResNet20(weights=path, **kwargs)
    assert eager_draws == []
    by_path = {v.path: keras.ops.convert_to_numpy(v) for v in reference.weights}
    assert len(model.weights) == len(by_path) - (0 if head == "top" else 2)
    for variable in model.weights:
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), by_path[variable.path])
    with keras.StatelessScope():  # Keras initialises the variables it deferred at the scope's exit: none left
        pass
    assert eager_draws == []


def test_a_failed_load_leaves_no_variable_for_keras_to_initialise_later(tmp_path, eager_draws):
    path = tmp_path / "resnet8.weights.h5"
    keras_resnet.cifar_resnet(8).save_weights(path)
    eager_draws.clear()
    with pytest.raises(ValueError, match=r"`weights`='.*resnet8\.weights\.h5' does not fit resnet14"):
        keras_resnet.cifar_resnet(14, weights=path)
    with keras.StatelessScope():
        pass
    assert eager_draws == []


# --- bad arguments: checked before any layer is built ----------------------------------------------------------


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: keras_resnet.ResNet20(weights="cifar100"),
         r"`weights` must be None, one of 'cifar10', 'imagenet', 'imagenet-tv2', 'imagenet-a1', or the path.*'cifar100' \(not a named set, and no "
         r"such file\)"),
        (lambda: keras_resnet.ResNet20(weights=3), r"`weights` must be None.*received 3 \(a int\)"),
        (lambda: keras_resnet.ResNet20(weights="cifar10", classes=100),
         r"`weights`='cifar10' with `include_top=True` needs `classes`=10.*received `classes`=100"),
        (lambda: keras_resnet.ResNet50(weights="imagenet", classes=10), r"needs `classes`=1000.*received `classes`=10"),
        (lambda: keras_resnet.cifar_resnet(8, weights="cifar10"),
         r"`weights`='cifar10' does not fit the CIFAR resnet8 with shortcut='A': 'cifar10' exists for resnet20, "
         r"resnet32, resnet44, resnet56, resnet110, resnet1202"),
        (lambda: keras_resnet.ResNet50(weights="cifar10"), r"`weights`='cifar10' does not fit the ImageNet resnet50"),
        (lambda: keras_resnet.ResNet20(weights="imagenet"),
         r"`weights`='imagenet' does not fit the CIFAR resnet20.*'imagenet' exists for resnet18, resnet34, resnet50"),
        (lambda: keras_resnet.PlainNet20(weights="cifar10"), r"does not fit the CIFAR plain20 with shortcut=None"),
        (lambda: keras_resnet.ResNet20(weights="cifar10", shortcut="B"), r"does not fit the CIFAR resnet20 with "
                                                                          r"shortcut='B'"),
        (lambda: keras_resnet.ResNet18(weights="imagenet", shortcut="A"), r"does not fit the ImageNet resnet18"),
        (lambda: keras_resnet.ResNet20(weights="cifar10", input_shape=(32, 32, 1)), r"needs RGB inputs.*has 1"),
        (lambda: keras_resnet.ResNet20(weights=__file__), r"unknown weights format; accepted: \.weights\.h5"),
    ],
)
def test_bad_weights_raise_value_error_before_building(build, message, monkeypatch):
    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built before the arguments were checked")

    monkeypatch.setattr(keras, "Input", no_layers)
    with pytest.raises(ValueError, match=message):
        build()


def test_preprocess_input_conventions(tmp_path):
    x = np.array([[[[255.0, 0.0, 51.0]]]])
    np.testing.assert_allclose(keras_resnet.preprocess_input(x, weights="cifar10")[0, 0, 0],
                               (np.array([1.0, 0.0, 0.2]) - MEAN) / STD, rtol=1e-6)
    np.testing.assert_allclose(keras_resnet.preprocess_input(x, "imagenet", model="resnet50")[0, 0, 0],
                               [51.0 - 103.939, -116.779, 255.0 - 123.68], rtol=1e-6)
    assert keras_resnet.weights.preprocessing_of("imagenet", "resnet50", stride_in_3x3=True).name == "torch"
    assert keras_resnet.weights.preprocessing_of("imagenet", "resnet18").name == "torch"
    tensor = keras_resnet.preprocess_input(keras.ops.convert_to_tensor(x), "imagenet", model="resnet101")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor)[0, 0, 0], [51.0 - 103.939, -116.779, 131.32],
                               rtol=1e-5)
    with pytest.raises(ValueError, match=r"`weights`='imagenet' is normalised as Caffe.*pass `model=`"):
        keras_resnet.preprocess_input(x, weights="imagenet")
    plain = tmp_path / "plain.weights.h5"
    keras_resnet.cifar_resnet(8).save_weights(plain)
    with pytest.raises(ValueError, match=r"plain\.weights\.h5' records no preprocessing"):
        keras_resnet.preprocess_input(x, weights=plain)
    with pytest.raises(ValueError, match=r"`weights` must be None.*'cifar1'"):
        keras_resnet.preprocess_input(x, weights="cifar1")


def test_named_sets_table():
    """Every named set: one per (model, stride placement), its hash kind, and what was verified against what."""
    keys = [(s.name, s.model, s.stride_in_3x3) for s in sets.NAMED_SETS]
    assert len(keys) == len(set(keys)) == 17 + 8  # + the tagged sets (3 torchvision IMAGENET1K_V2, 5 timm a1_in1k)
    verified = {s.model for s in sets.NAMED_SETS if s.verified == "real file"}
    assert verified == {"resnet20", "resnet32", "resnet44", "resnet56"}
    kinds = {"akamaster": "sha256", "torchvision": "sha256-prefix", "keras_applications": "md5"}
    for entry in sets.NAMED_SETS:
        assert entry.url.endswith("/" + entry.file_name)
        prefix_only = entry.model in ("resnet110", "resnet1202")
        assert entry.hash_algorithm == ("sha256-prefix" if prefix_only else kinds[entry.source_format])
        assert entry.file_hash[:8] in entry.cache_name
        assert entry.file_hash[:8] in entry.file_name or entry.source_format == "keras_applications"
    if AKAMASTER.is_dir():
        for entry in sets.NAMED_SETS[:4]:
            assert hashlib.sha256((AKAMASTER / entry.file_name).read_bytes()).hexdigest() == entry.file_hash
