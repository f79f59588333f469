"""Aligned 1-s audio-visual examples from a ClipCache, as torch tensors.

Video frame k (5 fps) is aligned with audio starting at k * rate / 5: a crop starting at frame k
takes frames k..k+4 and the samples [k * rate / 5, k * rate / 5 + rate). Training draws one
crop per clip per item with k uniform over the whole clip, 0..5 * seconds - 5 (the seed drew its
start from the wrong axis and only ever cropped inside the first 0.28 s). Evaluation cuts every
clip into its ``seconds`` aligned segments, as the DCASE metric does.

Random draws come from a generator seeded by (seed, epoch, index), so an item is the same in any
DataLoader worker and in any run: call ``set_epoch`` each epoch for fresh crops.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from avstream.timebase import VIDEO_FPS, WINDOW_SECONDS
from training.data.cache import ClipCache
from training.data.crops import CropIndex
from training.errors import DataError

Mode = Literal["train", "eval"]


class _HasWindow(Protocol):
    @property
    def window_samples(self) -> int: ...

    @property
    def sample_rate(self) -> int: ...

    @property
    def frame_size(self) -> int: ...


class CropItem(NamedTuple):
    """One example. Collates (default_collate) into the same tuple of batched tensors."""

    wave: torch.Tensor
    """(2, window_samples) float32 in [-1, 1]."""
    frames: torch.Tensor
    """(5, H, W, 3) uint8 RGB."""
    label: torch.Tensor
    """() int64 class index (-1 for an unlabelled clip)."""
    clip: int
    """Index of the clip in the cache."""
    segment: int
    """eval: segment s (the window [s, s + 1) s of the clip); train: the crop's start frame k
    (the window starts at k * 0.2 s)."""


class CropDataset(Dataset[CropItem]):
    """Random aligned 1-s crops (train) or every aligned 1-s segment (eval) of a ClipCache."""

    def __init__(
        self,
        cache: ClipCache,
        window_samples: int | _HasWindow,
        mode: Mode = "train",
        seed: int = 0,
    ) -> None:
        if not isinstance(window_samples, int):
            cfg = window_samples
            if cfg.sample_rate != cache.sample_rate or cfg.frame_size != cache.frame_size:
                raise DataError(
                    f"cache {cache.directory} holds {cache.sample_rate} Hz audio and "
                    f"{cache.frame_size} px frames but the model config wants {cfg.sample_rate} Hz "
                    f"and {cfg.frame_size} px; expected a cache built for the config"
                )
            window_samples = cfg.window_samples
        expected = cache.sample_rate * WINDOW_SECONDS
        if window_samples != expected:
            raise DataError(
                f"window_samples={window_samples}; expected {expected} "
                f"({WINDOW_SECONDS} s at the cache's {cache.sample_rate} Hz)"
            )
        if mode not in ("train", "eval"):
            raise DataError(f"mode={mode!r}; expected 'train' or 'eval'")
        if mode == "train":
            unlabelled = [c.stem for c in cache.clips if c.label_index < 0]
            if unlabelled:
                raise DataError(
                    f"{len(unlabelled)} clips have no label (e.g. {unlabelled[0]}); expected "
                    "labelled clips for training"
                )
        self.cache = cache
        self.window_samples = window_samples
        self.mode: Mode = mode
        self.seed = seed
        self.epoch = 0
        self.crops = CropIndex(cache)
        # eval: item j -> (clip, segment) through the cumulative segment counts
        self._segment_starts = np.concatenate([[0], np.cumsum(self.crops.seconds)])

    def set_epoch(self, epoch: int) -> None:
        """New crops each epoch, still repeatable: the draw for (epoch, index) never changes."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.mode == "train":
            return len(self.cache)
        return int(self._segment_starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(clip index, start frame k) of an item, without loading it."""
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range; the dataset has {len(self)} items")
        if self.mode == "eval":
            clip = int(np.searchsorted(self._segment_starts, index, side="right") - 1)
            segment = index - int(self._segment_starts[clip])
            return clip, segment * VIDEO_FPS
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return index, int(rng.integers(0, self.crops.n_starts[index]))

    def __getitem__(self, index: int) -> CropItem:
        clip, k = self.locate(index)
        wave = torch.from_numpy(np.array(self.crops.wave(clip, k)))
        frames = torch.from_numpy(self.crops.frame_window(clip, k))
        label = torch.tensor(self.cache.clips[clip].label_index, dtype=torch.int64)
        segment = k // VIDEO_FPS if self.mode == "eval" else k
        return CropItem(wave, frames, label, clip, segment)
