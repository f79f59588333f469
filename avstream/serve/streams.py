"""One named stream of ``avstream serve``: its source, its own pipeline, its outputs, its thread.

A stream runs ``avstream.driver.drive`` exactly as ``replay`` and ``live`` do (a file stream
``pace = "realtime"`` is replay's ``--realtime``), with a stand-in engine whose calls join other
streams' batches. Its faults stay its own: a camera or microphone that fails is handled inside
``LiveSource`` (the stream goes audio-only or video-only and reconnects); when all its devices
are gone (the source gives up) or cannot be opened, the stream starts again after a backoff,
while the others go on. A file stream ends at the end of its file, or with its error (a corrupt
file): the others go on.

Every record carries the stream's name (``HopRecord.stream``, the first key of its JSON line).
The outputs are opened once and kept across restarts, so a stream's JSON lines file is one
continuous log.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from avstream.driver import drive
from avstream.errors import AvstreamError
from avstream.inference.api import EngineFacade
from avstream.outputs.stats import OutputStats
from avstream.results.records import HopRecord, RunInfo
from avstream.results.sink import Sink
from avstream.results.summary import RunSummary
from avstream.serve.config import DEFAULT_MIC, StreamConfig
from avstream.sources.backoff import Backoff
from avstream.sources.base import Source

if TYPE_CHECKING:
    from avstream.outputs.site import SiteServer

log = logging.getLogger(__name__)

RESTART: Final[Backoff] = Backoff(first_s=1.0, factor=2.0, max_s=30.0)
"""A stream whose devices all failed starts again after 1 s, then 2, 4, ... at most 30 s."""


class StreamSinks:
    """A stream's sinks, opened once and kept across restarts; each record gets its name."""

    def __init__(self, name: str, make: Callable[[], list[Sink]]) -> None:
        self.name = name
        self._make = make
        self._sinks: list[Sink] | None = None
        self._last: RunSummary | None = None
        self.records = 0

    def start(self, info: RunInfo) -> None:
        if self._sinks is None:
            self._sinks = self._make()
            for s in self._sinks:
                s.start(info)

    def hop(self, record: HopRecord) -> None:
        tagged = dataclasses.replace(record, stream=self.name)
        self.records += 1
        for s in self._sinks or ():
            s.hop(tagged)

    def end(self, summary: RunSummary) -> None:
        self._last = summary  # the outputs end once, when the stream does (close())

    def close(self) -> None:
        sinks, self._sinks = self._sinks, None
        if sinks is not None and self._last is not None:
            for s in sinks:
                s.end(self._last)


def _open_outputs(config: StreamConfig, site: SiteServer | None = None) -> list[Sink]:
    """The stream's sinks, and its endpoints on the site's server if there is one (sharing
    the sinks' counters); the folder of its JSON lines file is created if missing."""
    jsonl = config.outputs.jsonl
    if jsonl is not None and jsonl != "-":
        Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
    stats = OutputStats()
    sinks = config.outputs.sinks(stats)[0]
    if site is not None:
        sinks.append(site.add_stream(config.name, stats, config.outputs.history))
    return sinks


def open_source(config: StreamConfig) -> Source:
    """The stream's source, open (a file, or its devices)."""
    if config.file is not None:
        from avstream.sources.media_file import MediaFileSource

        return MediaFileSource(config.file, config.audio)
    from avstream.sources.live import LiveOptions, LiveSource

    mic = None if config.mic == DEFAULT_MIC else config.mic
    live = LiveSource(LiveOptions(mic=mic, camera=0 if config.camera is None else config.camera,
                                  use_mic=config.mic is not None,
                                  use_camera=config.camera is not None,
                                  video_delay_s=config.video_delay_s))
    try:
        live.open()
    except BaseException:
        live.close()  # whatever did open is released before the stream retries
        raise
    return live


@dataclass
class StreamOutcome:
    """How a stream ended, for the serve summary (plain values: it crosses process bounds)."""

    name: str
    windows: int = 0
    records: int = 0
    runs: int = 0
    stopped: str = "not started"
    error: str | None = None
    hops_dropped: int = 0

    def line(self) -> str:
        text = (f"{self.name}: {self.records} records in {self.runs} run(s), "
                f"{self.hops_dropped} hops dropped, {self.stopped}")
        return text + (f"; error: {self.error}" if self.error else "")


class StreamRunner:
    """Runs one stream until it ends or ``stop()``; ``run()`` blocks, ``start()`` threads it."""

    def __init__(self, config: StreamConfig, engine: Callable[[], EngineFacade],
                 site: SiteServer | None = None) -> None:
        self.config = config
        self._engine = engine
        self._site = site
        self._stop = threading.Event()
        self.outcome = StreamOutcome(config.name)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"stream-{self.config.name}",
                                        daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """True once the stream's thread has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def stop(self) -> None:
        """Ask the stream to finish the window in hand and end (safe from any thread)."""
        self._stop.set()

    def run(self) -> StreamOutcome:
        c = self.config
        sinks = StreamSinks(c.name, lambda: _open_outputs(c, self._site))
        backoff = RESTART.first_s
        try:
            while not self._stop.is_set():
                failure = self._run_once(sinks)
                if c.file is not None or failure is None or self._stop.is_set():
                    if self.outcome.error is not None:
                        log.error("stream %s: %s", c.name, self.outcome.error)
                    break
                log.warning("stream %s: %s; starting it again in %.0f s", c.name, failure, backoff)
                self._stop.wait(backoff)
                backoff = RESTART.after(backoff)
        finally:
            sinks.close()
            self.outcome.records = sinks.records
        return self.outcome

    def _run_once(self, sinks: StreamSinks) -> str | None:
        """One pipeline run; the reason a live stream should start again, or None."""
        o = self.outcome
        engine = self._engine()
        try:
            source = open_source(self.config)
        except AvstreamError as e:
            engine.close()
            o.error = str(e)
            o.stopped = "error"
            return str(e)
        try:
            o.runs += 1
            summary = drive(source, engine, self.config.pipeline, [sinks],
                            realtime=self.config.pace != "fast", stop=self._stop)
            o.windows += summary.windows
            o.hops_dropped += summary.counters.hops_dropped
            o.stopped = summary.stopped
            o.error = None
        except AvstreamError as e:
            o.error = str(e)
            o.stopped = "error"
            return str(e)
        except Exception as e:  # noqa: BLE001 - a fault in one stream must not end the others
            log.exception("stream %s failed", self.config.name)
            o.error = f"{type(e).__name__}: {e}"
            o.stopped = "error"
            return o.error
        finally:
            engine.close()
        return source.failure
