"""The OpenVINO and LiteRT worker: OpenVINO at its default precision and in f32, and LiteRT's interpreter.

OpenVINO compiles an ONNX file (PyTorch's export: float32 NCHW `input`) or an IR (ours: uint8 NHWC `image`,
the preprocessing inside) for the CPU plugin with `INFERENCE_NUM_THREADS=N`; "default" leaves the inference
precision to the plugin (bf16 on processors with AVX-512 BF16 / AMX), "f32" sets `INFERENCE_PRECISION_HINT`.
Each call infers the `logits` output on a fixed random batch. LiteRT runs our `.tflite` (uint8 NHWC
`images`, preprocessing inside) through `get_signature_runner("serving_default")` with `num_threads=N`; its
outputs are probabilities, checked against the softmax of the reference logits.

Example:
    >>> worker.call("setup", key="k", engine="openvino", path="ours.xml", kind="ours", precision="f32",
    ...             batch=1, size=32, seed=0)  # a benchmark's own process  # doctest: +SKIP
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.cpu.channel import Channel, serve
from benchmarks.cpu.checks import compare, predicted_classes, softmax
from benchmarks.cpu.timing import Timer

ENGINES = ("openvino", "litert")
PRECISIONS = ("default", "f32")
KINDS = ("torch", "ours")


class RuntimeEngines:
    """Compiled OpenVINO models and LiteRT signature runners, registered with a `Timer`."""

    def __init__(self, timer):
        self.timer, self.calls = timer, {}
        self.threads = int(os.environ.get("CPU_PEERS_THREADS", "1"))

    def versions(self):
        import ai_edge_litert
        import openvino

        core = openvino.Core()
        return {"openvino": openvino.__version__, "litert": getattr(ai_edge_litert, "__version__", "?"),
                "threads": self.threads, "openvino_default_precision": str(core.get_property(
                    "CPU", "INFERENCE_PRECISION_HINT"))}

    def runner(self, engine, path, kind, precision):
        """`(function of one batch -> float outputs, outputs are "logits" or "probabilities")`."""
        if engine not in ENGINES or kind not in KINDS or precision not in PRECISIONS:
            raise ValueError(f"engine, kind, precision must be in {ENGINES}, {KINDS}, {PRECISIONS}; received "
                             f"{engine!r}, {kind!r}, {precision!r}")
        if engine == "litert":
            from ai_edge_litert.interpreter import Interpreter

            signature = Interpreter(model_path=path, num_threads=self.threads).get_signature_runner("serving_default")
            return (lambda x: signature(images=x)["probabilities"]), "probabilities"
        import openvino

        config = {"INFERENCE_NUM_THREADS": self.threads}
        if precision == "f32":
            config["INFERENCE_PRECISION_HINT"] = "f32"
        compiled = openvino.Core().compile_model(path, "CPU", config)
        output = compiled.output("logits")
        request = compiled.create_infer_request()
        return (lambda x: request.infer([x])[output]), "logits"

    @staticmethod
    def feed(kind, images, pixels_nhwc):
        """uint8 NHWC images (ours) or float32 NCHW pixels (PyTorch's export)."""
        if kind == "ours":
            return np.ascontiguousarray(images, np.uint8)
        return np.ascontiguousarray(pixels_nhwc.transpose(0, 3, 1, 2), np.float32)

    def setup(self, key, engine, path, kind, precision, batch, size, seed):
        """Registers one call of `path` in `engine` on a random batch."""
        run, output = self.runner(engine, path, kind, precision)
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        pixels = rng.standard_normal((batch, size, size, 3)).astype(np.float32)
        x = self.feed(kind, images, pixels)
        self.calls[key] = (run, output, kind)
        self.timer.add(key, lambda: run(x), batch)
        return {"engine": engine, "precision": precision, "output": output, "path": os.path.basename(path)}

    def check(self, key, reference, tolerance=None):
        run, output, kind = self.calls[key]
        data = np.load(reference)
        out = run(self.feed(kind, data["images"], data["pixels"]))
        expected = softmax(data["logits"]) if output == "probabilities" else data["logits"]
        return compare(out, expected) if tolerance is None else compare(out, expected, tolerance)

    def predict(self, key, images, pixels, batch):
        """The predicted class of every image of the `.npy` files (uint8 NHWC images, float32 NHWC pixels)."""
        run, _, kind = self.calls[key]
        x, p = np.load(images, mmap_mode="r"), np.load(pixels, mmap_mode="r")
        return predicted_classes(lambda i, j: run(self.feed(kind, x[i:j], p[i:j])), len(x), batch)

    def drop(self, key):
        self.calls.pop(key, None)
        return self.timer.drop(key)


def main():
    channel = Channel()
    timer = Timer()
    engines = RuntimeEngines(timer)
    handlers = timer.handlers()
    handlers.update(versions=engines.versions, setup=engines.setup, check=engines.check, predict=engines.predict,
                    drop=engines.drop)
    serve(handlers, channel)


if __name__ == "__main__":
    main()
