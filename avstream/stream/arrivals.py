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

Every verdict is counted here, and only here (``counts()``: ``ArrivalCounts``); the first drop
of a run is also said once on stderr.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from avstream.sources.base import SourceEvent, available_at
from avstream.stream.clock import WallClock

log = logging.getLogger(__name__)

PULL_WAITED_S = 0.005
"""A source that took longer than this to hand over an event made the pipeline wait for it."""


@dataclass(frozen=True, slots=True)
class ArrivalCounts:
    """The drop rule's verdicts (``avstream.results.counters.Counters`` says what each means)."""

    hops_dropped: int = 0
    windows_late_media: int = 0


class Arrivals:
    def __init__(self, clock: WallClock | None, stale_after_s: float, hop_s: float,
                 precision: str) -> None:
        self.clock = clock
        self.exact = False
        """The source hands events over at their availability time (``exact_arrivals``)."""
        self.stale_after_s = stale_after_s
        self.hop_s = hop_s
        self.precision = precision
        """The engine's precision, named in the warning on the first drop."""
        self.reset()

    def reset(self) -> None:
        self.arrived = 0.0
        """``perf_counter`` seconds at which the latest event reached the pipeline."""
        self._dropped = 0
        self._late = 0

    def counts(self) -> ArrivalCounts:
        return ArrivalCounts(hops_dropped=self._dropped, windows_late_media=self._late)

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

    def judge(self, t_end: float, complete: float, taken: float) -> bool:
        """Whether the window ending at stream time ``t_end``, whose media was complete at
        ``complete`` and which the engine takes up at ``taken`` (perf_counter), runs (True) or
        is dropped; the verdict is counted."""
        drop, late = self._verdict(t_end, complete, taken)
        self._late += late
        if drop:
            self._drop(t_end)
        return not drop

    def infer(self, engine: Any, t_end: float, waveform: np.ndarray | None,
              features: np.ndarray | None, complete: float) -> Any | None:
        """``engine.infer`` on the window ending at ``t_end``; None when an engine shared by many
        streams (``SharedEngine``) took it up too late, at its turn: a drop, counted here."""
        if not isinstance(engine, SharedEngine):
            return engine.infer(waveform, features)
        result = engine.infer_due(waveform, features, self.deadline(complete))
        if result is None:
            self._drop(t_end)
        return result

    def deadline(self, complete: float) -> float | None:
        """``perf_counter`` time after which a window whose media was complete at ``complete``
        is taken up too late (then a newer window of its stream is due); None without a clock."""
        return None if self.clock is None else complete + self.stale_after_s

    def _drop(self, t_end: float) -> None:
        """Count a dropped window; the first of a run is also said once on stderr, with what
        would help: every drop is a label the user does not get, and the counter alone is easy
        to miss."""
        self._dropped += 1
        if self._dropped == 1:
            log.warning("inference is behind the stream at %.2f s: a window was dropped "
                        "(hops_dropped counts them, this is said once). If it goes on, the %s "
                        "model is too slow for this machine as it is loaded: a lighter precision "
                        "(--precision int8 on the CPU), a longer --hop or fewer other jobs on "
                        "its cores would help", t_end, self.precision)

    def _verdict(self, t_end: float, complete: float, taken: float) -> tuple[bool, bool]:
        """(drop?, late media?): the rule itself."""
        if self.clock is None:
            return False, False
        deadline = self.deadline(complete)
        if deadline is not None and taken > deadline:
            return True, False
        return False, self.clock.now() - (taken - complete) - t_end > self.hop_s


@runtime_checkable
class SharedEngine(Protocol):
    def infer_due(self, waveform: np.ndarray | None, features: np.ndarray | None,
                  deadline: float | None) -> Any | None:
        """The window's result, or None when the engine took it up after ``deadline``
        (perf_counter; ``Arrivals.deadline``): dropped, as the pipeline drops it."""
        ...
