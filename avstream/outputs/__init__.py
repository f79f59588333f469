"""Where per-hop results go: typed records, JSON lines, a live terminal view, an exit summary."""

from __future__ import annotations

from typing import Protocol

from avstream.outputs.records import HopRecord, RunInfo
from avstream.outputs.summary import RunSummary


class Sink(Protocol):
    """A consumer of results; the pipeline calls start once, hop per window, end once."""

    def start(self, info: RunInfo) -> None: ...

    def hop(self, record: HopRecord) -> None: ...

    def end(self, summary: RunSummary) -> None: ...
