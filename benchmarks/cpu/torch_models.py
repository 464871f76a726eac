"""The PyTorch networks of the table: the CIFAR ResNet of `benchmarks.gpu.torch_reference` and a
torchvision-layout ResNet-50, each with our weights copied in.

The ResNet-50 is torchvision's v1.5 layout written here (torchvision itself does not import against this
PyTorch): 7x7 stem (stride 2, pad 3), BN, ReLU, 3x3 max pool (stride 2, pad 1), bottlenecks `[3, 4, 6, 3]`
with the stride on the 3x3 convolution and a 1x1 projection + BN shortcut where the shape changes,
global average pooling and `fc`. It is `keras_resnet.ResNet50(stride_in_3x3=True)` (He et al. 2015,
Table 1, shortcut option B, section 3.3), which `copy_keras_to_torch_resnet50` checks layer by layer.

Example:
    >>> net = torch_resnet50()  # a benchmark's own process  # doctest: +SKIP
    >>> sum(p.numel() for p in net.parameters())  # a benchmark's own process  # doctest: +SKIP
    25557032
"""

from __future__ import annotations

import numpy as np

RESNET50_BLOCKS = (3, 4, 6, 3)
RESNET50_WIDTHS = (64, 128, 256, 512)


def torch_resnet50(classes=1000):
    """torchvision's `resnet50()` layout (v1.5: stride in the 3x3), BN eps 1e-5 and momentum 0.1."""
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
            self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
            self.conv3, self.bn3 = nn.Conv2d(width, 4 * width, 1, bias=False), nn.BatchNorm2d(4 * width)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = None
            if stride != 1 or cin != 4 * width:
                self.downsample = nn.Sequential(nn.Conv2d(cin, 4 * width, 1, stride, bias=False),
                                                nn.BatchNorm2d(4 * width))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = self.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    class ResNet50(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for stage, (blocks, width) in enumerate(zip(RESNET50_BLOCKS, RESNET50_WIDTHS), start=1):
                layer = []
                for block in range(blocks):
                    layer.append(Bottleneck(cin, width, 2 if stage > 1 and block == 0 else 1))
                    cin = 4 * width
                setattr(self, f"layer{stage}", nn.Sequential(*layer))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet50()


def copy_keras_to_torch_resnet50(keras_model, net):
    """Copies `keras_resnet.ResNet50(stride_in_3x3=True)`'s weights and BN statistics into `net`.

    Raises:
        ValueError: a layer's shape differs (the networks are not the same), naming the layer.
    """
    import torch

    def conv(name, module):
        layer = keras_model.get_layer(name)
        if tuple(layer.strides) != tuple(module.stride):
            raise ValueError(f"{name}: Keras stride {layer.strides} != PyTorch {module.stride} "
                             "(build the Keras model with stride_in_3x3=True)")
        kernel = np.transpose(np.asarray(layer.kernel), (3, 2, 0, 1))
        if kernel.shape != tuple(module.weight.shape):
            raise ValueError(f"{name}: Keras kernel {kernel.shape} != PyTorch {tuple(module.weight.shape)}")
        module.weight.data = torch.from_numpy(kernel.copy())

    def bn(name, module):
        layer = keras_model.get_layer(name)
        if abs(float(layer.epsilon) - module.eps) > 1e-12:
            raise ValueError(f"{name}: epsilon {layer.epsilon} != {module.eps}")
        for attr, value in (("weight", layer.gamma), ("bias", layer.beta), ("running_mean", layer.moving_mean),
                            ("running_var", layer.moving_variance)):
            getattr(module, attr).data = torch.from_numpy(np.asarray(value).copy())

    conv("stem_conv", net.conv1)
    bn("stem_bn", net.bn1)
    for stage in range(1, 5):
        for index, block in enumerate(getattr(net, f"layer{stage}"), start=1):
            prefix = f"stage{stage}_block{index}"
            for part in (1, 2, 3):
                conv(f"{prefix}_{part}_conv", getattr(block, f"conv{part}"))
                bn(f"{prefix}_{part}_bn", getattr(block, f"bn{part}"))
            if block.downsample is not None:
                conv(f"{prefix}_shortcut_proj_conv", block.downsample[0])
                bn(f"{prefix}_shortcut_proj_bn", block.downsample[1])
    dense = keras_model.get_layer("predictions")
    net.fc.weight.data = torch.from_numpy(np.asarray(dense.kernel).T.copy())
    net.fc.bias.data = torch.from_numpy(np.asarray(dense.bias).copy())


def torch_network(model):
    """A fresh PyTorch network for "resnet20", "resnet56" or "resnet50" (ImageNet: 1000 classes)."""
    from benchmarks.gpu.torch_reference import torch_cifar_resnet

    if model == "resnet50":
        return torch_resnet50()
    return torch_cifar_resnet(int(model.removeprefix("resnet")))


def copy_weights(keras_model, net, model):
    """Our weights into `net` (the network of `torch_network(model)`)."""
    from benchmarks.gpu.torch_reference import copy_keras_to_torch

    if model == "resnet50":
        copy_keras_to_torch_resnet50(keras_model, net)
    else:
        copy_keras_to_torch(keras_model, net)
