"""From a window's raw probabilities to what the outputs see: NaN guard, smoother, latency,
counters, timeline, the hop record, the sinks, and the exit summary.

The pipeline hands each inferred window here once (``hop(ready, result, timing)``); nothing here
runs a model or reads a source. The reporter counts what it sees (``ReporterCounts``) and reads
the other stages' counts through ``upstream``; it writes into no other stage's counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from avstream.inference.api import EngineLike, InferenceResult
from avstream.results.counters import Counters, ReporterCounts, counters_of
from avstream.results.records import HopRecord, RunInfo
from avstream.results.sink import SOURCE_OF_MODALITY, Sink, SourceWatcher
from avstream.results.summary import LatencyStats, RunSummary, Timeline
from avstream.sources.base import ModalityLost, ModalityRestored, SourceEvent, SourceInfo
from avstream.stream.config import PipelineConfig
from avstream.stream.conform import describe_conversion
from avstream.stream.smoothing import Smoother, SmoothingConfig
from avstream.stream.windows import WindowSpec

if TYPE_CHECKING:
    from avstream.stream.arrivals import ArrivalCounts
    from avstream.stream.assembly import AssemblyCounts, ReadyWindow

log = logging.getLogger(__name__)

LATENCY_STAGES: tuple[str, ...] = ("frame", "audio", "head", "smooth", "total", "delay", "lag")
"""Milliseconds per hop (README "Latency fields"): frame = waiting for / encoding the window's
frame features on its turn; audio, head = graph runs; smooth; total = from taking the window
up to its record; delay = from the moment its media was complete to its record (includes any
wait for the engine); lag = wall clock minus the window's end (live / --realtime only)."""
INVALID_LOG_EVERY = 100


@dataclass(frozen=True, slots=True)
class HopTiming:
    """What the pipeline measured of a window before handing it over."""

    frame_ms: float | None
    """Waiting for / encoding the window's frame features on its turn; None: no video."""
    lag_ms: float | None
    """Wall clock minus the window's end when its result came (live / --realtime); None: none."""
    taken: float
    """``time.perf_counter()`` when the window was taken up (``total`` is measured from it)."""
    complete: float
    """``time.perf_counter()`` when its media was complete (``delay`` is measured from it)."""


class Reporter:
    """Streaming state of a run's results; ``reset()`` returns it to a fresh start.

    ``upstream``: the counts of the stages before the reporter (the assembler's, the drop
    rule's), as a line made now carries them; merged with the reporter's own by
    ``counters_of``, for every line and for the summary."""

    def __init__(self, classes: tuple[str, ...], smoothing: SmoothingConfig,
                 upstream: Callable[[], tuple[AssemblyCounts, ArrivalCounts]],
                 sinks: Sequence[Sink] = ()) -> None:
        self.classes = classes
        self.upstream = upstream
        self.sinks = tuple(sinks)
        self.smoother = Smoother(smoothing, classes)
        self.latency = {stage: LatencyStats() for stage in LATENCY_STAGES}
        self.timeline = Timeline()
        self.reset()

    def reset(self) -> None:
        self.smoother.reset()
        for s in self.latency.values():
            s.reset()
        self.timeline.reset()
        self._counts = ReporterCounts()
        self.info: RunInfo | None = None
        self._last_modalities: tuple[str, ...] | None = None
        self._last_frames: frozenset[int] = frozenset()
        self._wall_start = time.monotonic()

    def counts(self) -> ReporterCounts:
        """What the reporter has counted so far (a copy)."""
        return replace(self._counts)

    def counters(self) -> Counters:
        """The run's counters as of now: every stage's, merged."""
        return counters_of(*self.upstream(), self._counts)

    def start(self, info: RunInfo) -> None:
        self.info = info
        self._wall_start = time.monotonic()
        for sink in self.sinks:
            sink.start(info)

    def source_event(self, event: SourceEvent) -> None:
        """A device lost or back is told to the sinks that show inputs (``SourceWatcher``)."""
        if isinstance(event, ModalityLost | ModalityRestored):
            up = isinstance(event, ModalityRestored)
            for sink in self.sinks:
                if isinstance(sink, SourceWatcher):
                    sink.source_changed(SOURCE_OF_MODALITY[str(event.modality)], up, event.t)

    def hop(self, ready: ReadyWindow, result: InferenceResult, timing: HopTiming
            ) -> HopRecord | None:
        """One window the engine ran; returns its record, or None when the model output was
        invalid (counted, never smoothed)."""
        c = self._counts
        t, modalities = ready.window.t_end, ready.modalities
        probs, branch = result.probs, result.branch
        # Frames are counted with the first window that uses them, not when the background
        # encoder ran them: a line's counters then depend on the stream alone (``--fast`` lines
        # repeat). A window with an invalid output used its frames too.
        seqs = frozenset(f.seq for f in ready.frames) if ready.frames is not None else frozenset()
        new_frames = len(seqs - self._last_frames)
        self._last_frames = seqs
        c.frames_encoded += new_frames
        if not np.isfinite(probs).all():
            # A model fault (e.g. log(0) on digital silence): never let NaN into the smoother,
            # where it would poison the next N windows; count it instead.
            c.windows_invalid += 1
            if c.windows_invalid == 1 or c.windows_invalid % INVALID_LOG_EVERY == 0:
                log.warning("the model gave non-finite %s probabilities for the window at %.2f s "
                            "(%d such windows so far); window skipped", branch, t,
                            c.windows_invalid)
            return None
        t0 = time.perf_counter()
        smoothed = self.smoother.update(probs)
        t1 = time.perf_counter()
        latency = {} if timing.frame_ms is None else {"frame": timing.frame_ms}
        latency.update(result.latency_ms)
        if timing.lag_ms is not None:
            latency["lag"] = timing.lag_ms
        latency["smooth"] = (t1 - t0) * 1e3
        latency["total"] = (t1 - timing.taken) * 1e3
        latency["delay"] = (t1 - timing.complete) * 1e3
        for stage, ms in latency.items():
            self.latency[stage].add(ms)
        if self._last_modalities is not None and modalities != self._last_modalities:
            c.modality_changes += 1
            log.info("window at %.2f s uses %s", t, "+".join(modalities))
        self._last_modalities = modalities
        c.windows += 1
        self.timeline.add(t, smoothed.label, modalities)
        record = HopRecord(
            window=ready.window.index, t=t, label=smoothed.label, confidence=smoothed.confidence,
            probs=smoothed.probs.copy(), raw_label=smoothed.raw_label,
            raw_confidence=smoothed.raw_confidence, raw_probs=probs, modalities=modalities,
            branch=branch, frames_encoded=new_frames, latency_ms=latency,
            counters=self.counters(), wall_time=time.time(), classes=self.classes,
        )
        for sink in self.sinks:
            sink.hop(record)
        return record

    def summary(self, stopped: str, stream_start: float | None, stream_end: float | None,
                frame_encodes: int) -> RunSummary:
        """The exit summary; ``frame_encodes``: every run of the frame graph (the frame
        features' count), which no line carries."""
        latency = {
            stage: {"p50": s.quantile(0.5), "p99": s.quantile(0.99), "max": s.max_ms if s.n else None}
            for stage, s in self.latency.items() if s.n
        }
        return RunSummary(
            info=self.info, windows=self._counts.windows, stream_start=stream_start,
            stream_end=stream_end, wall_seconds=time.monotonic() - self._wall_start,
            latency_ms=latency, timeline=self.timeline.segments(),
            timeline_forgotten=self.timeline.forgotten, counters=self.counters(),
            stopped=stopped, frame_encodes=frame_encodes,
        )

    def end(self, summary: RunSummary) -> None:
        for sink in self.sinks:
            try:
                sink.end(summary)
            except BrokenPipeError:
                pass


def run_info(source: SourceInfo, engine: EngineLike, windows: WindowSpec, config: PipelineConfig,
             paced: str) -> RunInfo:
    """What a run is made of, in words: the source, its conversions, the engine, the windows."""
    fmt = engine.format
    if source.has_audio:
        audio_in = describe_conversion(source.audio_rate_hz, source.audio_channels,
                                       fmt.sample_rate, fmt.channels)
    else:
        audio_in = "none"
    if source.has_video:
        size = (f"{source.video_width}x{source.video_height}" if source.video_width else "native")
        fps = f" {source.video_fps:g} fps" if source.video_fps else ""
        video_in = (f"{size}{fps} -> {fmt.frame_size}x{fmt.frame_size}, the frame nearest each "
                    f"{windows.frame_period_ms} ms slot")
    else:
        video_in = "none"
    return RunInfo(
        source=source.name, live=source.live,
        source_modalities=tuple(str(m) for m in source.modalities), classes=fmt.classes,
        providers=engine.providers, hop_s=windows.hop_s, window_s=windows.window_s,
        audio_in=audio_in, video_in=video_in, smoothing=asdict(config.smoothing), paced=paced,
        precision=engine.precision,
    )
