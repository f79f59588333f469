"""The wall clock beside the stream clock: only live capture and real-time replay have one.

Stream time is what the records carry (container timestamps, or ``WallClock.now()`` stamped at
capture). A ``WallClock`` maps stream seconds to ``time.monotonic()``; with it the pipeline can
tell a window that is already stale (inference fell behind) from one that is merely due. In
``--fast`` replay there is no wall clock at all, so nothing is ever stale and two runs of the
same file produce the same windows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from avstream.sources.base import AudioBlock, Source, SourceEvent, SourceInfo, VideoFrame

POLL_S = 0.1
"""Longest uninterrupted sleep while pacing, so a stop request is seen within 100 ms."""


class WallClock:
    """Stream seconds = ``time.monotonic()`` - origin."""

    def __init__(self, origin: float | None = None) -> None:
        self._origin = time.monotonic() if origin is None else origin

    def now(self) -> float:
        """The stream time that is happening now."""
        return time.monotonic() - self._origin

    def anchor(self, stream_t: float) -> None:
        """Make ``stream_t`` happen now (a replay starts at its first timestamp, not at 0)."""
        self._origin = time.monotonic() - stream_t

    def sleep_until(self, stream_t: float, stop: threading.Event | None = None) -> bool:
        """Sleep until ``stream_t`` happens; False when ``stop`` was set first."""
        while True:
            left = stream_t - self.now()
            if stop is not None and stop.is_set():
                return False
            if left <= 0:
                return True
            time.sleep(min(left, POLL_S))


def available_at(event: SourceEvent) -> float | None:
    """When a live device would hand this event over: a block once its last sample is in."""
    if isinstance(event, AudioBlock):
        return event.t_end
    if isinstance(event, VideoFrame):
        return event.t
    return None


class PacedSource:
    """A file source released at the wall-clock pace of live capture (``--realtime``).

    Each event is held back until the moment a live device would have delivered it; when the
    consumer is late nothing is held, exactly as with a live source whose queue has filled.
    """

    def __init__(self, inner: Source, clock: WallClock, stop: threading.Event | None = None) -> None:
        self._inner = inner
        self._clock = clock
        self._stop = stop

    @property
    def info(self) -> SourceInfo:
        return self._inner.info

    def events(self) -> Iterator[SourceEvent]:
        anchored = False
        for event in self._inner.events():
            t = available_at(event)
            if t is not None:
                if not anchored:
                    start = event.t_start if isinstance(event, AudioBlock) else t
                    self._clock.anchor(start)
                    anchored = True
                if not self._clock.sleep_until(t, self._stop):
                    return
            yield event

    def close(self) -> None:
        self._inner.close()
