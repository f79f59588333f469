"""Labelling an archive: every file through the fast replay path, one JSON lines file each.

``avstream batch INPUTS... --out DIR`` runs each file exactly as ``avstream replay --fast`` does
(``MediaFileSource`` -> ``drive()``, no wall clock), so a file's JSON lines are the ones a single
replay would print. Per input ``DIR/<name>.jsonl`` and ``DIR/<name>.result.json`` (the row of
``summary.csv`` for it); ``DIR/summary.csv`` is rewritten from the result files after every run.

Resumable: the JSON lines are written to ``<name>.jsonl.part`` and renamed when the file is done,
then its result file is written (also through a temporary name). A rerun skips the files whose
result says done and redoes everything else: files never started, ones cut off half-way (a
``.part`` left behind), and ones that failed (an unreadable file fails again quickly; a fixed
one is then labelled).

Workers: a local process pool (each worker opens the bundle once, on its first file) or, with
Ray, one Ray task per file (``avstream.cluster``); both call ``label_file``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from avstream.bundle.schema import AUTO
from avstream.errors import AvstreamError
from avstream.inference.session import default_intra_threads
from avstream.stream.pipeline import PipelineConfig

log = logging.getLogger(__name__)

MEDIA_SUFFIXES: frozenset[str] = frozenset({
    ".mp4", ".mov", ".mkv", ".m4v", ".avi", ".webm", ".ts", ".wav", ".flac", ".ogg", ".mp3",
    ".m4a", ".aac",
})
"""What a folder given as input expands to (case-insensitive suffix); files named directly are
taken whatever their suffix."""
SUMMARY_NAME = "summary.csv"
PART_SUFFIX = ".part"
RESULT_SUFFIX = ".result.json"
UNKNOWN = "unknown"
NAME_HASH_CHARS = 8
"""Hex digits of the path's hash that tell apart two inputs with the same file name."""
SHARE_DECIMALS = 4


@dataclass(frozen=True)
class BatchJob:
    """What every worker needs to label one file (picklable: it travels to processes and Ray)."""

    model: str
    pipeline: PipelineConfig
    provider: str | None = None
    threads: int = 1
    """Intra-op threads per graph in each worker."""
    precision: str = AUTO


@dataclass(frozen=True)
class FileResult:
    """One input's row of ``summary.csv``."""

    file: str
    seconds: float | None = None
    """Stream seconds from the first to the last media timestamp."""
    windows: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    """Smoothed label -> windows with it."""
    corrupt_packets: int = 0
    error: str | None = None
    """Why the file could not be labelled (one line); None when it was."""

    @property
    def done(self) -> bool:
        return self.error is None

    @property
    def majority(self) -> str | None:
        return max(sorted(self.labels), key=self.labels.__getitem__) if self.labels else None

    def row(self, classes: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "seconds": "" if self.seconds is None else round(self.seconds, 3),
            "windows": self.windows,
            "majority_label": self.majority or "",
        }
        for label in (*classes, UNKNOWN):
            n = self.labels.get(label, 0)
            out[f"share_{label}"] = round(n / self.windows, SHARE_DECIMALS) if self.windows else ""
        out["corrupt_packets"] = self.corrupt_packets
        out["error"] = self.error or ""
        return out


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders as the media files under them (sorted); order kept, no repeats."""
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES)
            if not found:
                log.warning("folder %s holds no media files (%s)", p, " ".join(sorted(MEDIA_SUFFIXES)))
        elif p.exists() or p.is_symlink():
            found = [p]
        else:
            raise AvstreamError(f"input {p} does not exist; expected media files or folders")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def output_names(files: Sequence[Path]) -> dict[Path, str]:
    """File -> the base name of its outputs: the file name, plus a hash of the full path when two
    inputs share a name (so reruns map each file to the same outputs)."""
    counts = Counter(f.name for f in files)
    names: dict[Path, str] = {}
    for f in files:
        if counts[f.name] == 1:
            names[f] = f.name
        else:
            digest = hashlib.sha1(str(f.resolve()).encode()).hexdigest()[:NAME_HASH_CHARS]
            names[f] = f"{f.name}-{digest}"
    return names


_ENGINES: dict[tuple[str, str | None, int, str], Any] = {}
"""Engines this worker process opened, kept for its next files (a pool worker or a Ray worker)."""


def _engine(job: BatchJob) -> Any:
    from avstream.driver import open_engine

    key = (job.model, job.provider, job.threads, job.precision)
    if key not in _ENGINES:
        _ENGINES[key] = open_engine(job.model, job.provider, job.threads, job.precision)
    return _ENGINES[key]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + PART_SUFFIX)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def label_file(job: BatchJob, media: str, out_dir: str, name: str) -> FileResult:
    """Label ``media`` into ``out_dir/name.jsonl``; any failure is the result's ``error``."""
    from avstream.driver import drive
    from avstream.outputs.collect import Collect
    from avstream.outputs.jsonl import JsonlSink
    from avstream.sources.media_file import MediaFileSource

    out = Path(out_dir)
    final = out / f"{name}.jsonl"
    part = final.with_name(final.name + PART_SUFFIX)
    result: FileResult
    try:
        engine = _engine(job)
        kept = Collect()
        source = MediaFileSource(media)
        summary = drive(source, engine, job.pipeline, [JsonlSink(part), kept])
        if summary.stopped != "end of stream":
            raise AvstreamError(f"stopped before the end ({summary.stopped})")
        seconds = (None if summary.stream_start is None or summary.stream_end is None
                   else summary.stream_end - summary.stream_start)
        os.replace(part, final)
        result = FileResult(file=media, seconds=seconds, windows=summary.windows,
                            labels=dict(Counter(kept.labels)),
                            corrupt_packets=summary.counters.corrupt_packets)
    except AvstreamError as e:
        result = FileResult(file=media, error=str(e))
    except Exception as e:  # noqa: BLE001 - one bad file must not end an archive run
        log.exception("labelling %s failed", media)
        result = FileResult(file=media, error=f"{type(e).__name__}: {e}")
    _write_atomic(out / f"{name}{RESULT_SUFFIX}", json.dumps(asdict(result)) + "\n")
    return result


def read_result(path: Path) -> FileResult | None:
    """A result file, or None if it is missing or unreadable (then the file is redone)."""
    try:
        return FileResult(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class BatchPlan:
    out: Path
    names: dict[Path, str]
    todo: list[Path]
    finished: dict[Path, FileResult]
    """Files a previous run completed: skipped."""


def plan_batch(files: Sequence[Path], out: Path) -> BatchPlan:
    """Which files still need labelling in ``out`` (created if needed)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AvstreamError(f"--out {out} cannot be created ({e.strerror}); expected a "
                            f"writable folder") from e
    names = output_names(files)
    finished: dict[Path, FileResult] = {}
    todo: list[Path] = []
    for f in files:
        r = read_result(out / f"{names[f]}{RESULT_SUFFIX}")
        if r is not None and r.done and (out / f"{names[f]}.jsonl").is_file():
            finished[f] = r
        else:
            todo.append(f)
    return BatchPlan(out=out, names=names, todo=todo, finished=finished)


OnResult = Callable[[FileResult], None]


def run_local(job: BatchJob, plan: BatchPlan, workers: int, on_result: OnResult) -> None:
    """Label ``plan.todo`` in a pool of ``workers`` processes (spawned: no inherited threads)."""
    if workers < 1:
        raise AvstreamError(f"--workers {workers}; expected 1 or more")
    with ProcessPoolExecutor(max_workers=min(workers, max(1, len(plan.todo))),
                             mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(label_file, job, str(f), str(plan.out), plan.names[f])
                   for f in plan.todo]
        for fut in as_completed(futures):
            on_result(fut.result())


def threads_per_worker(threads: int, workers: int) -> int:
    """0 = the daemon's default thread count (this machine's CPUs, at most 4) shared among the
    workers, at least one each; a Ray task asks for as many CPUs."""
    return threads if threads > 0 else max(1, default_intra_threads() // max(1, workers))


def write_summary(plan: BatchPlan, classes: Sequence[str]) -> Path:
    """``summary.csv`` over every input of the plan, in input order, from the result files."""
    rows = []
    for f, name in plan.names.items():
        r = read_result(plan.out / f"{name}{RESULT_SUFFIX}")
        rows.append((r or FileResult(file=str(f), error="not labelled (run interrupted)")).row(classes))
    path = plan.out / SUMMARY_NAME
    tmp = path.with_name(path.name + PART_SUFFIX)
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(FileResult(file="").row(classes)))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path
