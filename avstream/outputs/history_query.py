"""Reading a history file (``avstream/outputs/history.py``): the timeline since a time.

``avstream history`` prints it and ``GET /history`` serves it to the status page, both from
``read_history``: one segment per label change (clock time, label, how long, the hops' mean
confidence from the minute rows), and the minute rows themselves for the confidence line.
"""

from __future__ import annotations

import bisect
import re
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from avstream.errors import AvstreamError
from avstream.outputs.history import SECONDS_PER_DAY, SECONDS_PER_MINUTE
from avstream.outputs.stats import compact_json, wall_clock_iso

UNIT_S = {"s": 1, "m": SECONDS_PER_MINUTE, "h": 3600, "d": SECONDS_PER_DAY}
SINCE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
SINCE_FORMS = ("a duration back from now (90s, 30m, 24h, 7d) or a UTC date and time "
               "(2026-12-03T03:00)")
MAX_SEGMENTS = 10_000
"""Newest segments kept in one answer (a label flipping every few seconds for days)."""


def parse_since(text: str, option: str = "--since", now: float | None = None) -> float:
    """``24h`` or an ISO 8601 time (UTC unless it says otherwise) -> Unix seconds;
    AvstreamError naming ``option`` and the forms it takes otherwise."""
    now = time.time() if now is None else now
    m = SINCE_RE.match(text)
    if m:
        return now - float(m.group(1)) * UNIT_S[m.group(2)]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AvstreamError(f"{option} {text!r}: expected {SINCE_FORMS}") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@dataclass(frozen=True)
class Segment:
    """One label from its change to the next (or to the run's end)."""

    stream: str
    start: float
    """Unix seconds of the change."""
    end: float
    """Unix seconds of the next change, of the run's end, or (``ended`` False) of the last
    minute with a row: the run did not record its end (still running, or killed)."""
    label: str
    mean_confidence: float | None
    """Hop-weighted mean over the minute rows of this label within the segment; the change's
    own confidence when none was written yet."""
    ended: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "start_utc": wall_clock_iso(self.start),
                "end_utc": wall_clock_iso(self.end), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class History:
    since: float
    segments: list[Segment]
    minutes: list[dict[str, Any]]
    """Rows of ``minutes``: stream, minute (Unix s), utc, label, mean_confidence, hops."""
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        return {"since": wall_clock_iso(self.since), "since_unix": self.since,
                "segments": [s.to_json() for s in self.segments], "minutes": self.minutes,
                "truncated": self.truncated}


def open_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection; AvstreamError (one line) for a missing or foreign file."""
    if not path.is_file():
        raise AvstreamError(f"history {path}: no such file; expected a file written by "
                            f"--history PATH")
    try:
        db = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=5.0)
        db.execute("SELECT 1 FROM changes LIMIT 1").fetchall()
    except sqlite3.Error as e:
        raise AvstreamError(f"history {path} cannot be read ({e}); expected a file written "
                            f"by --history PATH") from e
    return db


def read_history(path: Path, since: float, stream: str | None = None,
                 now: float | None = None) -> History:
    """The segments that overlap ``[since, now]`` (the one running at ``since`` included) and
    the minute rows since ``since``, of one stream or of all."""
    now = time.time() if now is None else now
    db = open_read_only(path)
    try:
        where, args = ("", ()) if stream is None else (" AND stream = ?", (stream,))
        try:
            changes = db.execute(
                "SELECT stream, time, label, confidence FROM changes c WHERE (time >= ? OR "
                "time = (SELECT MAX(time) FROM changes WHERE stream = c.stream AND time < ?))"
                f"{where} ORDER BY stream, time", (since, since, *args)).fetchall()
            rows = db.execute(
                "SELECT stream, minute, utc, label, mean_confidence, hops FROM minutes WHERE "
                f"minute >= ?{where} ORDER BY minute, stream, label",
                (since - SECONDS_PER_MINUTE, *args)).fetchall()
        except sqlite3.Error as e:
            raise AvstreamError(f"history {path} cannot be read ({e}); expected a file written "
                                f"by --history PATH") from e
    finally:
        db.close()
    minutes = [dict(zip(("stream", "minute", "utc", "label", "mean_confidence", "hops"), r,
                        strict=True)) for r in rows]
    segments = _segments(changes, minutes, now)
    truncated = len(segments) > MAX_SEGMENTS
    return History(since, segments[-MAX_SEGMENTS:], minutes, truncated)


def _segments(changes: list[tuple[Any, ...]], minutes: list[dict[str, Any]],
              now: float) -> list[Segment]:
    last_minute: dict[str, float] = {}
    by_label: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in minutes:  # ordered by minute
        last_minute[m["stream"]] = m["minute"] + SECONDS_PER_MINUTE
        by_label.setdefault((m["stream"], m["label"]), []).append(m)
    minute_keys: dict[tuple[str, str], list[float]] = {}
    out: list[Segment] = []
    for i, (stream, start, label, confidence) in enumerate(changes):
        if label is None:
            continue
        nxt = changes[i + 1] if i + 1 < len(changes) else None
        if nxt is not None and nxt[0] == stream:
            end, ended = nxt[1], True
        else:
            end, ended = min(now, max(start, last_minute.get(stream, start))), False
        rows = by_label.get((stream, label), [])
        keys = minute_keys.setdefault((stream, label), [m["minute"] for m in rows])
        mean = _mean(rows, keys, start, end, confidence)
        out.append(Segment(stream, start, end, label, mean, ended))
    out.sort(key=lambda s: (s.start, s.stream))
    return out


def _mean(rows: list[dict[str, Any]], keys: list[float], start: float, end: float,
          fallback: float | None) -> float | None:
    """Hop-weighted mean of the minute rows (of one stream and label; ``keys`` their minutes,
    ascending) that overlap ``[start, end)``."""
    inside = rows[bisect.bisect_right(keys, start - SECONDS_PER_MINUTE):
                  bisect.bisect_left(keys, end)]
    hops = sum(m["hops"] for m in inside)
    if not hops:
        return fallback
    return round(sum(m["mean_confidence"] * m["hops"] for m in inside) / hops, 6)


def duration_text(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def render_text(history: History) -> list[str]:
    """One line per segment: UTC start, stream, label, how long, mean confidence."""
    lines = []
    for s in history.segments:
        start = datetime.fromtimestamp(s.start, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        conf = "-" if s.mean_confidence is None else f"{s.mean_confidence:.2f}"
        left = "" if s.ended else "  (no end recorded yet)"
        lines.append(f"{start}  {s.stream:<16} {s.label:<20} {duration_text(s.seconds):>12}  "
                     f"mean confidence {conf}{left}")
    return lines


DEFAULT_PAGE_SINCE = "6h"
JSON_TYPE = "application/json"


def http_answer(path: str | Path | None, stream: str, query: str) -> tuple[HTTPStatus, str, bytes]:
    """``GET /history?since=6h`` of one stream: status, content type and JSON body."""
    since_text = parse_qs(query).get("since", [DEFAULT_PAGE_SINCE])[0]
    code, body = HTTPStatus.OK, {}
    try:
        since = parse_since(since_text, "since")
    except AvstreamError as e:
        code, body = HTTPStatus.BAD_REQUEST, {"error": str(e)}
    if path is None:
        code, body = HTTPStatus.NOT_FOUND, {
            "error": "no history is kept; expected the run started with --history PATH"}
    elif code == HTTPStatus.OK:
        try:
            body = {"stream": stream, **read_history(Path(path), since, stream).to_json()}
        except AvstreamError as e:  # the file went away or is not a history
            code, body = HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(e)}
    return code, JSON_TYPE, compact_json(body).encode()
