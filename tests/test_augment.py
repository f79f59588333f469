"""The visual step's light jitter: it changes a place's light and camera, never its hue."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from training.data.crops import jitter_frames
from training.train.options import PAPER_RECIPE, SMALL_RECIPE, StepOptions


def _frames(seed: int = 0) -> torch.Tensor:
    """(4, 5, 8, 8, 3) uint8: four examples, each a mid-grey-free colour field with noise."""
    rng = np.random.default_rng(seed)
    hues = np.array([0, 36, 72, 144], dtype=np.uint8)  # OpenCV hue: 0..179
    hsv = np.zeros((4, 5, 8, 8, 3), np.uint8)
    hsv[..., 0] = hues[:, None, None, None]
    hsv[..., 1] = rng.integers(120, 200, hsv.shape[:-1])
    hsv[..., 2] = rng.integers(90, 160, hsv.shape[:-1])
    rgb = cv2.cvtColor(hsv.reshape(-1, 8, 3), cv2.COLOR_HSV2RGB).reshape(hsv.shape)
    return torch.from_numpy(rgb)


def _hue(frames: torch.Tensor) -> np.ndarray:
    x = frames.round().clamp(0, 255).to(torch.uint8).numpy()
    return cv2.cvtColor(x.reshape(-1, 8, 3), cv2.COLOR_RGB2HSV)[..., 0].reshape(x.shape[:-1])


def test_jitter_keeps_the_hue_and_changes_the_light() -> None:
    frames = _frames()
    out = jitter_frames(frames, 0.3, torch.Generator().manual_seed(1))
    assert out.shape == frames.shape and out.min() >= 0 and out.max() <= 255
    # Saturation, contrast and brightness moved ...
    assert (out - frames.float()).abs().mean() > 5
    # ... the hue did not (OpenCV hue steps are 2 degrees; rounding to uint8 moves it by one).
    diff = np.abs(_hue(out).astype(int) - _hue(frames).astype(int))
    assert np.minimum(diff, 180 - diff).max() <= 2


def test_jitter_is_one_draw_per_example_and_reproducible() -> None:
    frames = _frames()
    a = jitter_frames(frames, 0.3, torch.Generator().manual_seed(5))
    b = jitter_frames(frames, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    # The same factors for all T frames of an example: a frame repeated in time stays repeated.
    same = frames[:, :1].expand_as(frames).contiguous()
    out = jitter_frames(same, 0.3, torch.Generator().manual_seed(5))
    assert torch.allclose(out, out[:, :1].expand_as(out))


def test_no_jitter_returns_the_frames_untouched() -> None:
    frames = _frames()
    assert jitter_frames(frames, 0.0, torch.Generator()) is frames


def test_only_the_small_preset_jitters() -> None:
    assert SMALL_RECIPE["visual"].frame_jitter > 0
    assert all(o.frame_jitter == 0 for o in PAPER_RECIPE.values())  # the seed's recipe
    with pytest.raises(ValueError, match="frame_jitter"):
        StepOptions(lr=1e-3, batch_size=1, max_epochs=1, early_stop_patience=1,
                    plateau_patience=1, frame_jitter=1.0)
