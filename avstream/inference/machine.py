"""The machine a figure was measured on: its CPU's name, as bundles and benchmarks record it."""

from __future__ import annotations

import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpuinfo(field: str) -> str | None:
    """The first value of ``field`` in /proc/cpuinfo (Linux only)."""
    try:
        for line in CPUINFO.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == field and value.strip():
                return value.strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what ``platform`` knows."""
    return cpuinfo("model name") or platform.processor() or platform.machine() or "unknown"
