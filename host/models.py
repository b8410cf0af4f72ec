"""Float reference CNNs for the host driver, in plain torch.

The ImageNet models (:func:`resnet18`, :func:`resnet34`) reproduce torchvision's
``ResNet``/``BasicBlock`` architecture with exactly its module names, so a
torchvision ``state_dict`` (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc`` ...) loads without renaming, and a state_dict
saved from these models loads into torchvision. torchvision itself is not a
dependency.

:func:`small_resnet` is a CIFAR-style network built from the same
:class:`BasicBlock` and the same key scheme, sized for 28x28 single-channel
inputs (the digits data set): feature maps are 28, 14 and 7 pixels wide, all
multiples of the accelerator's 7x7 output tile.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "BasicBlock",
    "ResNet",
    "resnet18",
    "resnet34",
    "small_resnet",
]


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (torchvision's ``conv3x3``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution without bias (torchvision's ``conv1x1``)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv + BN pairs and an identity/projection shortcut.

    ``out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` where the
    shortcut is ``downsample(x)`` (1x1 conv + BN) when given, else ``x``. The
    stride, if any, is applied by ``conv1`` and by the downsample conv.
    """

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet of :class:`BasicBlock` stages with torchvision's module names.

    Args:
        layers: number of blocks per stage (one entry per stage, 1 to 4 stages).
        widths: output channels per stage, same length as ``layers``.
        num_classes: outputs of the final ``fc`` layer.
        in_channels: input image channels.
        imagenet_stem: ``True`` for torchvision's 7x7/2 conv + 3x3/2 max-pool
            stem; ``False`` for a 3x3/1 conv stem and no pooling (CIFAR style,
            ``maxpool`` is then an ``nn.Identity`` and has no state).
        zero_init_residual: zero the last BN gamma of every block (as torchvision).

    Stage 1 has stride 1, every later stage stride 2. Stage ``i`` is the
    attribute ``layer{i+1}``; the classifier is ``avgpool`` (global average)
    followed by ``fc``.
    """

    def __init__(
        self,
        *,
        layers: Sequence[int],
        widths: Sequence[int],
        num_classes: int = 1000,
        in_channels: int = 3,
        imagenet_stem: bool = True,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        layers = tuple(layers)
        widths = tuple(widths)
        if not 1 <= len(layers) <= 4:
            raise ValueError(f"layers must have 1 to 4 stages, got {layers!r}")
        if len(widths) != len(layers):
            raise ValueError(
                f"widths must have one entry per stage ({len(layers)}), got {widths!r}"
            )
        if any(not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"layers entries must be positive ints, got {layers!r}")
        if any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(f"widths entries must be positive ints, got {widths!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}")

        self.inplanes = widths[0]
        if imagenet_stem:
            self.conv1 = nn.Conv2d(
                in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False
            )
        else:
            self.conv1 = conv3x3(in_channels, self.inplanes)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = (
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if imagenet_stem else nn.Identity()
        )
        self.num_stages = len(layers)
        for i, (blocks, width) in enumerate(zip(layers, widths, strict=True)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._make_layer(width, blocks, stride))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * BasicBlock.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * BasicBlock.expansion, stride),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers.extend(BasicBlock(self.inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def stages(self) -> list[nn.Sequential]:
        """The residual stages ``layer1`` .. ``layerN`` in order."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and residual stages; returns the last feature map (N, C, H, W)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-18 (torchvision architecture and state_dict keys), randomly initialised.

    With the defaults it has 11,689,512 parameters, the same as
    ``torchvision.models.resnet18()``.
    """
    return ResNet(
        layers=(2, 2, 2, 2),
        widths=(64, 128, 256, 512),
        num_classes=num_classes,
        in_channels=in_channels,
    )


def resnet34(num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet-34 (torchvision architecture and state_dict keys), randomly initialised.

    With the defaults it has 21,797,672 parameters, the same as
    ``torchvision.models.resnet34()``.
    """
    return ResNet(
        layers=(3, 4, 6, 3),
        widths=(64, 128, 256, 512),
        num_classes=num_classes,
        in_channels=in_channels,
    )


def small_resnet(
    num_classes: int = 10,
    in_channels: int = 1,
    widths: Sequence[int] = (16, 32, 64),
    blocks: Sequence[int] = (1, 1, 1),
) -> ResNet:
    """CIFAR-style ResNet with the torchvision key scheme, for small images.

    Stem: ``conv1`` 3x3 stride 1 + ``bn1`` + ReLU, no max-pool. Stage 1 has
    stride 1 (a downsample only if its width differs from the stem's, which
    is ``widths[0]``, so never); later stages stride 2 with a 1x1 conv + BN
    ``downsample``. A 28x28 input gives 28x28, 14x14 and 7x7 feature maps
    with the default three stages.
    """
    return ResNet(
        layers=tuple(blocks),
        widths=tuple(widths),
        num_classes=num_classes,
        in_channels=in_channels,
        imagenet_stem=False,
    )
