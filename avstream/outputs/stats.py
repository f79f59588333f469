"""What the network outputs (MQTT, HTTP) sent and dropped, shared by the sinks of one run.

The sinks run beside the pipeline on threads of their own, so their counts are kept here, under a
lock, rather than in the pipeline's ``Counters``. ``/status`` and ``/metrics`` read them live;
each sink copies its own entry into ``RunSummary.outputs`` when the run ends (README, "Output
counters", lists every key).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from typing import Any


class OutputStats:
    """Output name -> counter name -> count; every count starts at 0 when the output registers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    def register(self, output: str, keys: tuple[str, ...]) -> None:
        with self._lock:
            self._counts[output] = dict.fromkeys(keys, 0)

    def add(self, output: str, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[output][key] += n

    def of(self, output: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counts[output])

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {name: dict(counts) for name, counts in self._counts.items()}

    def reset(self) -> None:
        with self._lock:
            for counts in self._counts.values():
                for key in counts:
                    counts[key] = 0


def compact_json(obj: Any) -> str:
    """One line of strict JSON (no NaN), as the JSON lines, MQTT and SSE outputs all write it."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def wall_clock_iso(t: float | None = None) -> str:
    """Unix time ``t`` (default now) as ISO 8601 UTC with milliseconds."""
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).isoformat(
        timespec="milliseconds")
