"""One reconnection policy for every capture device: wait, retry, wait longer, up to a bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: ``first_s``, then x ``factor`` each failure, at most
    ``max_s`` (a device back from a reboot is seen within ``max_s`` plus one open)."""

    first_s: float
    factor: float
    max_s: float

    def __post_init__(self) -> None:
        if not (0 < self.first_s <= self.max_s and self.factor >= 1):
            raise ValueError(f"backoff {self}; expected 0 < first_s <= max_s and factor >= 1")

    def after(self, delay_s: float) -> float:
        """The delay that follows a failed attempt made after ``delay_s``."""
        return min(delay_s * self.factor, self.max_s)


RECONNECT: Final[Backoff] = Backoff(first_s=0.25, factor=2.0, max_s=4.0)
"""Camera and microphone alike."""
