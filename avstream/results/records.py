"""Typed records of a run: what ran and one result per hop (the counters: ``avstream.results.counters``).

``HopRecord.to_json()`` is one JSON line: README "JSON lines output", checked by
avstream/schemas/hop.schema.json. Everything in it is a
function of the stream except ``latency_ms`` and ``wall_time``, so two ``--fast`` replays of one
file give identical lines once those two are removed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from avstream.results.counters import Counters

__all__ = ["HopRecord", "RunInfo", "providers_line"]

PROB_DECIMALS = 6
"""Probabilities in JSON: 1e-6 is far below any decision threshold and keeps lines short."""
MS_DECIMALS = 3


@dataclass(frozen=True)
class RunInfo:
    """What the run is made of, reported at start (live view) and in the summary."""

    source: str
    live: bool
    source_modalities: tuple[str, ...]
    classes: tuple[str, ...]
    providers: dict[str, tuple[str, ...]]
    """Graph -> providers ONNX Runtime really runs it on."""
    hop_s: float
    window_s: float
    audio_in: str
    """What the audio input is and what it is converted to, in words."""
    video_in: str
    smoothing: dict[str, Any]
    paced: str
    """"fast", "realtime" or "live"."""
    precision: str = "fp32"
    """The precision of the graphs that run: fp32, int8 or fp16, or one per graph where
    ``--precision auto`` mixes them ('auto: frame int8, audio fp32, head fp32')."""

    def providers_line(self) -> str:
        return providers_line(self.providers)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["providers"] = {k: list(v) for k, v in self.providers.items()}
        return d


@dataclass(frozen=True)
class HopRecord:
    """One window's result."""

    window: int
    """Index k of the window on the hop grid (its end is k x hop)."""
    t: float
    """Stream seconds at the window's end."""
    label: str
    """Smoothed label with hysteresis, or ``unknown`` below the confidence floor."""
    confidence: float
    """Smoothed probability of the hysteresis label."""
    probs: np.ndarray
    """(classes,) smoothed probabilities."""
    raw_label: str
    raw_confidence: float
    raw_probs: np.ndarray
    """(classes,) this window's own probabilities (before smoothing)."""
    modalities: tuple[str, ...]
    """Modalities this window used: ("audio", "video"), ("audio",) or ("video",)."""
    branch: str
    """Output used: final (both), audio (audio only) or visual (video only)."""
    frames_encoded: int
    """Frames this window was the first to use (1 at the default hop; the others' features
    were already known). Each is encoded once, in the background when pipelined."""
    latency_ms: dict[str, float]
    """Per stage (frame, audio, head, smooth), total, delay, and lag behind the wall clock if
    any (``avstream.results.reporter.LATENCY_STAGES``, README "Latency fields")."""
    counters: Counters
    wall_time: float
    """Unix time the record was made."""
    classes: tuple[str, ...] = field(repr=False, default=())
    stream: str | None = None
    """The stream's name under ``avstream serve`` (the JSON's first key then); None otherwise."""

    def to_json(self) -> dict[str, Any]:
        return {
            **({} if self.stream is None else {"stream": self.stream}),
            "t": round(self.t, 6),
            "window": self.window,
            "label": self.label,
            "confidence": round(self.confidence, PROB_DECIMALS),
            "probs": _probs(self.classes, self.probs),
            "raw_label": self.raw_label,
            "raw_confidence": round(self.raw_confidence, PROB_DECIMALS),
            "raw_probs": _probs(self.classes, self.raw_probs),
            "modalities": list(self.modalities),
            "branch": self.branch,
            "frames_encoded": self.frames_encoded,
            "latency_ms": {k: round(v, MS_DECIMALS) for k, v in self.latency_ms.items()},
            "counters": self.counters.to_dict(),
            "wall_time": round(self.wall_time, 6),
        }


def providers_line(providers: Mapping[str, Sequence[str]]) -> str:
    """The providers that really run (each graph's first), sorted, as the start-up line and the
    summary show them."""
    return ", ".join(sorted({p for ps in providers.values() for p in ps[:1]}))


def _probs(classes: tuple[str, ...], p: np.ndarray) -> dict[str, float]:
    return {c: round(float(x), PROB_DECIMALS) for c, x in zip(classes, p, strict=True)}
