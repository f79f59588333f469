"""Bounded stores between the source and the windows: an audio ring and a frame-per-slot table.

Both are indexed on the one stream clock (audio by model-rate sample index, frames by slot
time in milliseconds), both have a fixed capacity chosen from what a window needs plus the
skew the pipeline is willing to wait for, and neither ever grows: what falls out is counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from avstream.media.frames import TIE_S, earlier_is_nearer
from avstream.sources.base import VideoFrame
from avstream.stream.windows import SlotGrid

ResizeFn = Callable[[np.ndarray, int], np.ndarray]

log = logging.getLogger(__name__)


class AudioRing:
    """The last ``capacity`` samples of the stream, at absolute sample indices.

    Writing at an index after the head fills the gap with silence when it is short
    (``max_fill`` samples: a corrupt packet, a capture hiccup), and starts afresh when it is
    longer: audio that was never heard is not made up. Samples older than the head are dropped.
    Reading copies one window into a caller's buffer; the ring itself is never copied.
    """

    def __init__(self, channels: int, capacity: int, max_fill: int) -> None:
        if capacity <= 0 or max_fill < 0:
            raise ValueError(f"ring capacity {capacity} / max_fill {max_fill}; expected > 0 / >= 0")
        self.capacity = capacity
        self.max_fill = max_fill
        self._data = np.zeros((channels, capacity), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        self._data[:] = 0.0
        self.head: int | None = None
        """Absolute index one past the newest sample; None before the first write."""
        self.valid_from = 0
        """First absolute index of the current run of real (or briefly filled) audio."""
        self.filled_samples = 0
        self.late_samples = 0

    @property
    def channels(self) -> int:
        return int(self._data.shape[0])

    def _put(self, start: int, x: np.ndarray) -> None:
        n = x.shape[1]
        if n > self.capacity:
            x = x[:, n - self.capacity :]
            start += n - self.capacity
            n = self.capacity
        i = start % self.capacity
        first = min(n, self.capacity - i)
        self._data[:, i : i + first] = x[:, :first]
        if first < n:
            self._data[:, : n - first] = x[:, first:]

    def _zero(self, start: int, n: int) -> None:
        n = min(n, self.capacity)
        i = start % self.capacity
        first = min(n, self.capacity - i)
        self._data[:, i : i + first] = 0.0
        if first < n:
            self._data[:, : n - first] = 0.0

    def write(self, start: int, x: np.ndarray) -> None:
        """Place (channels, n) samples whose first sample is at absolute index ``start``."""
        n = x.shape[1]
        if self.head is None or start - self.head > self.max_fill:
            if self.head is not None:
                log.debug("audio ring restarts at %d after a gap of %d samples", start,
                          start - self.head)
            self._data[:] = 0.0
            self.head = start
            self.valid_from = start
        elif start > self.head:
            self._zero(self.head, start - self.head)
            self.filled_samples += start - self.head
            self.head = start
        elif start < self.head:
            late = min(self.head - start, n)
            self.late_samples += late
            x = x[:, late:]
            start += late
            n -= late
            if n == 0:
                return
        self._put(start, x)
        self.head = start + n

    def covers(self, start: int, end: int, max_missing: int) -> bool:
        """Whether [start, end) is still held and at most ``max_missing`` leading samples predate
        the current run (the first window of a file whose audio starts a few ms late)."""
        if self.head is None or end > self.head or start < self.head - self.capacity:
            return False
        return self.valid_from - start <= max_missing

    def read_into(self, start: int, out: np.ndarray) -> None:
        """Copy samples [start, start + out.shape[1]) into ``out`` (channels, n); silence before
        the current run."""
        n = out.shape[1]
        if self.head is None or start + n > self.head or start < self.head - self.capacity:
            raise ValueError(
                f"audio [{start}, {start + n}) is not in the ring (holds up to {self.head}, "
                f"capacity {self.capacity})"
            )
        lead = min(max(0, self.valid_from - start), n)
        if lead:
            out[:, :lead] = 0.0
        s = start + lead
        m = n - lead
        i = s % self.capacity
        first = min(m, self.capacity - i)
        out[:, lead : lead + first] = self._data[:, i : i + first]
        if first < m:
            out[:, lead + first :] = self._data[:, : m - first]


@dataclass(slots=True)
class FrameRef:
    """A frame chosen for at least one slot, resized once for the model."""

    seq: int
    """Arrival number in this stream: the frame's identity for the feature cache."""
    t: float
    """Stream seconds."""
    image: np.ndarray
    """(size, size, 3) uint8 RGB, as the frame graph takes it."""


class FrameStore:
    """For each frame slot (ms on the stream clock), the frame nearest to it in time.

    Frames arrive in time order, so a slot is decided as soon as a frame after it has arrived:
    the nearest is that frame or the one before (ties go to the earlier frame, as in training's
    cache); a frame exactly on a slot's time decides that slot on arrival. Only the newest frame is held undecided; frames nearest to no slot are
    never converted or resized. Slots older than ``forget_before`` are let go.
    """

    def __init__(
        self,
        grid: SlotGrid,
        capacity: int,
        max_distance_s: float,
        frame_size: int,
        resize: ResizeFn,
    ) -> None:
        self.grid = grid
        self.capacity = capacity
        self.max_distance_s = max_distance_s
        self.frame_size = frame_size
        self._resize = resize
        self._slots: dict[int, FrameRef] = {}
        self.reset()

    def reset(self) -> None:
        self._slots.clear()
        self._decided: list[FrameRef] = []
        self._pending: tuple[int, VideoFrame] | None = None
        self._pending_ref: FrameRef | None = None
        self._seq = 0
        self._floor_ms = -(2**62)
        self.frames_in = 0
        self.frames_sampled = 0
        self.out_of_order = 0
        self.overflowed = 0

    @property
    def latest_t(self) -> float | None:
        """Timestamp of the newest frame: slots up to here are decided."""
        return None if self._pending is None else self._pending[1].t

    def break_run(self) -> None:
        """The video was lost: the newest frame must not be stretched across the gap."""
        self._pending = None
        self._pending_ref = None

    def _ref(self, seq: int, frame: VideoFrame) -> FrameRef:
        if self._pending_ref is not None and self._pending_ref.seq == seq:
            return self._pending_ref
        ref = FrameRef(seq, frame.t, self._resize(frame.rgb, self.frame_size))
        self.frames_sampled += 1
        self._decided.append(ref)
        if len(self._decided) > self.capacity:  # nobody is taking them: keep the newest
            del self._decided[0]
        return ref

    def take_decided(self) -> list[FrameRef]:
        """Frames resized for a slot since the last call (each once): their features can be
        computed now, before any window that uses them is complete."""
        out, self._decided = self._decided, []
        return out

    def _assign(self, key: int, ref: FrameRef) -> None:
        if key < self._floor_ms:
            return
        if len(self._slots) >= self.capacity and key not in self._slots:
            oldest = min(self._slots)
            del self._slots[oldest]
            self.overflowed += 1
        self._slots[key] = ref

    def push(self, frame: VideoFrame) -> None:
        """Take a new frame (timestamps increasing; an older one is ignored and counted)."""
        self.frames_in += 1
        seq = self._seq
        self._seq += 1
        prev = self._pending
        if prev is not None and frame.t <= prev[1].t:
            log.debug("frame at %.4f s is not after %.4f s: ignored", frame.t, prev[1].t)
            self.out_of_order += 1
            return
        hi_ms = frame.t * 1000.0
        if prev is None:
            lo_ms = hi_ms - self.max_distance_s * 1000.0
        else:
            lo_ms = prev[1].t * 1000.0
        prev_ref: FrameRef | None = None
        new_ref: FrameRef | None = None
        for key in self.grid.keys_between(max(lo_ms, self._floor_ms), hi_ms):
            s = key / 1000.0
            if prev is not None and earlier_is_nearer(s, prev[1].t, frame.t):
                if s - prev[1].t <= self.max_distance_s:
                    prev_ref = prev_ref or self._ref(*prev)
                    self._assign(key, prev_ref)
            elif frame.t - s <= self.max_distance_s:
                new_ref = new_ref or self._ref(seq, frame)
                self._assign(key, new_ref)
        on_slot = round(hi_ms)  # a frame exactly on a slot is that slot's nearest: decided now
        if abs(on_slot - hi_ms) <= TIE_S * 1000.0 and on_slot >= self._floor_ms \
                and self.grid.is_slot(on_slot):
            new_ref = new_ref or self._ref(seq, frame)
            self._assign(on_slot, new_ref)
        self._pending = (seq, frame)
        self._pending_ref = new_ref

    def get(self, key: int, stop_waiting: bool) -> FrameRef | None:
        """The frame for slot ``key``; ``stop_waiting`` lets the newest frame stand in for slots
        after it (end of stream, or the wait policy stopped waiting for more video)."""
        ref = self._slots.get(key)
        if ref is not None or not stop_waiting or self._pending is None:
            return ref
        seq, frame = self._pending
        s = key / 1000.0
        if 0.0 <= s - frame.t <= self.max_distance_s:
            ref = self._ref(seq, frame)
            self._pending_ref = ref
            return ref
        return None

    def forget_before(self, key: int) -> None:
        """Slots before ``key`` will never be asked for again."""
        self._floor_ms = key
        for k in [k for k in self._slots if k < key]:
            del self._slots[k]

    def __len__(self) -> int:
        return len(self._slots)
