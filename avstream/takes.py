"""A dataset of own places on disk: ``DATASET/<scene>/<take>.<mp4|mkv|wav+mp4>``.

One take is one recording session (the unit validation and evaluation split by). This module
knows the layout only: which scene names are allowed, how a new take is named, where it is
written until it is complete, and what a dataset holds. The training side reads the same layout
with its own reader; they agree by the layout, not by code.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import av

from avstream.errors import AvstreamError

log = logging.getLogger(__name__)

SCENE_NAME: Final[re.Pattern[str]] = re.compile(r"[a-z0-9_]{1,64}")
"""Safe as a folder name on every file system and as an MQTT topic level / Home Assistant
select option: lower-case letters, digits and underscores, at most 64 characters."""
TAKE_SUFFIX: Final[str] = ".mkv"
"""What ``avstream record`` writes: Matroska holds the device's own audio rate and channel
count as PCM, and frames at the times they were captured."""
TAKE_SUFFIXES: Final[tuple[str, ...]] = (".mp4", ".mkv", ".wav")
"""A take is one of these (a ``.wav`` with an ``.mp4`` of the same name is one take)."""
PARTIAL_PREFIX: Final[str] = "."
PARTIAL_SUFFIX: Final[str] = ".partial"
"""A take being written is ``.<take>.mkv.partial`` in its scene folder: hidden, and not a take
suffix, so no reader counts it; it is renamed to ``<take>.mkv`` only once complete."""
TAKE_TIME_FORMAT: Final[str] = "%Y%m%dT%H%M%SZ"


def check_scene_name(name: str) -> str:
    """The scene name, or AvstreamError (exit 2) saying what is allowed."""
    if not SCENE_NAME.fullmatch(name):
        raise AvstreamError(f"scene name {name!r} is not allowed; expected 1-64 characters of "
                            "a-z, 0-9 and _ (safe as a folder name and an MQTT/Home Assistant "
                            "option), e.g. 'living_room'")
    return name


def new_take_path(dataset: Path, scene: str, now: datetime | None = None) -> Path:
    """``DATASET/<scene>/<UTC time>.mkv``, with ``_2``, ``_3``... if that second is taken."""
    stamp = (now or datetime.now(UTC)).strftime(TAKE_TIME_FORMAT)
    folder = dataset / check_scene_name(scene)
    path = folder / f"{stamp}{TAKE_SUFFIX}"
    n = 2
    while path.exists():
        path = folder / f"{stamp}_{n}{TAKE_SUFFIX}"
        n += 1
    return path


def partial_path(take: Path) -> Path:
    """Where ``take`` is written until it is complete (same folder: the rename is atomic)."""
    return take.with_name(f"{PARTIAL_PREFIX}{take.name}{PARTIAL_SUFFIX}")


@dataclass(frozen=True)
class SceneSummary:
    scene: str
    takes: int
    seconds: float
    """Total duration of the scene's takes, seconds."""
    unreadable: tuple[str, ...] = ()
    """Take files that could not be read (named, not counted)."""


def take_seconds(path: Path) -> float:
    """Duration of one take file in seconds (the longest of its streams)."""
    with av.open(str(path)) as container:
        if container.duration is not None:
            return container.duration / av.time_base
        spans = [float(s.duration * s.time_base) for s in container.streams
                 if s.duration is not None and s.time_base is not None]
    return max(spans, default=0.0)


def summarize(dataset: Path) -> list[SceneSummary]:
    """What the dataset holds, scene by scene in name order (hidden and partial files skipped)."""
    out: list[SceneSummary] = []
    if not dataset.is_dir():
        return out
    for folder in sorted(p for p in dataset.iterdir() if p.is_dir() and not p.name.startswith(".")):
        takes: dict[str, float] = {}
        bad: list[str] = []
        for f in sorted(folder.iterdir()):
            if f.name.startswith(PARTIAL_PREFIX) or f.suffix not in TAKE_SUFFIXES:
                continue
            try:
                seconds = take_seconds(f)
            except (av.FFmpegError, OSError, ValueError) as e:
                log.warning("take %s cannot be read: %s", f, e)
                bad.append(f.name)
                continue
            takes[f.stem] = max(takes.get(f.stem, 0.0), seconds)  # wav+mp4: one take
        out.append(SceneSummary(folder.name, len(takes), sum(takes.values()), tuple(bad)))
    return out
