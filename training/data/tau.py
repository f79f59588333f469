"""Reader of the TAU Urban Audio-Visual Scenes 2021 development layout.

    <root>/audio/<stem>.wav, <root>/video/<stem>.mp4, <root>/meta.csv,
    <root>/evaluation_setup/fold1_{train,evaluate,test}.csv

CSVs are tab-separated with the header ``filename_audio  filename_video  scene_label``
(meta.csv adds ``identifier``; the test list may have no label), paths relative to the root,
CRLF tolerated. A malformed list raises DataError; a row whose media is missing is skipped,
logged and counted in the DataReport, never dropped silently.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from avstream.scenes import NAME_RULE, SCENES, scene_name_problem
from training.errors import DataError

log = logging.getLogger(__name__)

SPLIT_FILES: Final[dict[str, str]] = {
    "train": "evaluation_setup/fold1_train.csv",
    "evaluate": "evaluation_setup/fold1_evaluate.csv",
    "test": "evaluation_setup/fold1_test.csv",
    "meta": "meta.csv",
}
COL_AUDIO: Final[str] = "filename_audio"
COL_VIDEO: Final[str] = "filename_video"
COL_LABEL: Final[str] = "scene_label"
REQUIRED_COLUMNS: Final[tuple[str, ...]] = (COL_AUDIO, COL_VIDEO)
LABELLED_SPLITS: Final[frozenset[str]] = frozenset({"train", "evaluate", "meta"})

# Reasons a clip is skipped (keys of DataReport.counts).
MISSING_AUDIO: Final[str] = "missing_audio"
MISSING_VIDEO: Final[str] = "missing_video"
TOO_SHORT: Final[str] = "too_short"
UNDECODABLE: Final[str] = "undecodable"


@dataclass(frozen=True)
class ClipRow:
    """One clip of a list: its stem, absolute media paths, and label (None where unlabelled)."""

    stem: str
    audio_path: Path
    video_path: Path
    label: str | None


@dataclass
class DataReport:
    """What happened to every row: kept, or skipped with a reason. Nothing leaves unaccounted."""

    source: str
    rows: int = 0
    """Rows (clips) considered."""
    kept: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(stem, reason) for every clip left out."""
    counts: Counter[str] = field(default_factory=Counter)
    """Skipped clips per reason kind (missing_audio, missing_video, too_short, undecodable)."""
    corrupt_packets: int = 0
    """Corrupt compressed packets skipped inside clips that were kept (decoding went on)."""

    def skip(self, stem: str, kind: str, detail: str) -> None:
        log.warning("%s: skipped clip %s (%s: %s)", self.source, stem, kind, detail)
        self.skipped.append((stem, f"{kind}: {detail}"))
        self.counts[kind] += 1

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.counts.items())) or "none"
        text = f"{self.source}: {self.kept} of {self.rows} clips kept; skipped: {kinds}"
        if self.corrupt_packets:
            text += f"; {self.corrupt_packets} corrupt packets skipped inside kept clips"
        return text


@dataclass(frozen=True)
class TauSplit:
    """The rows of one list file and the report of what was skipped reading it."""

    name: str
    csv_path: Path
    rows: list[ClipRow]
    report: DataReport


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise DataError(
            f"dataset folder {root} does not exist; expected the TAU AV 2021 development root "
            "holding audio/, video/, meta.csv and evaluation_setup/"
        )


def read_tau_split(root: str | Path, split: str,
                   classes: tuple[str, ...] | None = SCENES) -> TauSplit:
    """Read one of the development lists ("train", "evaluate", "test" or "meta") under ``root``.

    ``classes``: the labels allowed (TAU's ten by default); None allows any label that is a
    valid scene name (avstream.scenes.NAME_RULE), for a set of one's own in the TAU layout."""
    root = Path(root)
    if split not in SPLIT_FILES:
        raise DataError(f"unknown split {split!r}; expected one of {sorted(SPLIT_FILES)}")
    _check_root(root)
    csv_path = root / SPLIT_FILES[split]
    rows, report = read_tau_csv(
        csv_path, root, classes=classes, require_label=split in LABELLED_SPLITS
    )
    return TauSplit(name=split, csv_path=csv_path, rows=rows, report=report)


def tau_classes(root: str | Path) -> tuple[str, ...]:
    """The class list of a TAU-layout root, from the labels its train list holds: TAU's ten
    (in their order) when every label is one of them, else the labels found, sorted."""
    labels = {r.label for r in read_tau_split(root, "train", classes=None).rows if r.label}
    if labels <= set(SCENES):
        return SCENES
    return tuple(sorted(labels))


def read_tau_csv(
    csv_path: str | Path,
    root: str | Path,
    classes: tuple[str, ...] | None = SCENES,
    require_label: bool = True,
) -> tuple[list[ClipRow], DataReport]:
    """Parse a TAU list; media paths in it are relative to ``root`` (absolute paths kept)."""
    csv_path, root = Path(csv_path), Path(root)
    _check_root(root)
    if not csv_path.is_file():
        raise DataError(
            f"list file {csv_path} does not exist; expected a tab-separated TAU list with header "
            f"{COL_AUDIO}<TAB>{COL_VIDEO}<TAB>{COL_LABEL}"
        )
    try:
        # utf-8-sig drops a BOM; newline="" lets csv handle CRLF and LF alike.
        with csv_path.open("r", encoding="utf-8-sig", newline="") as f:
            lines = list(csv.reader(f, delimiter="\t"))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DataError(
            f"list file {csv_path} is not readable as tab-separated UTF-8 text ({e}); "
            "expected a TAU list"
        ) from e
    lines = [[c.strip() for c in line] for line in lines if any(c.strip() for c in line)]
    if not lines:
        raise DataError(f"list file {csv_path} is empty; expected a header line and rows")
    header = lines[0]
    columns = _check_header(csv_path, header, require_label)
    known = None if classes is None else set(classes)
    report = DataReport(source=str(csv_path))
    rows: list[ClipRow] = []
    seen: set[str] = set()
    for line_no, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(header):
            raise DataError(
                f"list file {csv_path} line {line_no} has {len(cells)} tab-separated fields; "
                f"expected {len(header)} ({', '.join(header)})"
            )
        audio_rel = cells[columns[COL_AUDIO]]
        video_rel = cells[columns[COL_VIDEO]]
        stem = Path(audio_rel).stem
        label: str | None = None
        if COL_LABEL in columns:
            label = cells[columns[COL_LABEL]]
            if known is not None and label not in known:
                raise DataError(
                    f"list file {csv_path} line {line_no}: unknown scene label {label!r}; "
                    f"expected one of {', '.join(classes or ())}"
                )
            problem = scene_name_problem(label)
            if known is None and problem is not None:
                raise DataError(f"list file {csv_path} line {line_no}: scene label {label!r} "
                                f"{problem}; expected {NAME_RULE}")
        if stem in seen:
            raise DataError(
                f"list file {csv_path} line {line_no}: clip {stem} is listed twice; "
                "expected each clip once"
            )
        seen.add(stem)
        report.rows += 1
        audio_path, video_path = root / audio_rel, root / video_rel
        if not audio_path.is_file():
            report.skip(stem, MISSING_AUDIO, f"{audio_path} not found")
            continue
        if not video_path.is_file():
            report.skip(stem, MISSING_VIDEO, f"{video_path} not found")
            continue
        rows.append(ClipRow(stem=stem, audio_path=audio_path, video_path=video_path, label=label))
        report.kept += 1
    if report.n_skipped:
        log.warning(report.summary())
    return rows, report


def _check_header(csv_path: Path, header: list[str], require_label: bool) -> dict[str, int]:
    expected = list(REQUIRED_COLUMNS) + ([COL_LABEL] if require_label else [])
    missing = [c for c in expected if c not in header]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing or duplicated:
        problem = f"missing {missing}" if missing else f"duplicated {duplicated}"
        raise DataError(
            f"list file {csv_path} has header {header} ({problem}); "
            f"expected tab-separated columns {', '.join(expected)}"
            + ("" if require_label else f" (optionally {COL_LABEL})")
        )
    return {name: i for i, name in enumerate(header)}
