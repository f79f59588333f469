"""Source events in, complete windows out: the audio conformer, the ring, the frame store, the
window scheduler and the wait policy, in numpy only.

``WindowAssembler.feed(event)`` returns the windows that event completed, oldest first, each
carrying its own waveform (a copy) and frames, so whatever runs them needs nothing else from
the assembler. A window waits for a lagging modality at most ``max_wait_s`` of stream time
(files interleave audio and video with some skew; a camera can hiccup), after which it is
released with what there is and says so in ``modalities``. A window that no modality can fill
is not released; it is counted in ``windows_without_media``. What the assembler and its buffers
count is its own record (``counts()``: ``AssemblyCounts``), read by the reporter.

The assembler knows nothing of wall clocks, engines or outputs: the same events always give
the same windows.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from avstream.bundle.format import StreamFormat
from avstream.media.frames import resize_frame
from avstream.sources.base import (
    AudioBlock,
    CorruptSkipped,
    FramesDropped,
    Idle,
    Modality,
    ModalityLost,
    ModalityRestored,
    SamplesDropped,
    SourceEvent,
    VideoFrame,
)
from avstream.stream.buffers import AudioRing, FrameRef, FrameStore
from avstream.stream.config import PipelineConfig
from avstream.stream.conform import AudioConformer
from avstream.stream.windows import MS_PER_S, SlotGrid, Window, WindowScheduler, WindowSpec

log = logging.getLogger(__name__)

SLOT_EPS_S = 1e-6
"""Float slack when comparing a container timestamp with a slot time given in whole ms."""
BUFFER_MARGIN_S = 0.5
"""Room in the buffers beyond window + max_wait: one audio block or frame in flight."""


@dataclass(frozen=True, slots=True)
class AssemblyCounts:
    """What the assembler and its buffers counted (``avstream.results.counters.Counters`` says
    what each field means)."""

    windows_without_media: int = 0
    corrupt_packets: int = 0
    audio_overflows: int = 0
    audio_samples_dropped: int = 0
    frames_skipped: int = 0
    frames_received: int = 0
    frames_sampled: int = 0
    frames_out_of_order: int = 0
    frames_overflowed: int = 0
    audio_gaps: int = 0
    audio_filled_samples: int = 0
    audio_late_samples: int = 0
    audio_nonfinite_samples: int = 0


@dataclass(frozen=True, slots=True)
class ReadyWindow:
    """A window whose media is complete (or waited for as long as the policy allows)."""

    window: Window
    waveform: np.ndarray | None
    """(channels, window_samples) float32, owned by this record; None: no usable audio."""
    frames: tuple[FrameRef, ...] | None
    """One frame per slot, oldest first; None: no usable video."""

    @property
    def modalities(self) -> tuple[str, ...]:
        return ((Modality.AUDIO.value,) if self.waveform is not None else ()) + (
            (Modality.VIDEO.value,) if self.frames is not None else ())


class WindowAssembler:
    """Streaming state of one stream's windows; ``reset()`` returns it to a fresh start."""

    def __init__(self, fmt: StreamFormat, config: PipelineConfig) -> None:
        self.format = fmt
        self.config = config
        self.spec = WindowSpec(hop_ms=config.hop_ms, window_ms=fmt.window_ms,
                               frames_per_window=fmt.frames_per_window)
        self.grid = SlotGrid(self.spec)
        self.scheduler = WindowScheduler(self.spec)
        sr = fmt.sample_rate
        span_s = fmt.window_seconds + config.max_wait_s + BUFFER_MARGIN_S
        self.conformer = AudioConformer(sr, fmt.channels, config.audio_continuity_s)
        self.ring = AudioRing(fmt.channels, capacity=math.ceil(span_s * sr),
                              max_fill=round(config.audio_max_fill_s * sr))
        self.frames = FrameStore(
            self.grid,
            capacity=math.ceil(span_s * MS_PER_S / self.grid.step_ms) + fmt.frames_per_window,
            max_distance_s=config.max_frame_distance_s,
            frame_size=fmt.frame_size,
            resize=resize_frame,
        )
        self.reset()

    def reset(self, modalities: tuple[Modality, ...] = (Modality.AUDIO, Modality.VIDEO)) -> None:
        """Forget the stream; ``modalities`` are those the next source says it has."""
        self.scheduler.reset()
        self.conformer.reset()
        self.ring.reset()
        self.frames.reset()
        self.active: set[Modality] = set(modalities)
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.windows_without_media = 0
        self.corrupt_packets = 0
        self.audio_overflows = 0
        self.audio_samples_dropped = 0
        self.frames_skipped = 0

    # ------------------------------------------------------------------ events in

    def feed(self, event: SourceEvent) -> list[ReadyWindow]:
        """One event in; the windows it completed out (oldest first)."""
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
            self.active.add(event.modality)
        elif isinstance(event, CorruptSkipped):
            self.corrupt_packets += event.count
        elif isinstance(event, SamplesDropped):
            self.audio_overflows += 1
            self.audio_samples_dropped += event.n_samples
        elif isinstance(event, FramesDropped):
            self.frames_skipped += event.count
        elif not isinstance(event, Idle):
            raise TypeError(f"unknown source event {type(event).__name__}")
        return self._due(end_of_stream=False)

    def finish(self) -> list[ReadyWindow]:
        """End of stream: release what the resampler holds and every window left."""
        for chunk in self.conformer.flush():
            self.ring.write(chunk.start_index, chunk.samples)
        return self._due(end_of_stream=True)

    def take_decided_frames(self) -> list[FrameRef]:
        """Frames chosen for a slot since the last call: known now, needed by a later window."""
        return self.frames.take_decided()

    def counts(self) -> AssemblyCounts:
        """What the assembler and its buffers have counted so far."""
        return AssemblyCounts(
            windows_without_media=self.windows_without_media,
            corrupt_packets=self.corrupt_packets,
            audio_overflows=self.audio_overflows,
            audio_samples_dropped=self.audio_samples_dropped,
            frames_skipped=self.frames_skipped,
            frames_received=self.frames.frames_in,
            frames_sampled=self.frames.frames_sampled,
            frames_out_of_order=self.frames.out_of_order,
            frames_overflowed=self.frames.overflowed,
            audio_gaps=self.conformer.discontinuities,
            audio_filled_samples=self.ring.filled_samples,
            audio_late_samples=self.ring.late_samples,
            audio_nonfinite_samples=self.conformer.nonfinite_samples,
        )

    # ------------------------------------------------------------------ internals

    def _seen(self, t: float) -> None:
        if self.last_t is None or t > self.last_t:
            self.last_t = t

    def _media_arrived(self, modality: Modality, t: float) -> None:
        if modality not in self.active:
            log.info("%s delivers again at %.2f s", modality, t)
            self.active.add(modality)
        if not self.scheduler.started:
            self.scheduler.start(t)
            self.first_t = t
            first = self.scheduler.pending
            if first is not None:
                self.frames.forget_before(first.slot_keys[0])

    def _lose(self, event: ModalityLost) -> None:
        self.active.discard(event.modality)
        if event.modality == Modality.AUDIO:
            for chunk in self.conformer.flush():
                self.ring.write(chunk.start_index, chunk.samples)
        else:
            self.frames.break_run()

    def _end_index(self, w: Window) -> int:
        return round(w.end_ms * self.format.sample_rate / MS_PER_S)

    def _complete(self, w: Window, end_of_stream: bool) -> bool:
        """The wait policy: is ``w`` as complete as it will get?"""
        head = self.ring.head
        latest_frame = self.frames.latest_t
        last_slot_s = w.last_slot_ms / MS_PER_S
        audio_ready = head is not None and head >= self._end_index(w)
        video_ready = latest_frame is not None and latest_frame >= last_slot_s - SLOT_EPS_S
        if not (audio_ready or video_ready):
            return False
        if end_of_stream:
            return True
        progress = max(x for x in (None if head is None else head / self.format.sample_rate,
                                   latest_frame) if x is not None)
        wait = self.config.max_wait_s
        if Modality.AUDIO in self.active and not audio_ready and progress < w.t_end + wait:
            return False
        return not (Modality.VIDEO in self.active and not video_ready
                    and progress < last_slot_s + wait)

    def _assemble(self, w: Window) -> ReadyWindow:
        end = self._end_index(w)
        n = self.format.window_samples
        waveform = None
        if self.ring.covers(end - n, end, self.ring.max_fill):
            waveform = np.empty((self.format.channels, n), dtype=np.float32)
            self.ring.read_into(end - n, waveform)
        refs: list[FrameRef] = []
        for key in w.slot_keys:
            ref = self.frames.get(key, stop_waiting=True)
            if ref is None:
                break
            refs.append(ref)
        frames = tuple(refs) if len(refs) == len(w.slot_keys) else None
        return ReadyWindow(w, waveform, frames)

    def _due(self, end_of_stream: bool) -> list[ReadyWindow]:
        out: list[ReadyWindow] = []
        while (w := self.scheduler.pending) is not None and self._complete(w, end_of_stream):
            ready = self._assemble(w)
            if ready.waveform is None and ready.frames is None:
                self.windows_without_media += 1
            else:
                out.append(ready)
            self.scheduler.advance()
            nxt = self.scheduler.pending
            if nxt is not None:
                self.frames.forget_before(nxt.slot_keys[0])
        return out
