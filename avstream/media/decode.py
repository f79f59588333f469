"""Whole-file decoding with PyAV: frames sampled on the k / fps grid by container timestamp, and
the audio track as float32 planes.

Corrupt packets in the middle of a file are skipped and counted (the caller reports them); a
file that cannot be opened, or has no usable stream, raises MediaError with one clear line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from avstream.errors import MediaError
from avstream.media.frames import earlier_is_nearer, resize_frame, upright
from avstream.timebase import VIDEO_FPS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodedVideo:
    """Frames sampled at k / fps on the container's clock (k = 0, 1, ...)."""

    times: np.ndarray
    """(n,) float64 s: the slot times k / fps that were filled."""
    frames: np.ndarray
    """(n, size, size, 3) uint8 RGB: for each slot, the decoded frame nearest in time."""
    source_times: np.ndarray
    """(n,) float64 s: container timestamp of the frame chosen for each slot."""
    end_s: float
    """Time the last decoded frame stops showing (its timestamp plus one frame duration)."""
    skipped_packets: int
    """Packets that failed to decode (or frames without a usable timestamp), skipped."""


@dataclass(frozen=True)
class DecodedAudio:
    """A file's first audio track at its native rate and channel count."""

    samples: np.ndarray
    """(channels, n) float32 in [-1, 1]."""
    sample_rate: int
    skipped_packets: int


def _open(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise MediaError(f"media file {path} does not exist; expected a readable audio/video file")
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as e:
        raise MediaError(
            f"media file {path} could not be opened ({e}); expected a valid media container"
        ) from e


def _frame_time(frame: av.VideoFrame | av.AudioFrame) -> float | None:
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def decode_video_frames(
    path: str | Path, size: int, fps: float = VIDEO_FPS, max_seconds: float | None = None
) -> DecodedVideo:
    """Decode the first video stream, keeping for each slot k / fps the nearest frame by timestamp.

    Frame counts are never used as a clock: files with a variable frame rate, dropped frames or
    a non-zero start still line up with their audio. Ties go to the earlier frame. Only the
    chosen frames are converted and resized, so memory stays bounded on long files.
    """
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.video:
            raise MediaError(f"media file {path} has no video stream; expected one (H.264 mp4)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        period = 1.0 / fps
        slots: list[float] = []
        chosen: list[np.ndarray] = []
        chosen_times: list[float] = []
        skipped = 0
        prev: tuple[float, av.VideoFrame] | None = None
        last_gap: float | None = None
        done = False

        def take(slot: float, t: float, frame: av.VideoFrame) -> None:
            slots.append(slot)
            chosen_times.append(t)
            chosen.append(resize_frame(upright(frame.to_ndarray(format="rgb24"), frame.rotation),
                                       size))

        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                skipped += 1
                log.debug("%s: skipped a corrupt video packet (%s)", path, e)
                continue
            for frame in frames:
                t = _frame_time(frame)
                if t is None or (prev is not None and t <= prev[0]):
                    # No timestamp, or out of order: it cannot be placed on the clock.
                    skipped += 1
                    continue
                while True:
                    slot = len(slots) * period
                    if max_seconds is not None and slot >= max_seconds - 1e-9:
                        done = True
                        break
                    if slot > t:
                        break
                    if prev is not None and earlier_is_nearer(slot, prev[0], t):
                        take(slot, *prev)
                    else:
                        take(slot, t, frame)
                if prev is not None:
                    last_gap = t - prev[0]
                prev = (t, frame)
                if done:
                    break
            if done:
                break
        if prev is None:
            raise MediaError(
                f"media file {path} has no decodable video frames; expected H.264 video"
            )
        frame_duration = _frame_duration(stream, prev[1], last_gap)
        end_s = prev[0] + frame_duration
        if max_seconds is not None:
            end_s = min(end_s, max_seconds)
        while not done:
            slot = len(slots) * period
            if slot >= end_s - 1e-9:
                break
            take(slot, *prev)
    except av.FFmpegError as e:
        raise MediaError(
            f"media file {path} could not be decoded ({e}); expected H.264 video"
        ) from e
    finally:
        container.close()
    if skipped:
        log.warning("%s: %d corrupt or untimed video packets/frames skipped", path, skipped)
    frames_arr = np.stack(chosen) if chosen else np.zeros((0, size, size, 3), dtype=np.uint8)
    return DecodedVideo(
        times=np.asarray(slots, dtype=np.float64),
        frames=frames_arr,
        source_times=np.asarray(chosen_times, dtype=np.float64),
        end_s=float(end_s),
        skipped_packets=skipped,
    )


def _frame_duration(
    stream: av.video.stream.VideoStream, frame: av.VideoFrame, gap: float | None
) -> float:
    """How long the last frame shows: its own duration if the container says, else the last gap."""
    if frame.duration and frame.time_base is not None:
        return float(frame.duration * frame.time_base)
    if gap is not None and gap > 0:
        return gap
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate else 0.0


def decode_audio_track(path: str | Path) -> DecodedAudio:
    """Decode a file's first audio track (e.g. the AAC track of an mp4) to float32 planes."""
    path = Path(path)
    container = _open(path)
    try:
        if not container.streams.audio:
            raise MediaError(f"media file {path} has no audio stream; expected one audio track")
        stream = container.streams.audio[0]
        # fltp keeps every channel in its own plane; the rate and layout stay native so the
        # caller's down-mix and soxr resampling are the only conversions.
        resampler = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        skipped = 0
        rate: int | None = None
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                skipped += 1
                log.debug("%s: skipped a corrupt audio packet (%s)", path, e)
                continue
            for frame in frames:
                rate = rate or frame.sample_rate
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    except av.FFmpegError as e:
        raise MediaError(
            f"media file {path} could not be decoded ({e}); expected an audio track"
        ) from e
    finally:
        container.close()
    if not chunks or rate is None:
        raise MediaError(f"media file {path} has no decodable audio; expected an audio track")
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if skipped:
        log.warning("%s: %d corrupt audio packets skipped", path, skipped)
    return DecodedAudio(samples=samples, sample_rate=int(rate), skipped_packets=skipped)
