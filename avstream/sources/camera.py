"""Camera capture with OpenCV: a webcam by index or a network stream by URL (RTSP/HTTP/UDP).

OpenCV's capture queues several frames, so reading only when a frame is wanted returns stale
pictures. A reader thread therefore reads back to back and keeps only the latest frame, stamped
with the monotonic clock when it was grabbed. When the camera fails or the stream ends, the
thread reports it and reopens with exponential backoff (bounded), so a camera that comes back
is picked up without a restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from avstream.sources.backoff import RECONNECT, Backoff

log = logging.getLogger(__name__)

# A network stream that sends nothing for this long counts as ended: short enough that the
# daemon goes audio-only within the 2 s the issue allows, long enough for one lost keyframe.
READ_TIMEOUT_MS: Final[int] = 1000
OPEN_TIMEOUT_MS: Final[int] = 3000
STALE_READ_S: Final[float] = 0.9 * READ_TIMEOUT_MS / 1000  # a read this slow hit the timeout
CLOSE_WAIT_S: Final[float] = 1.5  # longer than one read timeout
EVENTS_KEPT: Final[int] = 64  # unread status events beyond this are dropped (and counted)


def describe_camera(source: int | str) -> str:
    return f"camera {source}" if isinstance(source, int) else f"camera stream {source}"


def open_capture(source: int | str, open_timeout_ms: int = OPEN_TIMEOUT_MS) -> cv2.VideoCapture | None:
    """Open a capture; None when it does not open.

    Stream URLs go through FFmpeg with bounded open and read timeouts (without them a silent
    stream blocks a read for 30 s). Device indices get no such parameters: a backend that does
    not support one refuses to open at all; a stalled webcam is caught by the live source's
    staleness check instead.
    """
    if isinstance(source, int):
        cap = cv2.VideoCapture(source)
    else:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            open_timeout_ms,
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            READ_TIMEOUT_MS,
        ]
        cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        return None
    return cap


_OPENCV_PREFIX: Final[re.Pattern[str]] = re.compile(r"^\[ ?[A-Z]+:\d+@[\d.]+\] global \S+ \S+ ")
_FFMPEG_PREFIX: Final[re.Pattern[str]] = re.compile(r"^\[[\w-]+ @ 0x[0-9a-f]+\] ")
_GENERIC: Final[tuple[str, ...]] = ("backend is generally available but can't be used",)
"""OpenCV's closing line for every failed open: it says nothing about this one."""
TIMED_OUT_FRACTION: Final[float] = 0.9  # an open that took this much of its timeout hit it


@contextlib.contextmanager
def _stderr_to(sink: list[str]) -> Iterator[None]:
    """Send file descriptor 2 to a temporary file for the block and append what it got to
    ``sink``: OpenCV and FFmpeg report why an open failed only there, from C. The whole process's
    stderr is redirected meanwhile, so this is for one-shot probes (``avstream devices``), not
    for the daemon's reader threads."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", errors="replace"))


def _reported(text: str) -> list[str]:
    """The distinct messages in what OpenCV/FFmpeg printed, without their log prefixes."""
    out: list[str] = []
    for line in text.splitlines():
        line = _FFMPEG_PREFIX.sub("", _OPENCV_PREFIX.sub("", line.strip()))
        if line and not any(g in line for g in _GENERIC) and line not in out:
            out.append(line)
    return out


def open_capture_explained(source: int | str, open_timeout_ms: int = OPEN_TIMEOUT_MS
                           ) -> tuple[cv2.VideoCapture | None, str]:
    """``open_capture`` and, when it fails, why: a timeout, and what OpenCV/FFmpeg reported
    (connection refused, no such stream, ...), in one line."""
    printed: list[str] = []
    started = time.monotonic()
    with _stderr_to(printed):
        cap = open_capture(source, open_timeout_ms)
    if cap is not None:
        return cap, ""
    elapsed_ms = (time.monotonic() - started) * 1000
    reasons = []
    if isinstance(source, str) and elapsed_ms >= TIMED_OUT_FRACTION * open_timeout_ms:
        reasons.append(f"nothing received within the {open_timeout_ms} ms open timeout")
    reasons += _reported("".join(printed))
    if isinstance(source, str) and "://" not in source and not os.path.exists(source):
        reasons.append("no such file")
    if not reasons:
        reasons.append("OpenCV did not open it and reported no reason")
    return None, "; ".join(reasons)


@dataclass(frozen=True)
class GrabbedFrame:
    """The newest picture: BGR as OpenCV decodes it, with its grab time and sequence number."""

    bgr: np.ndarray  # (H, W, 3) uint8 BGR
    grab_time: float  # time.monotonic() when the read returned it
    seq: int  # frames read since start, ever: a new value means a new picture


@dataclass(frozen=True)
class CameraEvent:
    """A change in the camera's state, for the daemon to report and act on."""

    time: float  # time.monotonic()
    connected: bool
    message: str


class Camera:
    """Owns the reader thread; ``latest()`` and ``events()`` are safe from any other thread."""

    def __init__(
        self,
        source: int | str,
        open_timeout_ms: int = OPEN_TIMEOUT_MS,
        backoff: Backoff = RECONNECT,
        wake: threading.Event | None = None,
    ) -> None:
        self.source = source
        self._open_timeout_ms = open_timeout_ms
        self._backoff = backoff
        self._wake = wake or threading.Event()
        """Set whenever a frame or an event is ready (the consumer waits on it, never polls)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cap: cv2.VideoCapture | None = None
        self._events: deque[CameraEvent] = deque(maxlen=EVENTS_KEPT)
        self.reset()

    def reset(self) -> None:
        """Forget the latest frame, events and counters (the thread, if running, keeps running)."""
        with self._lock:
            self._latest: GrabbedFrame | None = None
            self._seq = 0
            self._events.clear()
            self.frame_size: tuple[int, int] | None = None  # (width, height) of the last picture

    def open(self) -> bool:
        """First connection attempt, on the caller's thread; then the reader thread starts.

        Returns whether the camera opened and delivered a frame. Either way the thread keeps
        (re)trying, so a camera that is late or down at start is picked up when it appears.
        """
        if self._thread is not None:
            raise RuntimeError("camera already started")
        cap = open_capture(self.source, self._open_timeout_ms)
        ok = False
        if cap is not None:
            ok = self._read_one(cap)
            if not ok:
                cap.release()
                cap = None
        if ok:
            self._cap = cap
            self._push(True, f"{describe_camera(self.source)} opened ({self._size_text()})")
        else:
            self._push(False, f"{describe_camera(self.source)} did not open; retrying with backoff")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="camera-reader", daemon=True)
        self._thread.start()
        return ok

    def _size_text(self) -> str:
        if self.frame_size is None:
            return "no frame yet"
        return f"{self.frame_size[0]}x{self.frame_size[1]}"

    def _read_one(self, cap: cv2.VideoCapture) -> bool:
        started = time.monotonic()
        ok, bgr = cap.read()
        now = time.monotonic()
        if not ok or bgr is None or bgr.ndim != 3 or bgr.shape[2] != 3:
            return False
        if now - started >= STALE_READ_S:
            # A read that waited out the stream timeout returns a frame the decoder still held:
            # its picture is from before the silence, so it is not stamped as if it were new.
            log.info("camera read took %.2f s: frame discarded as stale", now - started)
            return False
        with self._lock:
            self._seq += 1
            self._latest = GrabbedFrame(bgr=bgr, grab_time=now, seq=self._seq)
            self.frame_size = (int(bgr.shape[1]), int(bgr.shape[0]))
        self._wake.set()
        return True

    def _push(self, connected: bool, message: str) -> None:
        event = CameraEvent(time=time.monotonic(), connected=connected, message=message)
        with self._lock:
            self._events.append(event)
        self._wake.set()
        log.debug("%s", message)  # the live source reports it, once

    def _run(self) -> None:
        """Read back to back while connected; on failure release, wait, reopen, with backoff."""
        delay = self._backoff.first_s
        while not self._stop.is_set():
            cap = self._cap
            if cap is not None:
                if self._read_one(cap):
                    delay = self._backoff.first_s
                    continue
                self._cap = None
                cap.release()
                self._push(False, f"{describe_camera(self.source)} failed or ended; reconnecting")
                continue
            if self._stop.wait(delay):
                break
            delay = self._backoff.after(delay)
            cap = open_capture(self.source, self._open_timeout_ms)
            if cap is None:
                continue
            if not self._read_one(cap):
                cap.release()
                continue
            if self._stop.is_set():
                cap.release()
                break
            self._cap = cap
            self._push(True, f"{describe_camera(self.source)} reconnected ({self._size_text()})")
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def latest(self) -> GrabbedFrame | None:
        """The newest frame read, or None before the first one."""
        with self._lock:
            return self._latest

    def events(self) -> list[CameraEvent]:
        """Status events since the previous call, oldest first."""
        with self._lock:
            out = list(self._events)
            self._events.clear()
        return out

    def close(self, join_timeout_s: float = CLOSE_WAIT_S) -> None:
        """Stop the reader. It leaves within one read or open timeout; shutdown does not wait
        that long for a reader stuck reopening a dead stream (it is a daemon thread, and it
        releases its capture on the way out)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(join_timeout_s)
            if thread.is_alive():
                log.info("camera reader still inside an open/read after %.1f s; not waiting",
                         join_timeout_s)
