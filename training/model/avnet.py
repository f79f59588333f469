"""The whole network, written as the three pieces the daemon runs separately.

``audio`` (waveform -> probabilities, early-fusion steps), ``encode_frames`` (one frame at a
time -> feature) and ``head`` (cached frame features + audio outputs -> all probabilities).
``forward`` is literally the composition of ``audio_graph``, ``encode_frames`` and ``head_graph``
(the three ONNX graphs), so the split graphs compute the same thing, calibration included
(training/model/calibration.py). ``audio`` and ``head`` are the uncalibrated pieces training uses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from training.config import ModelConfig
from training.model.audio_branch import AudioBranch
from training.model.calibration import UNCALIBRATED, Temperatures, temper
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
        self.calibration: Temperatures = UNCALIBRATED
        """Set from the checkpoint; constants of the exported graphs (not in the state_dict)."""

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, C)."""
        return self.visual.encoder(frames)

    def head(self, frame_features: torch.Tensor, audio_steps: torch.Tensor,
             audio_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (visual, early, final) probabilities."""
        visual = self.visual.head(frame_features)
        early = self.early(audio_steps, frame_features)
        return visual, early, self.late(early, audio_probs, visual)

    def audio_graph(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The audio graph: (calibrated audio probabilities, early-fusion steps)."""
        probs, steps = self.audio(wave)
        return temper(probs, self.calibration.audio), steps

    def head_graph(self, frame_features: torch.Tensor, audio_steps: torch.Tensor,
                   audio_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The head graph: takes the audio graph's calibrated probabilities, undoes their
        temperature for late fusion, and returns calibrated (visual, early, final)."""
        raw_audio = temper(audio_probs, 1.0 / self.calibration.audio)
        visual, early, final = self.head(frame_features, audio_steps, raw_audio)
        c = self.calibration
        return temper(visual, c.visual), temper(early, c.early), temper(final, c.final)

    def forward(self, wave: torch.Tensor, frames: torch.Tensor,
                calibrated: bool = True) -> BranchOutputs:
        """wave (B, C, T) float, frames (B, T_v, H, W, 3) uint8. ``calibrated=False``: the raw
        outputs (what training's losses and the calibration fit see)."""
        frame_features = self.visual.encode(frames)
        if not calibrated:
            audio_probs, audio_steps = self.audio(wave)
            visual, early, final = self.head(frame_features, audio_steps, audio_probs)
        else:
            audio_probs, audio_steps = self.audio_graph(wave)
            visual, early, final = self.head_graph(frame_features, audio_steps, audio_probs)
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
