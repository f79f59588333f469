"""The loop: source events -> window assembler -> frame features + engine -> reporter -> sinks.

One thread, driven by the source (plus the frame encoder's thread when pipelined). For each
event: the assembler takes it and returns the windows it completed; frames it has just chosen
for a slot go to the encoder at once; each complete window runs the audio graph and the head
on its own waveform and (usually already encoded) frame features; the reporter smooths,
times, counts and hands the record to the sinks.

With a wall clock (live capture, ``--realtime`` replay) a complete window that waited for the
engine more than ``stale_after_s`` (default one hop) is dropped and counted (``hops_dropped``):
inference is behind, and running it would push every later result further back. Media that
merely arrived late is no reason to drop: such windows run and are counted in
``windows_late_media``. Without a wall clock (``--fast``) nothing is dropped, so the output
depends on the stream alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from avstream.assembly import ReadyWindow, WindowAssembler
from avstream.clock import WallClock
from avstream.config import PipelineConfig
from avstream.features import FrameFeatures
from avstream.outputs import Sink
from avstream.outputs.reporter import Reporter, run_info
from avstream.outputs.summary import RunSummary
from avstream.sources.base import Source, SourceEvent, available_at

__all__ = ["Pipeline", "PipelineConfig"]
log = logging.getLogger(__name__)

PULL_WAITED_S = 0.005
"""A source that took longer than this to hand over an event made the pipeline wait for it: the
event arrived then, however long ago its media was captured (a late delivery). A quicker one was
already queued while the pipeline was busy: it arrived when it became available."""


class Pipeline:
    """Streaming state of one run; ``reset()`` returns it to a fresh start."""

    def __init__(self, engine, config: PipelineConfig | None = None, sinks: Sequence[Sink] = (),
                 clock: WallClock | None = None, stop: threading.Event | None = None) -> None:
        self.engine = engine
        self.config = config = config or PipelineConfig()
        self.clock = clock
        self.assembler = WindowAssembler(engine.format, config)
        self.features = FrameFeatures(engine, pipelined=config.pipelined)
        self.reporter = Reporter(engine.format.classes, config.smoothing, sinks)
        self.stale_after_s = config.stale_after_s or self.assembler.spec.hop_s
        self._stop = stop or threading.Event()
        self.reset()

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return self.reporter.sinks

    @sinks.setter
    def sinks(self, sinks: Sequence[Sink]) -> None:
        self.reporter.sinks = tuple(sinks)

    def reset(self) -> None:
        """Forget the stream: windows, buffers, features, smoothing, counters, statistics."""
        self.assembler.reset()
        self.features.reset()
        self.reporter.reset()
        self._stop.clear()
        self._arrived = 0.0

    def stop(self) -> None:
        """Ask ``run()`` to return after the current event; safe from a signal handler."""
        self._stop.set()

    @property
    def stop_event(self) -> threading.Event:
        return self._stop

    def run(self, source: Source) -> RunSummary:
        """Feed every event of ``source`` through the pipeline until it ends or ``stop()``.
        The source is closed on return; sinks get ``end()`` even when an error propagates."""
        info = source.info
        self.assembler.reset(info.modalities)
        paced = "fast" if self.clock is None else ("live" if info.live else "realtime")
        self.reporter.start(run_info(info, self.engine, self.assembler.spec, self.config, paced))
        reason = "error"
        try:
            reason = self._loop(source)
        except KeyboardInterrupt:
            reason = "interrupt"
        except BrokenPipeError:
            reason = "output closed"
            log.warning("an output was closed by its reader; stopping")
        finally:
            source.close()
            self.features.settle()
            summary = self.summary(reason)
            self.reporter.end(summary)
        return summary

    def _loop(self, source: Source) -> str:
        events = iter(source.events())
        while not self._stop.is_set():
            asked = time.perf_counter()
            event = next(events, None)
            if event is None:
                if self._stop.is_set():  # a paced or live source ended because of the stop
                    break
                self._run_all(self.assembler.finish())
                return "end of stream"
            self._arrival(event, asked)
            self._run_all(self.assembler.feed(event))
        return "stop request"

    def _arrival(self, event: SourceEvent, asked: float) -> None:
        """When ``event`` reached the pipeline, as ``perf_counter`` seconds: when it became
        available (a live device's delivery; the paced source's release time), unless the
        pipeline had been waiting for it for longer (see PULL_WAITED_S): it came late, then."""
        got = time.perf_counter()
        available = available_at(event)
        if self.clock is None:
            self._arrived = got
        elif available is not None:
            at = got - max(0.0, self.clock.now() - available)
            self._arrived = got if got - asked > PULL_WAITED_S else max(self._arrived, at)

    def _run_all(self, ready: list[ReadyWindow]) -> None:
        self.features.submit(self.assembler.take_decided_frames())
        for w in ready:
            self._run(w, self._arrived)
        self.assembler.count_into(self.reporter.counters)

    def _run(self, w: ReadyWindow, complete: float) -> None:
        taken = time.perf_counter()
        c = self.reporter.counters
        latency: dict[str, float] = {}
        if self.clock is not None:
            if taken - complete > self.stale_after_s:
                c.hops_dropped += 1
                return
            arrived = self.clock.now() - (taken - complete)
            if arrived - w.window.t_end > self.assembler.spec.hop_s:
                c.windows_late_media += 1
        features = None
        if w.frames is not None:
            features, latency["frame"] = self.features.window(w.frames)
        result = self.engine.infer(w.waveform, features)
        latency.update(result.latency_ms)
        if self.clock is not None:
            latency["lag"] = (self.clock.now() - w.window.t_end) * 1e3
        c.frames_encoded = self.features.encoded
        seqs = frozenset(f.seq for f in w.frames) if w.frames is not None else frozenset()
        self.reporter.hop(w.window.index, w.window.t_end, w.modalities, seqs, result.probs,
                          result.branch, latency, taken, complete)

    def summary(self, stopped: str = "end of stream") -> RunSummary:
        self.assembler.count_into(self.reporter.counters)
        self.reporter.counters.frames_encoded = self.features.encoded
        return self.reporter.summary(stopped, self.assembler.first_t, self.assembler.last_t)
