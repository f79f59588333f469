"""Media files with exact, chosen timestamps, written with PyAV for the tests that pin counters.

Matroska keeps every packet's timestamp as written (1 ms resolution), PCM audio and MJPEG video
are intra-only, so what a test writes is what the demuxer hands back: an audio block that
starts 0.1 s after the previous one ended is a 0.1 s gap; two frames with the same timestamp are
a frame out of order.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE_HZ = 16_000
"""The SMALL test bundle's rate: no resampling, so sample counts in the counters are exact."""
AUDIO_BLOCK_S = 0.05
VIDEO_SIZE = (64, 48)
MS = Fraction(1, 1000)


def _tone(n: int, start: int, channels: int, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + start)
    t = (start + np.arange(n)) / rate
    x = 0.2 * np.sin(2 * np.pi * 440 * t)[None] + 0.02 * rng.standard_normal((channels, n))
    return (np.clip(x, -1, 1) * 32767).astype(np.int16)


def write_crafted(path: Path, audio: Sequence[tuple[float, float]] = (),
                  frames: Sequence[float] = (), rate: int = AUDIO_RATE_HZ, channels: int = 2,
                  seed: int = 0, video_lead_s: float = 0.0) -> Path:
    """An MKV with PCM audio blocks covering each (start s, seconds) of ``audio`` and one MJPEG
    frame at each time of ``frames`` (any order, repeats allowed), muxed in time order, or with
    every frame written ``video_lead_s`` seconds ahead of the audio of its time (as cameras and
    muxers with deep encoder queues do; FFmpeg's re-interleaving is turned off for that)."""
    packets: list[tuple[float, int, object]] = []
    # max_interleave_delta 1 us: FFmpeg writes packets in the order given instead of holding
    # them back to interleave by timestamp (its default buffers up to 10 s for that).
    options = {"max_interleave_delta": "1"} if video_lead_s else {}
    out = av.open(str(path), "w", format="matroska", container_options=options)
    a_stream = v_stream = None
    if audio:
        a_stream = out.add_stream("pcm_s16le", rate=rate, layout="stereo" if channels == 2 else "mono")
        a_stream.time_base = MS
    if frames:
        v_stream = out.add_stream("mjpeg", rate=25)
        v_stream.width, v_stream.height = VIDEO_SIZE
        v_stream.pix_fmt = "yuvj420p"
    block = round(AUDIO_BLOCK_S * rate)
    for start_s, seconds in audio:
        total = round(seconds * rate)
        first = round(start_s * rate)
        for i in range(0, total, block):
            n = min(block, total - i)
            data = _tone(n, first + i, channels, rate, seed).T.reshape(1, -1)
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="s16",
                                           layout=a_stream.layout.name)
            f.sample_rate = rate
            f.pts = round((first + i) / rate * 1000)
            f.time_base = MS
            for p in a_stream.encode(f):
                packets.append((float(p.pts * p.time_base), 0, p))
    for k, t in enumerate(frames):
        img = np.zeros((VIDEO_SIZE[1], VIDEO_SIZE[0], 3), dtype=np.uint8)
        img[..., k % 3] = 60 + (37 * k) % 180
        f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuvj420p")
        f.pts = k  # encoders want increasing pts: the chosen time is set on the packet
        for p in v_stream.encode(f):  # intra-only: one packet per frame, at once
            p.time_base = MS
            p.pts = p.dts = round(t * 1000)
            packets.append((t - video_lead_s, 1, p))
    if a_stream is not None:
        for p in a_stream.encode():
            packets.append((float(p.pts * p.time_base), 0, p))
    for _, _, p in sorted(packets, key=lambda x: (x[0], x[1])):
        out.mux(p)
    out.close()
    return path


def frame_times(start_s: float, end_s: float, fps: int) -> list[float]:
    """Frame timestamps start, start + 1/fps, ... below end (whole ms)."""
    n = round((end_s - start_s) * fps)
    return [round(start_s + i / fps, 3) for i in range(n)]


def with_nan_output(src: Path, dst: Path, graph: str, output: str) -> Path:
    """A copy of bundle ``src`` in ``dst`` whose ``graph`` adds NaN to ``output``: a model
    fault the daemon must count and skip. The manifest's checksum is updated, so the bundle
    still loads."""
    import hashlib
    import json
    import shutil

    import onnx
    from onnx import helper

    shutil.copytree(src, dst)
    file = f"{graph}.onnx"
    model = onnx.load(str(dst / file))
    g = model.graph
    inner = f"{output}_before_fault"
    for node in g.node:
        node.output[:] = [inner if o == output else o for o in node.output]
    nan = helper.make_tensor("fault_nan", onnx.TensorProto.FLOAT, [], [float("nan")])
    g.initializer.append(nan)
    g.node.append(helper.make_node("Add", [inner, "fault_nan"], [output], name="fault_add"))
    onnx.save(model, str(dst / file))
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["files"][file] = hashlib.sha256((dst / file).read_bytes()).hexdigest()
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst
