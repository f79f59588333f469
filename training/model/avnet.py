"""The whole network, written as the three pieces the daemon runs separately.

``audio`` (waveform -> probabilities, early-fusion steps), ``encode_frames`` (one frame at a
time -> feature) and ``head`` (cached frame features + audio outputs -> all probabilities).
``forward`` is literally their composition, so the split ONNX graphs compute the same thing.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from training.config import ModelConfig
from training.model.audio_branch import AudioBranch
from training.model.fusion import EarlyFusion, LateFusion
from training.model.visual_branch import VisualBranch


class BranchOutputs(NamedTuple):
    final: torch.Tensor
    early: torch.Tensor
    audio: torch.Tensor
    visual: torch.Tensor


class AVSceneNet(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio = AudioBranch(cfg)
        self.visual = VisualBranch(cfg)
        self.early = EarlyFusion(cfg)
        self.late = LateFusion(cfg)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, C)."""
        return self.visual.encoder(frames)

    def head(self, frame_features: torch.Tensor, audio_steps: torch.Tensor,
             audio_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (visual, early, final) probabilities."""
        visual = self.visual.head(frame_features)
        early = self.early(audio_steps, frame_features)
        return visual, early, self.late(early, audio_probs, visual)

    def forward(self, wave: torch.Tensor, frames: torch.Tensor) -> BranchOutputs:
        """wave (B, C, T) float, frames (B, T_v, H, W, 3) uint8."""
        audio_probs, audio_steps = self.audio(wave)
        frame_features = self.visual.encode(frames)
        visual, early, final = self.head(frame_features, audio_steps, audio_probs)
        return BranchOutputs(final=final, early=early, audio=audio_probs, visual=visual)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "audio": list(self.audio.parameters()),
            "visual": list(self.visual.parameters()),
            "fusion": list(self.early.parameters()) + list(self.late.parameters()),
        }


def count_parameters(model: AVSceneNet) -> dict[str, int]:
    """Trainable parameters per part, as the paper counts them (BN statistics are buffers)."""
    counts = {k: sum(p.numel() for p in ps) for k, ps in model.parameter_groups().items()}
    counts["visual_backbone"] = sum(p.numel() for p in model.visual.encoder.parameters())
    counts["total"] = counts["audio"] + counts["visual"] + counts["fusion"]
    return counts
