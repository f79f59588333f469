"""Microphone capture through PortAudio (sounddevice), at the device's own rate.

The PortAudio callback runs on a real-time thread: it only stamps the block with the monotonic
clock, copies it into a preallocated ring under a lock and wakes the consumer. Everything else
happens on the consumer's side: blocks are timed and handed over in the device's own format by
``avstream/sources/live.py``, and resampled and channel-mapped with a file's audio by the
pipeline (``avstream/stream/conform.py``), so a slow consumer costs counted dropped samples, never a
late callback.

``sounddevice`` is imported only when a device is opened (``audio_inputs.sounddevice_module``,
where the inputs are listed and chosen): without the PortAudio system library its import raises
OSError, and every other command must still work.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from avstream.errors import DeviceError
from avstream.sources.audio_inputs import AudioInput, sounddevice_module

log = logging.getLogger(__name__)

# The model takes at most stereo; a device offering more inputs (the ALSA pulse plugin reports 32)
# is opened with its first two, and down-mixing beyond that is the channel mapper's job.
MAX_CAPTURE_CHANNELS: Final[int] = 2
# The ring holds this much audio: the consumer drains it every few tens of milliseconds, so only
# a consumer stalled for seconds loses samples (counted as dropped, never silently).
RING_SECONDS: Final[float] = 4.0
# No callback for this long on a started stream means the device has stopped delivering.
STALL_SECONDS: Final[float] = 1.5
# PortAudio opens some devices (the pulse plugin among them) half a second or more before the
# first block: a stream is not called stalled before this long after it started.
START_GRACE_SECONDS: Final[float] = 3.0


@dataclass(frozen=True)
class MicrophoneInfo:
    """What was really opened: the device and its native format."""

    device: AudioInput
    sample_rate_hz: int
    channels: int


@dataclass(frozen=True)
class CapturedAudio:
    """Samples drained from the ring since the previous read."""

    samples: np.ndarray  # (n, channels) float32 at the device rate
    end_time: float  # time.monotonic() of the callback that delivered the last sample
    dropped_samples: int  # lost to a full ring since the previous read (consumer too slow)


class Microphone:
    """An opened input stream feeding a fixed ring; ``read()`` drains it from another thread."""

    def __init__(self, device: AudioInput, ring_seconds: float = RING_SECONDS,
                 wake: threading.Event | None = None) -> None:
        self.device = device
        """Resolved once (``resolve_audio_input``); every reopen opens this same device."""
        self._wake = wake or threading.Event()
        self._ring_seconds = ring_seconds
        self._lock = threading.Lock()
        self._stream: Any = None
        self._info: MicrophoneInfo | None = None
        self._ring = np.zeros((0, 1), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        """Forget every sample and counter (the stream itself is left as it is)."""
        with self._lock:
            self._ring[:] = 0.0
            self._written = 0  # samples written since open, ever
            self._read = 0  # samples handed to the consumer (or dropped), ever
            self._stamp = 0.0  # monotonic time of the last callback
            self._started_at = 0.0
            self._overflows = 0  # PortAudio input overflows (the device dropped samples)
            self._finished = False

    @property
    def info(self) -> MicrophoneInfo | None:
        return self._info

    @property
    def overflows(self) -> int:
        """Input overflows PortAudio reported: audio the device lost before we saw it."""
        return self._overflows

    def open(self) -> MicrophoneInfo:
        """Open the chosen device at its native rate and start it; DeviceError if it cannot."""
        sd = sounddevice_module()
        device = self.device
        rate = int(round(device.default_sample_rate_hz))
        channels = min(device.channels, MAX_CAPTURE_CHANNELS)
        capacity = int(round(self._ring_seconds * rate))
        self.close()
        with self._lock:
            self._ring = np.zeros((capacity, channels), dtype=np.float32)
        self.reset()
        try:
            stream = sd.InputStream(
                samplerate=rate,
                device=device.index,
                channels=channels,
                dtype="float32",
                callback=self._callback,
                finished_callback=self._on_finished,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as e:
            raise DeviceError(
                f"audio input {device.describe()} could not be opened at {rate} Hz, "
                f"{channels} ch: {e}"
            ) from e
        self._stream = stream
        self._started_at = time.monotonic()
        self._info = MicrophoneInfo(device=device, sample_rate_hz=rate, channels=channels)
        log.info("microphone %s opened at %d Hz, %d ch", device.describe(), rate, channels)
        return self._info

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """Real-time thread: stamp, count, copy. Nothing that allocates or blocks for long."""
        now = time.monotonic()
        if status.input_overflow:
            self._overflows += 1
        ring = self._ring
        capacity = ring.shape[0]
        with self._lock:
            if frames > capacity:  # a block larger than the ring keeps its newest part
                indata = indata[frames - capacity :]
                self._written += frames - capacity
                frames = capacity
            start = self._written % capacity
            first = min(frames, capacity - start)
            ring[start : start + first] = indata[:first]
            if first < frames:
                ring[: frames - first] = indata[first:frames]
            self._written += frames
            self._stamp = now
        self._wake.set()

    def _on_finished(self) -> None:
        self._finished = True
        self._wake.set()

    def read(self) -> CapturedAudio | None:
        """Drain what arrived since the last read; None when nothing did."""
        with self._lock:
            capacity = self._ring.shape[0]
            available = self._written - self._read
            if available <= 0:
                return None
            dropped = max(0, available - capacity)
            first_index = self._read + dropped
            n = available - dropped
            start = first_index % capacity
            first = min(n, capacity - start)
            out = np.empty((n, self._ring.shape[1]), dtype=np.float32)
            out[:first] = self._ring[start : start + first]
            if first < n:
                out[first:] = self._ring[: n - first]
            self._read = self._written
            stamp = self._stamp
        if dropped:
            log.warning("microphone ring overrun: %d samples dropped", dropped)
        return CapturedAudio(samples=out, end_time=stamp, dropped_samples=dropped)

    def failure(self, now: float) -> str | None:
        """Why the stream is no longer delivering, or None while it is healthy."""
        if self._stream is None:
            return "microphone is not open"
        if self._finished or not self._stream.active:
            return "microphone stream stopped"
        with self._lock:
            last = self._stamp
        if last == 0.0:
            if now - self._started_at > START_GRACE_SECONDS:
                return f"microphone delivered nothing in {START_GRACE_SECONDS:g} s"
            return None
        if now - last > STALL_SECONDS:
            return f"microphone delivered nothing for {now - last:.1f} s"
        return None

    def close(self) -> None:
        """Stop and release the stream; safe to call twice or on a stream that already died."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        sd = sounddevice_module()
        try:
            stream.abort()
            stream.close()
        except sd.PortAudioError as e:
            log.warning("closing the microphone stream failed: %s", e)
