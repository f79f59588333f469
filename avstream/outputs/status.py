"""The latest state of one stream, for ``GET /status`` and ``/metrics``: written by the pipeline
thread (``update``), read by HTTP request threads (``snapshot``), never waited on for long."""

from __future__ import annotations

import threading
import time
from typing import Any

from avstream.outputs.stats import OutputStats, wall_clock_iso
from avstream.results.records import RunInfo
from avstream.results.sink import SOURCE_OF_MODALITY
from avstream.results.summary import RunSummary


class StreamStatus:
    def __init__(self, name: str, stats: OutputStats) -> None:
        self.name = name
        self.stats = stats
        self._lock = threading.Lock()
        self._started_wall = time.time()
        self._started = time.monotonic()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._info: RunInfo | None = None
            self._record: dict[str, Any] | None = None
            self._label_since: float | None = None
            self._stopped: str | None = None
            self._sources: dict[str, bool] = {}

    def start(self, info: RunInfo) -> None:
        """A run begins: every input it has is up until the source says it was lost."""
        with self._lock:
            self._info = info
            self._record = None
            self._stopped = None
            self._sources = {SOURCE_OF_MODALITY[m]: True for m in info.source_modalities}

    def update(self, record_json: dict[str, Any]) -> None:
        with self._lock:
            previous = None if self._record is None else self._record.get("label")
            if previous != record_json.get("label") or self._label_since is None:
                self._label_since = record_json.get("wall_time")
            self._record = record_json

    def source_changed(self, source: str, up: bool) -> None:
        with self._lock:
            self._sources[source] = up

    def end(self, summary: RunSummary) -> None:
        """The run ended: its final counters replace the last hop's (the summary also counts
        what came after the last hop, e.g. a window dropped or without media, frames received)."""
        with self._lock:
            self._stopped = summary.stopped
            if self._record is not None:
                self._record = {**self._record, "counters": summary.counters.to_dict()}

    def latest(self) -> dict[str, Any] | None:
        with self._lock:
            return self._record

    def info(self) -> RunInfo | None:
        with self._lock:
            return self._info

    def uptime_s(self) -> float:
        return time.monotonic() - self._started

    def snapshot(self) -> dict[str, Any]:
        """The body of ``GET /status`` (README, "HTTP"; ``sources``: input -> delivering,
        ``wall_time``: Unix time of the latest hop record, ``label_since``: of the record where
        the current label began, ``started_unix``: of ``started``)."""
        with self._lock:
            info, r, stopped, since = self._info, self._record, self._stopped, self._label_since
            sources = dict(self._sources)
        r = r or {}
        return {
            "stream": self.name,
            "running": info is not None and stopped is None,
            "stopped": stopped,
            "source": None if info is None else info.source,
            "paced": None if info is None else info.paced,
            "classes": [] if info is None else list(info.classes),
            "providers": {} if info is None else {k: list(v) for k, v in info.providers.items()},
            "precision": None if info is None else info.precision,
            "hop_s": None if info is None else info.hop_s,
            "t": r.get("t"),
            "window": r.get("window"),
            "label": r.get("label"),
            "confidence": r.get("confidence"),
            "probs": r.get("probs", {}),
            "modalities": r.get("modalities", []),
            "branch": r.get("branch"),
            "latency_ms": r.get("latency_ms", {}),
            "counters": r.get("counters", {}),
            "sources": sources,
            "wall_time": r.get("wall_time"),
            "label_since": since,
            "outputs": self.stats.snapshot(),
            "started": wall_clock_iso(self._started_wall),
            "started_unix": self._started_wall,
            "uptime_s": round(self.uptime_s(), 3),
        }
