"""training/progress.py: plain lines off a terminal (a first ETA, then at most one every 10 s,
then the end), rich bars on a real pseudo-terminal, nothing when disabled."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from training.progress import PLAIN_EVERY_S, Progress

REPO = Path(__file__).resolve().parents[1]
STEP_S = 0.5
"""Fake seconds per batch."""


def run_task(progress: Progress, now: list[float], total: int, done: int) -> None:
    with progress.task("audio", total, "batches") as task:
        task.note("epoch 1/4")
        for _ in range(done):
            now[0] += STEP_S
            task.advance()


def test_off_a_terminal_a_step_logs_its_first_eta_then_every_10_s_then_its_end(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    progress = Progress(terminal=False, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="training.progress"):
        run_task(progress, now, total=100, done=100)  # 50 fake seconds
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "audio: 1/100 batches (1%), epoch 1/4, elapsed 0:00:00, ETA 0:00:50"
    # then one at 10.5, 20.5, 30.5 and 40.5 s (at most one per PLAIN_EVERY_S), and the end
    assert len(lines) == 1 + int((100 * STEP_S - STEP_S) // PLAIN_EVERY_S) + 1, lines
    assert lines[1] == "audio: 21/100 batches (21%), epoch 1/4, elapsed 0:00:10, ETA 0:00:40"
    assert lines[-1] == "audio: done, 100 batches in 0:00:50"


def test_a_step_that_stops_early_says_of_how_many_at_most(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    with caplog.at_level(logging.INFO, logger="training.progress"):
        run_task(Progress(terminal=False, clock=lambda: now[0]), now, total=100, done=30)
    assert caplog.records[-1].getMessage() == "audio: done, 30 of at most 100 batches in 0:00:15"


def test_disabled_progress_shows_nothing(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    with caplog.at_level(logging.INFO, logger="training.progress"):
        run_task(Progress(enabled=False, terminal=False, clock=lambda: now[0]), now, 10, 10)
    assert caplog.records == []


BARS = """
import time
from training.progress import Progress
progress = Progress()
with progress.task("audio", 3, "batches") as task:
    for _ in range(3):
        time.sleep(0.15)
        task.advance()
print("terminal" if progress.terminal else "not a terminal")
"""


def test_on_a_terminal_a_step_is_a_rich_bar_with_count_and_eta() -> None:
    """stderr on a pseudo-terminal: rich draws the bar (control codes), with the count, the
    unit, the elapsed time and the ETA, and no plain log line."""
    master, slave = os.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-c", BARS], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, cwd=REPO, env=env)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        proc.wait(timeout=60)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, text
    assert "terminal" in text and "not a terminal" not in text
    assert "\x1b[" in text  # the bar is redrawn in place
    assert "audio" in text and "3/3" in text and "batches" in text and "ETA" in text
    assert "training.progress" not in text  # no plain log line
