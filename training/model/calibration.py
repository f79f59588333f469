"""Temperature scaling of the four outputs, applied inside the model (and so inside its graphs).

Every output is a softmax, so scaling its logits by 1/T is ``softmax(log(p) / T)``: the
temperature can be applied to probabilities and undone exactly (``T`` then ``1/T``). The audio
graph reports calibrated audio probabilities (the daemon's audio-only fallback uses them as
they are); the head graph takes those, undoes the audio temperature before late fusion (which
was trained on raw audio probabilities) and calibrates its own three outputs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

OUTPUT_NAMES: tuple[str, ...] = ("final", "early", "audio", "visual")
LOG_FLOOR = torch.finfo(torch.float32).tiny
"""Smallest normal float32: an underflowed probability (0) becomes log(tiny) = -87.3, not -inf."""


def temper(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log(p) / T) over the last axis, in float32; T == 1 returns ``probs`` as given."""
    if temperature == 1.0:
        return probs
    logp = probs.float().clamp_min(LOG_FLOOR).log()
    return torch.softmax(logp / temperature, dim=-1)


@dataclass(frozen=True)
class Temperatures:
    """One temperature per output (1.0: uncalibrated). Fitted on the validation split."""

    final: float = 1.0
    early: float = 1.0
    audio: float = 1.0
    visual: float = 1.0

    def __post_init__(self) -> None:
        for name, t in self.to_dict().items():
            if not (isinstance(t, float | int) and t > 0 and t == t and t != float("inf")):
                raise ValueError(f"temperature {name}={t!r}; expected a finite number > 0")

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Temperatures:
        unknown = sorted(set(d) - set(OUTPUT_NAMES))
        if unknown:
            raise ValueError(f"calibration has unknown outputs {unknown}; expected some of "
                             f"{list(OUTPUT_NAMES)}")
        return cls(**{k: float(v) for k, v in d.items()})

    @property
    def identity(self) -> bool:
        return all(t == 1.0 for t in self.to_dict().values())


UNCALIBRATED = Temperatures()
