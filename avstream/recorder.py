"""One take of a scene through the live sources, written atomically with PyAV.

The take is captured by ``LiveSource``, the very source ``avstream live`` runs on, so it holds
what the daemon hears and sees: the microphone's own rate and channel count, the camera's own
frame size, each frame at the stream time it was captured. It is muxed while it is captured
into ``.<take>.mkv.partial`` beside its final name and renamed only when complete; a stop, a
device lost mid-take or any error deletes the partial file, so a take is complete or absent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np

from avstream.errors import AvstreamError, DeviceError
from avstream.sources.base import AudioBlock, Idle, ModalityLost, Source, VideoFrame
from avstream.takes import partial_path

log = logging.getLogger(__name__)

MS_PER_S: Final[int] = 1000
VIDEO_TIME_BASE: Final[Fraction] = Fraction(1, MS_PER_S)
"""Frames keep their capture times to the millisecond (a webcam's rate varies with light)."""
VIDEO_CODEC: Final[str] = "libx264"
VIDEO_OPTIONS: Final[dict[str, str]] = {"preset": "ultrafast", "crf": "18"}
"""Fast enough to encode beside a live capture on 2 cores; crf 18 is visually lossless."""
VIDEO_NOMINAL_FPS: Final[int] = 30
"""The encoder's nominal rate; the real times are the frames' own (variable-rate pts)."""
AUDIO_CODEC: Final[str] = "pcm_s16le"
"""Lossless, at the microphone's own rate and channel count."""
ARM_TIMEOUT_S: Final[float] = 10.0
"""Longest wait for the first audio block and frame before a take can start."""
END_SLACK_S: Final[float] = 2.0
"""After the take's end, how long to wait for the last samples before the take is incomplete."""
LEVEL_FLOOR_DB: Final[float] = -100.0


@dataclass(frozen=True)
class TakeOptions:
    seconds: float = 10.0
    """Length of the take, seconds."""
    countdown_s: float = 3.0
    """Seconds shown counting down (levels already live) before the take starts."""
    audio: bool = True
    video: bool = True

    def __post_init__(self) -> None:
        if not 0.5 <= self.seconds <= 3600:
            raise AvstreamError(f"--seconds {self.seconds:g}; expected 0.5 to 3600 seconds")
        if not 0 <= self.countdown_s <= 60:
            raise AvstreamError(f"--countdown {self.countdown_s:g}; expected 0 to 60 seconds")


@dataclass(frozen=True)
class Take:
    """A complete take, as written."""

    path: Path
    seconds: float
    audio_rate_hz: int | None
    audio_channels: int | None
    audio_samples: int
    frame_size: tuple[int, int] | None
    """(width, height) as written (an odd side loses its last pixel row/column for H.264)."""
    frames: int


@dataclass(frozen=True)
class Progress:
    """What the command shows: ``phase`` 'countdown' or 'recording', seconds left in it, and
    the peak level of each audio channel in the last block (dBFS)."""

    phase: str
    left_s: float
    levels_db: tuple[float, ...]


class Stopped(Exception):
    """A stop request (SIGINT / SIGTERM) ended the take; nothing was kept."""


def peak_db(samples: np.ndarray) -> tuple[float, ...]:
    peaks = np.abs(samples).max(axis=1) if samples.size else np.zeros(samples.shape[0])
    return tuple(float(max(LEVEL_FLOOR_DB, 20 * np.log10(max(p, 1e-10)))) for p in peaks)


class _Muxer:
    """The partial file: streams are added from the first block and frame seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.container = av.open(str(path), "w", format="matroska")
        self.audio: av.audio.stream.AudioStream | None = None
        self.video: av.video.stream.VideoStream | None = None
        self.samples = 0
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self._last_pts = -1

    def add_audio(self, rate: int, channels: int) -> None:
        self.audio = self.container.add_stream(AUDIO_CODEC, rate=rate)
        self.audio.layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")

    def add_video(self, width: int, height: int) -> None:
        self.size = (width - width % 2, height - height % 2)
        self.video = self.container.add_stream(VIDEO_CODEC, rate=VIDEO_NOMINAL_FPS,
                                               options=dict(VIDEO_OPTIONS))
        self.video.width, self.video.height = self.size
        self.video.pix_fmt = "yuv420p"
        self.video.codec_context.time_base = VIDEO_TIME_BASE

    def write_audio(self, samples: np.ndarray, rate: int) -> None:
        """(channels, n) float32 in [-1, 1]."""
        assert self.audio is not None
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).round().astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm.T).reshape(1, -1),
                                           format="s16", layout=self.audio.layout)
        frame.sample_rate = rate
        frame.pts = self.samples
        frame.time_base = Fraction(1, rate)
        self.container.mux(self.audio.encode(frame))
        self.samples += pcm.shape[1]

    def write_frame(self, rgb: np.ndarray, t_s: float) -> None:
        assert self.video is not None and self.size is not None
        pts = round(t_s * MS_PER_S)
        if pts <= self._last_pts:
            return  # two frames in one millisecond: the second adds nothing
        w, h = self.size
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[:h, :w]), format="rgb24")
        frame.pts = self._last_pts = pts
        frame.time_base = VIDEO_TIME_BASE
        self.container.mux(self.video.encode(frame.reformat(format="yuv420p")))
        self.frames += 1

    def finish(self) -> None:
        for stream in (self.audio, self.video):
            if stream is not None:
                self.container.mux(stream.encode(None))
        self.container.close()

    def discard(self) -> None:
        try:
            self.container.close()
        except (av.FFmpegError, ValueError, OSError) as e:
            log.debug("closing the discarded take: %s", e)
        self.path.unlink(missing_ok=True)


def record_take(source: Source, take: Path, options: TakeOptions, stop: threading.Event,
                on_progress: Callable[[Progress], None] = lambda p: None) -> Take:
    """Capture ``options.seconds`` from the opened ``source`` into ``take``, atomically.

    Stopped on a stop request, DeviceError when a device is lost mid-take or never delivers;
    in every case but success the partial file is gone.
    """
    take.parent.mkdir(parents=True, exist_ok=True)
    muxer = _Muxer(partial_path(take))
    try:
        _capture(source, muxer, options, stop, on_progress)
        muxer.finish()
        partial_path(take).replace(take)  # atomic in one folder: complete or absent
    except BaseException:
        muxer.discard()
        raise
    return Take(path=take, seconds=options.seconds,
                audio_rate_hz=muxer.audio.rate if muxer.audio else None,
                audio_channels=muxer.audio.channels if muxer.audio else None,
                audio_samples=muxer.samples, frame_size=muxer.size, frames=muxer.frames)


def _capture(source: Source, muxer: _Muxer, options: TakeOptions, stop: threading.Event,
             on_progress: Callable[[Progress], None]) -> None:
    armed_at = time.monotonic()
    countdown_end = armed_at + options.countdown_s
    t0: float | None = None  # stream seconds at the take's first sample
    levels: tuple[float, ...] = ()
    first_block: AudioBlock | None = None
    first_frame: VideoFrame | None = None
    want = {"audio": options.audio, "video": options.video}
    n_total: int | None = None
    for event in source.events():
        if stop.is_set():
            raise Stopped
        now = time.monotonic()
        if isinstance(event, ModalityLost):
            raise DeviceError(f"{event.modality} lost during the take ({event.reason}); "
                              "nothing was kept")
        if isinstance(event, AudioBlock):
            levels = peak_db(event.samples)
            first_block = first_block or event
        elif isinstance(event, VideoFrame):
            first_frame = first_frame or event
        if t0 is None:
            ready = (not want["audio"] or first_block) and (not want["video"] or first_frame)
            if not ready and now - armed_at > ARM_TIMEOUT_S:
                missing = [m for m, w in want.items() if w and not (first_block if m == "audio" else first_frame)]
                raise DeviceError(f"no {' or '.join(missing)} arrived within {ARM_TIMEOUT_S:g} s; "
                                  "nothing was recorded")
            if ready and now >= countdown_end:
                t0 = _event_t(event)
                if first_block is not None and want["audio"]:
                    muxer.add_audio(first_block.sample_rate, first_block.samples.shape[0])
                    n_total = round(options.seconds * first_block.sample_rate)
                if first_frame is not None and want["video"]:
                    h, w = first_frame.rgb.shape[:2]
                    muxer.add_video(w, h)
            else:
                on_progress(Progress("countdown", max(0.0, countdown_end - now), levels))
                continue
        t_end = t0 + options.seconds
        if isinstance(event, AudioBlock) and n_total is not None and muxer.samples < n_total:
            skip = max(0, round((t0 - event.t_start) * event.sample_rate)) if muxer.samples == 0 else 0
            part = event.samples[:, skip:skip + n_total - muxer.samples]
            if part.shape[1]:
                muxer.write_audio(part, event.sample_rate)
        elif isinstance(event, VideoFrame) and muxer.video is not None and t0 <= event.t < t_end:
            muxer.write_frame(event.rgb, event.t - t0)
        t = _event_t(event)
        on_progress(Progress("recording", max(0.0, t_end - t), levels))
        audio_done = n_total is None or muxer.samples >= n_total
        if t >= t_end and audio_done:
            return
        if t >= t_end + END_SLACK_S:
            raise DeviceError(f"the take ended with {muxer.samples} of {n_total} audio samples; "
                              "the microphone fell behind, nothing was kept")
    if stop.is_set():
        raise Stopped
    raise DeviceError(f"the capture ended before the take was complete "
                      f"({getattr(source, 'failure', None) or 'source closed'}); nothing was kept")


def _event_t(event: object) -> float:
    if isinstance(event, AudioBlock):
        return event.t_end
    if isinstance(event, VideoFrame | Idle):
        return event.t
    return float(getattr(event, "t", 0.0) or 0.0)
