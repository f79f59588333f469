"""Model sizes as one frozen dataclass, saved inside every checkpoint and bundle.

The model is always rebuilt from this record, never from code defaults, so a checkpoint made
with another configuration loads as what it was. The defaults are the paper's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from avstream.bundle.schema import FRONTEND_V1, FRONTEND_V2, FRONTENDS
from avstream.scenes import SCENES
from avstream.timebase import (
    FRAMES_PER_WINDOW,
    STFT_HOP_MS,
    STFT_WINDOW_MS,
    TAU_SAMPLE_RATE_HZ,
    WINDOW_SECONDS,
    exact_div,
)

Filterbank = Literal["gammatone", "mel"]
PixelNorm = Literal["imagenet", "caffe_bgr"]
VisualBackbone = Literal["vgg16", "efficientnet_lite0"]
BACKBONES: tuple[str, ...] = ("vgg16", "efficientnet_lite0")
LITE0_FEATURES = 1280  # EfficientNet-Lite0's pooled head width

VGG16_PAPER_WIDTHS = (64, 128, 256, 512)


@dataclass(frozen=True)
class ModelConfig:
    # --- audio front end (runs inside the model) ---
    sample_rate: int = TAU_SAMPLE_RATE_HZ
    """Hz. 48 kHz is TAU's native rate: training data needs no resampling and most USB mics run
    at it; the 40 ms STFT is then 1920 samples, a ~4 ms matmul per window on 2 cores."""
    stft_window_ms: int = STFT_WINDOW_MS
    stft_hop_ms: int = STFT_HOP_MS
    n_bands: int = 64
    filterbank: Filterbank = "gammatone"
    """The seed's gammatone (about 1 point better than log-mel in the paper)."""
    f_min_hz: float = 0.0
    frontend: str = FRONTEND_V2
    """Per-window scaling rule (training/model/frontend.py): min-max over L and R only, so a mono
    microphone does not shift them. Configs saved without this field load as FRONTEND_V1."""
    # --- audio branch: three residual SE blocks ---
    audio_filters: tuple[int, ...] = (32, 64, 128)
    audio_pools: tuple[tuple[int, int], ...] = ((1, 2), (1, 2), (1, 1))
    """(frequency, time) max-pool after each block: 64x50 -> 64x25 -> 64x12 -> 64x12."""
    bn_momentum: float = 0.01
    """torch convention; 0.01 is Keras' default 0.99. Short runs (small, demo) use 0.1, or the
    running statistics are still mostly their initial values when training stops."""
    # --- visual branch ---
    frames_per_window: int = FRAMES_PER_WINDOW
    visual_backbone: VisualBackbone = "vgg16"
    """The frame encoder: the paper's VGG16 stack (global max-pool), or EfficientNet-Lite0 with
    its ImageNet weights (average-pooled 1280-d features; ~40x fewer multiply-adds a frame)."""
    frame_size: int = 224
    """Square frame side in pixels (aspect ratio not kept, as in the seed). VGG16 is fully
    convolutional before its global max-pool, so a smaller side keeps the same parameters."""
    vgg_widths: tuple[int, ...] = VGG16_PAPER_WIDTHS
    pixel_norm: PixelNorm = "imagenet"
    """How uint8 RGB becomes the backbone's input; follows the weights in use (torchvision:
    ImageNet mean/std on RGB in [0,1]; Keras Places365: BGR minus the caffe means)."""
    visual_gru_units: int = 32
    visual_dropout: float = 0.5
    # --- fusion ---
    fusion_gru_units: int = 64
    fusion_pool: tuple[int, int] = (3, 2)
    """Average-pool (size, stride) over the audio block's 12 time steps -> 5 steps, one per frame."""
    classes: tuple[str, ...] = SCENES
    preset: str = "paper"

    def __post_init__(self) -> None:
        _verify(self)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def window_samples(self) -> int:
        return self.sample_rate * WINDOW_SECONDS

    @property
    def stft_window_samples(self) -> int:
        return exact_div(self.sample_rate * self.stft_window_ms, 1000)

    @property
    def stft_hop_samples(self) -> int:
        return exact_div(self.sample_rate * self.stft_hop_ms, 1000)

    @property
    def audio_frames(self) -> int:
        return exact_div(self.window_samples, self.stft_hop_samples)

    @property
    def audio_feature_dim(self) -> int:
        return self.audio_filters[-1]

    @property
    def frame_feature_dim(self) -> int:
        return LITE0_FEATURES if self.visual_backbone == "efficientnet_lite0" else self.vgg_widths[-1]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"model config has unknown fields {unknown}; expected some of {sorted(known)}")
        fixed = {k: _tupled(v) for k, v in d.items()}
        # A record written before the rule was recorded was trained with the old one.
        fixed.setdefault("frontend", FRONTEND_V1)
        return cls(**fixed)

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def _tupled(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_tupled(x) for x in v)
    return v


def _verify(c: ModelConfig) -> None:
    if c.filterbank not in ("gammatone", "mel"):
        raise ValueError(f"filterbank={c.filterbank!r}; expected 'gammatone' or 'mel'")
    if c.frontend not in FRONTENDS:
        raise ValueError(f"frontend={c.frontend!r}; expected one of {list(FRONTENDS)}")
    if c.visual_backbone not in BACKBONES:
        raise ValueError(f"visual_backbone={c.visual_backbone!r}; expected one of {list(BACKBONES)}")
    if c.pixel_norm not in ("imagenet", "caffe_bgr"):
        raise ValueError(f"pixel_norm={c.pixel_norm!r}; expected 'imagenet' or 'caffe_bgr'")
    if len(c.audio_filters) != len(c.audio_pools):
        raise ValueError(
            f"audio_filters has {len(c.audio_filters)} blocks but audio_pools has "
            f"{len(c.audio_pools)}; expected one pool per block"
        )
    if len(c.vgg_widths) != 4:
        raise ValueError(f"vgg_widths={c.vgg_widths}; expected 4 widths (VGG16's stages 1-2, 3, 4-5)")
    if c.frame_size < 32:
        raise ValueError(f"frame_size={c.frame_size}; expected >= 32 (five 2x2 max-pools)")
    t = c.audio_frames
    for _, pt in c.audio_pools:
        t //= pt
    size, stride = c.fusion_pool
    steps = (t - size) // stride + 1
    if steps != c.frames_per_window:
        raise ValueError(
            f"audio time steps {t} pooled by fusion_pool={c.fusion_pool} give {steps} steps but "
            f"frames_per_window={c.frames_per_window}; early fusion needs one audio step per frame"
        )
    if len(set(c.classes)) != len(c.classes):
        raise ValueError(f"classes {c.classes} contain duplicates")


PAPER = ModelConfig()
"""The paper's network: 15,414,804 trainable parameters."""

SMALL = ModelConfig(
    sample_rate=16_000,
    n_bands=32,
    audio_filters=(8, 16, 32),
    frame_size=64,
    vgg_widths=(8, 16, 32, 64),
    visual_gru_units=16,
    fusion_gru_units=16,
    bn_momentum=0.1,
    preset="small",
)
"""Same layer structure, ~100x fewer multiply-adds: for tests and CPU smoke runs."""

DEMO = PAPER.replace(frame_size=64, bn_momentum=0.1, preset="demo")
"""The paper's layers and parameter count at 64x64 frames, so the demo builds on 2 CPU cores."""

LITE = SMALL.replace(
    visual_backbone="efficientnet_lite0",
    frame_size=224,
    visual_gru_units=32,
    fusion_gru_units=32,
    preset="lite",
)
"""Own places on a CPU: the small preset's narrow audio branch, and as frame encoder
EfficientNet-Lite0 with ImageNet weights (kept frozen), at its native 224 px. The paper's
BiGRU over the 5 frame features, early and late fusion as the paper."""

PRESETS: dict[str, ModelConfig] = {"paper": PAPER, "small": SMALL, "demo": DEMO, "lite": LITE}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError as e:
        raise ValueError(f"unknown config {name!r}; expected one of {sorted(PRESETS)}") from e
