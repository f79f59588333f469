"""A microphone and a camera as one ``Source`` on one clock: stream seconds = monotonic - origin.

``LiveSource`` merges a ``MicrophoneSource`` and a ``CameraSource`` (``avstream.sources.capture``).
Both devices stamp their data with ``time.monotonic()`` where it is captured (the PortAudio
callback, the camera's reader thread), so audio and video line up however late the consumer
looks; the capture threads wake the merge loop when they have something. Media is passed on in
its native format; the pipeline conforms it exactly as it does a file's.

Device faults are events, not exceptions: a camera that fails or whose stream ends becomes
``ModalityLost(VIDEO)`` (the pipeline goes audio-only), and ``ModalityRestored(VIDEO)`` when
frames come back; the microphone likewise. Each device recovers itself with the one
``Backoff``. Only a device the user named that does not exist, or a missing PortAudio, is an
error (the user must fix it), and so is having no working device at all at start.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from avstream.errors import AvstreamError, DeviceError
from avstream.sources.audio_inputs import AudioInput, resolve_audio_input
from avstream.sources.base import Idle, Modality, ModalityLost, Source, SourceEvent, SourceInfo
from avstream.sources.camera import describe_camera
from avstream.sources.capture import AUDIO_RESYNC_S, AudioTimeline, CameraSource, MicrophoneSource
from avstream.sources.stream_av import CAMERA_AUDIO, CameraStreamSource
from avstream.stream.clock import WallClock
from avstream.stream.config import PipelineConfig

__all__ = ["AUDIO_RESYNC_S", "AudioTimeline", "LiveOptions", "LiveSource"]
log = logging.getLogger(__name__)

IDLE_EVERY_S: Final[float] = 0.1
"""An Idle at least this often, so a stop request is seen; otherwise the loop sleeps until a
capture thread wakes it (a block or a frame arrived, a device changed state)."""
# With every device lost for this long the source ends and the run fails: a daemon that hears
# and sees nothing should exit so that its service manager notices.
ALL_LOST_GIVE_UP_S: Final[float] = 10.0
VIDEO_DELAY_WAIT_MARGIN_S: Final[float] = 1.0
"""Beyond the delay, what a window still waits for its pictures (a camera hiccup)."""
MAX_VIDEO_DELAY_S: Final[float] = 10.0
"""Longer than any camera pipeline; a larger value is a typo (milliseconds for seconds)."""


@dataclass(frozen=True)
class LiveOptions:
    """What ``avstream live`` was asked to capture."""

    mic: AudioInput | int | str | None = None
    """The input resolved by ``resolve_audio_input`` (the command resolves it once), or a
    PortAudio index, a name substring, or None for the default input (resolved at open);
    ``"camera"``: the audio track of the camera stream (``camera`` must be a URL)."""
    camera: int | str = 0
    """A device index or a stream URL (rtsp://, http://, udp://...)."""
    use_mic: bool = True
    use_camera: bool = True
    give_up_after_s: float = ALL_LOST_GIVE_UP_S
    """With every device lost this long, the source ends and ``failure`` says why."""
    video_delay_s: float = 0.0
    """How much later the camera's pictures arrive than the microphone's sound of the same
    instant (a network camera's encoder, network and buffering: 0.5-2 s is common). Each frame
    is placed this much earlier on the stream clock, so that a window pairs sound and pictures
    of the same moment. Not used with ``mic="camera"``, whose tracks share the stream's clock."""

    @property
    def camera_audio(self) -> bool:
        return self.use_mic and self.mic == CAMERA_AUDIO

    def __post_init__(self) -> None:
        if not (self.use_mic or self.use_camera):
            raise AvstreamError("--no-mic and --no-camera together leave nothing to capture; "
                                "expected at most one of them")
        if not self.give_up_after_s > 0:
            raise DeviceError(f"give-up time {self.give_up_after_s} s; expected > 0 seconds")
        if not 0.0 <= self.video_delay_s <= MAX_VIDEO_DELAY_S:
            raise AvstreamError(f"--video-delay {self.video_delay_s:g} s; expected 0 to "
                                f"{MAX_VIDEO_DELAY_S:g} seconds")
        if self.camera_audio and (not self.use_camera or not isinstance(self.camera, str)):
            raise AvstreamError(f"--mic {CAMERA_AUDIO} takes the audio of the camera stream, but "
                                f"the camera is {'off (--no-camera)' if not self.use_camera else self.camera}; "
                                "expected --camera URL (rtsp://, udp://, http://...)")


def with_video_delay(config: PipelineConfig, video_delay_s: float) -> PipelineConfig:
    """A window waits for a late modality at most ``max_wait_s`` of stream time; pictures placed
    ``video_delay_s`` earlier arrive that much later, so the wait must cover the delay too."""
    needed = video_delay_s + VIDEO_DELAY_WAIT_MARGIN_S
    if video_delay_s <= 0 or config.max_wait_s >= needed:
        return config
    return dataclasses.replace(config, max_wait_s=needed)


class LiveSource(Source):
    """The ``Source`` of ``avstream live``: open it, iterate ``events()``, ``close()`` from anywhere."""

    def __init__(self, options: LiveOptions, clock: WallClock | None = None) -> None:
        self.options = options
        self.clock = clock if clock is not None else WallClock()
        self.origin = time.monotonic() - self.clock.now()
        """CLOCK_MONOTONIC seconds at stream time 0 (reported so logs can be lined up)."""
        self._closed = threading.Event()
        self._wake = threading.Event()
        """Set by the capture threads when there is something to read."""
        self._mic: MicrophoneSource | None = None
        self._camera: CameraSource | None = None
        self._stream: CameraStreamSource | None = None
        self._info: SourceInfo | None = None
        self._startup: list[SourceEvent] = []
        self._all_lost_since: float | None = None
        self.failure: str | None = None
        """Set when the source ended because no device worked (the run must fail)."""

    def _t(self, monotonic: float) -> float:
        return monotonic - self.origin

    # ------------------------------------------------------------------ opening

    def open(self) -> SourceInfo:
        """Open what was asked for. DeviceError if a named device does not exist, if PortAudio is
        missing, or if no device works; a device that exists but fails only starts lost."""
        mic_error = cam_error = None
        if self.options.camera_audio:
            return self._open_stream()
        if self.options.use_mic:
            # Resolution errors (no PortAudio, no such device) are the user's to fix: raised.
            mic = self.options.mic
            device = mic if isinstance(mic, AudioInput) else resolve_audio_input(mic)
            self._mic = MicrophoneSource(device, self._t, self._wake)
            mic_error = self._mic.open()
        if self.options.use_camera:
            self._camera = CameraSource(self.options.camera, self._t, self._wake,
                                        delay_s=self.options.video_delay_s)
            cam_error = self._camera.open()
        if (self._mic is None or mic_error) and (self._camera is None or cam_error):
            reasons = "; ".join(r for r in (mic_error, cam_error) if r)
            self.close()
            raise DeviceError(f"no capture device works: {reasons}")
        t = self.clock.now()
        if mic_error:
            self._startup.append(ModalityLost(Modality.AUDIO, t, mic_error))
        if cam_error:
            self._startup.append(ModalityLost(Modality.VIDEO, t, cam_error))
        self._info = self._make_info()
        return self._info

    def _open_stream(self) -> SourceInfo:
        """``--mic camera``: both modalities from one stream (``stream_av``)."""
        url = str(self.options.camera)
        self._stream = CameraStreamSource(url, self._t, self._wake)
        error = self._stream.open()
        if error:
            self._startup.append(ModalityLost(Modality.VIDEO, self.clock.now(), error))
            self._startup.append(ModalityLost(Modality.AUDIO, self.clock.now(), error))
        stream = self._stream.info()
        self._info = dataclasses.replace(stream, details=(
            f"stream clock: t = CLOCK_MONOTONIC - {self.origin:.6f} s", *stream.details))
        return self._info

    def _make_info(self) -> SourceInfo:
        names: list[str] = []
        details: list[str] = [f"stream clock: t = CLOCK_MONOTONIC - {self.origin:.6f} s"]
        rate = channels = width = height = None
        if self._mic is not None:
            names.append(f"microphone '{self._mic.mic.device.name}'")
            mi = self._mic.info
            if mi is not None:
                rate, channels = mi.sample_rate_hz, mi.channels
                details.append(f"microphone {mi.device.describe()} opened at its native "
                               f"{mi.sample_rate_hz} Hz, {mi.channels} ch")
            else:
                details.append("microphone did not open: retrying with backoff")
        if self._camera is not None:
            cam = describe_camera(self.options.camera)
            names.append(cam)
            if self._camera.camera.frame_size is not None:
                width, height = self._camera.camera.frame_size
                details.append(f"{cam} opened ({width}x{height})")
            else:
                details.append(f"{cam} did not open: retrying with backoff")
            if self.options.video_delay_s:
                details.append(f"{cam}: frames placed {self.options.video_delay_s:g} s before "
                               "they arrive (--video-delay)")
        return SourceInfo(
            name=" + ".join(names), has_audio=self._mic is not None,
            has_video=self._camera is not None, live=True, audio_rate_hz=rate,
            audio_channels=channels, video_width=width, video_height=height, video_fps=None,
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
        devices = [d for d in (self._mic, self._camera, self._stream) if d is not None]
        last_yield = time.monotonic()
        while not self._closed.is_set():
            self._wake.clear()  # a capture thread setting it from here on is not missed
            now = time.monotonic()
            produced = [e for d in devices for e in d.poll(now)]
            yield from produced
            if self._gave_up(now, devices):
                return
            if produced:
                last_yield = now
            elif now - last_yield >= IDLE_EVERY_S:
                last_yield = now
                yield Idle(self.clock.now())
            else:
                self._wake.wait(IDLE_EVERY_S - (now - last_yield))

    def _gave_up(self, now: float,
                 devices: list[MicrophoneSource | CameraSource | CameraStreamSource]) -> bool:
        if any(d.up for d in devices):
            self._all_lost_since = None
            return False
        if self._all_lost_since is None:
            self._all_lost_since = now
            return False
        if now - self._all_lost_since < self.options.give_up_after_s:
            return False
        reasons = "; ".join(d.last_loss for d in devices if d.last_loss) or "no device delivered"
        self.failure = (f"no capture device has worked for {self.options.give_up_after_s:g} s "
                        f"({reasons})")
        log.error("%s", self.failure)
        return True

    def close(self) -> None:
        """Stop both devices; the iterator ends at its next look. Safe from a signal handler's
        thread and safe to call twice."""
        self._closed.set()
        self._wake.set()
        mic, self._mic = self._mic, None
        if mic is not None:
            mic.close()
        cam, self._camera = self._camera, None
        if cam is not None:
            cam.close()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
