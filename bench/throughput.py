"""Throughput, CPU and memory of the daemon's own pipeline over a long recording, ``--fast``.

    python -m bench.throughput [--json] [--config paper|small] [--model BUNDLE] [--minutes 10]

The recording is a synthetic stream (H.264 320x240 at 15 fps + AAC 48 kHz stereo) moving
through the ten scenes, written once by ``training.synth.stream`` and cached. It is replayed
exactly as ``avstream replay --fast`` does (``MediaFileSource`` -> ``Pipeline``, no wall clock).
RSS is read once per second of stream (every 5 hops) for the growth between the first and the
last minute, and every 0.1 s by a thread for the peak. Then:

- the feature cache off: the same pipeline with an engine whose per-frame cache is emptied
  before every hop (so all five frames of each window are encoded), over the first
  ``--uncached-minutes`` of the recording: frame encodes per second of stream, with and without;
- idle: the warmed-up sessions behind a live-like source that has nothing to deliver (it
  polls and yields ``Idle`` exactly as ``LiveSource`` does), for ``--idle-seconds``: the CPU a
  daemon burns while waiting for data.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from avstream.bundle import schema
from avstream.bundle.loader import load_bundle
from avstream.inference.engine import Engine
from avstream.inference.session import SessionConfig
from avstream.results.summary import RunSummary
from avstream.scenes import SCENES
from avstream.sources.base import Idle, Source, SourceEvent, SourceInfo
from avstream.sources.live import IDLE_EVERY_S
from avstream.sources.media_file import MediaFileSource
from avstream.stream.buffers import FrameRef
from avstream.stream.clock import WallClock
from avstream.stream.features import FrameFeatures
from avstream.stream.pipeline import Pipeline, PipelineConfig
from avstream.stream.windows import DEFAULT_HOP_MS, MS_PER_S
from bench.common import (
    CONFIG_NAMES,
    bench_main,
    cache_root,
    finite_or_none,
    load_average,
    machine_info,
    prepare_bundle,
)
from bench.memory import (
    MB,
    RSS_SAMPLE_S,
    S_PER_MIN,
    PeakRss,
    ProgressSink,
    rss_growth,
    rss_trace,
    rtf_by_minute,
)

log = logging.getLogger("bench.throughput")

DEFAULT_MINUTES = 10.0
DEFAULT_UNCACHED_MINUTES = 1.0
DEFAULT_IDLE_SECONDS = 5.0
SCENE_SECONDS = 20.0
"""Longest scene of the recording; ten minutes cycle through all ten scenes three times."""
RECORDING_SEED = 11
RSS_EVERY_HOPS = 5
"""The growth figures sample RSS once per second of stream (5 hops)."""


def recording(minutes: float, cache: Path | None) -> Path:
    """The synthetic recording of ``minutes`` (written once, then reused)."""
    from training.synth.stream import write_synthetic_stream

    total = minutes * S_PER_MIN
    n = max(1, math.ceil(total / SCENE_SECONDS))
    mp4 = cache_root(cache) / "recordings" / f"stream-{minutes:g}min-seed{RECORDING_SEED}.mp4"
    done = mp4.with_suffix(".done")
    if not done.is_file():
        log.info("writing a %g-minute synthetic recording to %s", minutes, mp4)
        t0 = time.perf_counter()
        write_synthetic_stream(mp4, [SCENES[i % len(SCENES)] for i in range(n)],
                               seconds_per_scene=total / n, seed=RECORDING_SEED)
        done.write_text(f"{time.perf_counter() - t0:.1f} s to write\n", encoding="utf-8")
    return mp4


class UncachedFeatures(FrameFeatures):
    """The pipeline's frame features with the per-frame cache emptied before every window.

    There is no switch for this; emptying the cache makes every frame of each window be encoded
    on its window's turn, which is what a daemon without the cache would do.
    """

    def window(self, frames: Sequence[FrameRef]) -> tuple[np.ndarray, float]:
        with self._lock:
            self._cache.clear()
        return super().window(frames)


class UntilSource(Source):
    """The first ``seconds`` of another source (the uncached run needs only a sample)."""

    def __init__(self, inner: Source, seconds: float) -> None:
        self._inner = inner
        self._seconds = seconds

    @property
    def info(self) -> SourceInfo:
        return self._inner.info

    def events(self) -> Iterator[SourceEvent]:
        start: float | None = None
        for event in self._inner.events():
            t = getattr(event, "t_start", None)
            if t is None:
                t = getattr(event, "t", None)
            if t is not None:
                start = t if start is None else start
                if t - start > self._seconds:
                    return
            yield event

    def close(self) -> None:
        self._inner.close()


class IdleLiveSource(Source):
    """A live source whose devices deliver nothing: it waits and yields ``Idle`` as LiveSource
    does (an Idle every IDLE_EVERY_S, asleep in between) until ``seconds`` have passed."""

    def __init__(self, spec_rate: int, channels: int, seconds: float, clock: WallClock) -> None:
        self._seconds = seconds
        self._clock = clock
        self._closed = threading.Event()
        self._info = SourceInfo(name="bench: live source with nothing to deliver", has_audio=True,
                                has_video=True, live=True, audio_rate_hz=spec_rate,
                                audio_channels=channels)

    @property
    def info(self) -> SourceInfo:
        return self._info

    def events(self) -> Iterator[SourceEvent]:
        end = time.monotonic() + self._seconds
        last = time.monotonic()
        while not self._closed.is_set() and time.monotonic() < end:
            now = time.monotonic()
            if now - last >= IDLE_EVERY_S:
                last = now
                yield Idle(self._clock.now())
                continue
            self._closed.wait(IDLE_EVERY_S - (now - last))

    def close(self) -> None:
        self._closed.set()


def _cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


@dataclass(frozen=True)
class Replay:
    summary: RunSummary
    wall_s: float
    cpu_s: float

    @property
    def stream_s(self) -> float:
        s = self.summary
        if s.stream_start is None or s.stream_end is None:
            return 0.0
        return s.stream_end - s.stream_start


def replay(engine: Engine, source: Source, sink: ProgressSink, cached: bool = True) -> Replay:
    proc = psutil.Process()
    pipeline = Pipeline(engine, PipelineConfig(pipelined=cached), [sink], clock=None)
    if not cached:
        pipeline.features = UncachedFeatures(engine, pipelined=False)
    cpu0, t0 = _cpu_seconds(proc), time.perf_counter()
    summary = pipeline.run(source)
    return Replay(summary, time.perf_counter() - t0, _cpu_seconds(proc) - cpu0)


def idle_cpu(engine: Engine, seconds: float) -> float | None:
    """Percent of one core the process uses while the pipeline waits on a silent live source."""
    if seconds <= 0:
        return None
    clock = WallClock()
    source = IdleLiveSource(engine.format.sample_rate, engine.format.channels, seconds, clock)
    pipeline = Pipeline(engine, PipelineConfig(), [], clock=clock)
    proc = psutil.Process()
    cpu0, t0 = _cpu_seconds(proc), time.perf_counter()
    pipeline.run(source)
    wall = time.perf_counter() - t0
    return finite_or_none(round(100.0 * (_cpu_seconds(proc) - cpu0) / wall, 3))


def _per_stream_s(n: int, r: Replay) -> float | None:
    """Per second of stream the windows covered (each window moves the stream on by a hop)."""
    seconds = r.summary.windows * DEFAULT_HOP_MS / MS_PER_S
    return finite_or_none(round(n / seconds, 4)) if seconds > 0 else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_info()
    if args.model is not None:
        bundle_dir, source_name = Path(args.model), f"bundle {args.model}"
    else:
        bundle_dir = prepare_bundle(args.config, args.variant, args.cache)
        source_name = f"untrained {args.config} model, {args.variant}"
    bundle = load_bundle(bundle_dir)
    mp4 = recording(args.minutes, args.cache)
    sessions = SessionConfig(provider=args.provider, intra_threads=args.threads)
    engine = Engine(bundle, sessions)
    threads = engine.frame.session.get_session_options().intra_op_num_threads
    rss_sessions = psutil.Process().memory_info().rss

    sink = ProgressSink(RSS_EVERY_HOPS)
    log.info("replaying %s (fast) through the pipeline", mp4)
    with PeakRss() as peak:
        main = replay(engine, MediaFileSource(mp4), sink)
    growth = rss_growth(sink.samples)
    s = main.summary

    uncached: dict[str, Any] | None = None
    if args.uncached_minutes > 0:
        log.info("the first %g minutes again with the feature cache off", args.uncached_minutes)
        r = replay(engine, UntilSource(MediaFileSource(mp4), args.uncached_minutes * S_PER_MIN),
                   ProgressSink(), cached=False)
        uncached = {
            "stream_seconds": round(r.stream_s, 3), "windows": r.summary.windows,
            "frame_encodes": r.summary.frame_encodes,
            "windows_per_s": finite_or_none(round(r.summary.windows / r.wall_s, 3)),
            "rtf": finite_or_none(round(r.wall_s / r.stream_s, 4)) if r.stream_s else None,
            "encodes_per_stream_s": _per_stream_s(r.summary.frame_encodes, r),
        }
    log.info("idle for %g s behind a live source with nothing to deliver", args.idle_seconds)
    idle = idle_cpu(engine, args.idle_seconds)

    return {
        "windows_per_s": finite_or_none(round(s.windows / main.wall_s, 3)),
        "rtf": finite_or_none(round(main.wall_s / main.stream_s, 4)) if main.stream_s else None,
        "cpu_pct": finite_or_none(round(100.0 * main.cpu_s / main.wall_s, 2)),
        "cpu_pct_of_machine": finite_or_none(round(100.0 * main.cpu_s / main.wall_s
                                                   / machine.usable_cpus, 2)),
        "rss_peak_mb": round(peak.peak / MB, 2),
        "rss_growth_pct": growth["rss_growth_pct"],
        "encodes_per_stream_s_cached": _per_stream_s(s.frame_encodes, main),
        "encodes_per_stream_s_uncached": None if uncached is None else uncached["encodes_per_stream_s"],
        "idle_cpu_pct": idle,
        "windows": s.windows,
        "stream_seconds": round(main.stream_s, 3),
        "wall_seconds": round(main.wall_s, 3),
        "cpu_seconds": round(main.cpu_s, 3),
        "rss_after_sessions_mb": round(rss_sessions / MB, 2),
        **{k: v for k, v in growth.items() if k != "rss_growth_pct"},
        "hop_latency_ms": s.latency_ms,
        "counters": s.counters.to_dict(),
        "stopped": s.stopped,
        "uncached": uncached,
        "rtf_by_minute": rtf_by_minute(sink.samples, sink.walls),
        "rss_trace_mb": rss_trace(sink.samples),
        "machine": machine.to_dict(),
        "load_avg_at_end": load_average(),
        "model": {"source": source_name, "bundle": str(bundle_dir), "variant": bundle.variant,
                  "frame_size": bundle.manifest.video.frame_width,
                  "providers_run": {k: list(v) for k, v in engine.providers.items()}},
        "settings": {"recording": str(mp4), "minutes": args.minutes, "paced": "fast",
                     "hop_ms": DEFAULT_HOP_MS, "intra_threads": threads,
                     "uncached_minutes": args.uncached_minutes, "idle_seconds": args.idle_seconds,
                     "rss_peak_sample_s": RSS_SAMPLE_S, "rss_every_hops": RSS_EVERY_HOPS},
    }


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    u = r["uncached"] or {}

    def f(x: Any, spec: str = ".2f") -> str:
        return "-" if x is None else format(x, spec)

    lat = r["hop_latency_ms"].get("total", {})
    return "\n".join([
        f"machine: {m['cpu_model']}, {m['usable_cpus']} usable cores, onnxruntime "
        f"{m['onnxruntime']}, load {m['load_avg_1_5_15']}",
        f"model: {r['model']['source']} ({r['model']['frame_size']} px), "
        f"{r['settings']['intra_threads']} intra-op threads",
        f"stream: {r['stream_seconds']:.1f} s replayed --fast in {r['wall_seconds']:.1f} s: "
        f"{r['windows']} windows, {f(r['windows_per_s'])} windows/s, rtf {f(r['rtf'], '.3f')}",
        f"hop (pipeline total) p50 {f(lat.get('p50'))} ms, p99 {f(lat.get('p99'))} ms; rtf by "
        f"minute {r['rtf_by_minute']}",
        f"cpu: {f(r['cpu_pct'], '.1f')}% of one core ({f(r['cpu_pct_of_machine'], '.1f')}% of the "
        f"machine); idle {f(r['idle_cpu_pct'], '.2f')}%",
        f"rss: peak {f(r['rss_peak_mb'], '.1f')} MB, first {f(r['rss_first_mb'], '.1f')} MB -> "
        f"last {f(r['rss_last_mb'], '.1f')} MB ({f(r['rss_growth_pct'], '+.3f')}% over "
        f"{f(r['growth_span_s'], '.0f')}-s spans)",
        f"frame encodes per stream second: cache on {f(r['encodes_per_stream_s_cached'])}, "
        f"off {f(r['encodes_per_stream_s_uncached'])} (off measured on "
        f"{f(u.get('stream_seconds'), '.0f')} s, rtf {f(u.get('rtf'), '.3f')})",
    ])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    ap.add_argument("--fast", action="store_true", default=True,
                    help="replay as fast as possible (the only mode; accepted for clarity)")
    ap.add_argument("--config", choices=CONFIG_NAMES, default="paper",
                    help="untrained model to build and run (default: paper)")
    ap.add_argument("--variant", choices=schema.PRECISIONS, default="fp32")
    ap.add_argument("--model", type=Path, help="run this bundle instead")
    ap.add_argument("--provider", help="force an ONNX Runtime provider (cpu, cuda)")
    ap.add_argument("--threads", type=int, default=0,
                    help="intra-op threads (0: the daemon's default for this machine)")
    ap.add_argument("--minutes", type=float, default=DEFAULT_MINUTES,
                    help="length of the synthetic recording (default 10)")
    ap.add_argument("--uncached-minutes", type=float, default=DEFAULT_UNCACHED_MINUTES,
                    help="stream minutes replayed again with the feature cache off (0: skip)")
    ap.add_argument("--idle-seconds", type=float, default=DEFAULT_IDLE_SECONDS,
                    help="seconds of waiting on a silent live source (0: skip)")
    ap.add_argument("--cache", type=Path, help="bundle and recording cache "
                    "(default ~/.cache/avstream/bench)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not (args.minutes > 0 and args.uncached_minutes >= 0 and args.idle_seconds >= 0
            and args.threads >= 0):
        ap.error(f"--minutes {args.minutes}, --uncached-minutes {args.uncached_minutes}, "
                 f"--idle-seconds {args.idle_seconds}, --threads {args.threads}; expected "
                 f"minutes > 0 and the others >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main("bench/throughput.py", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
