"""A sink that keeps the (time, label) of every hop, for scoring a run against known scenes."""

from __future__ import annotations

from avstream.outputs.records import HopRecord, RunInfo
from avstream.outputs.summary import RunSummary


class TimelineRecorder:
    """Two bounded-by-the-run lists; a replay of N seconds at 5 hops/s keeps 5N pairs."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.labels: list[str] = []

    def start(self, info: RunInfo) -> None:
        self.times.clear()
        self.labels.clear()

    def hop(self, record: HopRecord) -> None:
        self.times.append(record.t)
        self.labels.append(record.label)

    def end(self, summary: RunSummary) -> None:
        pass
