"""JSON lines: one object per hop (avstream/schemas/hop.schema.json), to a file or stdout.

Each line is serialised completely, written with one call and flushed, so a reader tailing
the file (or a pipe) never sees half an object, and a crash loses at most the line being made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from avstream.errors import AvstreamError
from avstream.outputs.records import HopRecord, RunInfo
from avstream.outputs.summary import RunSummary

STDOUT = "-"


class JsonlSink:
    def __init__(self, target: str | Path) -> None:
        self.target = str(target)
        self._owned = self.target != STDOUT
        if self._owned:
            path = Path(self.target)
            try:
                self._f: TextIO = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in end()
            except OSError as e:
                raise AvstreamError(f"--jsonl {path} cannot be written ({e.strerror}); expected a "
                                    f"writable file path or '-' for stdout") from e
        else:
            self._f = sys.stdout

    @property
    def to_stdout(self) -> bool:
        return not self._owned

    def start(self, info: RunInfo) -> None:
        pass

    def hop(self, record: HopRecord) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":"), allow_nan=False) + "\n"
        self._f.write(line)
        self._f.flush()

    def end(self, summary: RunSummary) -> None:
        if self._owned:
            self._f.close()
        else:
            self._f.flush()
