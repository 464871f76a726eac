"""The PyTorch references: a CIFAR ResNet written here (the same network as `keras_resnet.cifar_resnet`,
option A, checked against it by copying weights) and the training-throughput loop of any `torch.nn.Module`
(AMP bf16 or fp32, channels-last, `eager` or `torch.compile`d).

Example:
    >>> from benchmarks.gpu.torch_reference import torch_cifar_resnet
    >>> net = torch_cifar_resnet(20)  # a benchmark's own process  # doctest: +SKIP
    >>> sum(p.numel() for p in net.parameters())  # a benchmark's own process  # doctest: +SKIP
    269722
"""

from __future__ import annotations

import importlib.util

import numpy as np

from benchmarks.gpu.programs import timed_windows
from benchmarks.gpu.report import summarize


def torch_available(report, what):
    """Whether PyTorch is installed; where not, `what` is recorded as skipped."""
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
