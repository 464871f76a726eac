"""The ONNX Runtime worker: the PyTorch model's ONNX export, Keras' and our ONNX graph, same session options.

Sessions use the CPU execution provider with `GraphOptimizationLevel.ORT_ENABLE_ALL`, sequential execution,
`intra_op_num_threads=N` and `inter_op_num_threads=1`. The PyTorch export takes float32 NCHW preprocessed
images (input "input"); Keras' (`keras.Model.export(format="onnx")`, tf2onnx) float32 NHWC preprocessed
images; ours takes NHWC uint8 pixels with the preprocessing in the graph (input "image").
Each call runs the logits output (`"logits"`; Keras' export has one output) on a fixed random batch.

Example:
    >>> worker.call("setup", key="k", path="ours.onnx", kind="ours", batch=1, size=32, seed=0)  # a benchmark's own process  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.cpu.channel import Channel, serve
from benchmarks.cpu.checks import compare, predicted_classes
from benchmarks.cpu.timing import Timer

KINDS = ("torch", "ours", "keras")


class OrtEngines:
    """ONNX Runtime sessions registered with a `Timer`."""

    def __init__(self, timer):
        import onnxruntime

        self.ort, self.timer, self.sessions = onnxruntime, timer, {}
        self.threads = int(os.environ.get("CPU_PEERS_THREADS", "1"))

    def versions(self):
        return {"onnxruntime": self.ort.__version__, "providers": self.ort.get_available_providers(),
                "intra_op_num_threads": self.threads, "inter_op_num_threads": 1,
                "graph_optimization_level": "ORT_ENABLE_ALL", "execution_mode": "ORT_SEQUENTIAL"}

    def session(self, path):
        ort = self.ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    @staticmethod
    def output_of(session, kind):
        """The logits output: "logits" in ours and PyTorch's export, the only output of Keras' export."""
        return [session.get_outputs()[0].name if kind == "keras" else "logits"]

    @staticmethod
    def feed_of(session, kind, images, pixels_nhwc):
        """The input dict for `kind`: uint8 NHWC images (ours), float32 NHWC pixels (Keras' export) or float32
        NCHW pixels (PyTorch's export)."""
        name = session.get_inputs()[0].name
        if kind == "ours":
            return {name: np.ascontiguousarray(images, np.uint8)}
        if kind == "keras":
            return {name: np.ascontiguousarray(pixels_nhwc, np.float32)}
        return {name: np.ascontiguousarray(pixels_nhwc.transpose(0, 3, 1, 2), np.float32)}

    def setup(self, key, path, kind, batch, size, seed):
        """Registers one `run(["logits"])` of the ONNX file at `path` on a random batch."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; received {kind!r}")
        session = self.session(path)
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        pixels = rng.standard_normal((batch, size, size, 3)).astype(np.float32)
        feed = self.feed_of(session, kind, images, pixels)
        self.sessions[key] = (session, kind)
        output = self.output_of(session, kind)
        self.timer.add(key, lambda: session.run(output, feed), batch)
        inputs = session.get_inputs()[0]
        return {"input": {"name": inputs.name, "type": inputs.type, "shape": [str(d) for d in inputs.shape]}}

    def check(self, key, reference, tolerance=None):
        session, kind = self.sessions[key]
        data = np.load(reference)
        out = session.run(self.output_of(session, kind), self.feed_of(session, kind, data["images"], data["pixels"]))[0]
        return compare(out, data["logits"]) if tolerance is None else compare(out, data["logits"], tolerance)

    def predict(self, key, images, pixels, batch):
        """The predicted class of every image of the `.npy` files (uint8 NHWC images, float32 NHWC pixels)."""
        session, kind = self.sessions[key]
        x, p = np.load(images, mmap_mode="r"), np.load(pixels, mmap_mode="r")
        output = self.output_of(session, kind)
        return predicted_classes(lambda i, j: session.run(output, self.feed_of(session, kind, x[i:j], p[i:j]))[0],
                                 len(x), batch)

    def drop(self, key):
        self.sessions.pop(key, None)
        return self.timer.drop(key)


def main():
    channel = Channel()
    timer = Timer()
    engines = OrtEngines(timer)
    handlers = timer.handlers()
    handlers.update(versions=engines.versions, setup=engines.setup, check=engines.check, predict=engines.predict,
                    drop=engines.drop)
    serve(handlers, channel)


if __name__ == "__main__":
    main()
