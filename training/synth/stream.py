"""One mp4 (H.264 + AAC or FLAC, 48 kHz stereo) that moves through synthetic scenes, with its truth
CSV.

For replaying through the daemon: the scenes are rendered by the dataset's renderers (each
scene a fresh, unseen location), so a model trained on ``write_synthetic_dataset`` should
follow the changes. The truth goes beside the video as ``<out>.csv`` (same path, suffix .csv):

    start_s,end_s,scene
    0.000000,8.000000,park
    ...

Scene boundaries fall on video frames (each boundary is rounded to the nearest frame), and the
CSV gives the exact boundary times.

AAC at 128 kbps is what a camera or a phone would write; FLAC keeps the rendered audio to the
16-bit step. A recording that scores a model wants FLAC: the AAC coder changes how alike the two
channels are, a cue of the synthetic sound groups, and the demo bundle that labelled a FLAC
recording 100 % right labelled its AAC twin 52 % right (docs/training.md, "Lossy audio").
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np

from training.synth.dataset import add_video_stream, encode_frames
from training.synth.scenes import (
    SYNTH_SAMPLE_RATE_HZ,
    draw_audio_params,
    draw_visual_params,
    render_audio,
    render_video,
    scene_groups,
)

log = logging.getLogger(__name__)

AUDIO_BIT_RATES: Final[dict[str, int | None]] = {"aac": 128_000, "flac": None}
"""The audio codecs a stream can carry, with the bit rate of each lossy one."""
AUDIO_CHUNK: Final[int] = 1024  # AAC frame size in samples
STREAM_SEED_TAG: Final[int] = 7_919  # keeps stream locations apart from dataset locations


def stream_location_rng(seed: int, scene_index: int) -> np.random.Generator:
    """The draw of the stream's scene ``scene_index``: its location's sound, then its look."""
    return np.random.default_rng([seed, STREAM_SEED_TAG, scene_index])


def stream_clip_rng(seed: int, scene_index: int) -> np.random.Generator:
    """The rendering noise of that scene: its audio first, then its frames."""
    return np.random.default_rng([seed, STREAM_SEED_TAG, scene_index, 1])


def truth_csv_path(out_mp4: str | Path) -> Path:
    """Where the truth of a synthetic stream is written: the mp4's path with suffix .csv."""
    return Path(out_mp4).with_suffix(".csv")


def write_synthetic_stream(
    out_mp4: str | Path,
    scenes: list[str],
    seconds_per_scene: float = 8.0,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    fps: int = 15,
    audio_codec: str = "aac",
) -> Path:
    """Write the stream and its truth CSV; returns the CSV's path (``truth_csv_path(out_mp4)``)."""
    if not scenes:
        raise ValueError("scenes is empty; expected at least one scene name")
    if audio_codec not in AUDIO_BIT_RATES:
        raise ValueError(f"audio_codec={audio_codec!r}; expected one of {sorted(AUDIO_BIT_RATES)}")
    groups = [scene_groups(s) for s in scenes]  # rejects unknown names before writing anything
    if seconds_per_scene <= 0:
        raise ValueError(f"seconds_per_scene={seconds_per_scene}; expected > 0")
    if fps <= 0 or SYNTH_SAMPLE_RATE_HZ % fps:
        raise ValueError(
            f"fps={fps}; expected a positive divisor of {SYNTH_SAMPLE_RATE_HZ} so each video "
            "frame spans a whole number of audio samples"
        )
    samples_per_frame = SYNTH_SAMPLE_RATE_HZ // fps
    bounds = [math.floor(i * seconds_per_scene * fps + 0.5) for i in range(len(scenes) + 1)]
    if any(b1 <= b0 for b0, b1 in zip(bounds, bounds[1:], strict=False)):
        raise ValueError(
            f"seconds_per_scene={seconds_per_scene} at {fps} fps gives an empty scene; "
            "expected at least one frame per scene"
        )
    out_mp4 = Path(out_mp4)
    out_mp4.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out_mp4), mode="w") as container:
        video = add_video_stream(container, width, height, fps)
        audio = container.add_stream(audio_codec, rate=SYNTH_SAMPLE_RATE_HZ, layout="stereo")
        if AUDIO_BIT_RATES[audio_codec] is not None:
            audio.bit_rate = AUDIO_BIT_RATES[audio_codec]
        audio.time_base = Fraction(1, SYNTH_SAMPLE_RATE_HZ)
        audio_pts = 0
        for i, (audio_group, visual_group) in enumerate(groups):
            location_rng, clip_rng = stream_location_rng(seed, i), stream_clip_rng(seed, i)
            n_frames = bounds[i + 1] - bounds[i]
            a_params = draw_audio_params(audio_group, location_rng)
            v_params = draw_visual_params(visual_group, location_rng)
            wave = render_audio(
                a_params, n_frames * samples_per_frame, SYNTH_SAMPLE_RATE_HZ, clip_rng
            )
            frames = render_video(v_params, n_frames, fps, width, height, clip_rng)
            encode_frames(container, video, frames, first_pts=bounds[i])
            audio_pts = _encode_audio(container, audio, wave, audio_pts)
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    csv_path = truth_csv_path(out_mp4)
    lines = ["start_s,end_s,scene"] + [
        f"{bounds[i] / fps:.6f},{bounds[i + 1] / fps:.6f},{scene}" for i, scene in enumerate(scenes)
    ]
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log.info("wrote synthetic stream %s (%d scenes) and %s", out_mp4, len(scenes), csv_path)
    return csv_path


def _encode_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    wave: np.ndarray,
    pts: int,
) -> int:
    """Encode (2, n) float32 in AAC-sized chunks (the encoder converts them to its own sample
    format: 16-bit for FLAC); returns the next pts (in samples)."""
    for start in range(0, wave.shape[1], AUDIO_CHUNK):
        chunk = np.ascontiguousarray(wave[:, start : start + AUDIO_CHUNK], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = SYNTH_SAMPLE_RATE_HZ
        frame.pts = pts
        pts += chunk.shape[1]
        container.mux(stream.encode(frame))
    return pts
