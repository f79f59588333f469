"""The daemon's synchronous hop, fed as fast as it runs (used by ``bench/latency.py``).

A hop is exactly what the daemon does every 0.2 s at the default hop: its own ``Pipeline`` is fed
one 0.2-s audio block at the model's rate and one new camera frame, with the frame encoded on
the window's turn (``pipelined=False``), and the wall time of those two ``feed`` calls is the hop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from avstream.inference.engine import Engine
from avstream.outputs.collect import Collect
from avstream.sources.base import AudioBlock, SourceInfo, VideoFrame
from avstream.stream.pipeline import Pipeline, PipelineConfig
from avstream.stream.windows import DEFAULT_HOP_MS, MS_PER_S

CAMERA_WIDTH = 640
CAMERA_HEIGHT = 480
"""Frames arrive at a webcam's usual size, so the daemon's resize to the model's side is timed."""
POOL = 8
"""Distinct pre-generated audio blocks and camera frames, cycled (generating them is not timed)."""
DATA_SEED = 0
NOISE_LEVEL = 0.1
GRAPH_STAGES: tuple[str, ...] = ("frame", "audio", "head")

@dataclass(frozen=True)
class HopData:
    """Pre-generated stream material: audio blocks at the model rate and camera-sized frames."""

    blocks: list[np.ndarray]
    """(channels, hop samples) float32."""
    frames: list[np.ndarray]
    """(CAMERA_HEIGHT, CAMERA_WIDTH, 3) uint8 RGB."""
    sample_rate: int
    hop_s: float

    @classmethod
    def make(cls, sample_rate: int, channels: int, hop_ms: int) -> HopData:
        rng = np.random.default_rng(DATA_SEED)
        n = sample_rate * hop_ms // MS_PER_S
        blocks = [np.clip(rng.standard_normal((channels, n)) * NOISE_LEVEL, -1, 1)
                  .astype(np.float32) for _ in range(POOL)]
        frames = [rng.integers(0, 256, (CAMERA_HEIGHT, CAMERA_WIDTH, 3), dtype=np.uint8)
                  for _ in range(POOL)]
        return cls(blocks, frames, sample_rate, hop_ms / MS_PER_S)

    def block(self, i: int) -> np.ndarray:
        return self.blocks[i % POOL]

    def frame(self, i: int) -> np.ndarray:
        return self.frames[i % POOL]

    def window_wave(self, i: int, window_blocks: int) -> np.ndarray:
        """The window that ends with hop i's block: what the pipeline reads from its ring."""
        return np.concatenate([self.block(j) for j in range(i - window_blocks + 1, i + 1)], axis=1)



def _feed_hop(pipeline: Pipeline, data: HopData, i: int) -> float:
    """Hop i as a camera and a microphone deliver it; returns the wall ms of both feeds."""
    t = i * data.hop_s
    block = data.block(i)
    frame = data.frame(i)
    t0 = time.perf_counter()
    pipeline.feed(AudioBlock(t_start=t, samples=block, sample_rate=data.sample_rate))
    pipeline.feed(VideoFrame(t, frame))
    return (time.perf_counter() - t0) * 1e3


def time_daemon_hops(engine: Engine, iters: int, warmup: int,
                     hop_ms: int = DEFAULT_HOP_MS) -> tuple[dict[str, list[float]], float]:
    """Run warm-up + ``iters`` hops through the daemon's pipeline; per-stage ms of each timed hop
    and the mean number of frames encoded per hop."""
    spec = engine.format
    data = HopData.make(spec.sample_rate, spec.channels, hop_ms)
    collector = Collect()
    pipeline = Pipeline(engine, PipelineConfig(hop_ms=hop_ms, pipelined=False), [collector],
                        clock=None)
    pipeline.start(SourceInfo(name="bench: synthetic camera + microphone", has_audio=True,
                              has_video=True, live=False, audio_rate_hz=spec.sample_rate,
                              audio_channels=spec.channels, video_width=CAMERA_WIDTH,
                              video_height=CAMERA_HEIGHT, video_fps=MS_PER_S / hop_ms))
    window_hops = round(spec.window_seconds * MS_PER_S / hop_ms)
    out: dict[str, list[float]] = {k: [] for k in (*GRAPH_STAGES, "smooth", "pipeline_total",
                                                   "hop", "graphs", "overhead", "cpu")}
    encoded = 0
    i = 0
    while len(out["hop"]) < iters:
        n_before = len(collector.records)
        c0 = time.process_time()
        ms = _feed_hop(pipeline, data, i)
        cpu_ms = (time.process_time() - c0) * 1e3
        i += 1
        if len(collector.records) != n_before + 1:
            if i > window_hops + 1:
                raise RuntimeError(f"hop {i} produced {len(collector.records) - n_before} "
                                   f"windows; expected exactly one per hop")
            continue  # the first window needs a whole window of media
        if i <= window_hops + warmup:
            continue
        lat = collector.records[-1].latency_ms
        graphs = sum(lat[k] for k in GRAPH_STAGES)
        for k in GRAPH_STAGES:
            out[k].append(lat[k])
        out["smooth"].append(lat["smooth"])
        out["pipeline_total"].append(lat["total"])
        out["hop"].append(ms)
        out["graphs"].append(graphs)
        out["overhead"].append(ms - graphs)
        out["cpu"].append(cpu_ms)
        encoded += collector.records[-1].frames_encoded
        if len(collector.records) > 2 * window_hops:
            del collector.records[:-1]  # keep memory flat over long runs
    return out, encoded / max(1, iters)
