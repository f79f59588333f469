"""The loop: source events -> window assembler -> frame features + engine -> reporter -> sinks.

One thread, driven by the source (plus the frame encoder's thread when pipelined). Per event:
the assembler returns the windows it completed; frames it has just chosen for a slot go to the
encoder at once; each complete window runs the audio graph and the head on its own waveform and
(usually already encoded) frame features; the reporter smooths, times, counts and outputs.
Each stage counts what it sees (``counts()``); the reporter merges them into a line's counters
and the summary's, and no stage writes into another's.

With a wall clock (live capture, ``--realtime`` replay) a complete window that waited for the
engine more than ``stale_after_s`` is dropped; media that merely arrived late is never a reason
to drop (``avstream.stream.arrivals``). Without one (``--fast``) the output depends on the stream alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from avstream.inference.api import EngineLike
from avstream.results.reporter import HopTiming, Reporter, run_info
from avstream.results.sink import Sink
from avstream.results.summary import RunSummary
from avstream.sources.base import Modality, Source, SourceEvent, SourceInfo
from avstream.stream.arrivals import ArrivalCounts, Arrivals
from avstream.stream.assembly import AssemblyCounts, ReadyWindow, WindowAssembler
from avstream.stream.clock import WallClock
from avstream.stream.config import PipelineConfig
from avstream.stream.features import FrameFeatures

__all__ = ["Pipeline", "PipelineConfig"]
log = logging.getLogger(__name__)


class Pipeline:
    """Streaming state of one run; every ``run()`` starts fresh (``reset()``), so two runs of
    one source give the same records and summary.

    ``stop``: an event the caller owns (a signal handler's, a server's) that ends the run when
    set; it is never cleared here. Without one the pipeline keeps its own, cleared by ``reset()``.
    """

    def __init__(self, engine: EngineLike, config: PipelineConfig | None = None,
                 sinks: Sequence[Sink] = (), clock: WallClock | None = None,
                 stop: threading.Event | None = None) -> None:
        self.engine = engine
        self.config = config = config or PipelineConfig()
        self.clock = clock
        self.assembler = WindowAssembler(engine.format, config)
        self.features = FrameFeatures(engine, pipelined=config.pipelined)
        self.reporter = Reporter(engine.format.classes, config.smoothing, self._upstream_counts,
                                 sinks)
        hop_s = self.assembler.spec.hop_s
        self.arrivals = Arrivals(clock, config.stale_after_s or hop_s, hop_s, engine.precision)
        self._own_stop = stop is None
        self._stop = stop if stop is not None else threading.Event()
        self.reset()

    def reset(self) -> None:
        """Forget the stream: windows, buffers, features, smoothing, counters, statistics, and
        a stop request to a stop event of its own."""
        self._reset_stream()
        if self._own_stop:
            self._stop.clear()

    def _reset_stream(self, modalities: tuple[Modality, ...] = (Modality.AUDIO, Modality.VIDEO)
                      ) -> None:
        self.assembler.reset(modalities)
        self.features.reset()
        self.reporter.reset()
        self.arrivals.reset()
        self._assembled = AssemblyCounts()

    def stop(self) -> None:
        """Ask ``run()`` to return after the current event; safe from a signal handler."""
        self._stop.set()

    def run(self, source: Source) -> RunSummary:
        """Feed every event of ``source`` through the pipeline until it ends or ``stop()``.
        The source is closed on return; sinks get ``end()`` even when an error propagates."""
        self.start(source.info)
        self.arrivals.exact = source.exact_arrivals
        reason = "error"
        try:
            reason = self._drain(source)
        except KeyboardInterrupt:
            reason = "interrupt"
        except BrokenPipeError:
            reason = "output closed"
            log.warning("an output was closed by its reader; stopping")
        finally:
            source.close()
            summary = self.summary(reason)
            self.reporter.end(summary)
        return summary

    def _drain(self, source: Source) -> str:
        events = iter(source.events())
        while not self._stop.is_set():
            asked = time.perf_counter()
            event = next(events, None)
            if event is None:
                if self._stop.is_set():  # a paced or live source ended because of the stop
                    break
                self.finish()
                return "end of stream"
            self.feed(event, asked)
        return "stop request"

    def start(self, info: SourceInfo) -> None:
        """A run on a source described by ``info`` begins (``run()`` calls this): everything
        of the stream is reset (a stop request is kept: it may have come before the run)."""
        self._reset_stream(info.modalities)
        paced = "fast" if self.clock is None else ("live" if info.live else "realtime")
        self.reporter.start(run_info(info, self.engine, self.assembler.spec, self.config, paced))

    def feed(self, event: SourceEvent, asked: float | None = None) -> None:
        """One event in (asked for at ``perf_counter`` time ``asked``); every window it
        completes is run, or dropped when it waited too long for the engine, before this returns."""
        self.arrivals.note(event, time.perf_counter() if asked is None else asked)
        self.reporter.source_event(event)
        self._run_all(self.assembler.feed(event))

    def finish(self) -> None:
        """End of stream: every window left is run."""
        self._run_all(self.assembler.finish())

    def _run_all(self, ready: list[ReadyWindow]) -> None:
        self.features.submit(self.assembler.take_decided_frames())
        for w in ready:
            self._run(w, self.arrivals.arrived)
        self._assembled = self.assembler.counts()

    def _upstream_counts(self) -> tuple[AssemblyCounts, ArrivalCounts]:
        """The counts a line made now carries from the stages before the reporter: the drop
        rule's as they are, the assembler's as they stood when the previous event's windows
        had run (read once per event, not per window)."""
        return self._assembled, self.arrivals.counts()

    def _run(self, w: ReadyWindow, complete: float) -> None:
        taken = time.perf_counter()
        if not self.arrivals.judge(w.window.t_end, complete, taken):  # dropped (counted there)
            if w.frames is not None:
                self.features.forget_before(min(f.seq for f in w.frames))
            return
        features, frame_ms = None, None
        if w.frames is not None:
            features, frame_ms = self.features.window(w.frames)
        with self.features.hold():  # no frame encode starts while the window's graphs run
            result = self.arrivals.infer(self.engine, w.window.t_end, w.waveform, features,
                                         complete)
        if result is None:  # a shared engine took it up too late: dropped (counted there)
            return
        lag_ms = None if self.clock is None else (self.clock.now() - w.window.t_end) * 1e3
        self.reporter.hop(w, result, HopTiming(frame_ms, lag_ms, taken, complete))

    def summary(self, stopped: str = "end of stream") -> RunSummary:
        self.features.settle()
        self._assembled = self.assembler.counts()
        return self.reporter.summary(stopped, self.assembler.first_t, self.assembler.last_t,
                                     frame_encodes=self.features.counts().encoded)
