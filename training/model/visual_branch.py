"""Visual branch: per-frame VGG16 + global max-pool (or EfficientNet-Lite0 + its average pool),
then a BiGRU over the frames.

The frame encoder takes uint8 RGB frames (N, H, W, 3) as a camera gives them; the colour order
and normalisation the backbone's weights expect happen inside, so every consumer (training,
ONNX, the daemon) feeds the same thing.
"""

from __future__ import annotations

import torch
from torch import nn

from training.config import ModelConfig
from training.model.efficientnet_lite import EfficientNetLite0
from training.model.vgg import VGG16Features

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # Keras "caffe" preprocessing (the seed's Places365)


class PixelNormalizer(nn.Module):
    """uint8 RGB NHWC -> float NCHW in the convention of the backbone's weights."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        if mode == "imagenet":
            scale = [1.0 / (255.0 * s) for s in IMAGENET_STD_RGB]
            shift = [-m / s for m, s in zip(IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, strict=True)]
        elif mode == "caffe_bgr":
            scale = [1.0, 1.0, 1.0]
            shift = [-m for m in CAFFE_MEAN_BGR]
        else:
            raise ValueError(f"pixel_norm {mode!r}; expected 'imagenet' or 'caffe_bgr'")
        self.register_buffer("scale", torch.tensor(scale).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", torch.tensor(shift).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).float()
        if self.mode == "caffe_bgr":
            x = x.flip(1)
        return x * self.scale + self.shift


class FrameEncoder(nn.Module):
    """(N, H, W, 3) uint8 -> (N, C): VGG16 stack then global max-pool (the paper), or
    EfficientNet-Lite0's features, average-pooled as it was trained (``cfg.visual_backbone``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.normalize = PixelNormalizer(cfg.pixel_norm)
        self.lite = cfg.visual_backbone == "efficientnet_lite0"
        self.backbone: nn.Module = (EfficientNetLite0(cfg.frame_size) if self.lite
                                    else VGG16Features(cfg.vgg_widths))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.normalize(frames)
        if self.lite:
            return self.backbone.features(x)
        return self.backbone(x).amax(dim=(2, 3))


class VisualHead(nn.Module):
    """(B, T, C) frame features -> BiGRU -> dropout -> per-step softmax -> mean over steps."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gru = nn.GRU(cfg.frame_feature_dim, cfg.visual_gru_units, batch_first=True,
                          bidirectional=True)
        self.dropout = nn.Dropout(cfg.visual_dropout)
        self.dense = nn.Linear(2 * cfg.visual_gru_units, cfg.n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        seq, _ = self.gru(features)
        return torch.softmax(self.dense(self.dropout(seq)), dim=-1).mean(dim=1)


class VisualBranch(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = FrameEncoder(cfg)
        self.head = VisualHead(cfg)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W, 3) uint8 -> (B, T, C)."""
        b, t = frames.shape[:2]
        return self.encoder(frames.reshape(b * t, *frames.shape[2:])).reshape(b, t, -1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.head(self.encode(frames))
