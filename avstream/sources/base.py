"""What every source hands the pipeline: timestamped audio blocks, frames and status events.

There is one clock. Every record carries stream seconds: container timestamps for a file, the
monotonic clock at capture (``avstream.stream.clock.WallClock``) for live devices. A source delivers
media as it comes (native sample rate, channel count, resolution and frame rate); converting to
the model's format is the pipeline's job, so a file and a microphone go through the very same
resampler, down-mix, resize and window code.

A source never paces itself to the wall clock unless it is live: real-time replay of a file is
the driver's choice (``avstream.sources.paced.PacedSource``), so the inference path cannot tell
the two apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from avstream.stream.clock import WallClock


class Modality(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class AudioBlock:
    """Consecutive samples from one audio input."""

    t_start: float
    """Stream seconds of the first sample."""
    samples: np.ndarray
    """(channels, n) float32 in [-1, 1], any channel count, at ``sample_rate``."""
    sample_rate: int
    """Hz, the input's own rate (the pipeline resamples to the model's)."""

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[1])

    @property
    def t_end(self) -> float:
        """Stream seconds just after the last sample: when a live block becomes available."""
        return self.t_start + self.samples.shape[1] / self.sample_rate


class VideoFrame:
    """One decoded picture at stream time ``t``.

    The RGB array may be produced on first use (``convert``): a 25 or 60 fps file only has 5
    frames a second sampled, and converting the others to RGB would be wasted work.
    """

    __slots__ = ("t", "_rgb", "_convert")

    def __init__(
        self,
        t: float,
        rgb: np.ndarray | None = None,
        *,
        convert: Callable[[], np.ndarray] | None = None,
    ) -> None:
        if (rgb is None) == (convert is None):
            raise ValueError("VideoFrame needs exactly one of rgb (an array) or convert (a callable)")
        self.t = float(t)
        """Stream seconds at which the picture was captured / is presented."""
        self._rgb = rgb
        self._convert = convert

    @property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB at the source's own resolution."""
        rgb = self._rgb
        if rgb is None:
            convert, self._convert = self._convert, None
            if convert is None:
                raise RuntimeError("VideoFrame has neither pixels nor a converter")
            rgb = self._rgb = convert()
        return rgb

    def __repr__(self) -> str:
        return f"VideoFrame(t={self.t:.4f})"


@dataclass(frozen=True, slots=True)
class ModalityLost:
    """A modality stopped delivering (device unplugged, stream ended early, decoder failed)."""

    modality: Modality
    t: float
    reason: str


@dataclass(frozen=True, slots=True)
class ModalityRestored:
    """A modality that was lost delivers again."""

    modality: Modality
    t: float


@dataclass(frozen=True, slots=True)
class CorruptSkipped:
    """Compressed data that could not be decoded was skipped; the stream goes on."""

    modality: Modality
    t: float | None
    """Stream seconds of the packet when known."""
    count: int = 1
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SamplesDropped:
    """Audio lost before it reached the pipeline (input overflow, a capture ring overrun)."""

    t: float
    n_samples: int
    """At the input's own rate; 0 when the device only said that it overflowed."""
    sample_rate: int


@dataclass(frozen=True, slots=True)
class FramesDropped:
    """Camera frames skipped before they reached the pipeline (a newer frame replaced them)."""

    t: float
    count: int


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing arrived for a while; lets the pipeline look at its stop flag and the clock.

    Live sources should yield one at least every ~100 ms while their devices are silent, so
    that Ctrl-C and SIGTERM stop the pipeline promptly.
    """

    t: float


def available_at(event: object) -> float | None:
    """Stream seconds at which a live device would hand this event over: an audio block once its
    last sample is in, a frame at its capture time; None for status events."""
    if isinstance(event, AudioBlock):
        return event.t_end
    if isinstance(event, VideoFrame):
        return event.t
    return None


StatusEvent = ModalityLost | ModalityRestored | CorruptSkipped | SamplesDropped | FramesDropped | Idle
SourceEvent = AudioBlock | VideoFrame | StatusEvent


@dataclass(frozen=True)
class SourceInfo:
    """What was opened, echoed in outputs so that a missing modality is never a surprise."""

    name: str
    """A file path, a pair of paths, or a device description."""
    has_audio: bool
    has_video: bool
    live: bool
    """True when timestamps come from a capture clock (the source paces itself)."""
    audio_rate_hz: int | None = None
    audio_channels: int | None = None
    video_width: int | None = None
    video_height: int | None = None
    video_fps: float | None = None
    """Nominal rate; frames are placed by their timestamps, never by this."""
    details: tuple[str, ...] = ()
    """Free-form facts worth reporting (codecs, device names)."""
    camera_audio: bool = False
    """The audio is the camera stream's own track (``--mic camera``), not a microphone's: the
    start-up line says so. Declared by the source, never guessed from ``name``."""

    @property
    def modalities(self) -> tuple[Modality, ...]:
        out = []
        if self.has_audio:
            out.append(Modality.AUDIO)
        if self.has_video:
            out.append(Modality.VIDEO)
        return tuple(out)


@runtime_checkable
class Source(Protocol):
    """Anything that produces timestamped media: a file, a microphone + camera, a network stream.

    Contract:
    - ``info`` is valid as soon as the source is open (a file opens in its constructor).
    - ``events()`` yields ``SourceEvent`` records; within a modality timestamps increase. Audio
      and video may be interleaved with some skew (the pipeline waits a bounded time for the
      slower one; ``MediaFileSource`` merges a file's streams by time itself).
    - A live source yields ``Idle`` while nothing arrives, and ends its iterator after
      ``close()``; a file source ends its iterator at the end of the file.
    - ``close()`` releases devices and files; safe to call twice.

    The three attributes below have the defaults of a recorded source; a class that subclasses
    ``Source`` explicitly inherits them and overrides what differs.
    """

    clock: WallClock | None = None
    """A live source: the wall clock its capture threads stamp events with (stale hops are judged
    against it). None for a recorded source: the driver picks its clock."""
    failure: str | None = None
    """Why the source ended on its own, when that is a fault (every device lost too long): the
    run must then fail. None after a normal end or a stop."""
    exact_arrivals: bool = False
    """The source hands each event over exactly when ``available_at`` says (a paced replay), so
    the pipeline can take that as its arrival (``avstream.stream.arrivals``)."""

    @property
    def info(self) -> SourceInfo: ...

    def events(self) -> Iterator[SourceEvent]: ...

    def close(self) -> None: ...
