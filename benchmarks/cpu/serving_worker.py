"""The serving worker: our SavedModel as TF Serving runs it, in a process that never imports `keras_resnet`.

`tf.saved_model.load(path).signatures["serving_default"]` is called on a fixed uint8 NHWC batch (the
preprocessing is in the graph), with TensorFlow's intra-op threads N and inter-op threads as set by the
orchestrator. `check` compares the `logits` signature on the reference's preprocessed pixels with our
Keras logits, and (fixed-size exports) `serving_default`'s probabilities on the reference's uint8 images
with their softmax; it also reports that neither `keras_resnet` nor `keras` is loaded here.

Example:
    >>> worker.call("setup", key="k", path="saved_model/1", batch=128, size=32, seed=0)  # a benchmark's own process  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys

import numpy as np

from benchmarks.cpu.channel import Channel, serve
from benchmarks.cpu.checks import compare, predicted_classes, softmax
from benchmarks.cpu.timing import Timer


class ServingEngines:
    """Loaded SavedModels and their `serving_default` calls, registered with a `Timer`."""

    def __init__(self, timer):
        import tensorflow as tf

        threads = int(os.environ.get("CPU_PEERS_THREADS", "1"))
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("CPU_PEERS_TF_INTER_OP", threads)))
        self.tf, self.timer, self.loaded, self.keys = tf, timer, {}, {}

    def versions(self):
        tf = self.tf
        return {"tensorflow": tf.__version__,
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), **self.modules()}

    @staticmethod
    def modules():
        """What this process imported: the SavedModel must be served without the package."""
        return {"keras_resnet_imported": "keras_resnet" in sys.modules, "keras_imported": "keras" in sys.modules}

    def load(self, path):
        if path not in self.loaded:
            self.loaded[path] = self.tf.saved_model.load(path)
        return self.loaded[path]

    def setup(self, key, path, batch, size, seed):
        """Registers one `serving_default(images=uint8 batch)` call."""
        tf = self.tf
        signature = self.load(path).signatures["serving_default"]
        images = tf.constant(np.random.default_rng(seed).integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
        self.keys[key] = path
        self.timer.add(key, lambda: signature(images=images), batch)
        spec = signature.structured_input_signature[1]["images"]
        return {"input": {"dtype": spec.dtype.name, "shape": spec.shape.as_list()}, **self.modules()}

    def check(self, key, reference, fixed_size=True):
        """Logits (signature `logits`) and, for fixed-size exports, `serving_default` probabilities."""
        tf = self.tf
        loaded = self.load(self.keys[key])
        data = np.load(reference)
        logits = loaded.signatures["logits"](images=tf.constant(data["pixels"]))["logits"].numpy()
        result = compare(logits, data["logits"])
        if fixed_size:
            probabilities = loaded.signatures["serving_default"](images=tf.constant(data["images"]))
            served = compare(probabilities["probabilities"].numpy(), softmax(data["logits"]))
            result["serving_default_probabilities"] = served
            result["ok"] = result["ok"] and served["ok"]
        modules = self.modules()
        result.update(modules)
        result["ok"] = result["ok"] and not modules["keras_resnet_imported"]
        return result

    def predict(self, key, images, pixels, batch):
        """The predicted class (`serving_default` probabilities) of every uint8 image of the `.npy` file."""
        signature = self.load(self.keys[key]).signatures["serving_default"]
        x = np.load(images, mmap_mode="r")
        return predicted_classes(lambda i, j: signature(images=self.tf.constant(x[i:j]))["probabilities"].numpy(),
                                 len(x), batch)

    def drop(self, key):
        self.keys.pop(key, None)
        return self.timer.drop(key)


def main():
    channel = Channel()
    timer = Timer()
    engines = ServingEngines(timer)
    handlers = timer.handlers()
    handlers.update(versions=engines.versions, setup=engines.setup, check=engines.check, predict=engines.predict,
                    drop=engines.drop)
    serve(handlers, channel)


if __name__ == "__main__":
    main()
