"""--history: label changes and per-minute confidence in SQLite, ``avstream history``, and the
promises around the file (survives SIGKILL, a corrupt or locked file does not stop a run).

Everything runs on real SQLite files in the test's temp dir and real ``avstream`` processes."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_run import avstream, start
from net_env import CLASSES, hop_record, run_info

from avstream.outputs.history import QUEUE_ROWS, HistoryConfig, HistorySink
from avstream.outputs.history_query import parse_since, read_history
from avstream.outputs.stats import OutputStats
from avstream.results.counters import Counters
from avstream.results.summary import RunSummary

HOUR_S = 3600
WROTE_RE = re.compile(r"history: wrote change (\S+) at (\S+)")


def summary() -> RunSummary:
    return RunSummary(info=run_info(), windows=1, stream_start=0.0, stream_end=1.0,
                      wall_seconds=1.0, latency_ms={}, timeline=[], timeline_forgotten=0,
                      counters=Counters(), stopped="end of stream")


def write_hours(path: Path, hours: float, step_s: float = 10.0, scene_s: float = 1800.0,
                stream: str = "test", end: float | None = None,
                confidence: Callable[[float], float] | None = None,
                **config: float) -> OutputStats:
    """``hours`` of hops ending at ``end`` (default now): the label moves on every
    ``scene_s``; confidence 0.8 (``hop_record``) or ``confidence(seconds from the start)``."""
    end = time.time() if end is None else end
    stats = OutputStats()
    sink = HistorySink(HistoryConfig(path, **config), stream, stats)
    sink.start(run_info())
    n = int(hours * HOUR_S / step_s)
    for k in range(n):
        label = CLASSES[int(k * step_s // scene_s) % len(CLASSES)]
        record = dataclasses.replace(hop_record(k, label), wall_time=end - (n - k) * step_s)
        if confidence is not None:
            record = dataclasses.replace(record, confidence=confidence(k * step_s))
        # Faster than any pipeline: give the writer room, so that a loaded machine does not
        # turn this test of retention into one of the full-queue drop (tested on its own).
        while sink._queue.qsize() > QUEUE_ROWS // 2:
            time.sleep(0.001)
        sink.hop(record)
    sink.end(summary())
    return stats


def test_changes_and_minutes_are_kept_and_read_back(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    stats = write_hours(db, 2.0, end=time.time() // 60 * 60)  # 2 h from a minute's start
    counts = stats.of("history")
    with sqlite3.connect(db) as con:
        changes = con.execute("SELECT label, confidence, utc FROM changes ORDER BY time").fetchall()
        minutes = con.execute("SELECT COUNT(*), SUM(hops) FROM minutes").fetchone()
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert [c[0] for c in changes] == ["park", "metro", "tram", "park", None]  # None: run ended
    assert changes[0][2].endswith("+00:00")  # clock time, UTC
    assert minutes == (120, 720)  # 2 h of 10-s hops, over 120 clock minutes
    assert counts == {"written": 4 + 1 + 120, "dropped": 0, "pruned": 0}

    found = read_history(db, parse_since("90m"))
    labels = [s.label for s in found.segments]
    assert labels == ["metro", "tram", "park"]  # metro began before 90 min ago, still on then
    assert [round(s.seconds) for s in found.segments[:2]] == [1800, 1800]
    assert found.segments[2].seconds >= 1790  # to the run's end (when end() was called)
    assert all(s.ended and s.mean_confidence == pytest.approx(0.8) for s in found.segments)


def test_retention_and_size_bound_remove_the_oldest_rows(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    write_hours(db, 1.0, end=time.time() - 3 * 86_400)  # three days old
    write_hours(db, 1.0)
    stats = write_hours(db, 0.1, days=2.0)  # opening with 2 days removes the old hour
    assert stats.of("history")["pruned"] > 60
    with sqlite3.connect(db) as con:
        oldest = con.execute("SELECT MIN(time) FROM changes").fetchone()[0]
    assert oldest > time.time() - 2 * 86_400

    big = tmp_path / "big.db"
    stats = write_hours(big, 24.0, step_s=2.0, scene_s=20.0, max_mb=0.2)
    with sqlite3.connect(big) as con:
        used = (con.execute("PRAGMA page_count").fetchone()[0]
                - con.execute("PRAGMA freelist_count").fetchone()[0]) * 4096
        newest = con.execute("SELECT MAX(time) FROM changes WHERE label IS NOT NULL").fetchone()[0]
    assert used <= 0.2e6 + 4 * 4096, used  # within a few pages of the bound
    assert stats.of("history")["pruned"] > 0 and newest > time.time() - 60  # the newest stay


def test_garbage_file_is_reported_and_hops_counted_as_dropped(tmp_path: Path) -> None:
    db = tmp_path / "garbage.db"
    db.write_bytes(b"this is not a database " * 200)
    before = db.read_bytes()
    stats = OutputStats()
    sink = HistorySink(HistoryConfig(db), "test", stats)
    assert "NOT kept (file is not a database)" in sink.description
    sink.start(run_info())
    for k in range(3):
        sink.hop(hop_record(k, CLASSES[k]))
    sink.end(summary())
    assert stats.of("history") == {"written": 0, "dropped": 3 + 3 + 1, "pruned": 0}  # changes,
    # minute rows (three labels in one minute), the end row
    assert db.read_bytes() == before  # never touched


@pytest.mark.parametrize("damage", ["garbage", "locked"])
def test_a_run_goes_on_without_a_corrupt_or_locked_history(
        damage: str, tiny_bundle: Path, av_file: Path, tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    holder = None
    if damage == "garbage":
        db.write_bytes(bytes(range(256)) * 64)
    else:  # another program holds an exclusive transaction for the whole run
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("CREATE TABLE other (x)")
        holder.execute("BEGIN EXCLUSIVE")
    try:
        done = avstream("replay", str(av_file), "--model", str(tiny_bundle), "--fast",
                        "--no-view", "--history", str(db))
    finally:
        if holder is not None:
            holder.close()
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [ln for ln in done.stderr.splitlines() if "history" in ln]
    reason = "file is not a database" if damage == "garbage" else "database is locked"
    assert lines == [f"avstream: history: {db} NOT kept ({reason}); the run goes on without "
                     f"history, its rows counted as dropped"], done.stderr
    windows = int(re.search(r"(\d+) windows", done.stdout).group(1))
    assert windows > 0
    assert re.search(r"output history: written=0 dropped=[1-9]\d* pruned=0", done.stdout), done.stdout


def test_rows_reported_written_survive_sigkill(trained_bundle: Path,
                                                synth_stream: tuple[Path, Path],
                                                tmp_path: Path) -> None:
    """A realtime replay killed with SIGKILL mid-way loses no row its log said it wrote."""
    mp4, _ = synth_stream
    db = tmp_path / "h.db"
    run = start("-v", "replay", str(mp4), "--model", str(trained_bundle), "--realtime",
                "--no-view", "--history", str(db), workdir=tmp_path, bound_s=120, name="replay")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and run.proc.poll() is None:
            if len(WROTE_RE.findall(run.stderr_text())) >= 3:
                break
            time.sleep(0.05)
        run.kill()  # SIGKILL, mid-way through the 48-s recording
    finally:
        run.kill()
    reported = WROTE_RE.findall(run.stderr_text())
    assert len(reported) >= 3, run.stderr_text()[-3000:]
    assert run.proc.returncode == -9
    with sqlite3.connect(db) as con:
        kept = set(con.execute("SELECT label, utc FROM changes").fetchall())
    assert set(reported) <= kept
    assert all(label is not None for label, _ in kept)  # killed: no end row was written


def test_history_command_prints_the_timeline(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    write_hours(db, 3.0, stream="lobby")
    write_hours(db, 1.0, stream="yard", scene_s=600.0)
    done = avstream("history", str(db), "--since", "100m", "--stream", "lobby")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4 and all(" lobby " in ln for ln in lines), done.stdout  # changes
    # every 30 min: the one on 100 min ago and three since
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  lobby +tram +30m \d\ds  mean confidence "
                    r"0\.80$", lines[-1]), lines[-1]

    as_json = avstream("history", str(db), "--since", "1h", "--json")
    import json

    body = json.loads(as_json.stdout)
    assert {s["stream"] for s in body["segments"]} == {"lobby", "yard"}
    assert all(m["hops"] > 0 for m in body["minutes"])


@pytest.mark.parametrize(("args", "message"), [
    (["--since", "yesterday"], "--since 'yesterday': expected a duration back from now"),
    (["--since", "5 weeks"], "--since '5 weeks': expected a duration back from now"),
])
def test_history_command_bad_since_is_exit_2(args: list[str], message: str,
                                             tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    write_hours(db, 0.1)
    done = avstream("history", str(db), *args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"avstream: error: {message} (90s, 30m, 24h, 7d) "
                                                f"or a UTC date and time (2026-12-03T03:00)"]


def test_history_command_on_a_missing_or_foreign_file_is_exit_2(tmp_path: Path) -> None:
    missing = avstream("history", str(tmp_path / "none.db"))
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE x (y)")
    foreign = avstream("history", str(other))
    assert (missing.returncode, foreign.returncode) == (2, 2)
    assert "no such file; expected a file written by --history PATH" in missing.stderr
    assert "cannot be read (no such table: changes)" in foreign.stderr
    assert "Traceback" not in missing.stderr + foreign.stderr
