"""What a run did, for the exit summary: windows, the label timeline, latency p50/p99, drops.

Both collectors are bounded so a daemon can run for weeks: latencies go into a fixed
log-spaced histogram (1 % resolution), the timeline keeps its newest segments.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from avstream.errors import AvstreamError
from avstream.results.counters import Counters
from avstream.results.records import MS_DECIMALS, RunInfo

LATENCY_MIN_MS = 0.01
LATENCY_MAX_MS = 100_000.0
LATENCY_BIN_RATIO = 1.01  # 1 % wide bins: p50/p99 to within 1 %
MAX_TIMELINE_SEGMENTS = 10_000
TIME_DECIMALS = 6
"""Stream seconds in JSON: microseconds, as ``t`` in the hop records."""


def _round(x: float | None, decimals: int) -> float | None:
    return None if x is None else round(x, decimals)


class LatencyStats:
    """Quantiles of a stream of durations in a fixed amount of memory."""

    def __init__(self) -> None:
        self._log_ratio = math.log(LATENCY_BIN_RATIO)
        n = int(math.ceil(math.log(LATENCY_MAX_MS / LATENCY_MIN_MS) / self._log_ratio)) + 1
        self._counts = np.zeros(n, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._counts[:] = 0
        self.n = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        v = min(max(ms, LATENCY_MIN_MS), LATENCY_MAX_MS)
        self._counts[int(math.log(v / LATENCY_MIN_MS) / self._log_ratio)] += 1
        self.n += 1
        self.max_ms = max(self.max_ms, ms)

    def quantile(self, q: float) -> float | None:
        """Upper edge of the bin holding the q-quantile; None before any value."""
        if self.n == 0:
            return None
        rank = max(1, math.ceil(q * self.n))
        i = int(np.searchsorted(np.cumsum(self._counts), rank))
        return min(LATENCY_MIN_MS * LATENCY_BIN_RATIO ** (i + 1), self.max_ms)


@dataclass(frozen=True, slots=True)
class Segment:
    start: float
    """Stream seconds of the first window's end with this label."""
    end: float
    """Stream seconds of the last window's end with this label."""
    label: str
    modalities: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, TIME_DECIMALS), "end": round(self.end, TIME_DECIMALS), "label": self.label,
                "modalities": list(self.modalities)}


class Timeline:
    """Runs of equal (label, modalities), newest kept."""

    def __init__(self, max_segments: int = MAX_TIMELINE_SEGMENTS) -> None:
        self._done: deque[Segment] = deque(maxlen=max_segments)
        self.reset()

    def reset(self) -> None:
        self._done.clear()
        self._open: Segment | None = None
        self.forgotten = 0

    def add(self, t: float, label: str, modalities: tuple[str, ...]) -> None:
        cur = self._open
        if cur is not None and cur.label == label and cur.modalities == modalities:
            self._open = Segment(cur.start, t, label, modalities)
            return
        if cur is not None:
            if len(self._done) == self._done.maxlen:
                self.forgotten += 1
            self._done.append(cur)
        self._open = Segment(t, t, label, modalities)

    def segments(self) -> list[Segment]:
        out = list(self._done)
        if self._open is not None:
            out.append(self._open)
        return out


@dataclass(frozen=True)
class RunSummary:
    info: RunInfo | None
    windows: int
    stream_start: float | None
    stream_end: float | None
    wall_seconds: float
    latency_ms: dict[str, dict[str, float | None]]
    """Stage -> {"p50", "p99", "max"} in ms."""
    timeline: list[Segment]
    timeline_forgotten: int
    counters: Counters
    stopped: str
    """Why the run ended: "end of stream", "stop request" (a signal or ``Pipeline.stop()``),
    "interrupt" (a second Ctrl-C), "output closed" (a reader closed the pipe), or "error"."""
    frame_encodes: int = 0
    """Runs of the frame graph, one per frame encoded, including frames encoded ahead for
    windows that were dropped or never ran (``counters.frames_encoded`` counts only the frames
    the windows that ran used). The default 0 is for a summary made without a pipeline."""
    outputs: dict[str, dict[str, int]] = field(default_factory=dict)
    """Network output -> its counts (sent, dropped...); each such sink adds its own entry in
    ``end()`` (README, "Output counters")."""

    def to_dict(self) -> dict[str, Any]:
        """The summary as ``--summary-json`` writes it (avstream/schemas/summary.schema.json)."""
        return {
            "info": None if self.info is None else self.info.to_dict(),
            "windows": self.windows,
            "stream_start": _round(self.stream_start, TIME_DECIMALS),
            "stream_end": _round(self.stream_end, TIME_DECIMALS),
            "wall_seconds": round(self.wall_seconds, MS_DECIMALS),
            "latency_ms": {stage: {k: _round(v, MS_DECIMALS) for k, v in q.items()}
                           for stage, q in self.latency_ms.items()},
            "timeline": [s.to_dict() for s in self.timeline],
            "timeline_forgotten": self.timeline_forgotten,
            "counters": self.counters.to_dict(),
            "frame_encodes": self.frame_encodes,
            "stopped": self.stopped,
            "outputs": {name: dict(counts) for name, counts in self.outputs.items()},
        }

    def render_text(self) -> str:
        """The exit summary as plain lines (the CLI prints it)."""
        lines = [f"summary: {self.windows} windows, ended by {self.stopped}"]
        if self.stream_start is not None and self.stream_end is not None:
            span = self.stream_end - self.stream_start
            speed = f", {span / self.wall_seconds:.1f}x real time" if self.wall_seconds > 0 else ""
            lines.append(f"  stream {self.stream_start:.2f}-{self.stream_end:.2f} s in "
                         f"{self.wall_seconds:.2f} s wall{speed}")
        if self.info is not None:
            lines.append(f"  providers: {self.info.providers_line()}")
        for stage, q in self.latency_ms.items():
            if q.get("p50") is not None:
                lines.append(f"  latency {stage:<6} p50 {q['p50']:.1f} ms  p99 {q['p99']:.1f} ms"
                             f"  max {q['max']:.1f} ms")
        c = self.counters
        lines.append(
            f"  drops: hops {c.hops_dropped}, windows without media {c.windows_without_media}, "
            f"invalid model outputs {c.windows_invalid}, "
            f"corrupt packets {c.corrupt_packets}, frames skipped {c.frames_skipped}, "
            f"audio overflows {c.audio_overflows} ({c.audio_samples_dropped} samples), "
            f"audio gaps {c.audio_gaps}, non-finite audio samples replaced "
            f"{c.audio_nonfinite_samples}"
        )
        for name, counts in self.outputs.items():
            lines.append(f"  output {name}: " + " ".join(f"{k}={v}" for k, v in counts.items()))
        lines.append("  timeline:")
        if self.timeline_forgotten:
            lines.append(f"    ... {self.timeline_forgotten} earlier segments not kept")
        for s in self.timeline:
            lines.append(f"    {s.start:9.2f} - {s.end:9.2f} s  {s.label:<18} "
                         f"[{'+'.join(s.modalities)}]")
        return "\n".join(lines)


def open_summary_json(path: Path) -> TextIO:
    """Open ``path`` for ``write_summary_json`` before the run, so a bad path is refused at once
    (AvstreamError), not after the whole stream."""
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by write_summary_json
    except OSError as e:
        raise AvstreamError(f"--summary-json {path} cannot be written ({e.strerror}); expected "
                            f"a writable file path") from e


def write_summary_json(summary: RunSummary, f: TextIO) -> None:
    """``summary.to_dict()`` as one JSON object into ``f`` (from ``open_summary_json``); closes it."""
    with f:
        f.write(json.dumps(summary.to_dict(), indent=2, allow_nan=False) + "\n")
