"""Decode every clip once into an on-disk cache that all four training steps share.

    <cache_root>/sr<rate>_px<size>/
        index.json             what is cached (and what failed), with each source's size/mtime
        clips/<stem>.audio.npy  (2, seconds * rate) float16 stereo at the model's rate
        clips/<stem>.frames.npy (5 * seconds, size, size, 3) uint8 RGB at 5 fps
        .lock                   held (flock) while a process builds or checks the cache

Decoding H.264 and resampling 24-bit WAV dominate a training epoch if done per step; here they
happen once per (sample rate, frame size), and epochs read memory-mapped arrays. Each file is
written to a temporary name and renamed, and the index is rewritten atomically, so an
interrupted build resumes where it stopped and a reader never sees half a clip. A second
process building the same cache waits on the lock, then finds the work done.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from avstream.errors import MediaError
from avstream.media.audio import read_audio_file
from avstream.media.decode import decode_video_frames
from avstream.scenes import SCENES
from avstream.timebase import VIDEO_FPS
from training.data.files import locked, save_npy_atomic, write_json_atomic
from training.data.tau import (
    MISSING_AUDIO,
    MISSING_VIDEO,
    TOO_SHORT,
    UNDECODABLE,
    ClipRow,
    DataReport,
)
from training.errors import CacheError, DataError
from training.progress import Progress, as_progress

log = logging.getLogger(__name__)

CACHE_VERSION: Final[int] = 1
INDEX_NAME: Final[str] = "index.json"
LOCK_NAME: Final[str] = ".lock"
CLIPS_DIR: Final[str] = "clips"
AUDIO_SUFFIX: Final[str] = ".audio.npy"
FRAMES_SUFFIX: Final[str] = ".frames.npy"
AUDIO_DTYPE: Final[np.dtype] = np.dtype(np.float16)  # half the disk of float32; ~1e-3 relative
LENGTH_TOLERANCE_S: Final[float] = 1e-3
"""A clip measured as 9.9999 s still counts as 10 whole seconds (timestamps round)."""
INDEX_FLUSH_EVERY: Final[int] = 50  # clips between index rewrites during a build


@dataclass(frozen=True)
class CachedClip:
    stem: str
    label_index: int
    """Index into the class list, or -1 for an unlabelled clip."""
    seconds: int
    """Whole seconds cached: floor(min(audio, video) length)."""


def cache_subdir(cache_root: str | Path, sample_rate: int, frame_size: int) -> Path:
    """The folder of one (sample rate, frame size): configs that share both share the cache."""
    return Path(cache_root) / f"sr{sample_rate}_px{frame_size}"


class ClipCache:
    """Read-only view of a built cache: arrays come back memory-mapped, nothing is loaded eagerly."""

    def __init__(
        self,
        directory: Path,
        sample_rate: int,
        frame_size: int,
        clips: list[CachedClip],
        report: DataReport,
        classes: tuple[str, ...] = SCENES,
    ) -> None:
        self.directory = directory
        self.sample_rate = sample_rate
        self.frame_size = frame_size
        self.clips = clips
        self.report = report
        self.classes = classes

    def __len__(self) -> int:
        return len(self.clips)

    def audio_path(self, i: int) -> Path:
        return _audio_file(self.directory, self.clips[i].stem)

    def frames_path(self, i: int) -> Path:
        return _frames_file(self.directory, self.clips[i].stem)

    def audio(self, i: int) -> np.ndarray:
        """(2, seconds * sample_rate) float16, memory-mapped read-only."""
        return np.load(self.audio_path(i), mmap_mode="r")

    def frames(self, i: int) -> np.ndarray:
        """(5 * seconds, frame_size, frame_size, 3) uint8 RGB, memory-mapped read-only."""
        return np.load(self.frames_path(i), mmap_mode="r")


# ----------------------------------------------------------------------------- file layout


def _audio_file(directory: Path, stem: str) -> Path:
    return directory / CLIPS_DIR / f"{stem}{AUDIO_SUFFIX}"


def _frames_file(directory: Path, stem: str) -> Path:
    return directory / CLIPS_DIR / f"{stem}{FRAMES_SUFFIX}"


def _source_signature(row: ClipRow) -> list[int]:
    """Size and mtime of both sources: a regenerated or replaced file is decoded again."""
    a, v = row.audio_path.stat(), row.video_path.stat()
    return [a.st_size, a.st_mtime_ns, v.st_size, v.st_mtime_ns]


# ----------------------------------------------------------------------------- one clip


@dataclass(frozen=True)
class _Outcome:
    stem: str
    seconds: int | None
    """None when skipped."""
    kind: str = ""
    detail: str = ""
    corrupt_packets: int = 0


def _cache_one(row: ClipRow, directory: Path, sample_rate: int, frame_size: int) -> _Outcome:
    """Decode one clip, cut it to whole seconds, and write its two arrays (in a worker or not)."""
    try:
        audio = read_audio_file(row.audio_path, sample_rate)
        video = decode_video_frames(row.video_path, frame_size, fps=VIDEO_FPS)
    except MediaError as e:
        return _Outcome(row.stem, None, UNDECODABLE, str(e))
    corrupt = audio.skipped_packets + video.skipped_packets
    audio_s = audio.samples.shape[1] / sample_rate
    seconds = math.floor(min(audio_s, video.end_s) + LENGTH_TOLERANCE_S)
    seconds = min(seconds, len(video.frames) // VIDEO_FPS)
    if seconds < 1:
        return _Outcome(
            row.stem,
            None,
            TOO_SHORT,
            f"audio {audio_s:.3f} s, video {video.end_s:.3f} s; expected at least 1 s of both",
            corrupt,
        )
    n = seconds * sample_rate
    samples = audio.samples[:, :n]
    if samples.shape[1] < n:  # within LENGTH_TOLERANCE_S of a whole second: pad the rounding
        samples = np.pad(samples, ((0, 0), (0, n - samples.shape[1])))
    frames = video.frames[: seconds * VIDEO_FPS]
    save_npy_atomic(_audio_file(directory, row.stem), samples.astype(AUDIO_DTYPE))
    save_npy_atomic(_frames_file(directory, row.stem), np.ascontiguousarray(frames))
    return _Outcome(row.stem, seconds, corrupt_packets=corrupt)


# ----------------------------------------------------------------------------- the build


def _empty_index(sample_rate: int, frame_size: int) -> dict[str, Any]:
    return {
        "version": CACHE_VERSION,
        "sample_rate": sample_rate,
        "frame_size": frame_size,
        "video_fps": VIDEO_FPS,
        "audio_dtype": AUDIO_DTYPE.name,
        "clips": {},
        "failed": {},
    }


def _load_index(directory: Path, sample_rate: int, frame_size: int) -> dict[str, Any]:
    path = directory / INDEX_NAME
    if not path.is_file():
        return _empty_index(sample_rate, frame_size)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CacheError(
            f"cache index {path} is unreadable ({e}); expected JSON written by build_cache "
            "(delete the folder to rebuild it)"
        ) from e
    expected = {
        "version": CACHE_VERSION,
        "sample_rate": sample_rate,
        "frame_size": frame_size,
        "video_fps": VIDEO_FPS,
    }
    found = {k: index.get(k) for k in expected}
    if found != expected:
        raise CacheError(
            f"cache index {path} describes {found}; expected {expected} "
            "(delete the folder to rebuild it)"
        )
    index.setdefault("clips", {})
    index.setdefault("failed", {})
    return index


def _is_done(
    entry: dict[str, Any] | None, signature: list[int], directory: Path, stem: str
) -> bool:
    return (
        entry is not None
        and entry.get("source") == signature
        and _audio_file(directory, stem).is_file()
        and _frames_file(directory, stem).is_file()
    )


def build_cache(
    rows: Sequence[ClipRow],
    cache_dir: str | Path,
    sample_rate: int,
    frame_size: int,
    progress: Progress | bool = True,
    classes: tuple[str, ...] = SCENES,
    workers: int = 1,
) -> ClipCache:
    """Cache ``rows`` under ``cache_dir``/sr<rate>_px<size>/ and return a read-only view.

    Clips already cached from the same source files are not decoded again; a clip whose source
    changed, or whose arrays were deleted, is. Undecodable and shorter-than-1-s clips are
    skipped, logged and counted in ``report`` (remembered in the index, so they are not retried
    until their source changes). ``workers`` > 1 decodes in that many processes. ``progress``
    shows the clips decoded (training/progress.py; False: nothing shown).
    """
    if sample_rate % VIDEO_FPS:
        raise DataError(
            f"sample_rate={sample_rate} Hz is not a multiple of {VIDEO_FPS} fps; expected audio "
            "samples to line up with video frames"
        )
    stems = [r.stem for r in rows]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})[:5]
        raise DataError(f"clip list names {dup} more than once; expected each clip once")
    labels = {c: i for i, c in enumerate(classes)}
    for r in rows:
        if r.label is not None and r.label not in labels:
            raise DataError(f"clip {r.stem} has label {r.label!r}; expected one of {classes}")
    directory = cache_subdir(cache_dir, sample_rate, frame_size)
    try:
        (directory / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(
            f"cache folder {directory} cannot be created ({e}); expected a writable cache root"
        ) from e
    report = DataReport(source=str(directory))
    report.rows = len(rows)
    present: list[ClipRow] = []
    for r in rows:  # lists are checked when read, but files can vanish before the build
        if not r.audio_path.is_file():
            report.skip(r.stem, MISSING_AUDIO, f"{r.audio_path} not found")
        elif not r.video_path.is_file():
            report.skip(r.stem, MISSING_VIDEO, f"{r.video_path} not found")
        else:
            present.append(r)
    rows = present
    with locked(directory, LOCK_NAME) as writable:
        index = _load_index(directory, sample_rate, frame_size)
        signatures = {r.stem: _source_signature(r) for r in rows}
        todo = [
            r
            for r in rows
            if not _is_done(index["clips"].get(r.stem), signatures[r.stem], directory, r.stem)
            and index["failed"].get(r.stem, {}).get("source") != signatures[r.stem]
        ]
        if todo and not writable:
            raise CacheError(
                f"cache {directory} lacks {len(todo)} clips and is not writable; expected a "
                "writable folder to build it in"
            )
        if todo:
            log.info("caching %d of %d clips into %s", len(todo), len(rows), directory)
            _run(todo, index, signatures, directory, sample_rate, frame_size,
                 as_progress(progress), workers)
    clips: list[CachedClip] = []
    for r in rows:
        failed = index["failed"].get(r.stem)
        if failed is not None and failed.get("source") == signatures[r.stem]:
            report.skip(r.stem, failed["kind"], failed["detail"])
            report.corrupt_packets += failed.get("corrupt_packets", 0)
            continue
        entry = index["clips"][r.stem]
        report.corrupt_packets += entry.get("corrupt_packets", 0)
        report.kept += 1
        label = -1 if r.label is None else labels[r.label]
        clips.append(CachedClip(stem=r.stem, label_index=label, seconds=int(entry["seconds"])))
    if report.n_skipped or report.corrupt_packets:
        log.warning(report.summary())
    return ClipCache(directory, sample_rate, frame_size, clips, report, classes)


def _run(
    todo: list[ClipRow],
    index: dict[str, Any],
    signatures: dict[str, list[int]],
    directory: Path,
    sample_rate: int,
    frame_size: int,
    progress: Progress,
    workers: int,
) -> None:
    """Decode ``todo``, recording each outcome in the index (flushed every few clips and at exit)."""
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        if pool is None:
            outcomes: Iterator[_Outcome] = (
                _cache_one(r, directory, sample_rate, frame_size) for r in todo
            )
        else:
            n = len(todo)
            outcomes = pool.map(
                _cache_one, todo, [directory] * n, [sample_rate] * n, [frame_size] * n
            )
        with progress.task(f"cache ({directory.name})", len(todo), "clips") as bar:
            for done, outcome in enumerate(outcomes, start=1):
                _record(index, outcome, signatures[outcome.stem])
                bar.advance()
                if done % INDEX_FLUSH_EVERY == 0:
                    write_json_atomic(directory / INDEX_NAME, index)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        write_json_atomic(directory / INDEX_NAME, index)


def _record(index: dict[str, Any], outcome: _Outcome, signature: list[int]) -> None:
    """One clip's outcome into the index: cached, or failed (not retried until its source changes)."""
    stem = outcome.stem
    if outcome.seconds is None:
        index["clips"].pop(stem, None)
        index["failed"][stem] = {
            "kind": outcome.kind,
            "detail": outcome.detail,
            "source": signature,
            "corrupt_packets": outcome.corrupt_packets,
        }
    else:
        index["failed"].pop(stem, None)
        index["clips"][stem] = {
            "seconds": outcome.seconds,
            "source": signature,
            "corrupt_packets": outcome.corrupt_packets,
        }
