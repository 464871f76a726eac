"""akamaster/pytorch_resnet_cifar10's CIFAR ResNet (option A), written here in PyTorch: the one definition that
the tests (published weights, the differential training test) and `benchmarks/torch_cifar_recipe.py` use.

`akamaster_classes()` returns `(AkamasterBlock, AkamasterResNet)`; `AkamasterResNet(depth, classes=10,
residual=True)` is a 3x3 stem (16 channels), three stages of `(depth - 2) / 6` basic blocks (16/32/64
planes), the first block of stages 2 and 3 striding 2 with the option-A shortcut (subsample, zero-pad
`planes // 4` channels on each side), global average pooling and a linear classifier, with akamaster's
initialisation (`kaiming_normal_` on every convolution and linear weight) and the state-dict names of the
published files (without their `module.` prefix). `residual=False` is the paper's plain network: the same
layers without the shortcut additions (He et al. 2015, section 4.2, Fig. 6).

Example:
    >>> AkamasterBlock, AkamasterResNet = akamaster_classes()  # needs PyTorch  # doctest: +SKIP
    >>> sum(p.numel() for p in AkamasterResNet(20).parameters())  # needs PyTorch  # doctest: +SKIP
    269722
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def akamaster_classes():
    """`(AkamasterBlock, AkamasterResNet)`, PyTorch modules defined once per process (imports PyTorch)."""
    import torch.nn.functional as F
    from torch import nn

    class AkamasterBlock(nn.Module):
        """akamaster's BasicBlock with option A: subsample and zero-pad planes // 4 on each side."""

        def __init__(self, in_planes, planes, stride, residual=True):
            super().__init__()
            self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.pad = planes // 4 if stride != 1 or in_planes != planes else None
            self.residual = residual

        def forward(self, x):
            out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            if not self.residual:
                return F.relu(out)
            short = x if self.pad is None else F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
            return F.relu(out + short)

    class AkamasterResNet(nn.Module):
        """akamaster's resnet.py: 3x3 stem (16), three stages of n blocks (16/32/64), average pool, linear."""

        def __init__(self, depth, classes=10, residual=True):
            super().__init__()
            n = (depth - 2) // 6
            if depth != 6 * n + 2 or n < 1:
                raise ValueError(f"depth={depth}: a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110, ...)")
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            in_planes = 16
            for stage, planes in enumerate((16, 32, 64), start=1):
                blocks = []
                for block in range(n):
                    blocks.append(AkamasterBlock(in_planes, planes, 2 if stage > 1 and block == 0 else 1, residual))
                    in_planes = planes
                setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            self.linear = nn.Linear(64, classes)
            for module in self.modules():  # akamaster's _weights_init
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    nn.init.kaiming_normal_(module.weight)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            out = F.avg_pool2d(out, out.size()[3])
            return self.linear(out.view(out.size(0), -1))

    return AkamasterBlock, AkamasterResNet
