"""A camera stream's own audio and video (``--mic camera``): one demuxer, one clock, both tracks.

An IP camera on a pole has no other microphone: its audio comes in the same RTSP/UDP stream as
its pictures. OpenCV reads only the pictures, so the stream is read here with PyAV (FFmpeg),
both tracks from one demuxer.

Alignment. Both tracks carry timestamps of the sender's one clock, so they are placed on the
stream clock by the same mapping: ``monotonic = pts + offset``, where ``offset`` is the smallest
``arrival - pts`` seen since the stream (re)opened, i.e. the packet that reached us fastest sets
the path delay, and a packet held up in a buffer does not move its media later. Audio and video
of the same instant therefore get the same stream time however differently the network, the
demuxer's probing or the decoders delay them. A timestamp that jumps back (the sender restarted)
starts a new mapping.

Faults are events, as for the other devices: the stream ending, stalling or failing to open is
``ModalityLost`` for both tracks, its return ``ModalityRestored``; the reader reopens it with the
one ``Backoff``. A stream without an audio track says so once and runs video-only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import av
import numpy as np

from avstream.sources.backoff import RECONNECT, Backoff
from avstream.sources.base import (
    AudioBlock,
    CorruptSkipped,
    FramesDropped,
    Modality,
    ModalityLost,
    ModalityRestored,
    SamplesDropped,
    SourceEvent,
    SourceInfo,
    VideoFrame,
)
from avstream.sources.capture import Clock

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S: Final[float] = 5.0
READ_TIMEOUT_S: Final[float] = 1.0
"""A stream that sends nothing for this long counts as ended (as the OpenCV camera's)."""
EVENTS_KEPT: Final[int] = 1024
"""Decoded events waiting for the merge loop, at most (about 10 s of 25 fps video and 20 ms
audio frames); older ones are dropped and counted, so a stalled consumer cannot grow memory."""
PTS_JUMP_BACK_S: Final[float] = 1.0
"""A timestamp this far behind the last one is a new stream (the sender restarted)."""
CAMERA_AUDIO: Final[str] = "camera"
"""The ``--mic`` value that takes the audio track of the camera stream."""



class PtsClock:
    """Maps the sender's timestamps to monotonic seconds: ``pts + min(arrival - pts)``."""

    def __init__(self) -> None:
        self.offset_s: float | None = None
        self._last_pts: float | None = None

    def reset(self) -> None:
        self.offset_s = None
        self._last_pts = None

    def place(self, pts_s: float, arrival_s: float) -> float:
        if self._last_pts is not None and pts_s < self._last_pts - PTS_JUMP_BACK_S:
            log.info("stream timestamps jumped back %.2f s: new clock mapping",
                     self._last_pts - pts_s)
            self.offset_s = None
        self._last_pts = pts_s if self._last_pts is None else max(self._last_pts, pts_s)
        candidate = arrival_s - pts_s
        if self.offset_s is None or candidate < self.offset_s:
            self.offset_s = candidate
        return pts_s + self.offset_s


@dataclass(frozen=True)
class StreamTracks:
    """What the stream holds, once open."""

    audio_rate_hz: int | None
    audio_channels: int | None
    width: int
    height: int


class CameraStreamSource:
    """Audio and video of one stream URL as events on the stream clock; reconnects by itself.

    Has the members ``LiveSource`` uses of its devices: ``open``, ``poll``, ``close``, ``up``,
    ``last_loss``.
    """

    def __init__(self, url: str, to_stream: Clock, wake: threading.Event,
                 backoff: Backoff = RECONNECT) -> None:
        self.url = url
        self._t = to_stream
        self._wake = wake
        self._backoff = backoff
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._events: deque[SourceEvent] = deque()
        self._lost_samples: list[SamplesDropped] = []
        self._lost_frames = 0
        self._lost_frames_t = 0.0
        self._clock = PtsClock()
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self.up = False
        self.last_loss: str | None = None
        self.tracks: StreamTracks | None = None
        self.said_no_audio = False

    # ------------------------------------------------------------------ the caller's side

    def open(self) -> str | None:
        """Start the reader and wait for the first open; None when open, else why not (the
        reader keeps trying with the backoff)."""
        self._thread = threading.Thread(target=self._run, name="camera-stream", daemon=True)
        self._thread.start()
        self._opened.wait(OPEN_TIMEOUT_S + READ_TIMEOUT_S)
        if self.up:
            return None
        return self.last_loss or f"camera stream {self.url} did not open"

    def poll(self, now: float) -> list[SourceEvent]:
        """What the reader decoded since the last poll, and what it had to drop."""
        with self._lock:
            out: list[SourceEvent] = [*self._lost_samples]
            if self._lost_frames:
                out.append(FramesDropped(self._lost_frames_t, self._lost_frames))
            out.extend(self._events)
            self._events.clear()
            self._lost_samples.clear()
            self._lost_frames = 0
        return out

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=OPEN_TIMEOUT_S + READ_TIMEOUT_S)

    def info(self) -> SourceInfo:
        """Both modalities from this one stream, its audio declared as the camera's own track
        (``SourceInfo.camera_audio``), with the tracks' formats once the stream has opened."""
        tracks = self.tracks
        if tracks is None:
            detail = f"camera stream {self.url} did not open: retrying with backoff"
        else:
            audio = (f"audio {tracks.audio_rate_hz} Hz, {tracks.audio_channels} ch"
                     if tracks.audio_rate_hz else "no audio track: video only")
            detail = (f"camera stream {self.url} opened ({tracks.width}x{tracks.height}, "
                      f"{audio}); sound and pictures aligned by the stream's own timestamps")
        return SourceInfo(
            name=f"camera stream {self.url} (audio and video)", has_audio=True, has_video=True,
            live=True, audio_rate_hz=tracks.audio_rate_hz if tracks else None,
            audio_channels=tracks.audio_channels if tracks else None,
            video_width=tracks.width if tracks else None,
            video_height=tracks.height if tracks else None, details=(detail,), camera_audio=True)

    # ------------------------------------------------------------------ the reader thread

    def _emit(self, *events: SourceEvent) -> None:
        """Queue events for the merge loop; past ``EVENTS_KEPT`` the oldest media goes, counted
        as samples or frames dropped before the pipeline (reported at the next poll)."""
        with self._lock:
            for e in events:
                if len(self._events) >= EVENTS_KEPT:
                    old = self._events.popleft()
                    if isinstance(old, AudioBlock):
                        self._lost_samples.append(SamplesDropped(old.t_start, old.n_samples,
                                                                 old.sample_rate))
                    elif isinstance(old, VideoFrame):
                        self._lost_frames += 1
                        self._lost_frames_t = old.t
                self._events.append(e)
        self._wake.set()

    def _run(self) -> None:
        delay = self._backoff.first_s
        first = True
        while not self._closed.is_set():
            reason = self._read_once(first)
            first = False
            self._opened.set()
            if self._closed.is_set():
                return
            now = self._t(time.monotonic())
            if self.up:
                self.up = False
                self.last_loss = reason
                self._emit(ModalityLost(Modality.VIDEO, now, reason))
                if self.tracks is not None and self.tracks.audio_rate_hz is not None:
                    self._emit(ModalityLost(Modality.AUDIO, now, reason))
                log.warning("camera stream lost at %.2f s: %s; reconnecting with backoff", now,
                            reason)
                delay = self._backoff.first_s
            else:
                self.last_loss = reason
                delay = self._backoff.after(delay)
            if self._closed.wait(delay):
                return

    def _read_once(self, first: bool) -> str:
        """Open, read until the stream ends or fails; why it ended."""
        try:
            container = av.open(self.url, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
        except (av.FFmpegError, OSError) as e:
            return f"camera stream {self.url} did not open: {e}"
        try:
            return self._demux(container, first)
        finally:
            container.close()

    def _demux(self, container: av.container.InputContainer, first: bool) -> str:
        if not container.streams.video:
            return f"camera stream {self.url} has no video track"
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        resampler = av.AudioResampler(format="fltp") if audio is not None else None
        self._clock.reset()
        restored = not first
        streams = [s for s in (video, audio) if s is not None]
        try:
            for packet in container.demux(*streams):
                if self._closed.is_set():
                    return "closed"
                arrival = time.monotonic()
                try:
                    frames = packet.decode()
                except av.InvalidDataError as e:
                    self._emit(CorruptSkipped(Modality.AUDIO if packet.stream is audio
                                              else Modality.VIDEO, None, 1, str(e)))
                    continue
                for frame in frames:
                    if frame.time is None:
                        continue
                    t = self._t(self._clock.place(float(frame.time), arrival))
                    if not self.up:
                        self._went_up(video, audio, t, restored)
                    if packet.stream is video:
                        self._emit(VideoFrame(t, convert=_rgb_of(frame)))
                    elif resampler is not None:
                        for out in resampler.resample(frame):
                            samples = out.to_ndarray().astype(np.float32, copy=False)
                            self._emit(AudioBlock(t, np.ascontiguousarray(samples), out.sample_rate))
        except av.ExitError:  # the read timeout's interrupt
            return f"camera stream {self.url} sent nothing for {READ_TIMEOUT_S:g} s"
        except av.FFmpegError as e:
            return f"camera stream {self.url} failed: {e}"
        return f"camera stream {self.url} ended"

    def _went_up(self, video: av.video.stream.VideoStream, audio: av.audio.stream.AudioStream | None,
                 t: float, restored: bool) -> None:
        ctx = video.codec_context
        self.tracks = StreamTracks(
            audio_rate_hz=audio.codec_context.sample_rate if audio is not None else None,
            audio_channels=audio.codec_context.channels if audio is not None else None,
            width=ctx.width, height=ctx.height)
        self.up = True
        if restored:
            self._emit(ModalityRestored(Modality.VIDEO, t))
            if audio is not None:
                self._emit(ModalityRestored(Modality.AUDIO, t))
            log.warning("camera stream %s delivers again", self.url)
        if audio is None and not self.said_no_audio:
            self.said_no_audio = True
            self._emit(ModalityLost(Modality.AUDIO, t, f"camera stream {self.url} has no audio "
                                                       "track: video only"))
            log.warning("camera stream %s has no audio track: running video-only", self.url)
        self._opened.set()


def _rgb_of(frame: av.VideoFrame) -> Callable[[], np.ndarray]:
    def convert() -> np.ndarray:
        return frame.to_ndarray(format="rgb24")

    return convert
