"""Non-finite audio samples (NaN, +/-Inf from a float WAV or a device) cost no window.

A float WAV with a 0.1-s burst of NaN and Inf is replayed ``--fast`` beside the same WAV without
the burst: every window of the clean file also runs for the broken one, none is skipped as
``windows_invalid``, and the replaced samples are counted in ``audio_nonfinite_samples``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import soundfile as sf
from replay_helpers import replay

SECONDS: Final[float] = 6.0
RATE_HZ: Final[int] = 44_100
CHANNELS: Final[int] = 2
BURST_START_S: Final[float] = 2.5
BURST_S: Final[float] = 0.1


def write_float_wav(path: Path, burst: bool) -> tuple[Path, int]:
    """A noisy tone as 32-bit float WAV (the subtype that can hold NaN and Inf); returns the
    path and how many sample values (all channels) are non-finite."""
    rng = np.random.default_rng(7)
    t = np.arange(int(SECONDS * RATE_HZ)) / RATE_HZ
    x = 0.2 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.05 * rng.standard_normal((t.size, CHANNELS))
    x = x.astype(np.float32)
    if burst:
        lo = int(BURST_START_S * RATE_HZ)
        hi = lo + int(BURST_S * RATE_HZ)
        pattern = np.array([np.nan, np.inf, -np.inf], dtype=np.float32)
        x[lo:hi] = np.resize(pattern, (hi - lo) * CHANNELS).reshape(hi - lo, CHANNELS)
    sf.write(str(path), x, RATE_HZ, subtype="FLOAT")
    return path, int((~np.isfinite(x)).sum())


def test_a_burst_of_nan_and_inf_samples_costs_no_window(tiny_engine, tmp_path: Path) -> None:
    clean_wav, _ = write_float_wav(tmp_path / "clean.wav", burst=False)
    broken_wav, n_bad = write_float_wav(tmp_path / "broken.wav", burst=True)
    assert n_bad == int(BURST_S * RATE_HZ) * CHANNELS
    # The file really holds the burst: soundfile reads the NaN and Inf back.
    assert (~np.isfinite(sf.read(str(broken_wav), dtype="float32")[0])).sum() == n_bad

    clean = replay(tiny_engine, clean_wav)
    broken = replay(tiny_engine, broken_wav)

    assert clean.summary is not None and broken.summary is not None
    assert [r.window for r in broken.records] == [r.window for r in clean.records]
    assert len(broken.records) >= 8
    assert broken.summary.counters.windows_invalid == 0
    assert broken.summary.counters.audio_nonfinite_samples == n_bad
    assert clean.summary.counters.windows_invalid == 0
    for record in broken.records:
        assert np.isfinite(record.raw_probs).all() and np.isfinite(record.probs).all()
