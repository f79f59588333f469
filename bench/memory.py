"""Memory and pace over a long replay: RSS sampled against stream time, its peak, its growth.

Shared by ``bench/throughput.py`` (throughput, CPU and memory) and ``bench/soak.py`` (30 minutes at
live pace).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from avstream.results.records import HopRecord, RunInfo
from avstream.results.summary import RunSummary
from bench.common import finite_or_none

MB = 1024 * 1024
S_PER_MIN = 60.0
RSS_SAMPLE_S = 0.1
"""Period of the peak-RSS thread (wall seconds)."""
GROWTH_SPAN_S = 60.0
"""RSS is compared between the first and the last minute of stream (a third of a short one)."""
TRACE_EVERY_S = 10.0


@dataclass
class ProgressSink:
    """Counts hops and samples RSS every ``every_hops`` hops, so memory is seen against stream
    time however fast the replay runs."""

    every_hops: int = 5
    hops: int = 0
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(stream seconds, RSS bytes)."""
    walls: list[float] = field(default_factory=list)
    """perf_counter seconds at each sample: the pace of the replay, minute by minute."""

    def __post_init__(self) -> None:
        self._proc = psutil.Process()

    def start(self, info: RunInfo) -> None:
        self.info = info

    def hop(self, record: HopRecord) -> None:
        if self.hops % self.every_hops == 0:
            self.samples.append((record.t, float(self._proc.memory_info().rss)))
            self.walls.append(time.perf_counter())
        self.hops += 1

    def end(self, summary: RunSummary) -> None:
        pass


class PeakRss:
    """A thread sampling this process's RSS every ``period_s``: the peak between hops too."""

    def __init__(self, period_s: float = RSS_SAMPLE_S) -> None:
        self.period_s = period_s
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process()
        self._thread = threading.Thread(target=self._loop, name="rss-peak", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.peak = self._proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def rss_growth(samples: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Median RSS over the first and over the last span of stream, and the growth between."""
    if len(samples) < 2:
        return {"rss_first_mb": None, "rss_last_mb": None, "rss_growth_pct": None,
                "growth_span_s": None}
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    t0, t1 = float(t.min()), float(t.max())
    span = min(GROWTH_SPAN_S, (t1 - t0) / 3)
    first = float(np.median(rss[t <= t0 + span]))
    last = float(np.median(rss[t >= t1 - span]))
    return {"rss_first_mb": round(first / MB, 2), "rss_last_mb": round(last / MB, 2),
            "rss_growth_pct": finite_or_none(round(100.0 * (last - first) / first, 3)),
            "growth_span_s": round(span, 2)}


def rss_trace(samples: Sequence[tuple[float, float]]) -> list[list[float]]:
    """One (stream s, MB) point per TRACE_EVERY_S of stream: the shape of memory over the run."""
    out: list[list[float]] = []
    next_t = -math.inf
    for t, rss in samples:
        if t >= next_t:
            out.append([round(t, 1), round(rss / MB, 2)])
            next_t = t + TRACE_EVERY_S
    return out


def rtf_by_minute(samples: Sequence[tuple[float, float]], walls: Sequence[float]) -> list[float]:
    """Wall seconds per stream second over each minute of stream: shows when other processes
    sharing the cores slowed the replay down."""
    out: list[float] = []
    if len(samples) < 2:
        return out
    t = np.array([s[0] for s in samples])
    w = np.asarray(walls)
    edges = np.arange(t[0], t[-1] + 1e-9, S_PER_MIN)
    for a, b in zip(edges, edges[1:], strict=False):
        i, j = int(np.searchsorted(t, a)), int(np.searchsorted(t, b))
        j = min(j, len(t) - 1)
        if j > i and t[j] > t[i]:
            out.append(round(float((w[j] - w[i]) / (t[j] - t[i])), 4))
    return out
