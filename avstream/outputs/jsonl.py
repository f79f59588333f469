"""JSON lines: one object per hop (avstream/schemas/hop.schema.json), to a file or stdout.

Each line is serialised completely, written with one call and flushed, so a reader tailing
the file (or a pipe) never sees half an object, and a crash loses at most the line being made.

With a rotation (``--jsonl-rotate 100MB`` or ``daily``), a file that would grow past the size,
or that was begun on another UTC day, is closed and renamed ``<stem>.<UTC start><suffix>``
(``hops.20261203T000000Z.jsonl``) before the next line, which begins a new file under the
given name; only the newest ``keep`` renamed files are kept. A file already there at start is
renamed the same way (named by its last change) instead of being overwritten. Without a
rotation the file is overwritten at start and grows for the whole run (about 0.5 GB a day at
the default hop).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from avstream.errors import AvstreamError
from avstream.results.records import HopRecord, RunInfo
from avstream.results.summary import RunSummary

log = logging.getLogger(__name__)

STDOUT = "-"
DAILY = "daily"
SIZE_UNITS = {"kb": 10**3, "mb": 10**6, "gb": 10**9}
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(kb|mb|gb)\s*$", re.IGNORECASE)
ROTATE_FORMS = "a size (500KB, 100MB, 1GB; powers of 1000) or 'daily' (at 00:00 UTC)"
DEFAULT_KEEP = 14
"""Renamed files kept: two weeks of daily files."""
STAMP = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Rotation:
    max_bytes: int | None = None
    """Rotate before a line would make the file larger than this; None: by day."""
    keep: int = DEFAULT_KEEP

    @property
    def daily(self) -> bool:
        return self.max_bytes is None


def parse_rotation(text: str, keep: int = DEFAULT_KEEP) -> Rotation:
    """``100MB`` / ``daily`` -> Rotation; AvstreamError naming --jsonl-rotate otherwise."""
    if keep < 1:
        raise AvstreamError(f"--jsonl-keep {keep}; expected at least 1 renamed file to keep")
    if text.strip().lower() == DAILY:
        return Rotation(None, keep)
    m = SIZE_RE.match(text)
    size = 0 if m is None else int(float(m.group(1)) * SIZE_UNITS[m.group(2).lower()])
    if size < 1:
        raise AvstreamError(f"--jsonl-rotate {text!r}: expected {ROTATE_FORMS}")
    return Rotation(size, keep)


class JsonlSink:
    def __init__(self, target: str | Path, rotation: Rotation | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.target = str(target)
        self._owned = self.target != STDOUT
        self.rotation = rotation
        self._clock = clock
        self.rotated = 0
        self._size = 0
        self._opened = clock()
        if self._owned:
            path = Path(self.target)
            if rotation is not None and path.is_file() and path.stat().st_size:
                self._rename(path.stat().st_mtime)
            self._f: TextIO = self._open()
        else:
            self._f = sys.stdout

    @property
    def to_stdout(self) -> bool:
        return not self._owned

    def _open(self) -> TextIO:
        path = Path(self.target)
        try:
            return open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in end()
        except OSError as e:
            raise AvstreamError(f"--jsonl {path} cannot be written ({e.strerror}); expected a "
                                f"writable file path or '-' for stdout") from e

    def start(self, info: RunInfo) -> None:
        pass

    def hop(self, record: HopRecord) -> None:
        line = json.dumps(record.to_json(), separators=(",", ":"), allow_nan=False) + "\n"
        if self.rotation is not None and self._owned and self._size and self._due(len(line)):
            self._f.close()
            self._rename(self._opened)
            self._f = self._open()
            self._size, self._opened = 0, self._clock()
        self._f.write(line)
        self._f.flush()
        self._size += len(line.encode("utf-8"))

    def _due(self, line_bytes: int) -> bool:
        rotation = self.rotation
        if rotation is None:
            return False
        if rotation.max_bytes is not None:
            return self._size + line_bytes > rotation.max_bytes
        return _utc_day(self._clock()) != _utc_day(self._opened)

    def _rename(self, began: float) -> None:
        """The current file -> ``<stem>.<began, UTC><suffix>``; the oldest beyond ``keep`` go."""
        path = Path(self.target)
        stem = datetime.fromtimestamp(began, UTC).strftime(STAMP)
        dest = path.with_name(f"{path.stem}.{stem}{path.suffix}")
        n = 0
        while dest.exists():
            n += 1
            dest = path.with_name(f"{path.stem}.{stem}-{n}{path.suffix}")
        path.rename(dest)
        self.rotated += 1
        log.info("jsonl: %s rotated to %s", path, dest.name)
        pattern = re.compile(
            rf"{re.escape(path.stem)}\.\d{{8}}T\d{{6}}Z(-\d+)?{re.escape(path.suffix)}")
        old = sorted((p for p in path.parent.iterdir() if pattern.fullmatch(p.name)),
                     key=lambda p: (p.stat().st_mtime, p.name))
        keep = self.rotation.keep if self.rotation is not None else len(old)
        for stale in old[:max(0, len(old) - keep)]:
            stale.unlink(missing_ok=True)

    def end(self, summary: RunSummary) -> None:
        if self._owned:
            self._f.close()
        else:
            self._f.flush()


def _utc_day(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y%m%d")
