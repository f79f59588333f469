"""Scoring a label timeline against known scene intervals (a ``synth-stream`` CSV).

Used by the demo to report its accuracy and by the tests. A window is judged by the scene at
its end time t; the ``allowance_s`` after each change is left out of the accuracy (no smoothing
can switch instantly), and the delay until each new scene is first shown is measured instead.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from avstream.errors import MediaError

TRUTH_COLUMNS = ("start_s", "end_s", "scene")
CHANGE_ALLOWANCE_S = 2.0


@dataclass(frozen=True)
class Interval:
    start_s: float
    end_s: float
    scene: str


@dataclass(frozen=True)
class TimelineScore:
    windows: int
    judged: int
    """Windows outside the allowance after a change (those the accuracy is computed on)."""
    correct: int
    accuracy_all: float
    """Over every window, transitions included."""
    change_delays_s: tuple[float | None, ...]
    """Per scene change: seconds until the new scene was first shown (None: never)."""

    @property
    def accuracy(self) -> float:
        return self.correct / self.judged if self.judged else float("nan")


def read_truth_csv(path: Path) -> list[Interval]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not set(TRUTH_COLUMNS) <= set(reader.fieldnames):
                raise MediaError(f"{path}: header {reader.fieldnames}; expected the columns "
                                 f"{', '.join(TRUTH_COLUMNS)}")
            rows = [Interval(float(r["start_s"]), float(r["end_s"]), r["scene"]) for r in reader]
    except OSError as e:
        raise MediaError(f"{path}: cannot be read ({e.strerror})") from e
    except ValueError as e:
        raise MediaError(f"{path}: a start_s/end_s value is not a number ({e})") from e
    if not rows:
        raise MediaError(f"{path}: no intervals; expected at least one row")
    return rows


def scene_at(truth: list[Interval], t: float) -> str | None:
    for iv in truth:
        if iv.start_s <= t < iv.end_s:
            return iv.scene
    return truth[-1].scene if t == truth[-1].end_s else None


def score_timeline(times: list[float], labels: list[str], truth: list[Interval],
                   allowance_s: float = CHANGE_ALLOWANCE_S) -> TimelineScore:
    changes = [(iv.start_s, iv.scene) for iv in truth[1:]]
    in_truth = [(t, lab, scene_at(truth, t)) for t, lab in zip(times, labels, strict=True)]
    in_truth = [(t, lab, s) for t, lab, s in in_truth if s is not None]
    judged = [(t, lab, s) for t, lab, s in in_truth
              if not any(c <= t < c + allowance_s for c, _ in changes)]
    delays: list[float | None] = []
    for c, scene in changes:
        shown = [t for t, lab in zip(times, labels, strict=True) if t >= c and lab == scene]
        delays.append(shown[0] - c if shown else None)
    return TimelineScore(
        windows=len(in_truth),
        judged=len(judged),
        correct=sum(lab == s for _, lab, s in judged),
        accuracy_all=(sum(lab == s for _, lab, s in in_truth) / len(in_truth)) if in_truth else float("nan"),
        change_delays_s=tuple(delays),
    )
