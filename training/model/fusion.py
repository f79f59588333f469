"""Early fusion (BiGRU over concatenated audio and frame features) and late fusion (dense over
the three branches' probabilities)."""

from __future__ import annotations

import math

import torch
from torch import nn

from training.config import ModelConfig


class EarlyFusion(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gru = nn.GRU(cfg.audio_feature_dim + cfg.frame_feature_dim, cfg.fusion_gru_units,
                          batch_first=True, bidirectional=True)
        self.dense = nn.Linear(2 * cfg.fusion_gru_units, cfg.n_classes)

    def forward(self, audio_steps: torch.Tensor, frame_features: torch.Tensor) -> torch.Tensor:
        seq, _ = self.gru(torch.cat([audio_steps, frame_features], dim=-1))
        return torch.softmax(self.dense(seq.mean(dim=1)), dim=-1)


LATE_INPUTS: tuple[str, ...] = ("early", "audio", "visual")
"""The late-fusion dense's inputs, in the order they are concatenated."""
PASS_THROUGH_CONFIDENCE = 0.9
"""Probability a pass-through late fusion gives a class its branch is certain of."""


class LateFusion(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_classes = cfg.n_classes
        self.dense = nn.Linear(len(LATE_INPUTS) * cfg.n_classes, cfg.n_classes)

    @torch.no_grad()
    def pass_through(self, branch: str) -> None:
        """Set the dense to follow one input branch alone: logits k * p_branch, with k such that
        a certain branch (p = 1) gives PASS_THROUGH_CONFIDENCE; the other inputs weigh 0."""
        n = self.n_classes
        k = math.log(PASS_THROUGH_CONFIDENCE * (n - 1) / (1 - PASS_THROUGH_CONFIDENCE))
        i = LATE_INPUTS.index(branch)
        self.dense.weight.zero_()
        self.dense.weight[:, i * n:(i + 1) * n] = k * torch.eye(n)
        self.dense.bias.zero_()

    def forward(self, early: torch.Tensor, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.dense(torch.cat([early, audio, visual], dim=-1)), dim=-1)
