"""Early fusion (BiGRU over concatenated audio and frame features) and late fusion (dense over
the three branches' probabilities)."""

from __future__ import annotations

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


class LateFusion(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(3 * cfg.n_classes, cfg.n_classes)

    def forward(self, early: torch.Tensor, audio: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.dense(torch.cat([early, audio, visual], dim=-1)), dim=-1)
