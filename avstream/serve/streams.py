"""One named stream of ``avstream serve``: its source, its own pipeline, its outputs, its thread.

A stream runs ``Pipeline(engine, config, sinks, clock).run(source)`` exactly as ``replay`` and
``live`` do, with a stand-in engine whose calls join other streams' batches. Its faults stay
its own: a camera or microphone that fails is handled inside ``LiveSource`` (the stream goes
audio-only or video-only and reconnects); when all its devices are gone (the source gives up)
or cannot be opened, the stream starts again after a backoff, while the others go on. A file
stream ends at the end of its file, or with its error (a corrupt file): the others go on.

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
from typing import Protocol

from avstream.clock import WallClock
from avstream.errors import AvstreamError
from avstream.outputs import Sink
from avstream.outputs.records import HopRecord, RunInfo
from avstream.outputs.summary import RunSummary
from avstream.pipeline import Pipeline
from avstream.serve.config import DEFAULT_MIC, StreamConfig
from avstream.sources.base import Source
from avstream.sources.paced import PacedSource

log = logging.getLogger(__name__)

RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0
RESTART_FACTOR = 2.0


class StreamEngine(Protocol):
    """A stand-in engine (``BatchedEngine``, ``RemoteEngine``): the members of ``Engine``,
    and ``close()`` after each run."""

    def close(self) -> None: ...


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


def _open_outputs(config: StreamConfig) -> list[Sink]:
    """The stream's sinks; the folder of its JSON lines file is created if missing."""
    jsonl = config.outputs.jsonl
    if jsonl is not None and jsonl != "-":
        Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
    return config.outputs.sinks()[0]


def open_source(config: StreamConfig) -> tuple[Source, WallClock | None]:
    """The stream's source and the wall clock it runs on (None: a file run ``fast``)."""
    if config.file is not None:
        from avstream.sources.media_file import MediaFileSource

        source: Source = MediaFileSource(config.file, config.audio)
        if config.pace == "fast":
            return source, None
        return source, WallClock()
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
    return live, live.clock


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

    def __init__(self, config: StreamConfig, engine: Callable[[], StreamEngine]) -> None:
        self.config = config
        self._engine = engine
        self._stop = threading.Event()
        self._pipeline: Pipeline | None = None
        self._lock = threading.Lock()
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
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.stop()

    def run(self) -> StreamOutcome:
        c = self.config
        sinks = StreamSinks(c.name, lambda: _open_outputs(c))
        backoff = RESTART_FIRST_S
        try:
            while not self._stop.is_set():
                failure = self._run_once(sinks)
                if c.file is not None or failure is None or self._stop.is_set():
                    if self.outcome.error is not None:
                        log.error("stream %s: %s", c.name, self.outcome.error)
                    break
                log.warning("stream %s: %s; starting it again in %.0f s", c.name, failure, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * RESTART_FACTOR, RESTART_MAX_S)
        finally:
            sinks.close()
            self.outcome.records = sinks.records
        return self.outcome

    def _run_once(self, sinks: StreamSinks) -> str | None:
        """One pipeline run; the reason a live stream should start again, or None."""
        o = self.outcome
        engine = self._engine()
        try:
            source, clock = open_source(self.config)
        except AvstreamError as e:
            engine.close()
            o.error = str(e)
            o.stopped = "error"
            return str(e)
        try:
            stop = threading.Event()
            if clock is not None and not source.info.live:
                source = PacedSource(source, clock, stop)
            pipeline = Pipeline(engine, self.config.pipeline, [sinks], clock=clock, stop=stop)
            with self._lock:
                self._pipeline = pipeline
                if self._stop.is_set():
                    pipeline.stop()
            o.runs += 1
            summary = pipeline.run(source)
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
            with self._lock:
                self._pipeline = None
            engine.close()
        return getattr(source, "failure", None)
