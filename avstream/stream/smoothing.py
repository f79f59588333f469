"""From per-window probabilities to a label that does not flap.

Three steps, each configurable:
1. Average the last N windows' probabilities (plain mean, or an exponential moving average).
2. Hysteresis: a new label replaces the current one only after it has led the current one by
   ``margin`` for ``hold_hops`` consecutive hops (the "patience" of wake-word detectors).
3. ``unknown`` whenever the best smoothed probability is below ``floor``: no class is believed.
   (The floor looks at the best class, not at the current label, so a scene change is shown as
   the old label held by hysteresis and then the new one, not as a burst of ``unknown``.)

Defaults, at the default 0.2 s hop, chosen against the 2-s budget for showing a scene change.
A change at time c is half-heard by the window ending at c + 0.5; averaging N windows adds
(N - 1) / 2 hops of lag, holding adds K - 1 hops, and the lead must also reach the margin:
- mean over N = 4 windows (0.8 s of hops, 1.8 s of signal): one odd window moves the average
  by at most a quarter; adds 0.3 s of lag.
- hold K = 2 hops and margin 0.1: a challenger must lead clearly on two windows in a row, so two
  classes trading the lead by a hair (look-alike or sound-alike scenes) do not swap the label;
  adds 0.2 s. The delay until each change is shown is measured on the synthetic stream by
  tests/test_replay.py::test_synth_stream_labels_follow_the_scenes (every change within 2 s)
  and printed by ``avstream demo`` ("changes shown, after ... s at most").
- floor 0.3: three times chance with 10 classes. A single modality's typical doubt (two
  look-alike scenes near 0.5 each) still gets a label; a spread-out guess does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from avstream.scenes import UNKNOWN

Method = Literal["mean", "ema"]
METHODS: tuple[str, ...] = ("mean", "ema")


@dataclass(frozen=True)
class SmoothingConfig:
    method: Method = "mean"
    windows: int = 4
    """N: windows averaged (mean), or the span that sets the EMA's alpha = 2 / (N + 1)."""
    margin: float = 0.1
    """Smoothed-probability lead a challenger needs over the current label."""
    hold_hops: int = 2
    """K: consecutive hops the lead must last before the label changes."""
    floor: float = 0.3
    """When the best smoothed probability is below this, the label shown is ``unknown``."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"smoothing method {self.method!r}; expected one of {list(METHODS)}")
        if self.windows < 1:
            raise ValueError(f"smoothing windows {self.windows}; expected >= 1")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"hysteresis margin {self.margin}; expected 0 <= margin < 1")
        if self.hold_hops < 1:
            raise ValueError(f"hysteresis hold {self.hold_hops} hops; expected >= 1")
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError(f"confidence floor {self.floor}; expected 0..1")

    @property
    def ema_alpha(self) -> float:
        return 2.0 / (self.windows + 1.0)


@dataclass(frozen=True, slots=True)
class Smoothed:
    probs: np.ndarray
    """(classes,) float64 smoothed probabilities (a view of the smoother's state: copy to keep)."""
    label: str
    """The label to show: the hysteresis label, or ``unknown`` when no class reaches the floor."""
    confidence: float
    """Smoothed probability of the hysteresis label (of the best class while ``unknown``)."""
    raw_label: str
    """Arg-max of this window alone."""
    raw_confidence: float


class Smoother:
    """Streaming state: the last N probability vectors and the hysteresis state."""

    def __init__(self, config: SmoothingConfig, classes: tuple[str, ...]) -> None:
        self.config = config
        self.classes = classes
        n = len(classes)
        self._history = np.zeros((config.windows, n), dtype=np.float64)
        self._probs = np.zeros(n, dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        self._history[:] = 0.0
        self._probs[:] = 0.0
        self._count = 0
        self._current: int | None = None
        self._challenger: int | None = None
        self._streak = 0

    @property
    def current(self) -> str | None:
        """The hysteresis label (never ``unknown``); None before the first window."""
        return None if self._current is None else self.classes[self._current]

    def _average(self, raw: np.ndarray) -> np.ndarray:
        c = self.config
        if c.method == "ema":
            if self._count == 0:
                self._probs[:] = raw
            else:
                self._probs *= 1.0 - c.ema_alpha
                self._probs += c.ema_alpha * raw
        else:
            self._history[self._count % c.windows] = raw
            filled = min(self._count + 1, c.windows)
            # Summing the held rows afresh (not a running sum) keeps results exactly repeatable.
            np.sum(self._history[:filled], axis=0, out=self._probs)
            self._probs /= filled
        self._count += 1
        return self._probs

    def _hysteresis(self, p: np.ndarray) -> None:
        top = int(np.argmax(p))
        if self._current is None:
            self._current = top
            return
        lead = p[top] - p[self._current]
        if top == self._current or lead <= 0.0 or lead < self.config.margin:
            self._challenger = None
            self._streak = 0
            return
        if top == self._challenger:
            self._streak += 1
        else:
            self._challenger = top
            self._streak = 1
        if self._streak >= self.config.hold_hops:
            self._current = top
            self._challenger = None
            self._streak = 0

    def update(self, raw: np.ndarray) -> Smoothed:
        """Take one window's probabilities (classes,) and return the label to show now."""
        raw_top = int(np.argmax(raw))
        p = self._average(raw)
        self._hysteresis(p)
        top = int(np.argmax(p))
        believed = p[top] >= self.config.floor
        cur = self._current if self._current is not None and believed else top
        return Smoothed(
            probs=p,
            label=self.classes[cur] if believed else UNKNOWN,
            confidence=float(p[cur]),
            raw_label=self.classes[raw_top],
            raw_confidence=float(raw[raw_top]),
        )
