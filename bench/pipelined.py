"""The daemon's hop at live pace with the frame encoder pipelined (used by ``bench/latency.py``).

The same pre-generated camera + microphone material as the synchronous hop, but delivered as a
live device would: a ``WallClock`` paces the run, each 0.2-s audio block is handed over when its
last sample is due and each camera frame at its own time, and the ``Pipeline`` runs with
``pipelined=True``, so the new frame is encoded in the background as soon as it is known. What
is measured per window is the daemon's own ``delay``: wall ms from the moment the window's last
audio sample reached the pipeline to its record. The compute per second of stream is the
process's CPU time (all threads: the encoder's too) over the timed hops, divided by the stream
seconds they cover; the synchronous run is measured the same way, so the two compare.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from avstream.clock import WallClock
from avstream.inference.api import EngineLike
from avstream.outputs.records import HopRecord
from avstream.pipeline import Pipeline, PipelineConfig
from avstream.sources.base import AudioBlock, SourceInfo, VideoFrame
from avstream.windows import MS_PER_S
from bench.common import percentiles

PIPELINED_STAGES: tuple[str, ...] = ("delay", "total", "frame", "audio", "head")


class Material(Protocol):
    sample_rate: int
    hop_s: float

    def block(self, i: int) -> np.ndarray: ...

    def frame(self, i: int) -> np.ndarray: ...


class Records:
    def __init__(self) -> None:
        self.records: list[HopRecord] = []

    def start(self, info: object) -> None:
        pass

    def hop(self, record: HopRecord) -> None:
        self.records.append(record)

    def end(self, summary: object) -> None:
        pass


def time_pipelined_hops(engine: EngineLike, data: Material, iters: int, warmup: int,
                        hop_ms: int, camera: tuple[int, int]) -> dict[str, Any]:
    """Warm-up + ``iters`` windows at live pace; per-stage ms and CPU seconds per stream second."""
    fmt = engine.format
    clock = WallClock()
    sink = Records()
    pipeline = Pipeline(engine, PipelineConfig(hop_ms=hop_ms, pipelined=True), [sink], clock=clock)
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
    timed = sink.records[skip:]
    out = {k: percentiles(r.latency_ms[k] for r in timed if k in r.latency_ms)
           for k in PIPELINED_STAGES}
    return {
        "stages_ms": out,
        # Per second of stream the timed span covered (dropped windows' hops included).
        "rtf_cpu": round(cpu_s / ((i - i_start) * hop_s), 4),
        "frames_encoded_ahead": pipeline.features.encoded_ahead,
        "frames_encoded": pipeline.features.encoded,
        "hops_dropped": pipeline.reporter.counters.hops_dropped,
        "delay_samples_ms": [round(r.latency_ms["delay"], 3) for r in timed],
    }


def pipelined_keys(primary: Any, int8: Any | None) -> dict[str, Any]:
    """The report's top-level delay figures (primary: the fp32 variant) and the compute change."""
    def delay(v: Any | None, q: str) -> float | None:
        if v is None or v.pipelined is None:
            return None
        return v.pipelined["stages_ms"]["delay"][q]

    sync_cpu = primary.stages["rtf_cpu"]
    paced_cpu = None if primary.pipelined is None else primary.pipelined["rtf_cpu"]
    change = None
    if sync_cpu and paced_cpu is not None:
        change = round(100.0 * (paced_cpu - sync_cpu) / sync_cpu, 2)
    return {
        "delay_p50_ms": delay(primary, "p50"), "delay_p99_ms": delay(primary, "p99"),
        "int8_delay_p50_ms": delay(int8, "p50"), "int8_delay_p99_ms": delay(int8, "p99"),
        "sync_hop_p50_ms": primary.stages["hop"]["p50"],
        "rtf_cpu_sync": sync_cpu, "rtf_cpu_pipelined": paced_cpu, "rtf_cpu_change_pct": change,
    }
