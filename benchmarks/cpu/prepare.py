"""The prepare worker: every artifact of one network, and the reference logits every engine is checked against.

For "resnet20" / "resnet56" (`keras_resnet.cifar_resnet(depth, shortcut="A")`, 32x32, per-pixel mean) and
"resnet50" (`keras_resnet.ResNet50(stride_in_3x3=True)`, torchvision's v1.5 layout, 224x224, per-channel
mean), with BN statistics and scales randomised (so that inference-mode BN and its folding are really
exercised):

- the SavedModel, through the public `keras_resnet.export.export_saved_model` (uint8 `serving_default`);
- our ONNX graph: `keras_resnet.inference.fold_batch_norms` then `onnx_graph.to_onnx(offset=mean,
  scale=1/255)` (NHWC uint8 input, preprocessing in the graph);
- the PyTorch copy (`benchmarks.cpu.torch_models`, our weights) as a state dict, and its ONNX export with
  the legacy exporter (`torch.onnx.export(..., dynamo=False)`, dynamic batch axis; float32 NCHW input);
- `reference.npz`: uint8 images (random; with `weights`, real test images), their preprocessed float32 NHWC
  pixels and our Keras logits;
- Keras' own ONNX export of the same logits network (tf2onnx), for the choice of our ONNX writer to be measured;
- the other runtimes (issue 27), through the public exports: OpenVINO IR (`export_openvino`), LiteRT
  (`export_litert`), and int8 ONNX and OpenVINO IR (`keras_resnet.export.int8`);
- with `weights="cifar10"` (ResNet-20/56 only) the published akamaster weights instead of random BN, their
  normalisation in every graph, the int8 exports calibrated and gated on `data` (its training and test
  JPEGs), and `top1_*.npy`: the 10,000 test images, their pixels and labels, for the top-1 of every column.
  Without it, the int8 networks are calibrated on 64 random images (synthetic, marked as such in the manifest).

Run by the orchestrator as `python -m benchmarks.cpu.prepare` (see `benchmarks.cpu.channel`).

Example:
    >>> worker.call("prepare_model", model="resnet20", work_dir="/tmp/w", seed=0,
    ...             r50_serving="fixed")["onnx_ours"]  # writes or reads an export on disk  # doctest: +SKIP
    '/tmp/w/resnet20/ours.onnx'
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from benchmarks.cpu.channel import Channel, serve

IMAGENET_MEAN = (123.68, 116.78, 103.94)
REFERENCE_IMAGES = {"resnet20": 8, "resnet56": 8, "resnet50": 4}


def set_threads():
    """TensorFlow and PyTorch threads from the worker environment (before any TensorFlow op)."""
    import tensorflow as tf

    threads = int(os.environ.get("CPU_PEERS_THREADS", "1"))
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("CPU_PEERS_TF_INTER_OP", threads)))
    import torch

    torch.set_num_threads(threads)


def keras_network(model, logits=False):
    """Our network for `model`; `logits=True` builds it without the classifier's softmax."""
    import keras_resnet

    kwargs = {"classifier_activation": None} if logits else {}
    if model == "resnet50":
        return keras_resnet.ResNet50(stride_in_3x3=True, **kwargs)
    return keras_resnet.cifar_resnet(int(model.removeprefix("resnet")), shortcut="A", **kwargs)


def randomise_batch_norms(model, rng):
    """Non-trivial BN statistics and affine parameters (moderate, so that a deep net stays finite)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.7, 1.2, channels).astype("float32"))
            layer.beta.assign(rng.normal(0.0, 0.05, channels).astype("float32"))
            layer.moving_mean.assign(rng.normal(0.0, 0.1, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))


def mean_image(model, rng):
    """The preprocessing mean (0..255 units): per pixel for CIFAR, per channel for ResNet-50."""
    if model == "resnet50":
        return np.asarray(IMAGENET_MEAN, np.float32).reshape(1, 1, 3)
    return rng.uniform(110.0, 140.0, (32, 32, 3)).astype(np.float32)


def write_bytes(path, data):
    """Writes `data` to `path` atomically (temporary file + `os.replace`)."""
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as f:
        f.write(data)
    os.replace(temporary, path)


def export_ours(model, network, mean, folder, r50_serving):
    """The SavedModel (public export) and our ONNX graph; returns their paths and what the card says."""
    from keras_resnet.export import export_saved_model
    from keras_resnet.inference import fold_batch_norms, onnx_graph

    kind = "imagenet" if model == "resnet50" and r50_serving == "imagenet" else "cifar"
    start = time.perf_counter()
    version = export_saved_model(network, os.path.join(folder, "saved_model"), mean=mean, preprocessing=kind,
                                 version=1, overwrite=True)
    export_s = time.perf_counter() - start
    card = json.loads((version / "assets" / "model_card.json").read_text(encoding="utf-8"))
    logits_model = keras_network(model, logits=True)
    logits_model.set_weights(network.get_weights())
    folded, pairs = fold_batch_norms(logits_model)
    proto = onnx_graph.to_onnx(folded, offset=mean, scale=1.0 / 255.0)
    onnx_path = os.path.join(folder, "ours.onnx")
    write_bytes(onnx_path, proto.SerializeToString())
    return logits_model, {
        "saved_model": str(version), "serving_kind": kind, "export_s": export_s,
        "card_graph": card.get("graph"), "card_xla": card.get("xla"),
        "onnx_ours": onnx_path, "onnx_ours_folded_pairs": len(pairs), "onnx_ours_opset": onnx_graph.OPSET,
    }


def export_pretrained_ours(model, network, export_kwargs, folder):
    """The SavedModel and our ONNX graph of a pretrained network (public exports, its normalisation inside)."""
    from keras_resnet.export import export_onnx, export_saved_model

    start = time.perf_counter()
    version = export_saved_model(network, os.path.join(folder, "saved_model"), version=1, overwrite=True,
                                 **export_kwargs)
    export_s = time.perf_counter() - start
    card = json.loads((version / "assets" / "model_card.json").read_text(encoding="utf-8"))
    onnx_dir = export_onnx(network, os.path.join(folder, "exports"), version=1, overwrite=True, **export_kwargs)
    logits_model = keras_network(model, logits=True)
    logits_model.set_weights(network.get_weights())
    return logits_model, {"saved_model": str(version), "serving_kind": "cifar", "export_s": export_s,
                          "card_graph": card.get("graph"), "card_xla": card.get("xla"),
                          "onnx_ours": str(onnx_dir / "model.onnx"), "weights": "cifar10 (akamaster)"}


def export_keras_onnx(logits_model, folder, size):
    """Keras' own ONNX export of the logits network (`Model.export(format="onnx")`, tf2onnx): float32 NHWC
    preprocessed pixels in, no preprocessing in the graph."""
    import tf2onnx

    logits_model(np.zeros((1, size, size, 3), np.float32), training=False)  # Keras exports called models only
    path = os.path.join(folder, "keras.onnx")
    logits_model.export(path, format="onnx", verbose=False)
    return {"onnx_keras": path, "onnx_keras_exporter": f"keras.Model.export(format='onnx'), tf2onnx {tf2onnx.__version__}"}


def export_torch(model, network, folder, size):
    """The PyTorch copy with our weights (state dict) and its legacy-exporter ONNX file."""
    import torch

    from benchmarks.cpu.torch_models import copy_weights, torch_network

    net = torch_network(model)
    copy_weights(network, net, model)
    net.eval()
    weights = os.path.join(folder, "torch_state.pt")
    torch.save(net.state_dict(), f"{weights}.tmp")
    os.replace(f"{weights}.tmp", weights)
    onnx_path = os.path.join(folder, "torch.onnx")
    dummy = torch.zeros(2, 3, size, size)
    torch.onnx.export(net, (dummy,), f"{onnx_path}.tmp", dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    os.replace(f"{onnx_path}.tmp", onnx_path)
    return {"torch_weights": weights, "onnx_torch": onnx_path, "onnx_torch_exporter": "torch.onnx.export(dynamo=False)",
            "torch_parameters": int(sum(p.numel() for p in net.parameters()))}


def write_reference(model, logits_model, export_kwargs, folder, rng, real_images=None):
    """uint8 images (random; evenly spaced ones of `real_images` when given), their preprocessed pixels and
    our logits (`reference.npz`)."""
    size = 224 if model == "resnet50" else 32
    count = REFERENCE_IMAGES[model]
    if real_images is not None:
        images = np.ascontiguousarray(real_images[:: max(1, len(real_images) // count)][:count])
    else:
        images = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    if export_kwargs.get("normalization") is not None:
        pixels = np.asarray(export_kwargs["normalization"].apply(images), np.float32)
    else:
        pixels = ((images.astype(np.float32) - export_kwargs["mean"]) * np.float32(1.0 / 255.0)).astype(np.float32)
    logits = np.asarray(logits_model(pixels, training=False), np.float32)
    path = os.path.join(folder, "reference.npz")
    with open(f"{path}.tmp", "wb") as f:
        np.savez(f, images=images, pixels=pixels, logits=logits)
    os.replace(f"{path}.tmp", path)
    return {"reference": path, "reference_images": int(len(images)),
            "reference_logit_scale": float(np.abs(logits).max())}


def export_runtimes(network, folder, export_kwargs, int8_data, rng, size):
    """OpenVINO IR, LiteRT and the int8 ONNX / IR of `network` (public exports); their paths and int8 records."""
    import openvino

    from keras_resnet.export import Int8Plan, export_litert, export_onnx, export_openvino
    from keras_resnet.export import int8 as int8_lib

    root = os.path.join(folder, "exports")
    common = dict(version=1, overwrite=True, **export_kwargs)
    out = {"ov_ours": str(export_openvino(network, root, **common) / "model.xml"),
           "litert_ours": str(export_litert(network, root, **common) / "model.tflite")}
    if int8_data is not None:  # calibrated and gated on real images, as a user's export is
        plan = Int8Plan(data=int8_data)
        onnx_dir = export_onnx(network, os.path.join(folder, "int8"), quantization=plan, **common)
        ov_dir = export_openvino(network, os.path.join(folder, "int8"), quantization=plan, **common)
        out.update(onnx_ours_int8=str(onnx_dir / "model.onnx"), ov_ours_int8=str(ov_dir / "model.xml"))
        for name, version in (("onnx", onnx_dir), ("openvino", ov_dir)):
            card = json.loads((version / "model_card.json").read_text(encoding="utf-8"))
            out[f"int8_{name}"] = card[name]["quantization"]
        return out
    float_onnx = export_onnx(network, os.path.join(folder, "float"), **common) / "model.onnx"
    images = rng.integers(0, 256, (64, size, size, 3), dtype=np.uint8)
    out["onnx_ours_int8"] = os.path.join(folder, "ours_int8.onnx")
    int8_lib.quantize_onnx(float_onnx, out["onnx_ours_int8"], images)
    out["ov_ours_int8"] = os.path.join(folder, "ours_int8.xml")
    openvino.save_model(openvino.convert_model(out["onnx_ours_int8"]), out["ov_ours_int8"], compress_to_fp16=False)
    out["int8_calibration"] = "synthetic: 64 uniformly random uint8 images (speed only; no accuracy claim)"
    return out


def pretrained_network(model, data, folder):
    """The published CIFAR-10 network, its export arguments, and the top-1 set written from `data`'s test split."""
    import keras_resnet
    from keras_resnet.data import load_arrays
    from keras_resnet.export import CIFAR10_CLASS_NAMES
    from keras_resnet.weights import TORCH

    if model not in ("resnet20", "resnet56"):
        raise ValueError(f"--weights=cifar10 covers resnet20 and resnet56; received {model!r}")
    network = keras_resnet.build(model, weights="cifar10")
    images, labels, _ = load_arrays(data, "test", mean=np.zeros((1, 1, 3), np.float32))
    paths = {name: os.path.join(folder, f"top1_{name}.npy") for name in ("images", "pixels", "labels")}
    for name, array in (("images", images), ("pixels", TORCH.apply(images)), ("labels", labels)):
        np.save(paths[name], array)
    return network, dict(normalization=TORCH, class_names=CIFAR10_CLASS_NAMES, preprocessing="cifar"), paths


def prepare_model(model, work_dir, seed, r50_serving, weights=None, data=None, runtimes=True):
    """Builds, exports and references one network into `<work_dir>/<model>/`; returns the manifest (without
    the OpenVINO, LiteRT and int8 exports when `runtimes` is False: no column of theirs was asked for)."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    folder = os.path.join(work_dir, model)
    os.makedirs(folder, exist_ok=True)
    size = 224 if model == "resnet50" else 32
    if weights:
        network, export_kwargs, top1 = pretrained_network(model, data, folder)
        logits_model, manifest = export_pretrained_ours(model, network, export_kwargs, folder)
        manifest["top1_set"] = top1
    else:
        network = keras_network(model)
        randomise_batch_norms(network, rng)
        mean = mean_image(model, rng)
        logits_model, manifest = export_ours(model, network, mean, folder, r50_serving)
        export_kwargs = dict(mean=mean, preprocessing=manifest["serving_kind"])
    manifest.update(export_torch(model, network, folder, size))
    real = np.load(manifest["top1_set"]["images"]) if weights else None  # int8 is checked on natural images
    manifest.update(write_reference(model, logits_model, export_kwargs, folder, rng, real))
    if runtimes:
        manifest.update(export_keras_onnx(logits_model, folder, size))
        manifest.update(export_runtimes(network, folder, export_kwargs, data if weights else None, rng, size))
    manifest["keras_parameters"] = int(sum(int(np.prod(w.shape)) for w in network.trainable_weights))
    keras.backend.clear_session()
    return manifest


def main():
    channel = Channel()
    set_threads()
    serve({"prepare_model": prepare_model}, channel)


if __name__ == "__main__":
    main()
