"""A synthetic dataset in the TAU AV 2021 development layout, for tests and CPU demos.

    <out>/audio/<scene>-<city>-<location>-<segment>.wav   48 kHz, 24-bit PCM, stereo
    <out>/video/<same stem>.mp4                           H.264, 160x120 at 15 fps by default
    <out>/meta.csv, <out>/evaluation_setup/fold1_{train,evaluate,test}.csv

Clips of one location share its drawn parameters (as real recordings share a place); the
train/evaluate split is by location (~70/30 per class), so evaluation sees unseen locations.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np
import soundfile as sf

from avstream.scenes import SCENES
from training.synth.hard import Difficulty, Placement, draw_placement, harden_audio, harden_video
from training.synth.scenes import (
    SYNTH_SAMPLE_RATE_HZ,
    check_groups,
    draw_audio_params,
    draw_visual_params,
    render_audio,
    render_video,
    scene_groups,
    with_side_cue,
)

log = logging.getLogger(__name__)

WAV_SUBTYPE: Final[str] = "PCM_24"  # TAU's format
VIDEO_CODEC: Final[str] = "libx264"
VIDEO_OPTIONS: Final[dict[str, str]] = {"preset": "superfast", "crf": "23"}
CLIPS_PER_LOCATION: Final[int] = 2
EVALUATE_SHARE: Final[float] = 0.3
CITIES: Final[tuple[str, ...]] = ("synthcity1", "synthcity2", "synthcity3")
FIRST_LOCATION_ID: Final[int] = 1000
SEGMENT_STEP: Final[int] = 10  # TAU stems number segments in steps, e.g. ...-40000
HEADER: Final[tuple[str, ...]] = ("filename_audio", "filename_video", "scene_label")


@dataclass(frozen=True)
class SynthClip:
    stem: str
    scene: str
    identifier: str
    """<city>-<location>, as meta.csv's identifier column."""
    split: str
    """"train" or "evaluate"."""


@dataclass(frozen=True)
class SynthDataset:
    """What was written: the root and every clip with its split."""

    root: Path
    clips: list[SynthClip]
    seconds: int
    sample_rate: int
    fps: int


def add_video_stream(
    container: av.container.OutputContainer, width: int, height: int, fps: int
) -> av.video.stream.VideoStream:
    """An H.264 yuv420p stream with time base 1/fps (frame i has pts i)."""
    if width % 2 or height % 2:
        raise ValueError(f"video size {width}x{height}; expected even sides for yuv420p H.264")
    stream = container.add_stream(VIDEO_CODEC, rate=fps, options=dict(VIDEO_OPTIONS))
    stream.width = width
    stream.height = height
    stream.pix_fmt = "yuv420p"
    stream.time_base = Fraction(1, fps)
    return stream


def encode_frames(
    container: av.container.OutputContainer,
    stream: av.video.stream.VideoStream,
    frames: np.ndarray,
    first_pts: int = 0,
) -> None:
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = first_pts + i
        container.mux(stream.encode(frame))


def write_video_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    """Write (n, H, W, 3) uint8 RGB frames as an H.264 mp4 (video only, like the dataset's)."""
    n, height, width, _ = frames.shape
    with av.open(str(path), mode="w") as container:
        stream = add_video_stream(container, width, height, fps)
        encode_frames(container, stream, frames)
        container.mux(stream.encode(None))


AUDIO_TAG = 1  # seed-sequence tags: audio and visual location draws never share a stream
VISUAL_TAG = 2
HARD_TAG = 3


def write_clip_files(
    audio_path: Path,
    video_path: Path,
    scene: str,
    seconds: float,
    location_rng: np.random.Generator,
    clip_rng: np.random.Generator,
    width: int = 160,
    height: int = 120,
    fps: int = 15,
    sample_rate: int = SYNTH_SAMPLE_RATE_HZ,
    visual_location_rng: np.random.Generator | None = None,
    side_cue: bool = False,
    hard: tuple[Difficulty, Placement, str] | None = None,
) -> None:
    """Render and write one clip's WAV and mp4.

    ``location_rng`` draws the place's parameters (pass generators seeded alike for clips of one
    location), the visual ones from ``visual_location_rng`` when given; ``clip_rng`` draws
    everything that changes from clip to clip. ``side_cue``: the two classes of an audio group
    differ in their channels' coherence (scenes.with_side_cue), so L-R carries class information.
    ``hard``: (difficulty, the location's placement, the clip's split) of ``synth.hard``.
    """
    audio_group, visual_group = scene_groups(scene)
    audio_params = draw_audio_params(audio_group, location_rng)
    if side_cue:
        audio_params = with_side_cue(audio_params, scene, clip_rng)
    visual_params = draw_visual_params(visual_group, visual_location_rng or location_rng)
    n_samples = round(seconds * sample_rate)
    n_frames = round(seconds * fps)
    audio = render_audio(audio_params, n_samples, sample_rate, clip_rng)
    frames = render_video(visual_params, n_frames, fps, width, height, clip_rng)
    if hard is not None:
        difficulty, placement, split = hard
        audio = harden_audio(audio, sample_rate, split, difficulty, clip_rng)
        frames = harden_video(frames, split, difficulty, placement)
    audio_path.parent.mkdir(parents=True, exist_ok=True)
    video_path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(audio_path), audio.T, sample_rate, subtype=WAV_SUBTYPE)
    write_video_mp4(video_path, frames, fps)


def plan_clips(
    classes: tuple[str, ...], clips_per_class: int
) -> list[tuple[str, int, int, str, int]]:
    """(scene, location id, segment, city, location index) for every clip, grouped by location."""
    n_locations = max(2, math.ceil(clips_per_class / CLIPS_PER_LOCATION))
    plan = []
    for scene in classes:
        for clip in range(clips_per_class):
            loc_index = clip % n_locations
            segment = (clip // n_locations) * SEGMENT_STEP
            location_id = FIRST_LOCATION_ID + loc_index
            city = CITIES[loc_index % len(CITIES)]
            plan.append((scene, location_id, segment, city, loc_index))
    return plan


def _split_of(loc_index: int, clips_per_class: int) -> str:
    n_locations = max(2, math.ceil(clips_per_class / CLIPS_PER_LOCATION))
    n_evaluate = min(n_locations - 1, max(1, round(EVALUATE_SHARE * n_locations)))
    return "evaluate" if loc_index >= n_locations - n_evaluate else "train"


def write_synthetic_dataset(
    out_dir: str | Path,
    clips_per_class: int = 8,
    seed: int = 0,
    seconds: int = 10,
    *,
    width: int = 160,
    height: int = 120,
    fps: int = 15,
    sample_rate: int = SYNTH_SAMPLE_RATE_HZ,
    side_cue: bool = False,
    difficulty: Difficulty | None = None,
) -> SynthDataset:
    """Write a complementary-modality dataset in the TAU layout; returns what was written.

    ``side_cue`` makes the two classes of each audio group differ in their L-R channel (the
    default set's pairs are identical in sound); the default set is unchanged by the option.
    ``difficulty`` (``synth.hard.HARD`` for ``--hard``) adds what makes TAU hard: another
    recording device for the evaluate split, babble noise, each location's light and viewpoint.

    Same seed, same content. The split is by location, stratified per class, so every class is
    in both fold1_train and fold1_evaluate; fold1_test lists the evaluate clips without labels.
    """
    if clips_per_class < 2:
        raise ValueError(
            f"clips_per_class={clips_per_class}; expected >= 2 (one train and one evaluate location)"
        )
    if seconds < 1:
        raise ValueError(f"seconds={seconds}; expected >= 1 (the model's window is 1 s)")
    classes = SCENES
    check_groups(classes)
    root = Path(out_dir)
    for sub in ("audio", "video", "evaluation_setup"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    clips: list[SynthClip] = []
    for scene, location_id, segment, city, loc_index in plan_clips(classes, clips_per_class):
        class_index = classes.index(scene)
        stem = f"{scene}-{city}-{location_id}-{segment}"
        # The two classes of an audio group share each location's sound draw, and the two of a
        # visual group its look: no finite set of locations can then hold a chance difference
        # between the pair that a branch could learn (it would not hold on new locations).
        audio_group, visual_group = scene_groups(scene)
        location_rng = np.random.default_rng([seed, AUDIO_TAG, audio_group, loc_index])
        visual_rng = np.random.default_rng([seed, VISUAL_TAG, visual_group, loc_index])
        clip_rng = np.random.default_rng([seed, class_index, location_id, segment + 1])
        split = _split_of(loc_index, clips_per_class)
        hard = None
        if difficulty is not None:
            place_rng = np.random.default_rng([seed, HARD_TAG, class_index, loc_index])
            hard = (difficulty, draw_placement(difficulty, place_rng), split)
        write_clip_files(
            root / "audio" / f"{stem}.wav",
            root / "video" / f"{stem}.mp4",
            scene,
            seconds,
            location_rng,
            clip_rng,
            width=width,
            height=height,
            fps=fps,
            sample_rate=sample_rate,
            visual_location_rng=visual_rng,
            side_cue=side_cue,
            hard=hard,
        )
        clips.append(SynthClip(stem=stem, scene=scene, identifier=f"{city}-{location_id}",
                               split=split))
    clips.sort(key=lambda c: c.stem)
    _write_lists(root, clips)
    log.info("wrote %d synthetic clips of %d s to %s", len(clips), seconds, root)
    return SynthDataset(root=root, clips=clips, seconds=seconds, sample_rate=sample_rate, fps=fps)


def _row(clip: SynthClip) -> list[str]:
    return [f"audio/{clip.stem}.wav", f"video/{clip.stem}.mp4"]


def _write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    lines = ["\t".join(header)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _write_lists(root: Path, clips: list[SynthClip]) -> None:
    setup = root / "evaluation_setup"
    _write_tsv(
        root / "meta.csv",
        [*HEADER, "identifier"],
        [[*_row(c), c.scene, c.identifier] for c in clips],
    )
    for split in ("train", "evaluate"):
        _write_tsv(
            setup / f"fold1_{split}.csv",
            list(HEADER),
            [[*_row(c), c.scene] for c in clips if c.split == split],
        )
    _write_tsv(
        setup / "fold1_test.csv",
        list(HEADER[:2]),
        [_row(c) for c in clips if c.split == "evaluate"],
    )
