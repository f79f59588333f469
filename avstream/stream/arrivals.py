"""When a window's media reached the pipeline, and what that says about a wait: the drop rule.

With a wall clock (live, ``--realtime``), each event's arrival is when it became available to
the pipeline. A source that hands each event over exactly at its availability time (the paced
replay: ``exact_arrivals = True``) says so, and that time is taken. For others (live capture) it
is the availability time (the capture stamp) when the event was already queued while the
pipeline was busy, or the moment it was handed over when the pipeline had been waiting for it
(a late delivery). A window's media is complete at the
arrival of the event that completed it. Then:

- a complete window that waited for the engine more than ``stale_after_s`` is dropped
  (``hops_dropped``): inference is behind;
- a window whose media arrived more than one hop after its end is late (``windows_late_media``)
  and runs as usual: the engine was idle, so dropping it would only lose a label.

Without a wall clock (``--fast``) an event arrives when it is handed over and nothing is dropped.

An engine shared by many streams (``avstream serve``) takes a window up only when its turn comes,
after the pipeline handed it over: such an engine (``SharedEngine``) applies the same rule at
that moment, so that a window that waited there too long is dropped and counted the same way.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, runtime_checkable

import numpy as np

from avstream.sources.base import SourceEvent, available_at
from avstream.stream.clock import WallClock

PULL_WAITED_S = 0.005
"""A source that took longer than this to hand over an event made the pipeline wait for it."""


class Arrivals:
    def __init__(self, clock: WallClock | None, stale_after_s: float, hop_s: float) -> None:
        self.clock = clock
        self.exact = False
        """The source hands events over at their availability time (``exact_arrivals``)."""
        self.stale_after_s = stale_after_s
        self.hop_s = hop_s
        self.reset()

    def reset(self) -> None:
        self.arrived = 0.0
        """``perf_counter`` seconds at which the latest event reached the pipeline."""

    def note(self, event: SourceEvent, asked: float) -> None:
        """``event`` was handed over now, having been asked for at ``asked`` (perf_counter)."""
        got = time.perf_counter()
        available = available_at(event)
        if self.clock is None:
            self.arrived = got
        elif available is not None:
            at = got - max(0.0, self.clock.now() - available)
            waited = not self.exact and got - asked > PULL_WAITED_S
            self.arrived = got if waited else max(self.arrived, at)

    def judge(self, t_end: float, complete: float, taken: float) -> tuple[bool, bool]:
        """(drop?, late media?) for the window ending at stream time ``t_end`` whose media was
        complete at ``complete`` and which the engine takes up at ``taken`` (perf_counter)."""
        if self.clock is None:
            return False, False
        if taken - complete > self.stale_after_s:
            return True, False
        return False, self.clock.now() - (taken - complete) - t_end > self.hop_s


@runtime_checkable
class SharedEngine(Protocol):
    def infer_due(self, waveform: np.ndarray | None, features: np.ndarray | None,
                  complete: float, stale_after_s: float | None) -> Any | None:
        """The window's result, or None when the engine took it up more than
        ``stale_after_s`` after ``complete`` (perf_counter): dropped, as the pipeline drops it."""
        ...


def infer_window(engine: Any, waveform: np.ndarray | None, features: np.ndarray | None,
                 complete: float, stale_after_s: float | None) -> Any | None:
    """``engine.infer``, or None when a ``SharedEngine`` dropped the window at its turn
    (``stale_after_s`` None: never, as without a wall clock)."""
    if isinstance(engine, SharedEngine):
        return engine.infer_due(waveform, features, complete, stale_after_s)
    return engine.infer(waveform, features)
