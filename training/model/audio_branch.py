"""Audio branch: three residual squeeze-excitation blocks, then a dense softmax head.

Block layout follows the seed's Keras code (seed-system.md), including the second addition of
the batch-normalised shortcut after the concurrent SE. BatchNorm uses Keras' eps (1e-3) and, in the paper config, Keras' momentum (0.99 == torch 0.01).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from training.config import ModelConfig
from training.model.frontend import AudioFrontend

KERAS_BN_EPS = 1e-3


class ChannelSE(nn.Module):
    """Global average pool -> Dense(C/2, ReLU) -> Dense(C, sigmoid), no biases -> scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // 2, bias=False)
        self.fc2 = nn.Linear(channels // 2, channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3))
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(s))))
        return x * s[:, :, None, None]


class SpatialSE(nn.Module):
    """Conv1x1 to one map (no bias), sigmoid -> scale every position."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class SEResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int], bn_momentum: float) -> None:
        super().__init__()
        bn = {"eps": KERAS_BN_EPS, "momentum": bn_momentum}
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c_out, **bn)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c_out, **bn)
        self.shortcut = nn.Conv2d(c_in, c_out, 1)
        self.shortcut_bn = nn.BatchNorm2d(c_out, **bn)
        self.cse = ChannelSE(c_out)
        self.sse = SpatialSE(c_out)
        self.pool = nn.MaxPool2d(pool) if pool != (1, 1) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = self.shortcut_bn(self.shortcut(x))
        y = self.bn2(self.conv2(F.elu(self.bn1(self.conv1(x)))))
        y = F.elu(y + short)
        y = self.cse(y) + self.sse(y)
        return self.pool(y + short)


class AudioBranch(nn.Module):
    """Waveform -> (probabilities (B, classes), early-fusion features (B, frames, C))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.frontend = AudioFrontend(cfg)
        blocks = []
        c_in = 3
        for c_out, pool in zip(cfg.audio_filters, cfg.audio_pools, strict=True):
            blocks.append(SEResBlock(c_in, c_out, pool, cfg.bn_momentum))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, cfg.n_classes)
        size, stride = cfg.fusion_pool
        self.fusion_pool = nn.AvgPool1d(size, stride)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.blocks(self.frontend(wave))  # (B, C, bands, t)
        probs = torch.softmax(self.head(maps.mean(dim=(2, 3))), dim=-1)
        # Early-fusion features: mean over frequency, then pool 12 steps -> one per video frame.
        steps = self.fusion_pool(maps.mean(dim=2))  # (B, C, frames_per_window)
        return probs, steps.transpose(1, 2)
