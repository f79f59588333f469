"""Audio from any input, made what the model expects: its channel count and its sample rate.

Resampling is streaming (one soxr ``ResampleStream`` per continuous run of input), so block
boundaries leave no seams: over a run, the output is sample-for-sample what a one-shot soxr
call on the whole signal gives. Positions are kept as integer sample indices at the model's
rate, so a file replays on an exact grid however its blocks were cut.

Non-finite samples (NaN, +/-Inf: a float WAV written by a broken tool, a driver glitch) are
replaced by 0.0 here, before the down-mix and the resampler, and counted: one NaN would spread
through the mean, through soxr's filter memory and through the spectrogram of every window that
overlaps it, and the model's output for those windows would be NaN (skipped as invalid).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import soxr

from avstream.media.audio import SOXR_QUALITY, to_stereo
from avstream.sources.base import AudioBlock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConformedAudio:
    """Samples at the model's rate and channel count, placed on the model-rate sample grid."""

    start_index: int
    """Absolute sample index (stream seconds x model rate) of the first sample."""
    samples: np.ndarray
    """(channels, n) float32."""


def describe_conversion(rate: int | None, channels: int | None, model_rate: int,
                        model_channels: int) -> str:
    """What happens to an input's audio, in words (reported at start and in the summary)."""
    if rate is None or channels is None:
        return f"native format -> {model_rate} Hz {model_channels} ch"
    steps = []
    if channels != model_channels:
        if model_channels == 1:
            steps.append("averaged to mono")
        elif channels == 1:
            steps.append("mono duplicated")
        elif channels == 6:
            steps.append("5.1 ITU down-mix")
        else:
            steps.append(f"{channels} channels averaged, duplicated")
    if rate != model_rate:
        steps.append(f"soxr {SOXR_QUALITY} resampling")
    how = f" ({', '.join(steps)})" if steps else " (as is)"
    return f"{rate} Hz {channels} ch -> {model_rate} Hz {model_channels} ch{how}"


class AudioConformer:
    """Down-mix / duplicate and resample a stream of ``AudioBlock`` s of any format.

    A block whose start is within ``continuity_s`` of where the previous one ended continues the
    run (capture clocks jitter by a few ms); anything further is a discontinuity: the run is
    flushed and a new one starts at the block's own timestamp.
    """

    def __init__(self, sample_rate: int, channels: int, continuity_s: float) -> None:
        if channels not in (1, 2):
            raise ValueError(f"model audio has {channels} channels; expected 1 or 2")
        self.sample_rate = sample_rate
        self.channels = channels
        self.continuity_s = continuity_s
        self.reset()

    def reset(self) -> None:
        self._stream: soxr.ResampleStream | None = None
        self._in_rate = 0
        self._expected_t: float | None = None  # input time where the next block should start
        self._run_start_index = 0  # model-rate index of the current run's first sample
        self._run_out = 0  # samples emitted in the current run
        self.discontinuities = 0
        self.nonfinite_samples = 0
        """Sample values (each channel counts) that were NaN or +/-Inf, replaced by 0.0."""

    def _finite(self, x: np.ndarray, t_start: float) -> np.ndarray:
        """``x`` with NaN and +/-Inf replaced by 0.0, counted.

        0.0 is silence: it adds no energy to the window's spectrogram and no step to the
        resampler's filter, where the neighbours' values or a clip to full scale would invent a
        sound that was never recorded. The input block is left unchanged (a copy is made only
        when something needs replacing).
        """
        bad = ~np.isfinite(x)
        n_bad = int(np.count_nonzero(bad))
        if n_bad == 0:
            return x
        if self.nonfinite_samples == 0:
            log.warning("audio has non-finite samples (NaN/Inf) at %.3f s: replaced by 0.0 and "
                        "counted in audio_nonfinite_samples", t_start)
        self.nonfinite_samples += n_bad
        return np.where(bad, np.float32(0.0), x).astype(np.float32, copy=False)

    def _map_channels(self, x: np.ndarray) -> np.ndarray:
        if self.channels == 2:
            return to_stereo(x)
        if x.shape[0] == 1:
            return np.ascontiguousarray(x, dtype=np.float32)
        return x.mean(axis=0, dtype=np.float32, keepdims=True)

    def push(self, block: AudioBlock) -> list[ConformedAudio]:
        """Conform one block; returns what the resampler released (possibly nothing yet)."""
        out: list[ConformedAudio] = []
        continuous = (
            self._expected_t is not None
            and block.sample_rate == self._in_rate
            and abs(block.t_start - self._expected_t) <= self.continuity_s
        )
        if not continuous:
            if self._expected_t is not None:
                self.discontinuities += 1
                log.debug("audio discontinuity at %.3f s (expected %.3f s)", block.t_start,
                          self._expected_t)
            out.extend(self.flush())
            self._start_run(block)
        self._expected_t = (self._expected_t if continuous else block.t_start) + (
            block.n_samples / block.sample_rate
        )
        x = self._map_channels(self._finite(block.samples, block.t_start))
        if self._stream is None:
            y = x
        else:
            y = self._stream.resample_chunk(np.ascontiguousarray(x.T), last=False).T
        self._emit(y, out)
        return out

    def _start_run(self, block: AudioBlock) -> None:
        self._in_rate = block.sample_rate
        self._run_start_index = round(block.t_start * self.sample_rate)
        self._run_out = 0
        self._stream = (
            None
            if block.sample_rate == self.sample_rate
            else soxr.ResampleStream(
                block.sample_rate, self.sample_rate, self.channels, dtype="float32",
                quality=SOXR_QUALITY,
            )
        )

    def _emit(self, y: np.ndarray, out: list[ConformedAudio]) -> None:
        n = y.shape[1]
        if n == 0:
            return
        out.append(ConformedAudio(self._run_start_index + self._run_out,
                                  np.ascontiguousarray(y, dtype=np.float32)))
        self._run_out += n

    def flush(self) -> list[ConformedAudio]:
        """End the current run: release what the resampler still holds (end of file, a gap)."""
        out: list[ConformedAudio] = []
        if self._stream is not None:
            tail = self._stream.resample_chunk(
                np.zeros((0, self.channels), dtype=np.float32), last=True
            ).T
            self._emit(tail, out)
            self._stream = None
        self._expected_t = None
        return out
