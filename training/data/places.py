"""A dataset of one's own places: ``DATASET/<scene>/<take>.<mp4|mkv>`` (or ``<take>.wav`` beside
``<take>.mp4``/``.mkv``, the WAV then being the take's audio).

One take is one recording session: it plays the part of TAU's "location", so validation and
evaluation hold out whole takes, never seconds of a take that also trains. The classes are the
scene folders, sorted; each name follows avstream.scenes.NAME_RULE (``[a-z0-9_]+``).

Split rule, per class, with takes ordered by a hash of (seed, scene, take):
  k >= 3 takes: the first is held out for evaluation, the second for validation, the rest train.
  k == 2 takes: the first is held out for evaluation, the other trains, and there is no
  validation take: the evaluation takes choose the epochs and fit the calibration as well (the
  seed's protocol), so the accuracy reported on them is optimistic; the recipe says so.
  k < 2: refused (DataError, exit 2), as are an empty class, a dataset of one class and a
  folder inside a scene folder (a scene name typed with '/').

Files that cannot be decoded (or hold under a second of both streams) are skipped and listed by
the cache build; the split is made on the takes that decoded, and refused only if a class is
then left with fewer than two.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from avstream.scenes import check_scene_name, scene_name_problem
from training.data.tau import SPLIT_FILES, ClipRow, DataReport, TauSplit
from training.errors import DataError

log = logging.getLogger(__name__)

KIND: Final[str] = "own"
VIDEO_SUFFIXES: Final[tuple[str, ...]] = (".mp4", ".mkv")
AUDIO_SUFFIX: Final[str] = ".wav"
MIN_TAKES: Final[int] = 2
"""One to train on and one to evaluate on."""
THREE_WAY_TAKES: Final[int] = 3
"""From this many takes per class on, one more is held out for validation."""
MIN_CLASSES: Final[int] = 2
STEM_SEPARATOR: Final[str] = "-"
"""Cache stems are ``<scene>-<take>``: take names repeat across scenes (take1, take2...)."""
LAYOUT: Final[str] = "DATASET/<scene>/<take>.mp4 (or .mkv; a .wav beside it is its audio)"


@dataclass(frozen=True)
class Take:
    scene: str
    name: str
    video_path: Path
    audio_path: Path
    """The WAV beside the video, or the video file itself (its own audio track)."""

    @property
    def stem(self) -> str:
        return f"{self.scene}{STEM_SEPARATOR}{self.name}"

    def row(self) -> ClipRow:
        return ClipRow(stem=self.stem, audio_path=self.audio_path, video_path=self.video_path,
                       label=self.scene)


@dataclass(frozen=True)
class PlacesDataset:
    root: Path
    takes: dict[str, list[Take]]
    """Scene -> its takes, sorted by name; scenes sorted."""

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.takes)

    def rows(self) -> list[ClipRow]:
        return [t.row() for takes in self.takes.values() for t in takes]


def is_places_root(root: Path) -> bool:
    """A folder without TAU's lists: read as one scene folder per class."""
    return root.is_dir() and not (root / SPLIT_FILES["train"]).parent.is_dir()


def _visible(path: Path) -> bool:
    """Hidden entries (a cache, a take being written under a temporary name) are not data."""
    return not path.name.startswith(".")


def _takes_of(scene_dir: Path, scene: str) -> list[Take]:
    nested = sorted(p.name for p in scene_dir.iterdir() if p.is_dir() and _visible(p))
    if nested:  # a scene name typed with '/' ("living/room") makes one: never skip it quietly
        name = f"{scene}/{nested[0]}"
        raise DataError(f"{scene_dir / nested[0]}: a folder inside scene folder {scene!r} (scene "
                        f"name {name!r} {scene_name_problem(name)}); expected take files only, "
                        f"in the layout {LAYOUT}")
    files = sorted(p for p in scene_dir.iterdir() if p.is_file() and _visible(p))
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for p in files:
        if p.suffix.lower() in VIDEO_SUFFIXES:
            by_stem[p.stem].append(p)
    videos = {stem: ps[0] for stem, ps in by_stem.items()}
    wavs = {p.stem: p for p in files if p.suffix.lower() == AUDIO_SUFFIX}
    other = [p.name for p in files if p.suffix.lower() not in (*VIDEO_SUFFIXES, AUDIO_SUFFIX)]
    if other:
        log.warning("%s: ignored %d file(s) that are not takes: %s", scene_dir, len(other),
                    ", ".join(other))
    twice = sorted(s for s, ps in by_stem.items() if len(ps) > 1)
    if twice:
        raise DataError(f"{scene_dir}: take {twice[0]!r} has more than one video file; expected "
                        f"one video per take ({LAYOUT})")
    lonely = sorted(set(wavs) - set(videos))
    if lonely:
        raise DataError(f"{wavs[lonely[0]]}: a WAV with no video of the same name; expected "
                        f"{lonely[0]}.mp4 or {lonely[0]}.mkv beside it ({LAYOUT})")
    return [Take(scene, name, video, wavs.get(name, video)) for name, video in sorted(videos.items())]


def scan_places(root: str | Path) -> PlacesDataset:
    """Every scene folder and its takes, checked: DataError (one line) for a missing folder, a
    scene name outside the rule, an empty class, a class of one take, or fewer than two classes."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist; expected {LAYOUT} or a TAU root")
    scene_dirs = sorted(p for p in root.iterdir() if p.is_dir() and _visible(p))
    takes: dict[str, list[Take]] = {}
    for d in scene_dirs:
        try:
            scene = check_scene_name(d.name, f"scene folder {d}")
        except ValueError as e:
            raise DataError(str(e)) from None
        takes[scene] = _takes_of(d, scene)
    if len(takes) < MIN_CLASSES:
        found = ", ".join(takes) or "none"
        raise DataError(f"dataset {root} has {len(takes)} scene folder(s) ({found}); expected at "
                        f"least {MIN_CLASSES} classes in the layout {LAYOUT}")
    check_take_counts({s: [t.name for t in ts] for s, ts in takes.items()}, str(root))
    return PlacesDataset(root, takes)


def check_take_counts(takes: dict[str, list[str]], where: str, note: str = "") -> None:
    """DataError naming the first class with no take or a single take."""
    for scene, names in takes.items():
        if len(names) < MIN_TAKES:
            held = f"only {names[0]!r}" if names else "no takes"
            raise DataError(f"{where}: scene {scene!r} has {held}{note}; expected at least "
                            f"{MIN_TAKES} takes (recording sessions) per scene, one to train on "
                            f"and one held out to evaluate")


def take_order(seed: int, take: Take) -> str:
    return hashlib.sha1(f"{seed}:{take.scene}:{take.name}".encode()).hexdigest()


@dataclass(frozen=True)
class TakeSplit:
    train: list[Take]
    validation: list[Take]
    """Empty when some class has only two takes (see ``validation_is_evaluation``)."""
    evaluate: list[Take]

    @property
    def validation_is_evaluation(self) -> bool:
        return not self.validation


def split_takes(takes: dict[str, list[Take]], seed: int = 0) -> TakeSplit:
    """The module's split rule over the given takes (every class must hold >= 2)."""
    check_take_counts({s: [t.name for t in ts] for s, ts in takes.items()}, "dataset")
    three_way = min(len(ts) for ts in takes.values()) >= THREE_WAY_TAKES
    train: list[Take] = []
    validation: list[Take] = []
    evaluate: list[Take] = []
    for ts in takes.values():
        ordered = sorted(ts, key=lambda t: take_order(seed, t))
        evaluate.append(ordered[0])
        if three_way:
            validation.append(ordered[1])
        train.extend(ordered[2 if three_way else 1:])
    return TakeSplit(train, validation, evaluate)


def keep_decoded(dataset: PlacesDataset, kept_stems: Iterable[str], report: DataReport) -> dict[str, list[Take]]:
    """The takes that decoded; DataError if a class is left with fewer than two."""
    kept = set(kept_stems)
    takes = {s: [t for t in ts if t.stem in kept] for s, ts in dataset.takes.items()}
    skipped = "; ".join(f"{stem} ({why})" for stem, why in report.skipped)
    check_take_counts({s: [t.name for t in ts] for s, ts in takes.items()}, str(dataset.root),
                      note=f" that decoded (skipped: {skipped})" if skipped else "")
    return takes


def places_splits(dataset: PlacesDataset, takes: dict[str, list[Take]],
                  seed: int = 0) -> dict[str, TauSplit]:
    """train, evaluate and (with >= 3 takes in every class) validation, as TauSplit records
    (``csv_path`` is the dataset folder: the layout is the list)."""
    cut = split_takes(takes, seed)
    parts = {"train": cut.train, "evaluate": cut.evaluate}
    if not cut.validation_is_evaluation:
        parts["validation"] = cut.validation
    out = {}
    for name, part in parts.items():
        report = DataReport(source=f"{dataset.root} ({name} takes)", rows=len(part), kept=len(part))
        out[name] = TauSplit(name, dataset.root, [t.row() for t in part], report)
    return out


def read_split(root: str | Path, split: str, classes: tuple[str, ...], seed: int = 0) -> TauSplit:
    """One split of either layout: a TAU root's list, or own places' takes as listed (before
    decoding; with two takes in a class, "validation" is the evaluation takes)."""
    root = Path(root)
    if not is_places_root(root):
        from training.data.tau import read_tau_split

        return read_tau_split(root, split, classes)
    dataset = scan_places(root)
    if dataset.classes != tuple(classes):
        raise DataError(f"dataset {root} holds scenes {list(dataset.classes)}; expected the "
                        f"model's classes {list(classes)}")
    splits = places_splits(dataset, dataset.takes, seed)
    splits.setdefault("validation", splits["evaluate"])
    if split not in splits:
        raise DataError(f"dataset {root} has no {split!r} takes; expected one of {sorted(splits)}")
    return splits[split]
