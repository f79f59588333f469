"""The one in-memory sink: every record of a run kept, for a program that reads them afterwards.

Used where a whole run's results are wanted in memory: scoring a replay against known scenes
(``avstream demo``), counting a file's labels (``avstream batch``), the benches and the tests. It
grows by one ``HopRecord`` per hop (about 5 a second of stream at the default hop), so it suits
files and bounded runs, not a daemon that runs for days.
"""

from __future__ import annotations

from avstream.results.records import HopRecord, RunInfo
from avstream.results.summary import RunSummary


class Collect:
    """Keeps the run's ``info``, every hop's record (in order, across runs until cleared) and
    the last ``summary``."""

    def __init__(self) -> None:
        self.records: list[HopRecord] = []
        self.info: RunInfo | None = None
        self.summary: RunSummary | None = None

    def start(self, info: RunInfo) -> None:
        self.info = info

    def hop(self, record: HopRecord) -> None:
        self.records.append(record)

    def end(self, summary: RunSummary) -> None:
        self.summary = summary

    @property
    def times(self) -> list[float]:
        """Stream seconds at each record's window end."""
        return [r.t for r in self.records]

    @property
    def labels(self) -> list[str]:
        """Each record's smoothed label."""
        return [r.label for r in self.records]
