"""A microphone and a camera as one ``Source`` on one clock: stream seconds = monotonic - origin.

Both devices stamp their data with ``time.monotonic()`` where it is captured (the PortAudio
callback, the camera's reader thread), so audio and video line up however late the consumer
polls. Media is passed on in its native format; the pipeline conforms it exactly as it does a
file's.

Device faults are events, not exceptions: a camera that fails or whose stream ends becomes
``ModalityLost(VIDEO)`` (the pipeline goes audio-only), and ``ModalityRestored(VIDEO)`` when
frames come back; the microphone likewise. Each lost device is reopened with bounded
exponential backoff. Only a device the user named that does not exist, or a missing PortAudio,
is an error (the user must fix it), and so is having no working device at all at start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from avstream.clock import WallClock
from avstream.errors import DeviceError
from avstream.sources.backoff import RECONNECT
from avstream.sources.base import (
    AudioBlock,
    FramesDropped,
    Idle,
    Modality,
    ModalityLost,
    ModalityRestored,
    SamplesDropped,
    SourceEvent,
    SourceInfo,
    VideoFrame,
)
from avstream.sources.camera import Camera, GrabbedFrame, describe_camera
from avstream.sources.microphone import (
    AudioInput,
    Microphone,
    MicrophoneInfo,
    resolve_audio_input,
)

log = logging.getLogger(__name__)

IDLE_EVERY_S: Final[float] = 0.1
"""An Idle at least this often, so a stop request is seen; otherwise the loop sleeps until a
capture thread wakes it (a block or a frame arrived, a device changed state)."""
# No new frame for this long while the camera claims to be connected: treated as lost. A 5 fps
# camera is 0.2 s per frame; the reader's own read timeout usually fires first.
CAMERA_STALE_S: Final[float] = 1.0
# The sample clock is re-anchored to the callback stamps when they disagree by more than this:
# a real gap (overflow, a device that stalled) or drift between the device and monotonic clocks.
AUDIO_RESYNC_S: Final[float] = 0.05
# With every device lost for this long the source ends and the run fails: a daemon that hears
# and sees nothing should exit so that its service manager notices.
ALL_LOST_GIVE_UP_S: Final[float] = 10.0


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


@dataclass(frozen=True)
class LiveOptions:
    """What ``avstream live`` was asked to capture."""

    mic: AudioInput | int | str | None = None
    """The input resolved by ``resolve_audio_input`` (the command resolves it once), or a
    PortAudio index, a name substring, or None for the default input (resolved at open)."""
    camera: int | str = 0
    """A device index or a stream URL (rtsp://, http://, udp://...)."""
    use_mic: bool = True
    use_camera: bool = True
    give_up_after_s: float = ALL_LOST_GIVE_UP_S
    """With every device lost this long, the source ends and ``failure`` says why."""

    def __post_init__(self) -> None:
        if not (self.use_mic or self.use_camera):
            raise DeviceError("--no-mic and --no-camera together leave nothing to capture")
        if not self.give_up_after_s > 0:
            raise DeviceError(f"give-up time {self.give_up_after_s} s; expected > 0 seconds")


class LiveSource:
    """The ``Source`` of ``avstream live``: open it, iterate ``events()``, ``close()`` from anywhere."""

    def __init__(self, options: LiveOptions, clock: WallClock | None = None) -> None:
        self.options = options
        self.clock = clock if clock is not None else WallClock()
        self.origin = time.monotonic() - self.clock.now()
        """CLOCK_MONOTONIC seconds at stream time 0 (reported so logs can be lined up)."""
        self._closed = threading.Event()
        self._wake = threading.Event()
        """Set by the capture threads when there is something to read."""
        self._mic: Microphone | None = None
        self._camera: Camera | None = None
        self._info: SourceInfo | None = None
        self._startup: list[SourceEvent] = []
        self.reset()

    def reset(self) -> None:
        """Forget counters and per-stream state (devices stay as they are)."""
        self._mic_up = False
        self._mic_next_try = 0.0
        self._mic_backoff = RECONNECT.first_s
        self._mic_overflows_seen = 0
        self._mic_info: MicrophoneInfo | None = None
        self._mic_restored_pending = False
        self._audio_time = AudioTimeline()
        self._video_up = False
        self._last_seq = 0
        self._last_grab = 0.0
        self.audio_blocks = 0
        self.frames = 0
        self.frames_dropped = 0
        self.samples_dropped = 0
        self.mic_failures = 0
        self.camera_failures = 0
        self._all_lost_since: float | None = None
        self._last_loss: dict[Modality, str] = {}
        self.failure: str | None = None
        """Set when the source ended because no device worked (the run must fail)."""

    # ------------------------------------------------------------------ opening

    def open(self) -> SourceInfo:
        """Open what was asked for. DeviceError if a named device does not exist, if PortAudio is
        missing, or if no device works; a device that exists but fails only starts lost."""
        mic_error: str | None = None
        cam_error: str | None = None
        if self.options.use_mic:
            # Resolution errors (no PortAudio, no such device) are the user's to fix: raised.
            mic = self.options.mic
            device = mic if isinstance(mic, AudioInput) else resolve_audio_input(mic)
            self._mic = Microphone(device, wake=self._wake)
            try:
                self._mic_info = self._mic.open()
                self._mic_up = True
            except DeviceError as e:
                mic_error = str(e)
                self._mic_next_try = time.monotonic() + self._mic_backoff
        if self.options.use_camera:
            self._camera = Camera(self.options.camera, wake=self._wake)
            if self._camera.open():
                self._video_up = True
                self._last_grab = time.monotonic()
            else:
                cam_error = f"{describe_camera(self.options.camera)} did not open or gave no frame"
            self._camera.events()  # the opening is reported through info, not as a change
        if (self._mic is None or mic_error) and (self._camera is None or cam_error):
            reasons = "; ".join(r for r in (mic_error, cam_error) if r)
            self.close()
            raise DeviceError(f"no capture device works: {reasons}")
        t = self.clock.now()
        if mic_error:
            self._startup.append(ModalityLost(Modality.AUDIO, t, mic_error))
            self._last_loss[Modality.AUDIO] = mic_error
        if cam_error:
            self._startup.append(ModalityLost(Modality.VIDEO, t, cam_error))
            self._last_loss[Modality.VIDEO] = cam_error
        self._info = self._make_info()
        return self._info

    def _make_info(self) -> SourceInfo:
        names: list[str] = []
        details: list[str] = [
            f"stream clock: t = CLOCK_MONOTONIC - {self.origin:.6f} s",
        ]
        rate = channels = None
        if self._mic is not None:
            mi = self._mic_info
            if mi is not None:
                names.append(f"microphone '{mi.device.name}'")
                rate, channels = mi.sample_rate_hz, mi.channels
                details.append(
                    f"microphone {mi.device.describe()} opened at its native "
                    f"{mi.sample_rate_hz} Hz, {mi.channels} ch"
                )
            else:
                names.append(f"microphone '{self._mic.device.name}'")
                details.append("microphone did not open: retrying with backoff")
        width = height = None
        if self._camera is not None:
            names.append(describe_camera(self.options.camera))
            if self._camera.frame_size is not None:
                width, height = self._camera.frame_size
                details.append(f"{describe_camera(self.options.camera)} opened ({width}x{height})")
            else:
                details.append(f"{describe_camera(self.options.camera)} did not open: retrying "
                               "with backoff")
        return SourceInfo(
            name=" + ".join(names),
            has_audio=self._mic is not None,
            has_video=self._camera is not None,
            live=True,
            audio_rate_hz=rate,
            audio_channels=channels,
            video_width=width,
            video_height=height,
            video_fps=None,
            details=tuple(details),
        )

    @property
    def info(self) -> SourceInfo:
        if self._info is None:
            raise RuntimeError("LiveSource.info before open()")
        return self._info

    # ------------------------------------------------------------------ streaming

    def events(self) -> Iterator[SourceEvent]:
        """Audio blocks, frames and status changes as they come; ends after ``close()``."""
        if self._info is None:
            raise RuntimeError("LiveSource.events() before open()")
        yield from self._startup
        self._startup = []
        last_yield = time.monotonic()
        while not self._closed.is_set():
            self._wake.clear()  # a capture thread setting it from here on is not missed
            produced = False
            for event in self._poll_audio():
                produced = True
                yield event
            for event in self._poll_video():
                produced = True
                yield event
            now = time.monotonic()
            if self._gave_up(now):
                return
            if produced:
                last_yield = now
                continue
            if now - last_yield >= IDLE_EVERY_S:
                last_yield = now
                yield Idle(self.clock.now())
                continue
            self._wake.wait(IDLE_EVERY_S - (now - last_yield))

    def _gave_up(self, now: float) -> bool:
        mic_down = self._mic is None or not self._mic_up
        cam_down = self._camera is None or not self._video_up
        if not (mic_down and cam_down):
            self._all_lost_since = None
            return False
        if self._all_lost_since is None:
            self._all_lost_since = now
            return False
        if now - self._all_lost_since < self.options.give_up_after_s:
            return False
        reasons = "; ".join(self._last_loss.values()) or "no device delivered"
        self.failure = (f"no capture device has worked for {self.options.give_up_after_s:g} s "
                        f"({reasons})")
        log.error("%s", self.failure)
        return True

    def _t(self, monotonic: float) -> float:
        return monotonic - self.origin

    def _poll_audio(self) -> list[SourceEvent]:
        mic = self._mic
        if mic is None:
            return []
        now = time.monotonic()
        out: list[SourceEvent] = []
        if not self._mic_up:
            if now >= self._mic_next_try:
                self._try_reopen_mic(now)
            return out
        captured = mic.read()
        if captured is not None:
            info = mic.info
            rate = info.sample_rate_hz if info is not None else 0
            n = captured.samples.shape[0]
            t_start = self._audio_time.place(self._t(captured.end_time), n, rate)
            if captured.dropped_samples:
                self.samples_dropped += captured.dropped_samples
                out.append(SamplesDropped(t_start, captured.dropped_samples, rate))
            overflows = mic.overflows
            # One event per overflow PortAudio reported (it does not say how many samples).
            out.extend(SamplesDropped(t_start, 0, rate)
                       for _ in range(overflows - self._mic_overflows_seen))
            self._mic_overflows_seen = max(overflows, self._mic_overflows_seen)
            if self._mic_restored_pending:
                self._mic_restored_pending = False
                out.append(ModalityRestored(Modality.AUDIO, t_start))
                log.warning("microphone delivers audio again")
            out.append(AudioBlock(t_start, np.ascontiguousarray(captured.samples.T), rate))
            self.audio_blocks += 1
        reason = mic.failure(now)
        if reason is not None:
            self._mic_up = False
            self.mic_failures += 1
            mic.close()
            self._mic_backoff = RECONNECT.first_s
            self._mic_next_try = now + self._mic_backoff
            out.append(ModalityLost(Modality.AUDIO, self._t(now), reason))
            self._last_loss[Modality.AUDIO] = reason
            log.warning("audio lost at %.2f s: %s; continuing without audio, reopening with "
                        "backoff", self._t(now), reason)
        return out

    def _try_reopen_mic(self, now: float) -> None:
        mic = self._mic
        if mic is None:
            return
        try:
            self._mic_info = mic.open()
        except DeviceError as e:
            self._mic_backoff = RECONNECT.after(self._mic_backoff)
            self._mic_next_try = time.monotonic() + self._mic_backoff
            log.info("microphone still unavailable (%s); next try in %.1f s", e, self._mic_backoff)
            return
        # Restored is reported with the first block (the stream may open and still be silent).
        self._mic_up = True
        self._audio_time.reset()
        self._mic_overflows_seen = 0
        self._mic_restored_pending = True

    def _poll_video(self) -> list[SourceEvent]:
        cam = self._camera
        if cam is None:
            return []
        out: list[SourceEvent] = []
        for ev in cam.events():
            if not ev.connected and self._video_up:
                self._lose_video(ev.time, ev.message, out)
        latest = cam.latest()
        now = time.monotonic()
        if latest is not None and latest.seq != self._last_seq and latest.grab_time > self._last_grab:
            if not self._video_up:
                self._video_up = True
                out.append(ModalityRestored(Modality.VIDEO, self._t(latest.grab_time)))
                log.warning("%s delivers frames again", describe_camera(cam.source))
            elif latest.seq - self._last_seq > 1 and self._last_seq > 0:
                skipped = latest.seq - self._last_seq - 1
                self.frames_dropped += skipped
                out.append(FramesDropped(self._t(latest.grab_time), skipped))
            self._last_seq = latest.seq
            self._last_grab = latest.grab_time
            out.append(VideoFrame(self._t(latest.grab_time), convert=_rgb_of(latest)))
            self.frames += 1
        elif self._video_up and now - self._last_grab > CAMERA_STALE_S:
            self._lose_video(now, f"{describe_camera(cam.source)} sent no frame for "
                             f"{now - self._last_grab:.1f} s", out)
        return out

    def _lose_video(self, when: float, reason: str, out: list[SourceEvent]) -> None:
        self._video_up = False
        self.camera_failures += 1
        out.append(ModalityLost(Modality.VIDEO, self._t(when), reason))
        self._last_loss[Modality.VIDEO] = reason
        log.warning("video lost at %.2f s: %s; continuing without video, reconnecting with "
                    "backoff", self._t(when), reason)

    def close(self) -> None:
        """Stop both devices; the iterator ends at its next poll. Safe from a signal handler's
        thread and safe to call twice."""
        self._closed.set()
        self._wake.set()
        mic, self._mic = self._mic, None
        if mic is not None:
            mic.close()
        cam, self._camera = self._camera, None
        if cam is not None:
            cam.close()


def _rgb_of(frame: GrabbedFrame) -> Callable[[], np.ndarray]:
    bgr = frame.bgr

    def convert() -> np.ndarray:
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return convert
