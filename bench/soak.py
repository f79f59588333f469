"""Soak: the daemon at live pace for a long time (default 30 minutes), with camera losses.

    python -m bench.soak [--minutes 30] [--json] [--out FILE] [--cache-dir DEMO_CACHE]
                         [--model BUNDLE --recording MP4]   # default: the demo's assets

A recording with known scenes (the demo's, or MP4 with its ``.csv`` truth beside it) is looped
end to end, shifted in time so that the stream runs on without a break, and replayed by the
driver exactly as ``avstream replay --realtime`` does. Every
``--camera-every`` seconds the video is cut for ``--camera-gap`` seconds, as when a camera
stream is killed and restarted: the source reports the loss and, when frames come back, the
restoration. Reported: RSS at the start and the end and its growth, hops dropped and windows
whose media was late, camera losses and how many recovered (fused windows again within
``RECOVERY_S``), and the agreement of the labels with the true scenes (2 s after each change
left out). Not part of the test suite; ``--minutes 3`` is a short check.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from avstream.bundle.schema import AUTO
from avstream.demo import cached_assets, default_cache_dir
from avstream.driver import drive, open_engine
from avstream.errors import AvstreamError
from avstream.results.records import HopRecord
from avstream.sources.base import (
    AudioBlock,
    Modality,
    ModalityLost,
    ModalityRestored,
    Source,
    SourceEvent,
    SourceInfo,
    VideoFrame,
)
from avstream.sources.media_file import MediaFileSource
from avstream.stream.pipeline import PipelineConfig
from avstream.truth import Interval, read_truth_csv, score_timeline
from bench.common import bench_main, load_average, machine_info
from bench.memory import PeakRss, ProgressSink, rss_growth

log = logging.getLogger("bench.soak")

DEFAULT_MINUTES = 30.0
CAMERA_EVERY_S = 120.0
CAMERA_GAP_S = 5.0
RECOVERY_S = 2.0
"""A camera loss counts as recovered when a fused window comes within this after frames return."""


class LoopedSource(Source):
    """``make()``'s recording again and again, each pass shifted by ``period_s``, until
    ``seconds`` of stream; the video cut for ``gap_s`` every ``every_s`` (a camera restart)."""

    def __init__(self, make: Any, period_s: float, seconds: float, every_s: float,
                 gap_s: float) -> None:
        self._make, self._period, self._seconds = make, period_s, seconds
        self._every, self._gap = every_s, gap_s
        first = make()
        self._info: SourceInfo = first.info
        first.close()
        self.gaps: list[tuple[float, float]] = []

    @property
    def info(self) -> SourceInfo:
        return self._info

    def _cut(self, t: float) -> bool:
        return self._every > 0 and t >= self._every and (t % self._every) < self._gap

    def events(self) -> Iterator[SourceEvent]:
        loop, lost = 0, False
        while loop * self._period < self._seconds:
            offset = loop * self._period
            inner = self._make()
            try:
                for e in inner.events():
                    if isinstance(e, AudioBlock):
                        if e.t_start + offset >= self._seconds:
                            return
                        yield AudioBlock(e.t_start + offset, e.samples, e.sample_rate)
                    elif isinstance(e, VideoFrame):
                        t = e.t + offset
                        if self._cut(t):
                            if not lost:
                                lost = True
                                self.gaps.append((t, t + self._gap))
                                yield ModalityLost(Modality.VIDEO, t, "camera stream killed")
                            continue
                        if lost:
                            lost = False
                            yield ModalityRestored(Modality.VIDEO, t)
                        yield VideoFrame(t, e.rgb)
            finally:
                inner.close()
            loop += 1

    def close(self) -> None:
        pass


class Labels(ProgressSink):
    """RSS every second of stream (ProgressSink) plus each hop's time, label and modalities."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.times: list[float] = []
        self.labels: list[str] = []
        self.fused: list[bool] = []

    def hop(self, record: HopRecord) -> None:
        super().hop(record)
        self.times.append(record.t)
        self.labels.append(record.label)
        self.fused.append(len(record.modalities) == 2)


def looped_truth(truth: list[Interval], period_s: float, seconds: float) -> list[Interval]:
    out: list[Interval] = []
    k = 0
    while k * period_s < seconds:
        out.extend(Interval(iv.start_s + k * period_s, iv.end_s + k * period_s, iv.scene)
                   for iv in truth)
        k += 1
    return out


def recovered(gaps: Sequence[tuple[float, float]], sink: Labels) -> int:
    n = 0
    for _, back in gaps:
        if any(f and back <= t <= back + 1.0 + RECOVERY_S
               for t, f in zip(sink.times, sink.fused, strict=True)):
            n += 1
    return n


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.model is None or args.recording is None:
        assets = cached_assets(args.cache_dir or default_cache_dir())
        if assets is None:
            raise AvstreamError("no demo assets found; run `avstream demo` once, or give "
                                "--model BUNDLE --recording MP4 (with MP4's .csv truth)")
        model, recording = assets.bundle, assets.recording
    else:
        model, recording = Path(args.model), Path(args.recording)
    truth = read_truth_csv(recording.with_suffix(".csv"))
    period = truth[-1].end_s
    seconds = args.minutes * 60.0
    engine = open_engine(model, args.provider, args.threads, args.precision)
    source = LoopedSource(lambda: MediaFileSource(recording), period, seconds,
                          args.camera_every, args.camera_gap)
    sink = Labels(every_hops=5)
    t0 = time.perf_counter()
    with PeakRss() as peak:
        summary = drive(source, engine, PipelineConfig(), [sink], realtime=True)
    score = score_timeline(sink.times, sink.labels, looped_truth(truth, period, seconds))
    c = summary.counters
    delays = [d for d in score.change_delays_s if d is not None]
    return {
        "minutes": args.minutes, "wall_s": round(time.perf_counter() - t0, 1),
        "windows": summary.windows, "hops_dropped": c.hops_dropped,
        "windows_late_media": c.windows_late_media,
        **rss_growth(sink.samples), "rss_peak_mb": round(peak.peak / 2**20, 1),
        "camera_losses": len(source.gaps), "camera_recovered": recovered(source.gaps, sink),
        "accuracy": round(score.accuracy, 4), "accuracy_all": round(score.accuracy_all, 4),
        "changes": len(score.change_delays_s), "changes_shown": len(delays),
        "change_delay_max_s": round(max(delays), 2) if delays else None,
        "latency_ms": summary.latency_ms, "counters": c.to_dict(),
        "model": str(model), "precision": engine.precision, "recording": str(recording),
        "machine": machine_info().to_dict(), "load_avg_at_end": load_average(),
    }


def render(report: dict[str, Any]) -> str:
    return (f"{report['minutes']:g} min at live pace: {report['windows']} windows, "
            f"{report['hops_dropped']} hops dropped, {report['windows_late_media']} late; RSS "
            f"{report['rss_first_mb']} -> {report['rss_last_mb']} MB "
            f"({report['rss_growth_pct']} %); camera {report['camera_recovered']}/"
            f"{report['camera_losses']} recovered; accuracy {report['accuracy']:.1%}, "
            f"{report['changes_shown']}/{report['changes']} changes shown (max "
            f"{report['change_delay_max_s']} s)")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=DEFAULT_MINUTES)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--recording", type=Path)
    ap.add_argument("--cache-dir", type=Path, help="the demo's cache folder (avstream demo)")
    ap.add_argument("--camera-every", type=float, default=CAMERA_EVERY_S)
    ap.add_argument("--camera-gap", type=float, default=CAMERA_GAP_S)
    ap.add_argument("--provider")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--precision", default=AUTO)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("-v", "--verbose", action="store_true")
    return bench_main("bench/soak.py", ap.parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
