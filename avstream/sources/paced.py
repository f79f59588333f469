"""A recorded source released at the wall-clock pace of live capture (``--realtime``).

Each event is held back until the moment a live device would have delivered it
(``available_at``: an audio block once its last sample is in, a frame at its timestamp). A file
does not store events in that order: muxers write each stream in chunks, and common files (the
demo's among them) put video packets up to ~1.4 s ahead of the audio of the same instant.
Releasing the demuxed sequence in container order would hold the audio behind a frame that is
not due yet and then hand it over in a burst, late. ``MediaFileSource`` already hands its events
over merged by that time (one demuxer per stream); this source does not rely on it, for any other
inner source: events are merged by their own availability time, an event being released once no
event still unread can be available before it. Within a modality times increase, so that is the
case once every modality still delivering has shown an event at or after it (its frontier).

The reordering is bounded: at most ``MAX_REORDER_S`` of stream time and ``MAX_HELD_EVENTS``
events are held; beyond that the earliest held event is released without waiting for the
lagging modality (the pipeline's ``max_wait_s`` then handles the skew, as for a live source).
When the consumer is late nothing is held back, exactly as with a live source whose queue has
filled.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator

from avstream.sources.base import (
    AudioBlock,
    Modality,
    ModalityLost,
    Source,
    SourceEvent,
    SourceInfo,
    VideoFrame,
    available_at,
)
from avstream.stream.clock import WallClock

MAX_REORDER_S = 3.0
"""Stream seconds one modality may be muxed ahead of another and still be put back in order
(twice the worst skew measured in the demo recording)."""
MAX_HELD_EVENTS = 1024
"""Events held for reordering at most (3 s of 60 fps video and 48 kHz audio in 1024-sample
blocks is ~330)."""


def _modality(event: SourceEvent) -> Modality | None:
    if isinstance(event, AudioBlock):
        return Modality.AUDIO
    if isinstance(event, VideoFrame):
        return Modality.VIDEO
    return None


class PacedSource(Source):
    """``inner``'s events, reordered by availability and released at the pace of ``clock``."""

    exact_arrivals = True
    """Each event is handed over at its availability time (or later, when the consumer is
    late): the pipeline takes that time as its arrival (``avstream.stream.arrivals``)."""

    def __init__(self, inner: Source, clock: WallClock, stop: threading.Event | None = None) -> None:
        self._inner = inner
        self._clock = clock
        self._stop = stop

    @property
    def info(self) -> SourceInfo:
        return self._inner.info

    def events(self) -> Iterator[SourceEvent]:
        held: list[tuple[float, int, int, SourceEvent]] = []
        order = itertools.count()
        frontier = {m: float("-inf") for m in self._inner.info.modalities}
        newest = float("-inf")
        anchored = False

        def releasable() -> bool:
            key = held[0][0]
            return (key <= min(frontier.values(), default=float("inf"))
                    or newest - key > MAX_REORDER_S or len(held) > MAX_HELD_EVENTS)

        def release() -> Iterator[SourceEvent]:
            nonlocal anchored
            key, _, _, event = heapq.heappop(held)
            if _modality(event) is not None:
                if not anchored:
                    self._clock.anchor(event.t_start if isinstance(event, AudioBlock) else key)
                    anchored = True
                if not self._clock.sleep_until(key, self._stop):
                    return
            yield event

        for event in self._inner.events():
            modality, key = _modality(event), available_at(event)
            if modality is not None and key is not None:
                frontier[modality] = key
                newest = max(newest, key)
            elif isinstance(event, ModalityLost):
                frontier.pop(event.modality, None)
            rank = 0 if modality == Modality.AUDIO else 1  # equal times: audio completes windows
            heapq.heappush(held, (newest if key is None else key, rank, next(order), event))
            while held and releasable():
                yield from release()
                if self._stop is not None and self._stop.is_set():
                    return
        while held:
            yield from release()
            if self._stop is not None and self._stop.is_set():
                return

    def close(self) -> None:
        self._inner.close()
