"""``avstream record`` with real parts: a PulseAudio null-sink microphone and an ffmpeg UDP camera.

A take is captured through the live sources, decodes with PyAV with both streams of the
expected length at the device's own rate, and is complete or absent: a SIGTERM mid-take leaves
nothing in the scene folder. Bad scene names are refused with one line, exit 2, before any
device is opened.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import av
import pytest
from cli_run import Child, avstream, start
from live_env import (
    PulseServer,
    camera_url,
    free_udp_port,
    kill_group,
    play,
    require_camera_stack,
    serve_camera,
    write_wav_from_media,
)
from replay_helpers import write_media

from avstream.commands.record import EXIT_STOPPED
from avstream.errors import EXIT_OK, EXIT_USAGE
from avstream.takes import summarize

PULSE_DEVICE = "pulse"
MEDIA_SECONDS = 20.0
TAKE_SECONDS = 3.0
SAMPLES_TOLERANCE = 0.01
"""Share of the take's audio samples the file may differ by (one device block, rounding)."""
MIN_FPS = 5.0
"""The UDP camera sends 25 fps; a loaded 2-core machine must still keep the model's 5."""
RECORD_BOUND_S = 60.0
NATIVE_RE = re.compile(r"opened at its native (\d+) Hz, (\d+) ch")


@pytest.fixture(scope="module")
def scene_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clip")
    mp4 = write_media(folder / "scene.mp4", seconds=MEDIA_SECONDS)
    return mp4, write_wav_from_media(mp4, folder / "scene.wav")


def _devices(pulse: PulseServer, clip: tuple[Path, Path]) -> tuple[list[subprocess.Popen], str]:
    require_camera_stack()
    mp4, wav = clip
    port = free_udp_port()
    procs = [serve_camera(mp4, port, max_seconds=MEDIA_SECONDS),
             play(pulse, wav, max_seconds=MEDIA_SECONDS + 5)]
    return procs, camera_url(port)


def _record(args: list[str], env: dict[str, str], workdir: Path) -> Child:
    return start("record", *args, workdir=workdir, bound_s=RECORD_BOUND_S, env=env, name="record")


@pytest.mark.live
def test_record_writes_one_complete_take_at_the_devices_own_format(
        pulse: PulseServer, scene_clip: tuple[Path, Path], tmp_path: Path) -> None:
    dataset = tmp_path / "places"
    procs, url = _devices(pulse, scene_clip)
    try:
        rec = _record([str(dataset), "--scene", "kitchen", "--seconds", f"{TAKE_SECONDS:g}",
                       "--countdown", "0.5", "--mic", PULSE_DEVICE, "--camera", url], pulse.env,
                      tmp_path)
        rc = rec.wait(RECORD_BOUND_S + 5)
    finally:
        for p in procs:
            kill_group(p)
    out, err = rec.stdout_text(), rec.stderr_text()
    assert rc == EXIT_OK, err[-3000:]
    assert "Traceback" not in err
    files = sorted((dataset / "kitchen").iterdir())
    assert len(files) == 1 and files[0].suffix == ".mkv", files  # no partial file left
    native = NATIVE_RE.search(err)
    assert native, err[-2000:]
    rate, channels = int(native.group(1)), int(native.group(2))
    with av.open(str(files[0])) as c:
        (a,) = c.streams.audio
        (v,) = c.streams.video
        assert (a.rate, a.channels) == (rate, channels)
        samples = sum(f.samples for f in c.decode(a))
    with av.open(str(files[0])) as c:
        frames = list(c.decode(c.streams.video[0]))
    assert abs(samples - TAKE_SECONDS * rate) <= SAMPLES_TOLERANCE * TAKE_SECONDS * rate, samples
    assert (frames[0].width, frames[0].height) == (160, 120)
    times = [float(f.pts * f.time_base) for f in frames]
    assert len(frames) >= MIN_FPS * TAKE_SECONDS, len(frames)
    assert times[0] < 0.5 and TAKE_SECONDS - 0.5 < times[-1] < TAKE_SECONDS, times
    # What the dataset now holds is printed, and reads back the same.
    (kitchen,) = summarize(dataset)
    assert (kitchen.scene, kitchen.takes) == ("kitchen", 1)
    assert kitchen.seconds == pytest.approx(TAKE_SECONDS, abs=0.3)
    assert "kitchen" in out and "now holds" in out, out


@pytest.mark.live
def test_sigterm_during_a_take_leaves_no_partial_take(
        pulse: PulseServer, scene_clip: tuple[Path, Path], tmp_path: Path) -> None:
    dataset = tmp_path / "places"
    procs, url = _devices(pulse, scene_clip)
    rec = None
    try:
        rec = _record([str(dataset), "--scene", "office", "--seconds", "30", "--countdown", "0",
                       "--mic", PULSE_DEVICE, "--camera", url], pulse.env, tmp_path)
        deadline = time.monotonic() + 30
        folder = dataset / "office"
        while time.monotonic() < deadline and rec.proc.poll() is None:
            partial = [f for f in folder.iterdir() if f.name.endswith(".partial")] if folder.is_dir() else []
            if partial and partial[0].stat().st_size > 0:
                break  # the take is being written
            time.sleep(0.1)
        assert rec.proc.poll() is None, rec.stderr_text()[-3000:]
        time.sleep(1.0)
        rc = rec.stop(signal.SIGTERM, 20)  # timeout passes it on to avstream
    finally:
        for p in procs:
            kill_group(p)
        if rec is not None:
            rec.kill()
    err = rec.stderr_text()
    assert rc == EXIT_STOPPED, err[-3000:]
    assert "discarded" in err and "Traceback" not in err, err[-3000:]
    assert list((dataset / "office").iterdir()) == []
    assert summarize(dataset)[0].takes == 0


@pytest.mark.parametrize("name", ["Kitchen", "living room", "a/b", "../up", "café", ""])
def test_bad_scene_names_exit_2_with_one_line(name: str, tmp_path: Path) -> None:
    res = avstream("record", str(tmp_path / "ds"), "--scene", name, "--seconds", "1",
                   "--camera", "udp://127.0.0.1:9", timeout=60)
    assert res.returncode == EXIT_USAGE, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "scene name" in lines[0] and "a-z, 0-9 and _" in lines[0], lines
    assert not (tmp_path / "ds").exists()  # refused before anything was opened or made
