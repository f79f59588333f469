"""Checkpoints: weights plus the config that rebuilds the model, loaded with weights_only=True.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so torch's safe
unpickler can read it; the model is rebuilt from ``config``, never from code defaults.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from training.config import ModelConfig
from training.model import AVSceneNet
from training.model.calibration import Temperatures

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "avstream-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class Checkpoint:
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    step: str = ""
    """Recipe step that produced it: audio, visual, fusion or finetune."""
    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    """Provenance of the training data (root, fold, clip counts)."""
    train_state: dict[str, Any] = field(default_factory=dict)
    """Resume state: epoch, optimizer, scheduler, early-stopping counters, RNG."""
    calibration: dict[str, float] = field(default_factory=dict)
    """Output name -> temperature (Temperatures.to_dict()); empty: uncalibrated."""

    @property
    def temperatures(self) -> Temperatures:
        return Temperatures.from_dict(self.calibration)

    def build_model(self) -> AVSceneNet:
        """The model with its weights and its calibration (applied by forward and the graphs)."""
        model = AVSceneNet(self.config)
        model.load_state_dict(self.state_dict)
        model.calibration = self.temperatures
        return model


def save_checkpoint(path: Path, ckpt: Checkpoint) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": ckpt.config.to_dict(),
        "state_dict": ckpt.state_dict,
        "step": ckpt.step,
        "metrics": ckpt.metrics,
        "data": ckpt.data,
        "train_state": ckpt.train_state,
        "calibration": ckpt.calibration,
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: an interrupted save never leaves a truncated checkpoint


def load_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a corrupt or foreign file
        raise ValueError(f"checkpoint {path}: cannot be read safely ({e.__class__.__name__}: {e})") from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"checkpoint {path}: not an avstream checkpoint (expected format "
                         f"{CHECKPOINT_FORMAT!r})")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path}: version {payload.get('version')!r}; expected "
                         f"{CHECKPOINT_VERSION}")
    return Checkpoint(
        config=ModelConfig.from_dict(payload["config"]),
        state_dict=payload["state_dict"],
        step=payload.get("step", ""),
        metrics=payload.get("metrics", {}),
        data=payload.get("data", {}),
        train_state=payload.get("train_state", {}),
        calibration=payload.get("calibration", {}),
    )
