"""What the replay tests share: media files written through PyAV (so decoding is real too), the
sink that keeps everything (``avstream.outputs.collect.Collect``), a replay of a file through
the daemon's own driver, and the command line run as a child process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import av
import numpy as np
from cli_run import avstream

from avstream.driver import drive
from avstream.inference.engine import Engine
from avstream.outputs.collect import Collect
from avstream.sources.media_file import MediaFileSource
from avstream.stream.pipeline import PipelineConfig

REPO = Path(__file__).resolve().parents[1]
VOLATILE = ("latency_ms", "wall_time")
"""Fields that depend on the machine, not the stream (docs/outputs.md, "JSON lines output")."""


def write_media(path: Path, seconds: float = 3.0, fps: int = 25, size: tuple[int, int] = (160, 120),
                rate: int = 44_100, layout: str = "stereo", audio: bool = True,
                video: bool = True, audio_codec: str = "aac", seed: int = 0) -> Path:
    """H.264 + AAC (or PCM) with moving colour and noisy tones (independent per channel)."""
    rng = np.random.default_rng(seed)
    out = av.open(str(path), "w")
    vs = as_ = None
    if video:
        vs = out.add_stream("h264", rate=fps)
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
    if audio:
        as_ = out.add_stream(audio_codec, rate=rate, layout=layout)
    channels = av.AudioLayout(layout).nb_channels if audio else 0
    n_frames = int(round(seconds * fps))
    total = int(round(seconds * rate))
    apos = 0
    chunk = 1024
    for i in range(n_frames if video else 1):
        if vs is not None:
            img = np.zeros((size[1], size[0], 3), dtype=np.uint8)
            img[..., i % 3] = 40 + (5 * i) % 200
            img[: size[1] // 2, : size[0] // 2] = rng.integers(0, 255, 3, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for p in vs.encode(frame):
                out.mux(p)
        if as_ is not None:
            upto = total if not video else min(total, int((i + 1) * rate / fps))
            while apos < upto:
                n = min(chunk, total - apos)
                t = (apos + np.arange(n)) / rate
                tone = 0.2 * np.sin(2 * np.pi * (220 + 40 * (apos // rate)) * t)
                x = (tone + 0.05 * rng.standard_normal((channels, n))).astype(np.float32)
                fmt = "fltp" if audio_codec == "aac" else "s16"
                data = x if fmt == "fltp" else (x.T.reshape(1, -1) * 32767).astype(np.int16)
                af = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
                af.sample_rate = rate
                af.pts = apos
                for p in as_.encode(af):
                    out.mux(p)
                apos += n
    for s in (vs, as_):
        if s is not None:
            for p in s.encode():
                out.mux(p)
    out.close()
    return path


def write_wav(path: Path, seconds: float, rate: int, channels: int, seed: int = 1) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.2 * np.sin(2 * np.pi * 330 * t)[:, None] + 0.05 * rng.standard_normal((t.size, channels))
    sf.write(str(path), x.astype(np.float32), rate, subtype="PCM_24")
    return path


def remux_keep(src: Path, dst: Path, kind: str) -> Path:
    """Copy one stream of ``src`` into ``dst`` without re-encoding (drops the other one)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.audio[0] if kind == "audio" else inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        for packet in inp.demux(s_in):
            if packet.dts is None:
                continue
            packet.stream = s_out
            out.mux(packet)
    return dst


def corrupt_ts(src: Path, dst: Path, lo: float = 0.4, hi: float = 0.5) -> Path:
    """Lose every third 188-byte transport packet between fractions lo..hi of the file, as a
    lossy network link would."""
    data = src.read_bytes()
    n = len(data) // 188
    keep = [data[i * 188:(i + 1) * 188] for i in range(n) if not (n * lo < i < n * hi and i % 3 == 0)]
    dst.write_bytes(b"".join(keep))
    return dst


def replay(engine: Engine, media: Path, audio: Path | None = None,
           config: PipelineConfig | None = None, realtime: bool = False) -> Collect:
    sink = Collect()
    drive(MediaFileSource(media, audio), engine, config or PipelineConfig(), [sink],
          realtime=realtime)
    return sink


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return avstream(*args, timeout=timeout)


def stable(line: str) -> dict:
    d = json.loads(line)
    for k in VOLATILE:
        d.pop(k)
    return d
