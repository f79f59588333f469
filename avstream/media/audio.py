"""Audio as the model wants it: float32 (2, n) in [-1, 1] at the model's rate.

Every source (24-bit WAV, an mp4's AAC track, a 44.1 kHz microphone) goes through the same
down-mix and the same soxr resampler, in training's cache and in the daemon alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import soundfile as sf
import soxr

from avstream.errors import MediaError
from avstream.media.decode import decode_audio_track

log = logging.getLogger(__name__)

STEREO: Final[int] = 2
SOXR_QUALITY: Final[str] = "HQ"
SOUNDFILE_SUFFIXES: Final[frozenset[str]] = frozenset({".wav", ".flac", ".aif", ".aiff", ".ogg"})
"""Read with libsndfile (exact 24-bit PCM); anything else goes through PyAV."""

ITU_CENTER_GAIN: Final[float] = 0.7071  # -3 dB, ITU-R BS.775 down-mix
ITU_SURROUND_GAIN: Final[float] = 0.7071
# 5.1 channel order as WAV (WAVEFORMATEXTENSIBLE) and FFmpeg lay it out: FL FR FC LFE SL SR.
_FL, _FR, _FC, _LFE, _SL, _SR = range(6)


@dataclass(frozen=True)
class AudioClip:
    """A decoded file, converted; the native fields say what conversion happened."""

    samples: np.ndarray
    """(2, n) float32 in [-1, 1] at ``sample_rate``."""
    sample_rate: int
    native_rate: int
    native_channels: int
    skipped_packets: int = 0
    """Corrupt compressed packets skipped while decoding (always 0 for WAV/FLAC)."""

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.sample_rate


def to_stereo(samples: np.ndarray) -> np.ndarray:
    """Any channel count -> (2, n) float32.

    Mono is duplicated; stereo passes through; 5.1 uses the ITU-R BS.775 down-mix (LFE dropped)
    scaled by the sum of its gains so a full-scale input cannot clip; any other count is averaged
    to mono and duplicated, since its speaker layout is unknown.
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"audio has shape {x.shape}; expected (channels, samples)")
    channels = x.shape[0]
    if channels == STEREO:
        return np.ascontiguousarray(x)
    if channels == 1:
        return np.ascontiguousarray(np.repeat(x, STEREO, axis=0))
    if channels == 6:
        norm = 1.0 + ITU_CENTER_GAIN + ITU_SURROUND_GAIN
        left = x[_FL] + ITU_CENTER_GAIN * x[_FC] + ITU_SURROUND_GAIN * x[_SL]
        right = x[_FR] + ITU_CENTER_GAIN * x[_FC] + ITU_SURROUND_GAIN * x[_SR]
        return np.stack([left, right]).astype(np.float32) / np.float32(norm)
    mono = x.mean(axis=0, dtype=np.float32)
    return np.stack([mono, mono])


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """(channels, n) at from_hz -> (channels, m) float32 at to_hz with soxr "HQ"; identity if equal."""
    if from_hz <= 0 or to_hz <= 0:
        raise ValueError(f"sample rates {from_hz} -> {to_hz} Hz; expected positive rates")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"audio has shape {x.shape}; expected (channels, samples)")
    if from_hz == to_hz:
        return x
    # soxr wants (frames, channels).
    y = soxr.resample(np.ascontiguousarray(x.T), from_hz, to_hz, quality=SOXR_QUALITY)
    return np.ascontiguousarray(y.T, dtype=np.float32)


def read_audio_file(path: str | Path, sample_rate: int) -> AudioClip:
    """Read a whole file as stereo float32 at ``sample_rate`` (the audio track of a video too)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"audio file {path} does not exist; expected a WAV/FLAC file or a video")
    skipped = 0
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            data, native_rate = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.SoundFileError, RuntimeError) as e:
            raise MediaError(
                f"audio file {path} could not be decoded ({e}); expected a PCM WAV/FLAC file"
            ) from e
        native = np.ascontiguousarray(data.T)
    else:
        decoded = decode_audio_track(path)
        native, native_rate, skipped = decoded.samples, decoded.sample_rate, decoded.skipped_packets
    if native.shape[1] == 0:
        raise MediaError(f"audio file {path} has no samples; expected audio")
    stereo = to_stereo(native)
    out = resample(stereo, int(native_rate), sample_rate)
    return AudioClip(
        samples=out,
        sample_rate=sample_rate,
        native_rate=int(native_rate),
        native_channels=int(native.shape[0]),
        skipped_packets=skipped,
    )
