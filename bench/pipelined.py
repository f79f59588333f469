"""The daemon's hop at live pace with the frame encoder pipelined (used by ``bench/latency.py``).

The same pre-generated camera + microphone material as the synchronous hop, but delivered as a
live device would: a ``WallClock`` paces the run, each 0.2-s audio block is handed over when its
last sample is due and each camera frame at its own time, and the ``Pipeline`` runs with
``pipelined=True``, so the new frame is encoded in the background as soon as it is known. What
is measured per window is the daemon's own ``delay``: wall ms from the moment the window's last
audio sample reached the pipeline to its record. The compute per second of stream is the
process's CPU time (all threads: the encoder's too) over the timed hops, divided by the stream
seconds they cover.

What the pipelined run's compute is compared with is the same ``Pipeline`` with
``pipelined=False`` at the same live pace, measured the same way, in alternating rounds in one
process (``time_paced_pair``). Two things made a single back-to-back comparison misleading on a
shared 2-core virtual machine: a run fed as fast as it goes keeps the cores busy, while a live-
paced one idles between hops and wakes up cold; and the machine's speed drifts by 10-30 % over a
minute (other tenants), which a run of one mode after the other reads as a difference between
the modes. Alternating short rounds puts the same drift on both.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from avstream.inference.api import EngineLike
from avstream.outputs.collect import Collect
from avstream.sources.base import AudioBlock, SourceInfo, VideoFrame
from avstream.stream.clock import WallClock
from avstream.stream.pipeline import Pipeline, PipelineConfig
from avstream.stream.windows import MS_PER_S
from bench.common import percentiles

PIPELINED_STAGES: tuple[str, ...] = ("delay", "total", "frame", "audio", "head")
PAIRED_ROUNDS = 5
"""Alternating synchronous / pipelined rounds behind the compute comparison."""


class Material(Protocol):
    sample_rate: int
    hop_s: float

    def block(self, i: int) -> np.ndarray: ...

    def frame(self, i: int) -> np.ndarray: ...


def time_pipelined_hops(engine: EngineLike, data: Material, iters: int, warmup: int,
                        hop_ms: int, camera: tuple[int, int], pipelined: bool = True) -> dict[str, Any]:
    """Warm-up + ``iters`` windows at live pace; per-stage ms and CPU seconds per stream second."""
    fmt = engine.format
    clock = WallClock()
    sink = Collect()
    pipeline = Pipeline(engine, PipelineConfig(hop_ms=hop_ms, pipelined=pipelined), [sink],
                        clock=clock)
    pipeline.start(SourceInfo(name="bench: live-paced camera + microphone", has_audio=True,
                              has_video=True, live=True, audio_rate_hz=fmt.sample_rate,
                              audio_channels=fmt.channels, video_width=camera[0],
                              video_height=camera[1], video_fps=MS_PER_S / hop_ms))
    window_hops = round(fmt.window_ms / hop_ms)
    hop_s = data.hop_s
    clock.anchor(0.0)
    skip = window_hops + warmup  # records before the timed ones
    cpu_start = time.process_time()
    i = i_start = 0
    while len(sink.records) < skip + iters:
        t = i * hop_s
        clock.sleep_until(t)
        if i > 0:  # the block [t - hop, t) is complete now
            pipeline.feed(AudioBlock(t - hop_s, data.block(i - 1), data.sample_rate))
        if len(sink.records) <= skip:
            cpu_start = time.process_time()  # the timed span starts after the last untimed window
            i_start = i
        pipeline.feed(VideoFrame(t, data.frame(i)))
        i += 1
    cpu_s = time.process_time() - cpu_start
    pipeline.features.settle()
    pipeline.features.close()
    timed = sink.records[skip:]
    stream_s = (i - i_start) * hop_s
    return {
        "cpu_s": cpu_s,
        "stream_s": stream_s,
        # Per second of stream the timed span covered (dropped windows' hops included).
        "rtf_cpu": round(cpu_s / stream_s, 4),
        "frames_encoded_ahead": pipeline.features.counts().encoded_ahead,
        "frames_encoded": pipeline.features.counts().encoded,
        "hops_dropped": pipeline.arrivals.counts().hops_dropped,
        "latency_ms": [r.latency_ms for r in timed],
    }


def time_paced_pair(engine: EngineLike, data: Material, iters: int, warmup: int, hop_ms: int,
                    camera: tuple[int, int], rounds: int = PAIRED_ROUNDS) -> dict[str, Any]:
    """The synchronous and the pipelined ``Pipeline`` at the same live pace, ``rounds``
    alternating rounds of about ``iters / rounds`` timed windows each (every round a fresh
    pipeline with its own warm-up): per mode, the stage percentiles over all its windows, the CPU
    seconds per stream second over all its rounds, and each round's figure."""
    per_round = max(1, -(-iters // rounds))
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for _ in range(rounds):
        for mode in (False, True):
            runs[mode].append(time_pipelined_hops(engine, data, per_round, warmup, hop_ms,
                                                  camera, pipelined=mode))

    def round_p(r: dict[str, Any], stage: str, q: str) -> float | None:
        v = percentiles(x[stage] for x in r["latency_ms"] if stage in x)[q]
        return None if v is None else float(v)

    def merge(rs: list[dict[str, Any]]) -> dict[str, Any]:
        lat = [x for r in rs for x in r["latency_ms"]]
        return {
            "stages_ms": {k: percentiles(x[k] for x in lat if k in x) for k in PIPELINED_STAGES},
            "rtf_cpu": round(sum(r["cpu_s"] for r in rs) / sum(r["stream_s"] for r in rs), 4),
            "rtf_cpu_by_round": [r["rtf_cpu"] for r in rs],
            # Per round, so that a slow spell of the machine shows where it fell: the delay's
            # p99, the frame stage's p50 (synchronous: the encode itself; pipelined: the wait
            # for it) and the windows dropped.
            "delay_p99_by_round": [round_p(r, "delay", "p99") for r in rs],
            "frame_p50_by_round": [round_p(r, "frame", "p50") for r in rs],
            "hops_dropped_by_round": [r["hops_dropped"] for r in rs],
            "frames_encoded_ahead": sum(r["frames_encoded_ahead"] for r in rs),
            "frames_encoded": sum(r["frames_encoded"] for r in rs),
            "hops_dropped": sum(r["hops_dropped"] for r in rs),
            "delay_samples_ms": [round(x["delay"], 3) for x in lat],
        }

    paced_sync = merge(runs[False])
    del paced_sync["delay_samples_ms"]
    return {**merge(runs[True]), "rounds": rounds, "synchronous": paced_sync}


def pipelined_keys(primary: Any, int8: Any | None) -> dict[str, Any]:
    """The report's top-level delay figures (primary: the fp32 variant) and the compute change."""
    def delay(v: Any | None, q: str) -> float | None:
        if v is None or v.pipelined is None:
            return None
        return v.pipelined["stages_ms"]["delay"][q]

    paced = primary.pipelined
    sync_cpu = None if paced is None else paced["synchronous"]["rtf_cpu"]
    paced_cpu = None if paced is None else paced["rtf_cpu"]
    change = None
    if sync_cpu and paced_cpu is not None:
        change = round(100.0 * (paced_cpu - sync_cpu) / sync_cpu, 2)
    return {
        "delay_p50_ms": delay(primary, "p50"), "delay_p99_ms": delay(primary, "p99"),
        "int8_delay_p50_ms": delay(int8, "p50"), "int8_delay_p99_ms": delay(int8, "p99"),
        "sync_hop_p50_ms": primary.stages["hop"]["p50"],
        # Both at live pace, in alternating rounds (time_paced_pair).
        "rtf_cpu_sync": sync_cpu, "rtf_cpu_pipelined": paced_cpu, "rtf_cpu_change_pct": change,
    }
