"""Frequency weightings applied to an STFT power spectrum (numpy only, computed once at build).

Gammatone: the FFT-weighted approximation used for streaming front ends (Ellis' fft2gammatonemx
idea): each band is a 4th-order gammatone magnitude response |H(f)|^2 with bandwidth
b = 1.019 * ERB(fc), centres equally spaced on the ERB-rate scale (Glasberg & Moore 1990).
Mel: HTK-formula triangles, area-normalised (Slaney style). Both return (n_bands, n_fft//2+1).
"""

from __future__ import annotations

import numpy as np

GAMMATONE_ORDER = 4
ERB_BANDWIDTH_FACTOR = 1.019  # Patterson's b / ERB ratio for a 4th-order gammatone


def erb_hz(f_hz: np.ndarray) -> np.ndarray:
    """Equivalent rectangular bandwidth at f (Glasberg & Moore: 24.7 * (4.37 f/kHz + 1))."""
    return 24.7 * (4.37e-3 * f_hz + 1.0)


def hz_to_erb_rate(f_hz: np.ndarray | float) -> np.ndarray:
    return 21.4 * np.log10(1.0 + 4.37e-3 * np.asarray(f_hz, dtype=np.float64))


def erb_rate_to_hz(e: np.ndarray) -> np.ndarray:
    return (10.0 ** (e / 21.4) - 1.0) / 4.37e-3


def fft_bin_hz(n_fft: int, sample_rate: int) -> np.ndarray:
    return np.arange(n_fft // 2 + 1) * sample_rate / n_fft


def gammatone_weights(n_fft: int, sample_rate: int, n_bands: int, f_min_hz: float = 0.0,
                      f_max_hz: float | None = None) -> np.ndarray:
    """Power weights of n_bands ERB-spaced gammatone filters; each band peaks at 1."""
    f_max = sample_rate / 2 if f_max_hz is None else f_max_hz
    # n_bands + 2 points, ends dropped: no band is centred exactly on DC or Nyquist.
    e = np.linspace(hz_to_erb_rate(f_min_hz), hz_to_erb_rate(f_max), n_bands + 2)[1:-1]
    fc = erb_rate_to_hz(e)[:, None]
    f = fft_bin_hz(n_fft, sample_rate)[None, :]
    b = ERB_BANDWIDTH_FACTOR * erb_hz(fc)
    magnitude = (1.0 + ((f - fc) / b) ** 2) ** (-GAMMATONE_ORDER / 2)
    return (magnitude**2).astype(np.float32)


def mel_weights(n_fft: int, sample_rate: int, n_bands: int, f_min_hz: float = 0.0,
                f_max_hz: float | None = None) -> np.ndarray:
    f_max = sample_rate / 2 if f_max_hz is None else f_max_hz

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max), n_bands + 2))
    f = fft_bin_hz(n_fft, sample_rate)
    lower = (f[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - f[None, :]) / (edges[2:, None] - edges[1:-1, None])
    tri = np.maximum(0.0, np.minimum(lower, upper))
    tri *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per band
    return tri.astype(np.float32)


def band_weights(kind: str, n_fft: int, sample_rate: int, n_bands: int,
                 f_min_hz: float = 0.0) -> np.ndarray:
    if kind == "gammatone":
        return gammatone_weights(n_fft, sample_rate, n_bands, f_min_hz)
    if kind == "mel":
        return mel_weights(n_fft, sample_rate, n_bands, f_min_hz)
    raise ValueError(f"filterbank {kind!r}; expected 'gammatone' or 'mel'")
