"""`.safetensors` weights (Hugging Face's format, timm's and torchvision's names): read without PyTorch through
the mapping of the `.pth` reader, with its exactness and its first-misfit errors.

Reference networks are torchvision-layout PyTorch models (tests/conftest.py) with every tensor random (fresh
models have zero biases and identity BN statistics, which would hide a wrong mapping), written with
`safetensors.torch.save_file` or, without PyTorch, `safetensors.numpy.save_file`.
"""

import json
import re
import sys

import numpy as np
import pytest
from conftest import (akamaster_torch_classes, randomise_torch, relative_difference, torch_nhwc_logits,
                      torchvision_torch_classes)

import keras_resnet
from keras_resnet.weights import WeightsFileError, detect_format, read_source
from keras_resnet.weights.state_dicts import torch_order

safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="pip install 'keras-resnet[safetensors]'")
torch = pytest.importorskip("torch", reason="PyTorch (the reference networks) not installed")
from safetensors.torch import save_file as torch_save_file  # noqa: E402

LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}
NOT_READABLE = "not a readable safetensors file"


def reference_network(depth):
    """A torchvision-layout ResNet-`depth` in PyTorch, every tensor random (seeded with `depth`)."""
    basic, bottleneck, resnet = torchvision_torch_classes()
    return randomise_torch(resnet(bottleneck if depth >= 50 else basic, LAYERS[depth]), seed=depth)


def numpy_state_dict(network):
    return {name: tensor.numpy() for name, tensor in network.state_dict().items()}


def keras_logits(model, x):
    return np.asarray(model(x, training=False))


@pytest.fixture(scope="module")
def images():
    """Three random RGB images of 64x64 pixels in [0, 255]."""
    return np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3)).astype(np.uint8)


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory):
    """`(PyTorch ResNet-18, its .safetensors file written by safetensors.torch)`."""
    network = reference_network(18)
    path = tmp_path_factory.mktemp("resnet18") / "model.safetensors"
    torch_save_file(network.state_dict(), path)
    return network, path


def same_tables(first, second):
    """Asserts two tensor tables hold the same layers, variables and arrays (bit for bit)."""
    assert {layer: sorted(entry) for layer, entry in first.items()} == \
           {layer: sorted(entry) for layer, entry in second.items()}
    for layer, entry in first.items():
        for role, (array, _) in entry.items():
            assert array.dtype == second[layer][role][0].dtype == np.float32
            np.testing.assert_array_equal(array, second[layer][role][0], err_msg=f"{layer}/{role}")


# --- exactness: the torchvision / timm layout ---------------------------------------------------------------


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_safetensors_equals_pytorch(depth, images, tmp_path):
    reference = reference_network(depth)
    path = tmp_path / "model.safetensors"
    torch_save_file(reference.state_dict(), path)
    assert detect_format(path) == "safetensors"
    x = keras_resnet.preprocess_input(images, weights=path)  # a .safetensors file implies torch's normalisation
    np.testing.assert_allclose(x, keras_resnet.weights.TORCH.apply(images), rtol=1e-6)
    build = keras_resnet.ResNet18 if depth == 18 else keras_resnet.ResNet50
    extra = {} if depth == 18 else {"stride_in_3x3": True}  # torchvision's v1.5 bottleneck
    model = build(weights=path, input_shape=(64, 64, 3), classifier_activation=None, **extra)
    assert relative_difference(keras_logits(model, x), torch_nhwc_logits(reference, x)) < 1e-5


def test_a_numpy_written_file_loads_as_the_torch_written_one_without_pytorch(resnet18, tmp_path, monkeypatch):
    network, torch_written = resnet18
    numpy_written = tmp_path / "numpy.safetensors"
    safetensors_numpy.save_file(numpy_state_dict(network), str(numpy_written))  # int64 num_batches_tracked too
    monkeypatch.setitem(sys.modules, "torch", None)  # any `import torch` from here on fails: none is needed
    table, layout = read_source(numpy_written, "safetensors")
    expected, expected_layout = read_source(torch_written, "safetensors")
    assert layout == expected_layout == "torchvision"
    same_tables(table, expected)
    from_numpy, from_torch = keras_resnet.ResNet18(weights=numpy_written), keras_resnet.ResNet18(weights=torch_written)
    for ours, theirs in zip(from_numpy.weights, from_torch.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_torch_order_is_the_order_pytorch_lists_its_state_dicts_in():
    """`.safetensors` files lose it (names are stored alphabetically); sorting restores it, for both layouts."""
    basic, bottleneck, resnet = torchvision_torch_classes()
    _, akamaster = akamaster_torch_classes()
    for network in (resnet(basic, LAYERS[34]), resnet(bottleneck, LAYERS[50]), akamaster(20)):
        names = list(network.state_dict())
        assert sorted(sorted(names), key=torch_order) == names


def test_a_pytorch_layout_named_for_a_safetensors_file_reads_it_as_safetensors(resnet18):
    _, path = resnet18
    same_tables(read_source(path, "torchvision")[0], read_source(path, "safetensors")[0])


# --- half precision and other dtypes ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, name", [(torch.bfloat16, "BF16"), (torch.float16, "F16"), (torch.float64, "F64")])
def test_half_and_double_precision_files_load_as_float32(dtype, name, resnet18, tmp_path):
    network, _ = resnet18
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in network.state_dict().items()}
    path, exact = tmp_path / f"{name}.safetensors", tmp_path / "float32.safetensors"
    torch_save_file(cast, path)
    torch_save_file({k: v.float() if v.is_floating_point() else v for k, v in cast.items()}, exact)
    with open(path, "rb") as handle:  # the file really holds `name` tensors
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    assert header["conv1.weight"]["dtype"] == name
    same_tables(read_source(path, "safetensors")[0], read_source(exact, "safetensors")[0])


def test_tensors_numpy_cannot_use_are_refused_naming_tensor_and_dtype(resnet18, tmp_path):
    network, _ = resnet18
    state = dict(network.state_dict())
    integer, float8 = tmp_path / "int.safetensors", tmp_path / "float8.safetensors"
    torch_save_file({**state, "fc.bias": state["fc.bias"].to(torch.int32)}, integer)
    torch_save_file({**state, "conv1.weight": state["conv1.weight"].to(torch.float8_e4m3fn)}, float8)
    with pytest.raises(WeightsFileError, match=rf"^{re.escape(str(integer))}: tensor 'fc.bias' is I32; accepted: "
                                               r"floating-point tensors"):
        read_source(integer, "safetensors")
    with pytest.raises(WeightsFileError, match=rf"^{re.escape(str(float8))}: tensor 'conv1.weight' is F8_E4M3, "
                                               r"which NumPy cannot hold .*accepted: F32, F16, BF16 or F64"):
        read_source(float8, "safetensors")


# --- files that are not safetensors, or hold another network ----------------------------------------------------


def test_truncated_and_foreign_files_are_refused_naming_the_file(resnet18, tmp_path):
    _, good = resnet18
    data = good.read_bytes()
    foreign = {
        "truncated.safetensors": data[: len(data) // 2],
        "empty.safetensors": b"",
        "random.safetensors": np.random.default_rng(1).bytes(4096),
        "config.safetensors": json.dumps({"architecture": "resnet18", "num_classes": 1000}).encode(),
        "keras.safetensors": b"\x89HDF\r\n\x1a\n" + bytes(4088),  # an HDF5 (Keras .h5) file's signature
    }
    for name, content in foreign.items():
        path = tmp_path / name
        path.write_bytes(content)
        message = rf"^{re.escape(str(path))}: {NOT_READABLE} \(.*\); it may be truncated or of another format\.$"
        with pytest.raises(WeightsFileError, match=message):
            read_source(path, detect_format(path))
    truncated = tmp_path / "truncated.safetensors"
    with pytest.raises(ValueError, match=rf"^{re.escape(str(truncated))}: {NOT_READABLE}"):
        keras_resnet.ResNet18(weights=truncated)


def test_a_missing_safetensors_package_is_named_with_its_extra(resnet18, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match=r"pip install 'keras-resnet\[safetensors\]'"):
        read_source(resnet18[1], "safetensors")


def test_a_resnet34_file_fails_in_resnet18_on_its_first_misfit_as_a_pth_does(tmp_path):
    state = reference_network(34).state_dict()
    pth, safetensors_file = tmp_path / "resnet34.pth", tmp_path / "resnet34.safetensors"
    torch.save(state, pth)
    torch_save_file(state, safetensors_file)
    messages = {}
    for path in (pth, safetensors_file):
        with pytest.raises(ValueError, match=r"tensor 'layer1.2.conv1.weight' \(shape \(3, 3, 64, 64\), for "
                                             r"stage1_block3_1_conv/kernel\) has no place in resnet18") as error:
            keras_resnet.ResNet18(weights=path)
        messages[path] = str(error.value).replace(str(path), "FILE")
    assert messages[pth] == messages[safetensors_file]


def test_names_of_another_layout_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "keras_hub.safetensors"
    safetensors_numpy.save_file({"backbone/conv1/kernel": np.zeros((7, 7, 3, 64), np.float32)}, str(path))
    with pytest.raises(WeightsFileError, match=rf"^{re.escape(str(path))}: tensor 'backbone/conv1/kernel' has no "
                                               r"counterpart in keras_resnet's networks"):
        read_source(path, "safetensors")


# --- the converter's command line, in this process ---------------------------------------------------------------


def test_convert_cli_writes_a_loadable_file_recording_format_and_preprocessing(resnet18, images, tmp_path, capsys):
    from keras_resnet.weights.__main__ import main as weights_main

    network, source = resnet18
    assert weights_main(["--help"]) == 0
    assert ".safetensors" in capsys.readouterr().out
    output = tmp_path / "out" / "resnet18.weights.h5"
    assert weights_main(["convert", f"--from={source}", "--model=resnet18", f"--output={output}"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {output}"
    record = keras_resnet.weights.read_metadata(output)
    assert (record["source"], record["source_format"], record["classes"]) == ("model.safetensors", "torchvision", 1000)
    assert record["preprocessing"] == keras_resnet.weights.TORCH.to_dict()
    assert keras_resnet.weights.preprocessing_of(output) == keras_resnet.weights.TORCH
    x = keras_resnet.preprocess_input(images, weights=output)
    model = keras_resnet.ResNet18(weights=output, input_shape=(64, 64, 3), classifier_activation=None)
    assert relative_difference(keras_logits(model, x), torch_nhwc_logits(network, x)) < 1e-5

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a tensor file")
    assert weights_main(["convert", f"--from={garbage}", "--model=resnet18",
                         f"--output={tmp_path / 'bad.weights.h5'}"]) == 2
    assert capsys.readouterr().err.startswith(f"error: --from={garbage}: {NOT_READABLE}")
    assert not (tmp_path / "bad.weights.h5").exists()
