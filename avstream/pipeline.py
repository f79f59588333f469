"""The loop: source events -> buffers -> windows due -> engine -> smoother -> outputs.

One thread, driven by the source. Each event goes into the bounded buffers; then every window
whose media has arrived is run, oldest first. A window waits for a lagging modality at most
``max_wait_s`` of stream time (files interleave audio and video with some skew; a camera can
hiccup), after which it runs with what there is and says so in ``modalities``.

With a wall clock (live capture, ``--realtime`` replay) a window that is ready more than
``stale_after_s`` after its end is dropped and counted: its successor is already due, and
running it would only push every later result further behind. Without a wall clock
(``--fast``) nothing is ever stale, so the output depends on the stream alone.

A live driver (see ``avstream.driver``):

    clock = WallClock()                       # the capture threads stamp with clock.now()
    pipeline = Pipeline(engine, PipelineConfig(...), sinks, clock=clock)
    signal handlers -> pipeline.stop()        # safe from a signal handler
    summary = pipeline.run(source)            # returns on stop(), end of stream, or an error
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from avstream.buffers import AudioRing, FrameRef, FrameStore
from avstream.clock import WallClock
from avstream.conform import AudioConformer, describe_conversion
from avstream.inference.engine import Engine
from avstream.media.frames import resize_frame
from avstream.outputs import Sink
from avstream.outputs.records import Counters, HopRecord, RunInfo
from avstream.outputs.summary import LatencyStats, RunSummary, Timeline
from avstream.smoothing import Smoother, SmoothingConfig
from avstream.sources.base import (
    AudioBlock,
    CorruptSkipped,
    FramesDropped,
    Idle,
    Modality,
    ModalityLost,
    ModalityRestored,
    SamplesDropped,
    Source,
    SourceEvent,
    SourceInfo,
    VideoFrame,
)
from avstream.windows import DEFAULT_HOP_MS, MS_PER_S, SlotGrid, Window, WindowScheduler, WindowSpec

log = logging.getLogger(__name__)

LATENCY_STAGES: tuple[str, ...] = ("frame", "audio", "head", "smooth", "total", "lag")
SLOT_EPS_S = 1e-6
"""Float slack when comparing a container timestamp with a slot time given in whole ms."""
BUFFER_MARGIN_S = 0.5
"""Room in the buffers beyond window + max_wait: one audio block or frame in flight."""


@dataclass(frozen=True)
class PipelineConfig:
    hop_ms: int = DEFAULT_HOP_MS
    """Between window ends. 200 ms = one frame period: one new frame slot, one encode per hop."""
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    max_wait_s: float = 2.0
    """Stream time a window waits for a lagging modality. Covers the audio/video interleave of
    common muxers and a camera hiccup; a source that is really gone says so itself."""
    stale_after_s: float | None = None
    """Lag behind the wall clock after which a ready window is dropped; None = one hop."""
    audio_continuity_s: float = 0.02
    """Audio blocks this close to where the previous ended continue it: capture clocks jitter
    by a few ms, and treating jitter as gaps would chop the resampler's run."""
    audio_max_fill_s: float = 0.25
    """Gaps up to this are filled with silence (a lost AAC packet is 21 ms); longer gaps restart
    the audio, and windows reaching into them run without audio."""
    max_frame_distance_s: float = 0.5
    """A slot takes its nearest frame only if it is this close; enough for a 1 fps camera."""

    def __post_init__(self) -> None:
        for name in ("max_wait_s", "audio_continuity_s", "audio_max_fill_s", "max_frame_distance_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}={v}; expected a finite number >= 0 (seconds)")
        if self.stale_after_s is not None and not self.stale_after_s > 0:
            raise ValueError(f"stale_after_s={self.stale_after_s}; expected > 0 or None")


class Pipeline:
    """Streaming state of one run; ``reset()`` returns it to a fresh start."""

    def __init__(
        self,
        engine: Engine,
        config: PipelineConfig | None = None,
        sinks: Sequence[Sink] = (),
        clock: WallClock | None = None,
    ) -> None:
        self.engine = engine
        self.config = config = config or PipelineConfig()
        self.sinks = tuple(sinks)
        self.clock = clock
        spec = engine.spec
        self.spec = spec
        self.windows = WindowSpec(
            hop_ms=config.hop_ms,
            window_ms=round(spec.window_seconds * MS_PER_S),
            frames_per_window=spec.frames_per_window,
        )
        if self.windows.frame_period_ms * spec.fps != MS_PER_S:
            raise ValueError(
                f"bundle says {spec.fps} fps but {spec.frames_per_window} frames per "
                f"{spec.window_seconds} s window; expected them to agree"
            )
        self.stale_after_s = config.stale_after_s or self.windows.hop_s
        self.grid = SlotGrid(self.windows)
        self.scheduler = WindowScheduler(self.windows)
        sr = spec.sample_rate
        span_s = spec.window_seconds + config.max_wait_s + BUFFER_MARGIN_S
        self.conformer = AudioConformer(sr, spec.channels, config.audio_continuity_s)
        self.ring = AudioRing(spec.channels, capacity=math.ceil(span_s * sr),
                              max_fill=round(config.audio_max_fill_s * sr))
        self.frames = FrameStore(
            self.grid,
            capacity=math.ceil(span_s * MS_PER_S / self.grid.step_ms) + spec.frames_per_window,
            max_distance_s=config.max_frame_distance_s,
            frame_size=spec.frame_size,
            resize=resize_frame,
        )
        self.smoother = Smoother(config.smoothing, spec.classes)
        self.latency = {stage: LatencyStats() for stage in LATENCY_STAGES}
        self.timeline = Timeline()
        self._stop = threading.Event()
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget the stream: buffers, windows, smoothing, caches, counters, statistics."""
        self.scheduler.reset()
        self.conformer.reset()
        self.ring.reset()
        self.frames.reset()
        self.smoother.reset()
        self.engine.reset()
        for s in self.latency.values():
            s.reset()
        self.timeline.reset()
        self.counters = Counters()
        self._stop.clear()
        self._active: set[Modality] = set()
        self.info: RunInfo | None = None
        self._last_modalities: tuple[str, ...] | None = None
        self._first_t: float | None = None
        self._last_t: float | None = None
        self._wall_start = time.monotonic()

    def stop(self) -> None:
        """Ask ``run()`` to return after the current event; safe from a signal handler."""
        self._stop.set()

    @property
    def stop_event(self) -> threading.Event:
        """Set by ``stop()``; hand it to anything that sleeps (``PacedSource``, live readers)."""
        return self._stop

    # ------------------------------------------------------------------ driving

    def begin(self, info: SourceInfo) -> RunInfo:
        """Start a run on a source described by ``info`` (``run()`` calls this)."""
        self._active = set(info.modalities)
        self._wall_start = time.monotonic()
        spec = self.spec
        if info.has_audio:
            audio_in = describe_conversion(info.audio_rate_hz, info.audio_channels,
                                           spec.sample_rate, spec.channels)
        else:
            audio_in = "none"
        if info.has_video:
            size = (f"{info.video_width}x{info.video_height}" if info.video_width else "native")
            fps = f" {info.video_fps:g} fps" if info.video_fps else ""
            video_in = (f"{size}{fps} -> {spec.frame_size}x{spec.frame_size}, the frame nearest "
                        f"each {self.windows.frame_period_ms} ms slot")
        else:
            video_in = "none"
        paced = "fast" if self.clock is None else ("live" if info.live else "realtime")
        self.info = RunInfo(
            source=info.name,
            live=info.live,
            source_modalities=tuple(str(m) for m in info.modalities),
            classes=spec.classes,
            providers=self.engine.providers,
            hop_s=self.windows.hop_s,
            window_s=self.windows.window_s,
            audio_in=audio_in,
            video_in=video_in,
            smoothing=asdict(self.config.smoothing),
            paced=paced,
        )
        for sink in self.sinks:
            sink.start(self.info)
        return self.info

    def run(self, source: Source) -> RunSummary:
        """Feed every event of ``source`` through the pipeline until it ends or ``stop()``.

        The source is closed on return. Sinks get ``end()`` even when an error propagates.
        """
        self.begin(source.info)
        reason = "error"
        try:
            for event in source.events():
                self.feed(event)
                if self._stop.is_set():
                    reason = "stop request"
                    break
            else:
                if self._stop.is_set():  # a paced or live source ended because of the stop
                    reason = "stop request"
                else:
                    self.finish()
                    reason = "end of stream"
        except KeyboardInterrupt:
            reason = "interrupt"
        except BrokenPipeError:
            reason = "output closed"
            log.warning("an output was closed by its reader; stopping")
        finally:
            source.close()
            summary = self.summary(reason)
            for sink in self.sinks:
                try:
                    sink.end(summary)
                except BrokenPipeError:
                    pass
        return summary

    def feed(self, event: SourceEvent) -> None:
        """One event in; every window it completes is run before this returns."""
        if isinstance(event, AudioBlock):
            self._media_arrived(Modality.AUDIO, event.t_start)
            for chunk in self.conformer.push(event):
                self.ring.write(chunk.start_index, chunk.samples)
            self._seen(event.t_end)
        elif isinstance(event, VideoFrame):
            self._media_arrived(Modality.VIDEO, event.t)
            self.frames.push(event)
            self._seen(event.t)
        elif isinstance(event, ModalityLost):
            self._lose(event)
        elif isinstance(event, ModalityRestored):
            if event.modality not in self._active:
                log.info("%s restored at %.2f s", event.modality, event.t)
                self._active.add(event.modality)
        elif isinstance(event, CorruptSkipped):
            self.counters.corrupt_packets += event.count
        elif isinstance(event, SamplesDropped):
            self.counters.audio_overflows += 1
            self.counters.audio_samples_dropped += event.n_samples
        elif isinstance(event, FramesDropped):
            self.counters.frames_skipped += event.count
        elif isinstance(event, Idle):
            pass
        else:
            raise TypeError(f"unknown source event {type(event).__name__}")
        self._run_due(final=False)

    def finish(self) -> None:
        """End of stream: release what the resampler holds and run every window left."""
        for chunk in self.conformer.flush():
            self.ring.write(chunk.start_index, chunk.samples)
        self._run_due(final=True)

    # ------------------------------------------------------------------ internals

    def _seen(self, t: float) -> None:
        if self._last_t is None or t > self._last_t:
            self._last_t = t

    def _media_arrived(self, modality: Modality, t: float) -> None:
        if modality not in self._active:
            log.info("%s delivers again at %.2f s", modality, t)
            self._active.add(modality)
        if not self.scheduler.started:
            self.scheduler.start(t)
            self._first_t = t
            first = self.scheduler.pending
            if first is not None:
                self.frames.forget_before(first.slot_keys[0])

    def _lose(self, event: ModalityLost) -> None:
        log.warning("%s lost at %.2f s: %s", event.modality, event.t, event.reason)
        self._active.discard(event.modality)
        if event.modality == Modality.AUDIO:
            for chunk in self.conformer.flush():
                self.ring.write(chunk.start_index, chunk.samples)
        else:
            self.frames.break_run()

    def _end_index(self, w: Window) -> int:
        return round(w.end_ms * self.spec.sample_rate / MS_PER_S)

    def _decide(self, w: Window, final: bool) -> tuple[bool, list[FrameRef] | None] | None:
        """None while the window should wait; else (use audio?, frames or None)."""
        sr = self.spec.sample_rate
        end = self._end_index(w)
        head = self.ring.head
        latest_frame = self.frames.latest_t
        audio_ready = head is not None and head >= end
        video_ready = latest_frame is not None and latest_frame >= w.last_slot_ms / MS_PER_S - SLOT_EPS_S
        if not (audio_ready or video_ready):
            return None
        if not final:
            progress = max(x for x in (None if head is None else head / sr, latest_frame)
                           if x is not None)
            wait = self.config.max_wait_s
            if Modality.AUDIO in self._active and not audio_ready and progress < w.t_end + wait:
                return None
            if (Modality.VIDEO in self._active and not video_ready
                    and progress < w.last_slot_ms / MS_PER_S + wait):
                return None
        use_audio = self.ring.covers(end - self.spec.window_samples, end, self.ring.max_fill)
        refs: list[FrameRef] | None = []
        for key in w.slot_keys:
            ref = self.frames.get(key, final=True)
            if ref is None:
                refs = None
                break
            refs.append(ref)
        return use_audio, refs

    def _run_due(self, final: bool) -> None:
        while True:
            w = self.scheduler.pending
            if w is None:
                return
            decision = self._decide(w, final)
            if decision is None:
                return
            t_ready = time.perf_counter()
            use_audio, refs = decision
            if self.clock is not None and self.clock.now() - w.t_end > self.stale_after_s:
                self.counters.hops_dropped += 1
            elif not use_audio and refs is None:
                self.counters.windows_without_media += 1
            else:
                self._run_window(w, use_audio, refs, t_ready)
            self.scheduler.advance()
            nxt = self.scheduler.pending
            if nxt is not None:
                self.frames.forget_before(nxt.slot_keys[0])

    def _run_window(self, w: Window, use_audio: bool, refs: list[FrameRef] | None,
                    t_ready: float) -> None:
        if use_audio:
            end = self._end_index(w)
            self.ring.read_into(end - self.spec.window_samples, self.engine.waveform[0])
        result = self.engine.infer(use_audio, refs)
        if not np.isfinite(result.probs).all():
            # A model fault (e.g. a graph that takes log(0) on digital silence): never let NaN
            # into the smoother, where it would poison the next N windows; count it instead.
            self.counters.windows_invalid += 1
            if self.counters.windows_invalid == 1 or self.counters.windows_invalid % 100 == 0:
                log.warning("the model gave non-finite %s probabilities for the window at "
                            "%.2f s (%d such windows so far); window skipped", result.branch,
                            w.t_end, self.counters.windows_invalid)
            return
        t0 = time.perf_counter()
        smoothed = self.smoother.update(result.probs)
        t1 = time.perf_counter()
        latency = dict(result.latency_ms)
        latency["smooth"] = (t1 - t0) * 1e3
        latency["total"] = (t1 - t_ready) * 1e3
        if self.clock is not None:
            latency["lag"] = (self.clock.now() - w.t_end) * 1e3
        for stage, ms in latency.items():
            self.latency[stage].add(ms)
        modalities = ((Modality.AUDIO.value,) if use_audio else ()) + (
            (Modality.VIDEO.value,) if refs is not None else ())
        if self._last_modalities is not None and modalities != self._last_modalities:
            self.counters.modality_changes += 1
            log.info("window at %.2f s uses %s", w.t_end, "+".join(modalities))
        self._last_modalities = modalities
        c = self.counters
        c.windows += 1
        c.frames_encoded += result.frames_encoded
        self._sync_counters()
        self.timeline.add(w.t_end, smoothed.label, modalities)
        record = HopRecord(
            window=w.index,
            t=w.t_end,
            label=smoothed.label,
            confidence=smoothed.confidence,
            probs=smoothed.probs.copy(),
            raw_label=smoothed.raw_label,
            raw_confidence=smoothed.raw_confidence,
            raw_probs=result.probs,
            modalities=modalities,
            branch=result.branch,
            frames_encoded=result.frames_encoded,
            latency_ms=latency,
            counters=c.copy(),
            wall_time=time.time(),
            classes=self.spec.classes,
        )
        for sink in self.sinks:
            sink.hop(record)

    def _sync_counters(self) -> None:
        """Pull the counts the buffers keep into ``counters``."""
        c = self.counters
        c.frames_received = self.frames.frames_in
        c.frames_sampled = self.frames.frames_sampled
        c.frames_out_of_order = self.frames.out_of_order
        c.frames_overflowed = self.frames.overflowed
        c.audio_gaps = self.conformer.discontinuities
        c.audio_filled_samples = self.ring.filled_samples
        c.audio_late_samples = self.ring.late_samples

    def summary(self, stopped: str = "end of stream") -> RunSummary:
        self._sync_counters()
        latency = {
            stage: {"p50": s.quantile(0.5), "p99": s.quantile(0.99), "max": s.max_ms if s.n else None}
            for stage, s in self.latency.items() if s.n
        }
        return RunSummary(
            info=self.info,
            windows=self.counters.windows,
            stream_start=self._first_t,
            stream_end=self._last_t,
            wall_seconds=time.monotonic() - self._wall_start,
            latency_ms=latency,
            timeline=self.timeline.segments(),
            timeline_forgotten=self.timeline.forgotten,
            counters=self.counters.copy(),
            stopped=stopped,
        )
