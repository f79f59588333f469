"""The wall clock beside the stream clock: only live capture and real-time replay have one.

Stream time is what the records carry (container timestamps, or ``WallClock.now()`` stamped at
capture). A ``WallClock`` maps stream seconds to ``time.monotonic()``; with it the pipeline can
tell how long a complete window waited for the engine and how late its media arrived. In
``--fast`` replay there is no wall clock at all, so two runs of the same file produce the same
windows.
"""

from __future__ import annotations

import threading
import time

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
            if stop is not None:
                stop.wait(min(left, POLL_S))
            else:
                time.sleep(min(left, POLL_S))
