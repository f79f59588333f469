"""The audio front end, inside the model: stereo waveform -> 3 x bands x frames in [-1, 1].

The STFT is a fixed Conv1d with windowed cosine/sine kernels (stride = hop), not an STFT/DFT
op: ONNX Runtime's CUDA provider has no DFT kernel, and the legacy exporter fails on complex
STFT, while a Conv1d exports and runs natively everywhere. Keep this module in fp32: |X|^2
overflows fp16.

Scaling rules (``ModelConfig.frontend``; the bundle manifest records which one a graph carries):

- ``minmax-lr-v2`` (the default of every preset): lo/hi are taken over the L and R planes only,
  and the L-R plane is clamped into [lo, hi] before the same scaling. A mono source (L == R) makes
  L-R digital silence at the -100 dB floor; it now maps to -1 instead of stretching the range,
  so the L and R planes of a mono down-mix stay where the stereo signal put them. A quiet but
  real side signal below the quietest L/R band is clipped to -1 too: it carries less than the
  range L and R span, which is what the network is given to compare.
- ``minmax-lrs-v1`` (the seed's, bundles of format version 1 and checkpoints saved before the
  rule was recorded): lo/hi over L, R and L-R together. Fed mono, lo drops to the floor and L and R
  are squeezed into a narrow band the network never saw (README: final 1.000 -> 0.320).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from avstream.bundle.schema import FRONTEND_V1
from training.config import ModelConfig
from training.model.filterbanks import band_weights

POWER_FLOOR = 1e-10  # -100 dB: keeps log finite on digital silence (e.g. L-R of a mono source)
SCALE_EPS = 1e-6


def stft_kernels(n_fft: int) -> np.ndarray:
    """(2 * (n_fft//2+1), 1, n_fft): real parts then imaginary parts, periodic Hann window."""
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * math.pi * n / n_fft)
    phase = 2 * math.pi * k * n / n_fft
    kernels = np.concatenate([window * np.cos(phase), -window * np.sin(phase)], axis=0)
    return kernels[:, None, :].astype(np.float32)


class AudioFrontend(nn.Module):
    """Waveform (B, C, T) with C in {1, 2}, float in [-1, 1] -> (B, 3, n_bands, frames).

    Channels are left, right and the spectrum of left-minus-right (the seed's third channel);
    band powers go to dB (10*log10 of power == 20*log10 of band amplitude) and each example is
    min-max scaled to [-1, 1] by the config's rule (module docstring). A mono input is
    duplicated, so L-R is silent.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_fft = cfg.stft_window_samples
        self.hop = cfg.stft_hop_samples
        self.n_bins = self.n_fft // 2 + 1
        self.window_samples = cfg.window_samples
        self.rule = cfg.frontend  # checked by ModelConfig
        # Half of (n_fft - hop) each side: exactly window/hop frames per window (50 per second).
        self.pad = (self.n_fft - self.hop) // 2
        self.register_buffer("stft_kernel", torch.from_numpy(stft_kernels(self.n_fft)), persistent=False)
        weights = band_weights(cfg.filterbank, self.n_fft, cfg.sample_rate, cfg.n_bands, cfg.f_min_hz)
        self.register_buffer("band_weights", torch.from_numpy(weights), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        # First and last channel: stereo stays (L, R); mono becomes (M, M). The side channel is
        # subtracted in the waveform, where it is exact: STFT(L) - STFT(R) would cancel two
        # large float32 sums and leave rounding noise that differs between runtimes.
        left, right = wave[:, :1], wave[:, -1:]
        x = torch.cat([left, right, left - right], dim=1)
        batch = x.shape[0]
        x = x.reshape(batch * 3, 1, x.shape[-1])
        x = F.pad(x, (self.pad, self.pad))
        spec = F.conv1d(x, self.stft_kernel, stride=self.hop)  # (3B, 2*bins, frames)
        frames = spec.shape[-1]
        spec = spec.reshape(batch, 3, 2, self.n_bins, frames)  # (B, L/R/L-R, re/im, bins, frames)
        power = spec[:, :, 0] ** 2 + spec[:, :, 1] ** 2  # (B, 3, bins, frames)
        bands = torch.matmul(self.band_weights, power)  # (B, 3, n_bands, frames)
        # A floor by max, not by adding: the exported graph's optimiser drops `x + 1e-10` as a
        # no-op, and log(0) of a silent band (L-R of a mono source) would then be -inf -> NaN.
        db = 10.0 * torch.log10(bands.clamp_min(POWER_FLOOR))
        return scale(db, self.rule)


def scale(db: torch.Tensor, rule: str) -> torch.Tensor:
    """(B, 3, bands, frames) dB of L, R, L-R -> [-1, 1] per example by ``rule``."""
    if rule == FRONTEND_V1:
        lo = db.amin(dim=(1, 2, 3), keepdim=True)
        hi = db.amax(dim=(1, 2, 3), keepdim=True)
    else:
        lr = db[:, :2]
        lo = lr.amin(dim=(1, 2, 3), keepdim=True)
        hi = lr.amax(dim=(1, 2, 3), keepdim=True)
        # Min/Max rather than clamp with tensor bounds: plain elementwise ops in every opset
        # and every runtime. L and R are inside [lo, hi] already; only L-R moves.
        db = torch.minimum(torch.maximum(db, lo), hi)
    return 2.0 * (db - lo) / (hi - lo + SCALE_EPS) - 1.0
