"""The PyTorch worker: eager inference and training steps, NCHW or channels_last, `torch.set_num_threads(N)`.

Inference (`setup_infer`): our weights loaded into the PyTorch copy, `eval()`, each call
`net(x)` under `torch.inference_mode()` on a fixed float32 batch (already preprocessed: no input
pipeline). Training (`setup_train`): a freshly initialised network in `train()` mode, SGD (lr 0.1,
momentum 0.9, weight decay 1e-4 on kernels only, as our recipe's L2 on kernels), cross-entropy, one step
per call on fixed random tensors. For channels_last the model and the input are converted and the
conversion is verified: the input, every 4-D weight and the first convolution's output are
channels_last-contiguous (`layout` in the reply); for NCHW they are plain contiguous.

Example:
    >>> worker.call("setup_infer", key="k", model="resnet20", weights="w.pt", layout="channels_last",
    ...             batch=128, size=32, seed=0)["layout"]["ok"]  # a benchmark's own process  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.cpu.channel import Channel, serve
from benchmarks.cpu.checks import compare, predicted_classes
from benchmarks.cpu.timing import Timer

LAYOUTS = ("nchw", "channels_last")
TRAIN_LR, TRAIN_MOMENTUM, TRAIN_WEIGHT_DECAY = 0.1, 0.9, 1e-4


class TorchEngines:
    """The networks and inputs of this worker, registered with a `Timer`."""

    def __init__(self, timer):
        import torch

        self.torch, self.timer = torch, timer
        torch.set_num_threads(int(os.environ.get("CPU_PEERS_THREADS", "1")))
        self.nets = {}

    def versions(self):
        torch = self.torch
        return {"torch": torch.__version__, "threads": torch.get_num_threads(),
                "interop_threads": torch.get_num_interop_threads(),
                "mkldnn": bool(torch.backends.mkldnn.is_available()),
                "parallel_info": torch.__config__.parallel_info()}

    def to_layout(self, tensor_or_net, layout):
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}; received {layout!r}")
        if layout == "channels_last":
            return tensor_or_net.to(memory_format=self.torch.channels_last)
        return tensor_or_net.contiguous() if isinstance(tensor_or_net, self.torch.Tensor) else tensor_or_net

    def layout_report(self, net, x, layout):
        """Whether `layout` is in effect: input, 4-D weights and the first convolution's output."""
        torch = self.torch
        form = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        first_conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
        seen = {}

        def record(module, inputs, output):  # returns None: the output is not replaced
            seen["out"] = output.is_contiguous(memory_format=form)

        hook = first_conv.register_forward_hook(record)
        with torch.inference_mode():
            net(x[:1])
        hook.remove()
        weights = [p for p in net.parameters() if p.ndim == 4]
        report = {"input": x.is_contiguous(memory_format=form),
                  "weights": all(p.is_contiguous(memory_format=form) for p in weights),
                  "first_conv_output": bool(seen.get("out"))}
        report["ok"] = all(report.values())
        return report

    def network(self, model, weights=None):
        from benchmarks.cpu.torch_models import torch_network

        net = torch_network(model)
        if weights:
            net.load_state_dict(self.torch.load(weights, map_location="cpu", weights_only=True))
        return net

    def setup_infer(self, key, model, weights, layout, batch, size, seed):
        """Registers one inference call of the PyTorch copy of `model` on a random batch."""
        torch = self.torch
        torch.manual_seed(seed)
        net = self.to_layout(self.network(model, weights).eval(), layout)
        x = self.to_layout(torch.randn(batch, 3, size, size), layout)
        report = self.layout_report(net, x, layout)
        if not report["ok"]:
            raise RuntimeError(f"{layout} not in effect for {key}: {report}")

        def call():
            with torch.inference_mode():
                net(x)

        self.nets[key] = (net, layout)
        self.timer.add(key, call, batch)
        return {"layout": report}

    def setup_train(self, key, model, layout, batch, size, seed, classes=10):
        """Registers one SGD step of a fresh `model` in `train()` mode on fixed random tensors."""
        torch = self.torch
        torch.manual_seed(seed)
        net = self.to_layout(self.network(model).eval(), layout)
        x = self.to_layout(torch.randn(batch, 3, size, size), layout)
        y = torch.randint(0, classes, (batch,))
        report = self.layout_report(net, x, layout)  # in eval mode: the BN statistics stay untouched
        net.train()
        if not report["ok"]:
            raise RuntimeError(f"{layout} not in effect for {key}: {report}")
        decay = [p for p in net.parameters() if p.ndim > 1]
        rest = [p for p in net.parameters() if p.ndim <= 1]
        optimizer = torch.optim.SGD([{"params": decay, "weight_decay": TRAIN_WEIGHT_DECAY},
                                     {"params": rest, "weight_decay": 0.0}], lr=TRAIN_LR, momentum=TRAIN_MOMENTUM)

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            optimizer.step()

        self.nets[key] = (net, layout)
        self.timer.add(key, step, batch)
        return {"layout": report, "optimizer": f"SGD lr {TRAIN_LR} momentum {TRAIN_MOMENTUM} weight decay "
                                                f"{TRAIN_WEIGHT_DECAY} (kernels)", "loss": "cross_entropy"}

    def check(self, key, reference):
        """Our reference logits against this network's on the same preprocessed images."""
        torch = self.torch
        net, layout = self.nets[key]
        data = np.load(reference)
        x = self.to_layout(torch.from_numpy(np.ascontiguousarray(data["pixels"].transpose(0, 3, 1, 2))), layout)
        with torch.inference_mode():
            out = net(x).numpy()
        return compare(out, data["logits"])

    def predict(self, key, images, pixels, batch):
        """The predicted class of every image of the float32 NHWC pixels `.npy` file (`images` unused)."""
        torch = self.torch
        net, layout = self.nets[key]
        p = np.load(pixels, mmap_mode="r")
        def scores(i, j):
            with torch.inference_mode():
                return net(self.to_layout(torch.from_numpy(np.ascontiguousarray(p[i:j].transpose(0, 3, 1, 2))),
                                          layout)).numpy()

        return predicted_classes(scores, len(p), batch)

    def drop(self, key):
        self.nets.pop(key, None)
        return self.timer.drop(key)


def main():
    channel = Channel()
    timer = Timer()
    engines = TorchEngines(timer)
    handlers = timer.handlers()
    handlers.update(versions=engines.versions, setup_infer=engines.setup_infer, setup_train=engines.setup_train,
                    check=engines.check, predict=engines.predict, drop=engines.drop)
    serve(handlers, channel)


if __name__ == "__main__":
    main()
