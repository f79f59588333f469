"""The two live devices as sources of events, each recovering itself with the one ``Backoff``.

``MicrophoneSource`` and ``CameraSource`` turn what their capture thread left (samples in the
microphone's ring, the camera's latest frame) into source events on the stream clock, and
report a lost device once (``ModalityLost``) and its return (``ModalityRestored``). Each
reopens its own device in the background: the camera's reader thread reconnects
(``avstream.sources.camera``), and a lost microphone is reopened by a recovery thread here. The
capture threads set one shared ``wake`` event, on which ``LiveSource`` sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

import cv2
import numpy as np

from avstream.errors import DeviceError
from avstream.sources.audio_inputs import AudioInput
from avstream.sources.backoff import RECONNECT, Backoff
from avstream.sources.base import (
    AudioBlock,
    FramesDropped,
    Modality,
    ModalityLost,
    ModalityRestored,
    SamplesDropped,
    SourceEvent,
    VideoFrame,
)
from avstream.sources.camera import Camera, GrabbedFrame, describe_camera
from avstream.sources.microphone import Microphone, MicrophoneInfo

log = logging.getLogger(__name__)

# No new frame for this long while the camera claims to be connected: treated as lost. A 5 fps
# camera is 0.2 s per frame; the reader's own read timeout usually fires first.
CAMERA_STALE_S: Final[float] = 1.0
# The sample clock is re-anchored to the callback stamps when they disagree by more than this:
# a real gap (overflow, a device that stalled) or drift between the device and monotonic clocks.
AUDIO_RESYNC_S: Final[float] = 0.05

Clock = Callable[[float], float]
"""monotonic seconds -> stream seconds."""


class AudioTimeline:
    """Stream times for consecutive audio chunks: the sample count, anchored to callback stamps.

    A callback can run late (scheduling, the sound server's bursts) but never before its samples
    exist, so the earliest stamp relative to the sample count is the best anchor: the offset
    follows the minimum of (stamp - sample time). Chunks are thus contiguous in stream time and
    the pipeline's resampler runs unbroken, instead of seeing callback jitter as gaps.
    """

    def __init__(self, resync_s: float = AUDIO_RESYNC_S) -> None:
        self.resync_s = resync_s
        self.reset()

    def reset(self) -> None:
        self._rate = 0
        self._samples = 0  # samples placed since the anchor
        self._offset: float | None = None  # stream time of sample 0 of the current run
        self.resyncs = 0

    def place(self, end_time: float, n: int, rate: int) -> float:
        """Stream time of the first of ``n`` samples whose last arrived at ``end_time``."""
        measured = end_time - n / rate
        if self._offset is None or rate != self._rate:
            self._rate, self._offset, self._samples = rate, measured, 0
        predicted = self._offset + self._samples / rate
        late = measured - predicted
        if late < 0.0:
            self._offset += late  # an earlier stamp than any before: a better anchor
        elif late > self.resync_s:
            self.resyncs += 1
            self._offset, self._samples = measured, 0
        start = self._offset + self._samples / rate
        self._samples += n
        return start


class MicrophoneSource:
    """A microphone's blocks as events; a lost stream is reopened by its own recovery thread."""

    def __init__(self, device: AudioInput, to_stream: Clock, wake: threading.Event,
                 backoff: Backoff = RECONNECT) -> None:
        self.mic = Microphone(device, wake=wake)
        self._t = to_stream
        self._wake = wake
        self._backoff = backoff
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._timeline = AudioTimeline()
        self._thread: threading.Thread | None = None
        self.up = False
        self._restored_pending = False
        self._overflows_seen = 0
        self.last_loss: str | None = None
        self.info: MicrophoneInfo | None = None

    def open(self) -> str | None:
        """First attempt on the caller's thread; None when open, else why not (then recovering)."""
        try:
            self.info = self.mic.open()
        except DeviceError as e:
            self.last_loss = str(e)
            self._recover()
            return str(e)
        self.up = True
        return None

    def _recover(self) -> None:
        self.up = False
        self._thread = threading.Thread(target=self._reopen, name="microphone-recovery",
                                        daemon=True)
        self._thread.start()

    def _reopen(self) -> None:
        delay = self._backoff.first_s
        while not self._closed.wait(delay):
            try:
                info = self.mic.open()
            except DeviceError as e:
                delay = self._backoff.after(delay)
                log.info("microphone still unavailable (%s); next try in %.1f s", e, delay)
                continue
            if self._closed.is_set():  # closed while opening: do not leave a stream running
                self.mic.close()
                return
            with self._lock:  # Restored is reported with the first block (it may open silent)
                self.info = info
                self._timeline.reset()
                self._overflows_seen = 0
                self._restored_pending = True
                self.up = True
            self._wake.set()
            return

    def poll(self, now: float) -> list[SourceEvent]:
        """What arrived since the last poll, and a loss if the stream stopped delivering."""
        out: list[SourceEvent] = []
        if not self.up or self._closed.is_set():
            return out
        captured = self.mic.read()
        if captured is not None:
            rate = self.info.sample_rate_hz if self.info is not None else 0
            n = captured.samples.shape[0]
            with self._lock:
                t_start = self._timeline.place(self._t(captured.end_time), n, rate)
                restored, self._restored_pending = self._restored_pending, False
            if captured.dropped_samples:
                out.append(SamplesDropped(t_start, captured.dropped_samples, rate))
            overflows = self.mic.overflows
            # One event per overflow PortAudio reported (it does not say how many samples).
            out.extend(SamplesDropped(t_start, 0, rate)
                       for _ in range(overflows - self._overflows_seen))
            self._overflows_seen = max(overflows, self._overflows_seen)
            if restored:
                out.append(ModalityRestored(Modality.AUDIO, t_start))
                log.warning("microphone delivers audio again")
            out.append(AudioBlock(t_start, np.ascontiguousarray(captured.samples.T), rate))
        reason = self.mic.failure(now)
        if reason is not None:
            self.mic.close()
            self.last_loss = reason
            out.append(ModalityLost(Modality.AUDIO, self._t(now), reason))
            log.warning("audio lost at %.2f s: %s; continuing without audio, reopening with "
                        "backoff", self._t(now), reason)
            self._recover()
        return out

    def close(self) -> None:
        self._closed.set()
        self.mic.close()


class CameraSource:
    """A camera's newest frames as events; its reader thread reconnects on its own."""

    def __init__(self, camera: int | str, to_stream: Clock, wake: threading.Event,
                 delay_s: float = 0.0) -> None:
        self.camera = Camera(camera, wake=wake)
        self._delay_s = delay_s
        """Frames are placed this much earlier than they were grabbed (``--video-delay``)."""
        self._to_stream = to_stream
        self.up = False
        self._last_seq = 0
        self._last_grab = 0.0
        self.last_loss: str | None = None

    def open(self) -> str | None:
        """First attempt on the caller's thread; None when open, else why not (then retrying)."""
        ok = self.camera.open()
        self.camera.events()  # the opening is reported through info, not as a change
        if ok:
            self.up = True
            self._last_grab = time.monotonic()
            return None
        self.last_loss = f"{describe_camera(self.camera.source)} did not open or gave no frame"
        return self.last_loss

    def _t(self, grabbed: float) -> float:
        return self._to_stream(grabbed - self._delay_s)

    def poll(self, now: float) -> list[SourceEvent]:
        cam = self.camera
        out: list[SourceEvent] = []
        for ev in cam.events():
            if not ev.connected and self.up:
                self._lose(ev.time, ev.message, out)
        latest = cam.latest()
        if latest is not None and latest.seq != self._last_seq and latest.grab_time > self._last_grab:
            if not self.up:
                self.up = True
                out.append(ModalityRestored(Modality.VIDEO, self._t(latest.grab_time)))
                log.warning("%s delivers frames again", describe_camera(cam.source))
            elif latest.seq - self._last_seq > 1 and self._last_seq > 0:
                out.append(FramesDropped(self._t(latest.grab_time),
                                         latest.seq - self._last_seq - 1))
            self._last_seq = latest.seq
            self._last_grab = latest.grab_time
            out.append(VideoFrame(self._t(latest.grab_time), convert=_rgb_of(latest)))
        elif self.up and now - self._last_grab > CAMERA_STALE_S:
            self._lose(now, f"{describe_camera(cam.source)} sent no frame for "
                       f"{now - self._last_grab:.1f} s", out)
        return out

    def _lose(self, when: float, reason: str, out: list[SourceEvent]) -> None:
        self.up = False
        self.last_loss = reason
        out.append(ModalityLost(Modality.VIDEO, self._t(when), reason))
        log.warning("video lost at %.2f s: %s; continuing without video, reconnecting with "
                    "backoff", self._t(when), reason)

    def close(self) -> None:
        self.camera.close()


def _rgb_of(frame: GrabbedFrame) -> Callable[[], np.ndarray]:
    bgr = frame.bgr

    def convert() -> np.ndarray:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return convert
