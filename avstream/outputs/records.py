"""Typed records of a run: the counters, what ran, and one result per hop.

``HopRecord.to_json()`` is one JSON line: README "JSON lines output", checked by
avstream/schemas/hop.schema.json. Everything in it is a
function of the stream except ``latency_ms`` and ``wall_time``, so two ``--fast`` replays of one
file give identical lines once those two are removed.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROB_DECIMALS = 6
"""Probabilities in JSON: 1e-6 is far below any decision threshold and keeps lines short."""
MS_DECIMALS = 3


@dataclass
class Counters:
    """Everything the pipeline skipped, dropped, filled or changed: nothing goes uncounted."""

    windows: int = 0
    """Windows inferred (one record each)."""
    hops_dropped: int = 0
    """Windows skipped because inference was behind (live / --realtime): the window waited for
    the engine more than ``stale_after_s`` (default one hop) after its media was complete."""
    windows_late_media: int = 0
    """Windows whose media reached the pipeline more than one hop after the window's end
    (live / --realtime): run as usual, never dropped for it."""
    windows_without_media: int = 0
    """Windows that no modality could fill (a gap in both, or before a modality returned)."""
    windows_invalid: int = 0
    """Windows whose model output was not finite (NaN/inf): skipped, never smoothed."""
    frames_received: int = 0
    frames_sampled: int = 0
    """Frames chosen for a slot and resized (the others are never converted)."""
    frames_encoded: int = 0
    """Frames run through the ``frame`` graph, each sampled frame once: during the run, counted
    with the first window that uses it (so lines depend on the stream alone); in the summary,
    every encode, including frames encoded ahead for a window that never ran."""
    frames_skipped: int = 0
    """Frames the source dropped before the pipeline saw them (camera reader kept a newer one)."""
    frames_out_of_order: int = 0
    frames_overflowed: int = 0
    """Chosen frames evicted from the frame store before use (video far ahead of audio)."""
    corrupt_packets: int = 0
    """Undecodable packets skipped by the source."""
    audio_overflows: int = 0
    """Input overflow reports (audio lost before the pipeline)."""
    audio_samples_dropped: int = 0
    """Samples lost before the pipeline, at the input's own rate."""
    audio_gaps: int = 0
    """Discontinuities in audio timestamps (filled with silence when short, else a restart)."""
    audio_filled_samples: int = 0
    """Model-rate samples of silence put in short gaps."""
    audio_late_samples: int = 0
    """Model-rate samples that arrived for a time already written, and were dropped."""
    audio_nonfinite_samples: int = 0
    """Input sample values (each channel counts) that were NaN or +/-Inf, replaced by silence
    (0.0) before the window: the window runs."""
    modality_changes: int = 0
    """Times the set of modalities used for a window changed."""

    def to_dict(self) -> dict[str, int]:
        return dict(vars(self))  # flat ints: no need for asdict's deep copy every hop

    def copy(self) -> Counters:
        return copy.copy(self)


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
    """The precision of the graphs that run (fp32, int8 or fp16)."""

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
    any (``avstream.outputs.reporter.LATENCY_STAGES``, README "Latency fields")."""
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
