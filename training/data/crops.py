"""Aligned 1-s crops of cached clips, addressed as (clip, k): video frames k..k+4 at 5 fps and
audio from k * 0.2 s for one second (the seed's video frame k <-> audio frames 10k..10k+50).

Training draws k uniformly over the whole clip (the seed only reached its first 0.28 s);
evaluation cuts every clip into its aligned 1-s segments, k = 5 * segment.
"""

from __future__ import annotations

import numpy as np
import torch

from avstream.timebase import FRAMES_PER_WINDOW, VIDEO_FPS, exact_div
from training.data.cache import ClipCache
from training.errors import DataError


class CropIndex:
    """The one place that maps (clip, k) to samples and frames; CropDataset and the recipe's
    batchers both read through it."""

    def __init__(self, cache: ClipCache, sample_rate: int | None = None) -> None:
        self.cache = cache
        self.sample_rate = cache.sample_rate if sample_rate is None else sample_rate
        if self.sample_rate != cache.sample_rate:
            raise DataError(f"cache {cache.directory} holds {cache.sample_rate} Hz audio; "
                            f"expected {self.sample_rate} Hz")
        self.samples_per_slot = exact_div(self.sample_rate, VIDEO_FPS)
        self.seconds = np.array([c.seconds for c in cache.clips], dtype=np.int64)
        self.label_of = np.array([c.label_index for c in cache.clips], dtype=np.int64)
        self.n_starts = self.seconds * VIDEO_FPS - FRAMES_PER_WINDOW + 1  # valid k per clip

    def __len__(self) -> int:
        return len(self.seconds)

    def train(self, epoch: int, crops_per_clip: int, seed: int, shard: slice = slice(None)) -> np.ndarray:
        """(N, 2) rows of (clip, k), shuffled; the same for the same (seed, epoch)."""
        rng = np.random.default_rng([seed, epoch])
        clips = np.repeat(np.arange(len(self)), crops_per_clip)
        ks = (rng.random(len(clips)) * self.n_starts[clips]).astype(np.int64)
        rows = np.stack([clips, ks], axis=1)
        return rows[rng.permutation(len(rows))][shard]

    def eval(self) -> np.ndarray:
        rows = [(i, s * VIDEO_FPS) for i, sec in enumerate(self.seconds) for s in range(sec)]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 2)

    def wave(self, clip: int, k: int) -> np.ndarray:
        """(2, sample_rate) float32: the second of audio starting at frame slot k."""
        start = k * self.samples_per_slot
        return np.asarray(self.cache.audio(clip)[:, start:start + self.sample_rate], dtype=np.float32)

    def frame_window(self, clip: int, k: int) -> np.ndarray:
        """(5, H, W, 3) uint8: frames k..k+4 (a writable copy of the memory map)."""
        return np.array(self.cache.frames(clip)[k:k + FRAMES_PER_WINDOW])

    def labels(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.label_of[rows[:, 0]])

    def waves(self, rows: np.ndarray) -> torch.Tensor:
        out = np.empty((len(rows), 2, self.sample_rate), dtype=np.float32)
        for j, (i, k) in enumerate(rows):
            out[j] = self.wave(i, k)
        return torch.from_numpy(out)

    def frames(self, rows: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.frame_window(i, k) for i, k in rows]))


def to_mid(waves: torch.Tensor) -> torch.Tensor:
    """(B, 2, n) stereo -> (B, 2, n) with both channels the mid signal (L + R) / 2: what a mono
    microphone gives once the daemon duplicates its channel (L - R is then silent)."""
    return waves.mean(dim=1, keepdim=True).expand_as(waves).contiguous()


def jitter_frames(frames: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> float in [0, 255]: each example's saturation, contrast and
    brightness scaled by factors drawn from [1 - strength, 1 + strength] (the same for its T
    frames, as one camera's exposure), hue untouched. A recording place's light and camera are
    nuisances; with a few places per class a branch otherwise learns them instead of the scene.

    All three act as in HSV: saturation scales each pixel's distance below its value (the
    largest channel), contrast scales the value's distance from the example's mean value, and
    brightness scales the value. ``strength`` 0 returns the frames as they are."""
    if strength <= 0:
        return frames
    x = frames.float()
    b = x.shape[0]

    def factor() -> torch.Tensor:
        return (1 + strength * (2 * torch.rand(b, generator=gen) - 1)).view(b, 1, 1, 1, 1)

    value = x.amax(dim=-1, keepdim=True)
    x = (value - factor() * (value - x)).clamp(min=0.0)  # saturation
    mean = value.mean(dim=(1, 2, 3, 4), keepdim=True)
    new_value = (mean + factor() * (value - mean)).clamp(min=0.0)  # contrast
    x = x * (new_value / value.clamp(min=1.0))
    return (factor() * x).clamp(0.0, 255.0)  # brightness


def batched(rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    return [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
