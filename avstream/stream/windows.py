"""When windows happen and which frame slots they hold, on the one stream clock.

A window ending at stream time t covers audio [t - 1 s, t) and has frame slots at
t - 1 + i * 0.2 s (i = 0..4), as in training. Window ends lie on the grid k * hop, so a file
whose frames sit on multiples of 0.2 s has every slot land exactly on a frame. All times here
are integer milliseconds: slot keys must compare exactly, and a float grid drifts.

Default hop: one frame period (0.2 s). Each hop then brings exactly one new frame slot, so
a hop costs one frame encode plus the audio and head graphs (the four other frames' features
are cached). A shorter hop re-runs the audio graph with no new picture (and off-grid slots pick
other frames, which cost encodes); a longer one only delays a scene change by up to a hop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from avstream.timebase import (
    FRAME_PERIOD_MS,
    FRAMES_PER_WINDOW,
    MS_PER_S,
    WINDOW_SECONDS,
    exact_div,
)

WINDOW_MS = WINDOW_SECONDS * MS_PER_S  # 1000 ms
DEFAULT_HOP_MS = FRAME_PERIOD_MS  # 200 ms: one new frame slot per hop
MIN_HOP_MS = 10  # below this the audio graph alone would outrun any CPU


def hop_ms_from_seconds(hop_s: float, window_ms: int = WINDOW_MS) -> int:
    """Validate a user's ``--hop`` (seconds) and turn it into whole milliseconds."""
    if not math.isfinite(hop_s) or hop_s <= 0:
        raise ValueError(f"hop {hop_s} s; expected a positive number of seconds")
    hop_ms = round(hop_s * MS_PER_S)
    if abs(hop_ms - hop_s * MS_PER_S) > 1e-6:
        raise ValueError(f"hop {hop_s} s is not a whole number of milliseconds; expected e.g. 0.2")
    if not MIN_HOP_MS <= hop_ms <= window_ms:
        raise ValueError(
            f"hop {hop_s} s; expected between {MIN_HOP_MS / MS_PER_S} s and the window "
            f"({window_ms / MS_PER_S} s): a longer hop would leave audio no window hears"
        )
    return hop_ms


@dataclass(frozen=True)
class WindowSpec:
    hop_ms: int = DEFAULT_HOP_MS
    window_ms: int = WINDOW_MS
    frames_per_window: int = FRAMES_PER_WINDOW
    frame_period_ms: int = field(init=False)
    slot_offsets_ms: tuple[int, ...] = field(init=False, repr=False)
    """Slot times relative to the window's end: -1000, -800, ..., -200 ms."""

    def __post_init__(self) -> None:
        period = exact_div(self.window_ms, self.frames_per_window)
        object.__setattr__(self, "frame_period_ms", period)
        object.__setattr__(self, "slot_offsets_ms", tuple(
            i * period - self.window_ms for i in range(self.frames_per_window)))
        if not MIN_HOP_MS <= self.hop_ms <= self.window_ms:
            raise ValueError(
                f"hop {self.hop_ms} ms; expected {MIN_HOP_MS}..{self.window_ms} ms (the window)"
            )

    @property
    def hop_s(self) -> float:
        return self.hop_ms / MS_PER_S

    @property
    def window_s(self) -> float:
        return self.window_ms / MS_PER_S

    def window(self, index: int) -> Window:
        return Window(index=index, end_ms=index * self.hop_ms, spec=self)


@dataclass(frozen=True, slots=True)
class Window:
    index: int
    """k: the window ends at k * hop on the stream clock."""
    end_ms: int
    spec: WindowSpec

    @property
    def t_end(self) -> float:
        return self.end_ms / MS_PER_S

    @property
    def start_ms(self) -> int:
        return self.end_ms - self.spec.window_ms

    @property
    def t_start(self) -> float:
        return self.start_ms / MS_PER_S

    @property
    def slot_keys(self) -> tuple[int, ...]:
        """Slot times in ms, oldest first."""
        return tuple(self.end_ms + o for o in self.spec.slot_offsets_ms)

    @property
    def last_slot_ms(self) -> int:
        return self.end_ms + self.spec.slot_offsets_ms[-1]


class SlotGrid:
    """Every slot time any window can have: k * hop - window + i * period, as integer ms."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.step_ms = math.gcd(spec.hop_ms, spec.frame_period_ms)
        self._residues = frozenset(o % spec.hop_ms for o in spec.slot_offsets_ms)

    def is_slot(self, key: int) -> bool:
        return key % self.spec.hop_ms in self._residues

    def keys_between(self, lo_ms: float, hi_ms: float) -> Iterator[int]:
        """Slot keys with lo_ms <= key < hi_ms, ascending."""
        step = self.step_ms
        k = math.ceil(lo_ms / step) * step
        while k < hi_ms:
            if self.is_slot(k):
                yield k
            k += step


class WindowScheduler:
    """The next window to run, on the hop grid, starting with the first full window."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.reset()

    def reset(self) -> None:
        self._next: int | None = None

    @property
    def started(self) -> bool:
        return self._next is not None

    def start(self, t_first: float) -> None:
        """The stream's first media is at ``t_first``: the first window ends a window later."""
        if self._next is None:
            first_end_ms = t_first * MS_PER_S + self.spec.window_ms
            self._next = math.ceil(first_end_ms / self.spec.hop_ms - 1e-9)

    @property
    def pending(self) -> Window | None:
        return None if self._next is None else self.spec.window(self._next)

    def advance(self) -> None:
        if self._next is not None:
            self._next += 1
