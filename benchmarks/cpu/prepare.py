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
- `reference.npz`: uint8 images, their preprocessed float32 NHWC pixels and our Keras logits.

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


def write_reference(model, logits_model, mean, folder, rng):
    """uint8 images, their preprocessed pixels and our logits (`reference.npz`)."""
    size = 224 if model == "resnet50" else 32
    images = rng.integers(0, 256, (REFERENCE_IMAGES[model], size, size, 3), dtype=np.uint8)
    pixels = ((images.astype(np.float32) - mean) * np.float32(1.0 / 255.0)).astype(np.float32)
    logits = np.asarray(logits_model(pixels, training=False), np.float32)
    path = os.path.join(folder, "reference.npz")
    with open(f"{path}.tmp", "wb") as f:
        np.savez(f, images=images, pixels=pixels, logits=logits)
    os.replace(f"{path}.tmp", path)
    return {"reference": path, "reference_images": int(len(images)),
            "reference_logit_scale": float(np.abs(logits).max())}


def prepare_model(model, work_dir, seed, r50_serving):
    """Builds, exports and references one network into `<work_dir>/<model>/`; returns the manifest."""
    import keras

    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    folder = os.path.join(work_dir, model)
    os.makedirs(folder, exist_ok=True)
    network = keras_network(model)
    randomise_batch_norms(network, rng)
    mean = mean_image(model, rng)
    size = 224 if model == "resnet50" else 32
    logits_model, manifest = export_ours(model, network, mean, folder, r50_serving)
    manifest.update(export_torch(model, network, folder, size))
    manifest.update(write_reference(model, logits_model, mean, folder, rng))
    manifest["keras_parameters"] = int(sum(int(np.prod(w.shape)) for w in network.trainable_weights))
    keras.backend.clear_session()
    return manifest


def main():
    channel = Channel()
    set_threads()
    serve({"prepare_model": prepare_model}, channel)


if __name__ == "__main__":
    main()
