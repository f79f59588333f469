"""avstream.media on real files written here: WAV through soundfile, mp4/avi through PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import soundfile as sf

from avstream.errors import MediaError
from avstream.media.audio import read_audio_file, resample, to_stereo
from avstream.media.decode import decode_audio_track, decode_video_frames
from avstream.media.frames import earlier_is_nearer, resize_frame


def nearest_frame_indices(frame_times: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Brute force: for each slot the index of the frame nearest in time, ties to the earlier."""
    d = np.abs(np.asarray(slots)[:, None] - np.asarray(frame_times)[None, :])
    return np.argmin(d + 1e-12 * np.arange(len(frame_times))[None, :], axis=1)


def _sine(freq: float, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return np.tile(0.5 * np.sin(2 * np.pi * freq * t), (channels, 1)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(x.size, 1.0 / rate)[np.argmax(spectrum)])


def _gray(level: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.full((h, w, 3), level, dtype=np.uint8)


def _write_video(
    path: Path, frames: list[np.ndarray], pts: list[int], codec: str, time_base: Fraction
) -> None:
    """Frames with explicit timestamps in ``time_base`` units (uneven ones: variable frame rate)."""
    with av.open(str(path), mode="w") as c:
        s = c.add_stream(codec, rate=10)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        s.time_base = time_base
        s.codec_context.time_base = time_base
        for rgb, t in zip(frames, pts, strict=True):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = t
            f.time_base = time_base
            c.mux(s.encode(f))
        c.mux(s.encode(None))


# ----------------------------------------------------------------------------- frames


def test_resize_frame_is_square_inter_area_without_keeping_aspect() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    out = resize_frame(rgb, 64)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA))
    # A left/right split stays at the middle column: the width was squeezed, not cropped.
    split = np.zeros((120, 160, 3), np.uint8)
    split[:, 80:] = 255
    half = resize_frame(split, 64)
    assert half[:, :31].max() == 0 and half[:, 33:].min() == 255


def test_resize_frame_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="expected \\(H, W, 3\\) uint8"):
        resize_frame(np.zeros((10, 10), np.uint8), 8)


def test_the_nearest_frame_rule_ties_to_the_earlier_frame() -> None:
    # 0.25 is exactly halfway between 0.0 and 0.5 (all exact in binary floating point).
    assert earlier_is_nearer(0.25, 0.0, 0.5)
    assert not earlier_is_nearer(0.26, 0.0, 0.5) and earlier_is_nearer(0.24, 0.0, 0.5)
    assert earlier_is_nearer(0.2, 0.1, 0.3)  # 0.2 - 0.1 and 0.3 - 0.2 differ in binary floats
    frame_times = np.array([0.0, 0.05, 0.3, 0.35, 0.9, 1.0])
    slots = np.array([-0.5, 0.0, 0.2, 0.4, 0.6, 0.8, 2.0])
    np.testing.assert_array_equal(nearest_frame_indices(frame_times, slots), [0, 0, 2, 3, 3, 4, 5])


# ----------------------------------------------------------------------------- audio


def test_to_stereo_mono_is_duplicated() -> None:
    x = _sine(440, 8000, 0.1)
    out = to_stereo(x)
    assert out.shape == (2, x.shape[1]) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], x[0])
    np.testing.assert_array_equal(out[1], x[0])


def test_to_stereo_5_1_itu_downmix_drops_lfe_and_cannot_clip() -> None:
    fl, fr, fc, lfe, sl, sr = 0.1, 0.2, 0.3, 0.9, 0.4, 0.5
    x = np.array([[fl], [fr], [fc], [lfe], [sl], [sr]], np.float32).repeat(4, axis=1)
    out = to_stereo(x)
    norm = 1 + 0.7071 + 0.7071
    np.testing.assert_allclose(out[0], (fl + 0.7071 * fc + 0.7071 * sl) / norm, rtol=1e-5)
    np.testing.assert_allclose(out[1], (fr + 0.7071 * fc + 0.7071 * sr) / norm, rtol=1e-5)
    full = to_stereo(np.ones((6, 8), np.float32))
    assert np.abs(full).max() <= 1.0 + 1e-6


def test_to_stereo_other_counts_average_to_mono() -> None:
    x = np.array([[0.1], [0.3], [0.5], [0.7]], np.float32)
    np.testing.assert_allclose(to_stereo(x)[:, 0], [0.4, 0.4], rtol=1e-6)


def test_resample_keeps_pitch_and_duration_and_identity_when_equal() -> None:
    x = _sine(1000, 44_100, 1.0, channels=2)
    y = resample(x, 44_100, 48_000)
    assert y.shape[0] == 2 and abs(y.shape[1] - 48_000) <= 2 and y.dtype == np.float32
    assert abs(_peak_hz(y[0], 48_000) - 1000) <= 1.0
    assert resample(x, 44_100, 44_100) is x


def test_read_wav_44k1_mono_24bit_is_resampled_and_duplicated(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    sf.write(path, _sine(1000, 44_100, 1.0)[0], 44_100, subtype="PCM_24")
    clip = read_audio_file(path, 48_000)
    assert clip.native_rate == 44_100 and clip.native_channels == 1
    assert clip.sample_rate == 48_000 and clip.samples.shape[0] == 2
    assert abs(clip.samples.shape[1] - 48_000) <= 2
    np.testing.assert_array_equal(clip.samples[0], clip.samples[1])
    assert abs(_peak_hz(clip.samples[0], 48_000) - 1000) <= 1.0


def test_read_six_channel_wav_is_downmixed(tmp_path: Path) -> None:
    path = tmp_path / "surround.wav"
    x = np.zeros((6, 4800), np.float32)
    x[0] = 0.5  # front left only
    sf.write(path, x.T, 48_000, subtype="PCM_24")
    clip = read_audio_file(path, 48_000)
    assert clip.native_channels == 6 and clip.samples.shape == (2, 4800)
    np.testing.assert_allclose(clip.samples[0], 0.5 / (1 + 2 * 0.7071), atol=1e-4)
    np.testing.assert_allclose(clip.samples[1], 0.0, atol=1e-6)


def test_read_audio_track_of_mp4_through_pyav(tmp_path: Path) -> None:
    path = tmp_path / "tone.mp4"
    wave = _sine(600, 44_100, 1.0, channels=2)
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("aac", rate=44_100, layout="stereo")
        for start in range(0, wave.shape[1], 1024):
            f = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(wave[:, start : start + 1024]), format="fltp", layout="stereo"
            )
            f.sample_rate = 44_100
            f.pts = start
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    assert decode_audio_track(path).sample_rate == 44_100
    clip = read_audio_file(path, 16_000)
    assert clip.native_rate == 44_100 and clip.native_channels == 2
    assert abs(clip.samples.shape[1] / 16_000 - 1.0) < 0.05
    assert abs(_peak_hz(clip.samples[0], 16_000) - 600) <= 2.0


@pytest.mark.parametrize("name", ["missing.wav", "missing.mp4"])
def test_read_audio_missing_file_is_media_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        read_audio_file(tmp_path / name, 48_000)


@pytest.mark.parametrize("name", ["garbage.wav", "garbage.mp4"])
def test_read_audio_garbage_is_media_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError, match=name):
        read_audio_file(path, 48_000)


# ----------------------------------------------------------------------------- video


def test_decode_samples_by_container_timestamp_on_vfr_video(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mp4"
    pts_ms = [0, 50, 300, 350, 900, 1000, 1150, 1600, 1650, 1700]
    levels = [20 * (i + 1) for i in range(len(pts_ms))]
    _write_video(path, [_gray(v) for v in levels], pts_ms, "libx264", Fraction(1, 1000))
    video = decode_video_frames(path, size=32, fps=5)
    frame_times = np.array(pts_ms) / 1000.0
    expected = nearest_frame_indices(frame_times, video.times)
    np.testing.assert_allclose(video.times, np.arange(len(video.times)) / 5)
    np.testing.assert_allclose(video.source_times, frame_times[expected])
    # Slots run while the last frame (1.7 s) still shows; its duration is the container's.
    assert video.end_s > 1.7
    n_slots = int(np.ceil(video.end_s * 5 - 1e-9))
    assert len(video.times) == n_slots
    got = video.frames[:, 16, 16, 0].astype(int)
    np.testing.assert_allclose(got, np.array(levels)[expected], atol=6)
    assert video.frames.shape == (n_slots, 32, 32, 3) and video.frames.dtype == np.uint8
    assert video.skipped_packets == 0


def test_decode_skips_and_counts_corrupt_packets(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.avi"
    frames = [_gray(8 * i) for i in range(30)]
    _write_video(path, frames, list(range(30)), "mjpeg", Fraction(1, 10))  # 10 fps, constant
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i : i + 3] == b"\xff\xd8\xff"]
    assert len(starts) == 30
    for k in (10, 20):  # blank the JPEG payload of frames 10 and 20; the index stays valid
        data[starts[k] : starts[k + 1] - 16] = bytes(starts[k + 1] - 16 - starts[k])
    path.write_bytes(bytes(data))
    video = decode_video_frames(path, size=16, fps=10)
    assert video.skipped_packets == 2
    assert len(video.frames) == 30  # the stream went on to the end
    np.testing.assert_allclose(video.source_times[[9, 10, 11]], [0.9, 0.9, 1.1])
    assert abs(int(video.frames[29, 8, 8, 0]) - 8 * 29) <= 6


def test_decode_video_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist"):
        decode_video_frames(tmp_path / "nope.mp4", size=16)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(MediaError, match="garbage.mp4"):
        decode_video_frames(garbage, size=16)
    audio_only = tmp_path / "audio_only.wav"
    sf.write(audio_only, _sine(440, 8000, 0.2)[0], 8000)
    with pytest.raises(MediaError, match="no video stream"):
        decode_video_frames(audio_only, size=16)
