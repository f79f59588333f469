"""A validation subset of the training fold, split by recording location (the DCASE convention).

TAU ships only ``fold1_train`` and ``fold1_evaluate``; choosing checkpoints on ``fold1_evaluate``
and then reporting on it is optimistic. The recipe therefore holds out whole locations of the
training fold: no location has clips on both sides, and every class keeps training clips.

A clip's location is the ``<city>-<location>`` part of its stem
(``<scene>-<city>-<location>-<segment>``), which is meta.csv's ``identifier``.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Final

from training.data.tau import ClipRow
from training.errors import DataError

VALIDATION_SHARE: Final[float] = 0.2
"""Target share of each class's training clips held out (at least one location per class)."""
STEM_FIELDS: Final[int] = 4  # scene, city, location, segment


def location_of(stem: str) -> str:
    """``<city>-<location>`` of a TAU stem such as ``airport-lisbon-1000-40000``."""
    parts = stem.rsplit("-", STEM_FIELDS - 1)
    if len(parts) != STEM_FIELDS or not all(parts):
        raise DataError(f"clip {stem!r} has no location in its name; expected "
                        "<scene>-<city>-<location>-<segment> (the TAU naming)")
    return f"{parts[1]}-{parts[2]}"


@dataclass(frozen=True)
class LocationSplit:
    train: list[ClipRow]
    validation: list[ClipRow]
    validation_locations: tuple[str, ...]

    def summary(self) -> dict[str, object]:
        return {"train_clips": len(self.train), "validation_clips": len(self.validation),
                "validation_locations": list(self.validation_locations)}


def split_by_location(rows: list[ClipRow], share: float = VALIDATION_SHARE,
                      seed: int = 0) -> LocationSplit:
    """Hold out whole locations until every class has about ``share`` of its clips held out.

    Locations are visited in an order fixed by (seed, name); one is held out when a class it
    holds is still short of its target and taking it leaves every class it holds some training
    clips. Raises DataError when a class cannot have locations on both sides.
    """
    if not 0 < share < 1:
        raise ValueError(f"share={share}; expected in (0, 1)")
    by_location: dict[str, list[ClipRow]] = defaultdict(list)
    for row in rows:
        if row.label is None:
            raise DataError(f"clip {row.stem} has no label; expected a labelled training list")
        by_location[location_of(row.stem)].append(row)
    total = Counter(r.label for r in rows)
    target = {c: max(1, round(share * n)) for c, n in total.items()}
    held: Counter[str | None] = Counter()
    chosen: list[str] = []

    def order(name: str) -> str:
        return hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()

    for loc in sorted(by_location, key=order):
        counts = Counter(r.label for r in by_location[loc])
        short = any(held[c] < target[c] for c in counts)
        keeps_training = all(total[c] - held[c] - n > 0 for c, n in counts.items())
        if short and keeps_training:
            chosen.append(loc)
            held.update(counts)
    missing = sorted(str(c) for c in total if held[c] == 0)
    if missing:
        raise DataError(f"classes {missing} have fewer than two training locations; expected "
                        "at least two per class to hold one out for validation (or select on "
                        "the evaluate split)")
    held_out = set(chosen)
    return LocationSplit(
        train=[r for r in rows if location_of(r.stem) not in held_out],
        validation=[r for r in rows if location_of(r.stem) in held_out],
        validation_locations=tuple(sorted(held_out)),
    )
