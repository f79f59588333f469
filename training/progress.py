"""Progress of the recipe's steps: a rich bar per step on a terminal, plain log lines elsewhere.

Every step (cache, audio, visual, fusion, finetune, calibration, evaluate) counts its units
(clips decoded, batches trained or predicted) against a total it knows when it starts. On a
terminal each one is a rich bar with the count, the time elapsed and an ETA. Where stderr is not
a terminal (CI, a log file, systemd) bars would fill the log with control codes, so the same
counts become plain log lines: one when the first unit is done (the first ETA), then at most one
every ``PLAIN_EVERY_S``, and one when the step ends. A training step's total is its maximum
epochs: early stopping may end it sooner than its ETA says.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as Bars

log = logging.getLogger(__name__)

PLAIN_EVERY_S: Final[float] = 10.0
"""Seconds between two plain progress lines of one step (its first and last lines aside)."""
LOG_FORMAT: Final[str] = "%(asctime)s %(levelname)s %(name)s: %(message)s"
TERMINAL_LOG_FORMAT: Final[str] = "%(name)s: %(message)s"
"""On a terminal rich's handler shows the time and level itself."""

_console: Console | None = None


def stderr_is_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def stderr_console() -> Console:
    """The one rich console on stderr that bars and log lines share, so that a log line prints
    above the bars instead of through them."""
    global _console
    if _console is None:
        _console = Console(stderr=True)
    return _console


def log_handler() -> logging.Handler:
    """Where a command's log lines go: through the bars' console on a terminal; plain lines on
    stderr otherwise."""
    if stderr_is_terminal():
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=stderr_console(), show_path=False)
        handler.setFormatter(logging.Formatter(TERMINAL_LOG_FORMAT))
        return handler
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    return handler


def clock(seconds: float) -> str:
    """H:MM:SS, as rich's columns show time."""
    s = max(0, round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Task:
    """One step's count: ``advance()`` as units complete, ``note()`` for where it is (an epoch);
    opened and closed by ``Progress.task``."""

    def __init__(self, owner: Progress, label: str, total: int, unit: str) -> None:
        self.owner, self.label, self.total, self.unit = owner, label, max(total, 0), unit
        self.done = 0
        self.detail = ""
        self.started = owner.clock()
        self._last_line: float | None = None
        self._bar: TaskID | None = None

    def advance(self, n: int = 1) -> None:
        self.done += n
        bars = self.owner.bars
        if self._bar is not None and bars is not None:
            bars.advance(self._bar, n)
        elif self.owner.plain:
            now = self.owner.clock()
            if self._last_line is None or now - self._last_line >= self.owner.every_s:
                self._last_line = now
                log.info("%s", self.line(now))

    def note(self, detail: str) -> None:
        self.detail = detail
        bars = self.owner.bars
        if self._bar is not None and bars is not None:
            bars.update(self._bar, description=self.description())

    def description(self) -> str:
        return f"{self.label} ({self.detail})" if self.detail else self.label

    def eta_s(self, now: float) -> float | None:
        """Seconds left at the rate so far (None before the first unit)."""
        if not self.done:
            return None
        return (now - self.started) / self.done * max(self.total - self.done, 0)

    def line(self, now: float) -> str:
        """The plain progress line: count, share, elapsed and ETA."""
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        eta = self.eta_s(now)
        where = f", {self.detail}" if self.detail else ""
        return (f"{self.label}: {self.done}/{self.total} {self.unit}{share}{where}, "
                f"elapsed {clock(now - self.started)}, "
                f"ETA {'?' if eta is None else clock(eta)}")

    def end_line(self, now: float) -> str:
        short = "" if self.done >= self.total else f" of at most {self.total}"
        return (f"{self.label}: done, {self.done}{short} {self.unit} in "
                f"{clock(now - self.started)}")


class Progress:
    """The progress of one run, shown on stderr (``enabled=False``: nothing is shown).

    Bars run only while a task is open: each step's bar stays on the terminal once the step
    is done, with its final count and time."""

    def __init__(self, enabled: bool = True, terminal: bool | None = None,
                 every_s: float = PLAIN_EVERY_S, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.enabled = enabled
        self.terminal = stderr_is_terminal() if terminal is None else terminal
        self.every_s = every_s
        self.clock = clock
        self.bars: Bars | None = None
        self._open = 0

    @property
    def plain(self) -> bool:
        return self.enabled and not self.terminal

    @contextmanager
    def task(self, label: str, total: int, unit: str) -> Iterator[Task]:
        """A step's count while the block runs; its last line (or final bar) when it ends."""
        task = Task(self, label, total, unit)
        if self.enabled and self.terminal:
            task._bar = self._start_bars().add_task(task.description(), total=task.total,
                                                    unit=task.unit)
        try:
            yield task
        finally:
            self._close(task)

    def _start_bars(self) -> Bars:
        if self.bars is None:
            self.bars = Bars(TextColumn("{task.description}"), BarColumn(),
                             MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             console=stderr_console(), redirect_stdout=sys.stdout.isatty())
            self.bars.start()
        self._open += 1
        return self.bars

    def _close(self, task: Task) -> None:
        if task._bar is not None and self.bars is not None:
            # a step that stopped early (or was already done) shows as complete
            self.bars.update(task._bar, total=task.done, completed=task.done)
            self._open -= 1
            if self._open == 0:
                self.bars.stop()
                self.bars = None
        elif self.plain:
            log.info("%s", task.end_line(self.clock()))


SILENT = Progress(enabled=False)
"""For library calls that show nothing."""


def as_progress(progress: Progress | bool) -> Progress:
    """``progress`` itself, or for a bool a Progress of its own (True: shown on stderr)."""
    if isinstance(progress, Progress):
        return progress
    return Progress(enabled=True) if progress else SILENT
