"""What users hit on the way: a file shorter than one window, and a phone video whose display
matrix says it was recorded sideways. Both files are written here with PyAV."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from cli_run import avstream

from avstream.errors import EXIT_USAGE
from avstream.media.decode import decode_video_frames
from avstream.sources.base import VideoFrame
from avstream.sources.media_file import MediaFileSource

WIDE, TALL = 96, 48


def write_sideways(path: Path, rotation: int, frames: int = 10) -> Path:
    """Landscape-coded H.264 whose left half is white, with a display matrix rotating it by
    ``rotation`` degrees counter-clockwise (as a phone held upright records)."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("h264", rate=10)
        vs.width, vs.height, vs.pix_fmt = WIDE, TALL, "yuv420p"
        vs.set_display_rotation(rotation)
        for i in range(frames):
            img = np.zeros((TALL, WIDE, 3), dtype=np.uint8)
            img[:, : WIDE // 2] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


def ffmpeg_upright(path: Path) -> np.ndarray:
    """The first frame as FFmpeg's own command line shows it (autorotate on)."""
    r = subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(path), "-frames:v", "1",
                        "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True,
                       check=True)
    return np.frombuffer(r.stdout, dtype=np.uint8).reshape(WIDE, TALL, 3)


@pytest.mark.parametrize("rotation", [90, -90])
def test_a_sideways_phone_video_is_turned_upright(tmp_path: Path, rotation: int) -> None:
    if subprocess.run(["which", "ffmpeg"], capture_output=True).returncode != 0:
        pytest.skip("ffmpeg (Debian package) is not installed: no reference to compare with")
    mp4 = write_sideways(tmp_path / f"phone{rotation}.mp4", rotation)
    source = MediaFileSource(mp4)
    first = next(e for e in source.events() if isinstance(e, VideoFrame))
    source.close()
    assert first.rgb.shape == (WIDE, TALL, 3)  # portrait, as shown
    reference = ffmpeg_upright(mp4).astype(int)
    assert np.abs(first.rgb.astype(int) - reference).mean() < 8
    # A quarter turn counter-clockwise (+90) brings the white left half to the bottom.
    top, bottom = first.rgb[: WIDE // 2].mean(), first.rgb[WIDE // 2:].mean()
    assert (bottom > top + 100) == (rotation == 90)
    # Training's offline decode turns it the same way.
    offline = decode_video_frames(mp4, 32).frames[0].astype(int)
    from avstream.media.frames import resize_frame
    np.testing.assert_allclose(offline, resize_frame(first.rgb, 32), atol=2)


def test_a_file_shorter_than_one_window_says_so(tiny_bundle: Path, tmp_path: Path) -> None:
    from replay_helpers import write_media

    clip = write_media(tmp_path / "short.mp4", seconds=0.6)
    r = avstream("replay", str(clip), "--model", str(tiny_bundle), "--jsonl", "-", timeout=300)
    assert r.returncode == EXIT_USAGE, r.stderr
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert len([x for x in lines if "shorter than one window" in x]) == 1
    line = next(x for x in lines if "shorter than one window" in x)
    assert "0.6" in line and "1.00 s" in line and str(clip) in line
