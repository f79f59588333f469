"""The audio front end's scaling rule: a mono microphone must not move the L and R planes.

A near-mono stereo signal (one source, a little independent noise per channel, as two capsules
of a webcam give) and its mono down-mix (L+R)/2, which is what the daemon feeds for a mono
microphone (duplicated to both channels), go through the front end. Their L and R planes differ
only by the small noise; the silent side channel of the down-mix must not rescale them.
"""

from __future__ import annotations

import pytest
import torch

from avstream.bundle.schema import FRONTEND_V1, FRONTEND_V2
from training.config import SMALL, ModelConfig
from training.model.frontend import AudioFrontend

SIDE_NOISE = 0.003
"""Amplitude of each channel's own noise against a source of amplitude ~0.3 (about -40 dB):
enough for a real side channel, too little to change what L and R hold."""
MONO_TOLERANCE = 0.05
"""Largest change of any L or R value in [-1, 1] when the same scene is fed as its mono down-mix."""


def _stereo_and_mono(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    t = torch.arange(cfg.window_samples) / cfg.sample_rate
    source = 0.2 * torch.sin(2 * torch.pi * 440 * t) + 0.1 * torch.randn(cfg.window_samples, generator=gen)
    left = source + SIDE_NOISE * torch.randn(cfg.window_samples, generator=gen)
    right = source + SIDE_NOISE * torch.randn(cfg.window_samples, generator=gen)
    stereo = torch.stack([left, right])[None]
    mid = stereo.mean(dim=1, keepdim=True)
    return stereo, mid.expand(1, 2, cfg.window_samples).contiguous()


def _lr_shift(rule: str) -> float:
    fe = AudioFrontend(SMALL.replace(frontend=rule)).eval()
    stereo, mono = _stereo_and_mono(SMALL)
    with torch.no_grad():
        a, b = fe(stereo), fe(mono)
    return float((a[:, :2] - b[:, :2]).abs().max())


def test_mono_downmix_leaves_left_and_right_where_stereo_put_them() -> None:
    assert SMALL.frontend == FRONTEND_V2
    assert _lr_shift(FRONTEND_V2) < MONO_TOLERANCE


def test_old_rule_moves_left_and_right_when_fed_mono() -> None:
    """The defect the new rule removes, kept as a check that the test above can fail."""
    assert _lr_shift(FRONTEND_V1) > 4 * MONO_TOLERANCE


def test_new_rule_keeps_range_and_maps_a_silent_side_channel_to_minus_one() -> None:
    fe = AudioFrontend(SMALL).eval()
    stereo, mono = _stereo_and_mono(SMALL)
    with torch.no_grad():
        out_s, out_m = fe(stereo), fe(mono)
    for out in (out_s, out_m):
        assert float(out[:, :2].min()) == pytest.approx(-1.0) and float(out.max()) == pytest.approx(1.0, abs=1e-5)
        assert float(out.min()) >= -1.0 - 1e-6
    assert torch.all(out_m[:, 2] == -1.0)


def test_configs_saved_before_the_rule_was_recorded_load_with_the_old_rule() -> None:
    d = SMALL.to_dict()
    assert ModelConfig.from_dict(d).frontend == FRONTEND_V2
    del d["frontend"]
    assert ModelConfig.from_dict(d).frontend == FRONTEND_V1


def test_unknown_rule_is_refused_naming_the_choices() -> None:
    with pytest.raises(ValueError, match="frontend='minmax-x'.*minmax-lr-v2"):
        SMALL.replace(frontend="minmax-x")
