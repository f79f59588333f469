"""History output: label changes and per-minute mean confidence kept in SQLite (``--history``).

What a user asks the next morning ("what was it at 3 am") needs the label changes in clock
time, not the per-hop JSON lines. Two tables (``HISTORY_SCHEMA``): ``changes`` (one row per
label change, and a row with a NULL label when a run ends) and ``minutes`` (per stream, minute
and label shown: the hops' mean confidence). Times are Unix seconds (UTC) plus an ISO 8601 UTC
text column for people reading the file with ``sqlite3``.

The pipeline thread never waits on the disk: ``hop()`` puts rows on a bounded queue; a writer
thread commits what waits (WAL, ``synchronous=FULL``) and only then counts it as ``written`` and
logs it at INFO, so a row reported as written survives the process being killed. A full queue
or a failed write drops the rows and counts them. A file that cannot be opened (not a database,
locked by another program, unwritable) is said in the start-up line and the run goes on
without history, its rows counted as dropped. Old rows go after ``days``; past ``max_bytes``
of used pages the oldest tenth of each table goes, and again until under.
"""

from __future__ import annotations

import logging
import math
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from avstream.errors import AvstreamError
from avstream.outputs.stats import OutputStats, wall_clock_iso
from avstream.results.records import HopRecord, RunInfo
from avstream.results.summary import RunSummary

log = logging.getLogger(__name__)

NAME = "history"
KEYS = ("written", "dropped", "pruned")
"""Rows committed, rows lost (queue full, write failed, file unusable), rows removed by
retention or the size bound."""
SCHEMA_VERSION = 1
SECONDS_PER_MINUTE = 60
SECONDS_PER_DAY = 86_400
BYTES_PER_MB = 1_000_000
DEFAULT_DAYS = 30.0
DEFAULT_MAX_MB = 100.0
PRUNE_FRACTION = 10
"""Past the size bound, 1/PRUNE_FRACTION of each table (the oldest rows) goes per pass."""
OPEN_TIMEOUT_S = 1.0
"""How long opening waits for a lock held by another program before giving up on history."""
WRITE_TIMEOUT_S = 5.0
QUEUE_ROWS = 1024
"""Batches waiting for the writer (about an hour of label changes at one per 4 s); the writer
commits all that wait in one transaction."""
END_JOIN_S = 10.0
HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS changes (
  stream TEXT NOT NULL, time REAL NOT NULL, utc TEXT NOT NULL,
  label TEXT, confidence REAL, t REAL);
CREATE INDEX IF NOT EXISTS changes_by_time ON changes (stream, time);
CREATE TABLE IF NOT EXISTS minutes (
  stream TEXT NOT NULL, minute REAL NOT NULL, utc TEXT NOT NULL, label TEXT NOT NULL,
  mean_confidence REAL NOT NULL, hops INTEGER NOT NULL, PRIMARY KEY (stream, minute, label));
"""
_STOP = None


@dataclass(frozen=True)
class HistoryConfig:
    path: Path
    days: float = DEFAULT_DAYS
    """Rows older than this many days are removed (at start and once a minute)."""
    max_mb: float = DEFAULT_MAX_MB
    """Bound on the pages the rows use, in MB (10^6 bytes)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.days) and self.days > 0):
            raise AvstreamError(f"--history-days {self.days:g}; expected a number of days > 0")
        if not (math.isfinite(self.max_mb) and self.max_mb > 0):
            raise AvstreamError(f"--history-max-mb {self.max_mb:g}; expected a size in MB > 0")


@dataclass(frozen=True)
class _Batch:
    sql: str
    rows: list[tuple[object, ...]]
    what: str
    """For the INFO line: what was committed."""
    minute: bool = False
    """Minute rows (once a minute): retention and the size bound are applied with them."""


def connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    """A connection whose errors are raised at once (the schema is read here)."""
    db = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise sqlite3.DatabaseError(f"schema version {version}, expected {SCHEMA_VERSION}")
        db.executescript(HISTORY_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except BaseException:
        db.close()
        raise
    return db


class HistorySink:
    """Keeps one stream's label changes and minutes in ``config.path``."""

    name = NAME

    def __init__(self, config: HistoryConfig, stream: str, stats: OutputStats) -> None:
        self.config = config
        self.stream = stream
        self.stats = stats
        stats.register(NAME, KEYS)
        self.problem: str | None = None
        self._db: sqlite3.Connection | None = None
        try:
            self._db = connect(config.path, OPEN_TIMEOUT_S)
            self._prune(self._db, time.time())
        except (sqlite3.Error, OSError) as e:
            self.problem = str(e)
            if self._db is not None:
                self._db.close()
                self._db = None
        self._queue: queue.Queue[_Batch | None] = queue.Queue(QUEUE_ROWS)
        self._label: str | None = None
        self._minute: float | None = None
        self._acc: dict[str, list[float]] = {}
        self._last_wall = 0.0
        self._failing = False
        self._thread: threading.Thread | None = None
        if self._db is not None:
            self._db.execute(f"PRAGMA busy_timeout={int(WRITE_TIMEOUT_S * 1000)}")
            self._thread = threading.Thread(target=self._write, args=(self._db,),
                                            name="avstream-history", daemon=True)
            self._thread.start()

    @property
    def description(self) -> str:
        if self.problem is not None:
            return (f"history: {self.config.path} NOT kept ({self.problem}); the run goes on "
                    f"without history, its rows counted as dropped")
        return (f"history: {self.config.path} (stream {self.stream}; {self.config.days:g} days, "
                f"at most {self.config.max_mb:g} MB)")

    # ------------------------------------------------------------------ sink protocol

    def start(self, info: RunInfo) -> None:
        self._label, self._minute, self._acc = None, None, {}

    def hop(self, record: HopRecord) -> None:
        wall = record.wall_time
        self._last_wall = wall
        minute = math.floor(wall / SECONDS_PER_MINUTE) * SECONDS_PER_MINUTE
        if self._minute is not None and minute != self._minute:
            self._flush_minute()
        self._minute = minute
        acc = self._acc.setdefault(record.label, [0.0, 0])
        acc[0] += record.confidence
        acc[1] += 1
        if record.label != self._label:
            self._label = record.label
            self._change(wall, record.label, record.confidence, record.t)

    def end(self, summary: RunSummary) -> None:
        if self._minute is not None:
            self._flush_minute()
            self._change(max(time.time(), self._last_wall), None, None, None)
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(END_JOIN_S)
        if self._db is not None:
            self._db.close()
        summary.outputs[NAME] = self.stats.of(NAME)

    # ------------------------------------------------------------------ rows

    def _change(self, wall: float, label: str | None, confidence: float | None,
                t: float | None) -> None:
        row = (self.stream, wall, wall_clock_iso(wall), label,
               None if confidence is None else round(confidence, 6), t)
        what = f"change {label or '(run ended)'} at {row[2]}"
        self._put(_Batch("INSERT INTO changes VALUES (?, ?, ?, ?, ?, ?)", [row], what))

    def _flush_minute(self) -> None:
        minute = self._minute if self._minute is not None else 0.0
        rows = [(self.stream, minute, wall_clock_iso(minute), label, round(s / n, 6), int(n))
                for label, (s, n) in self._acc.items()]
        self._acc = {}
        self._put(_Batch("INSERT OR REPLACE INTO minutes VALUES (?, ?, ?, ?, ?, ?)", rows,
                         f"minute {wall_clock_iso(minute)} ({len(rows)} labels)", minute=True))

    def _put(self, batch: _Batch) -> None:
        if self._thread is None:
            self.stats.add(NAME, "dropped", len(batch.rows))
            return
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self.stats.add(NAME, "dropped", len(batch.rows))

    def _write(self, db: sqlite3.Connection) -> None:
        """Commit what is queued, in one transaction (fsync'd), then count and log it."""
        stopping = False
        while not stopping:
            batches = [self._queue.get()]
            while len(batches) < QUEUE_ROWS and not self._queue.empty():
                batches.append(self._queue.get_nowait())
            stopping = _STOP in batches
            batches = [b for b in batches if b is not _STOP]
            rows = sum(len(b.rows) for b in batches)
            if not batches:
                continue
            try:
                with db:  # commits, or rolls back on an error
                    db.execute("BEGIN IMMEDIATE")
                    for batch in batches:
                        db.executemany(batch.sql, batch.rows)
                    if any(b.minute for b in batches):
                        self._prune(db, time.time())
            except sqlite3.Error as e:
                self.stats.add(NAME, "dropped", rows)
                if not self._failing:
                    log.warning("history: %s cannot be written (%s); rows are dropped and "
                                "counted until it can", self.config.path, e)
                self._failing = True
                continue
            if self._failing:
                log.warning("history: %s is written again", self.config.path)
                self._failing = False
            self.stats.add(NAME, "written", rows)
            for batch in batches:
                log.info("history: wrote %s", batch.what)

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        """Rows past ``days`` go; then the oldest tenth of each table until under ``max_mb``."""
        cutoff = now - self.config.days * SECONDS_PER_DAY
        pruned = db.execute("DELETE FROM changes WHERE time < ?", (cutoff,)).rowcount
        pruned += db.execute("DELETE FROM minutes WHERE minute < ?", (cutoff,)).rowcount
        while used_bytes(db) > self.config.max_mb * BYTES_PER_MB:
            gone = 0
            for table, col in (("changes", "time"), ("minutes", "minute")):
                n = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608
                gone += db.execute(  # noqa: S608 - fixed table and column names
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                    f"ORDER BY {col} LIMIT ?)", (max(1, n // PRUNE_FRACTION),)).rowcount
            if gone == 0:
                break
            pruned += gone
        if pruned:
            self.stats.add(NAME, "pruned", pruned)


def used_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the pages that hold rows (freed pages are reused, so the file stays bounded)."""
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    free = db.execute("PRAGMA freelist_count").fetchone()[0]
    size = db.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)
