"""What a recipe run prints at its end: held-out accuracy per class, the pairs it confuses, the
clips it skipped and the wall time of the run and of each step (from its metrics dict)."""

from __future__ import annotations

from typing import Any

from training.progress import clock

SHORT_STEP_S = 60.0
"""Steps shorter than this show their time in seconds; longer ones as H:MM:SS."""


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < SHORT_STEP_S else clock(seconds)


def run_lines(metrics: dict[str, Any]) -> list[str]:
    """What the run left out and the wall time of the whole recipe and of each step, for the
    end of its output."""
    skipped = metrics.get("skipped", {})
    lines = [f"skipped {len(skipped)} clip(s) that could not be used: "
             + "; ".join(f"{stem} ({why})" for stem, why in skipped.items())] if skipped else []
    wall = dict(metrics["wall_seconds"])
    total = wall.pop("total")
    lines.append(f"wall time {duration(total)} in all; per step:")
    lines += [f"  {step:18s} {duration(s)}" for step, s in wall.items()]
    return lines


CONFUSED_PAIRS_SHOWN = 3


def held_out_lines(metrics: dict[str, Any]) -> list[str]:
    """What the recipe measured on the held-out clips or takes, for the end of its output:
    accuracy per class (final output) and the most confused (true -> predicted) pairs."""
    classes = metrics["config"]["classes"]
    lines = [f"held-out accuracy per class (final, {metrics['segments']} 1-s segments):"]
    lines += [f"  {c:18s} {a:.3f}" for c, a in metrics["per_class_accuracy"].items()]
    cm = metrics["confusion"]
    pairs = sorted(((n, classes[i], classes[j]) for i, row in enumerate(cm)
                    for j, n in enumerate(row) if i != j and n), reverse=True)
    shown = ", ".join(f"{t} -> {p} ({n})" for n, t, p in pairs[:CONFUSED_PAIRS_SHOWN])
    lines.append(f"most confused: {shown or 'none'}")
    return lines
