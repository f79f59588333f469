"""``avstream devices`` and the one-line device errors, run as the real command.

The PulseAudio tests start a private server (tests/live_env.py) and run the CLI in a child
process pointed at it: PortAudio reads its device list once per process, at initialisation.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_run import avstream
from crafted_media import VIDEO_SIZE, frame_times, write_crafted
from live_env import (
    PulseServer,
    camera_url,
    free_udp_port,
    kill_group,
    require_camera_stack,
    serve_camera,
)

from avstream.errors import EXIT_DEVICE, EXIT_USAGE
from avstream.sources.audio_inputs import PORTAUDIO_MISSING, SOUNDDEVICE_MISSING

CLI_TIMEOUT_S = 60

# Made in the CLI's process only (tests/cli_run.py's ``patch``): ctypes cannot find PortAudio,
# as on a machine without libportaudio2; sounddevice's import then raises OSError exactly as
# it does there.
NO_PORTAUDIO = "import ctypes.util\nctypes.util.find_library = lambda name: None\n"
# The same where the live extra is not installed: ``import sounddevice`` raises ImportError.
NO_SOUNDDEVICE = "import sys\nsys.modules['sounddevice'] = None\n"


def run_cli(args: list[str], env: dict[str, str] | None = None,
            patch: str | None = None) -> subprocess.CompletedProcess:
    return avstream(*args, env=env, patch=patch, timeout=CLI_TIMEOUT_S)


def assert_one_line_error(done: subprocess.CompletedProcess, code: int) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.startswith("avstream: error:")]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.live
def test_devices_json_lists_the_pulseaudio_source(pulse: PulseServer) -> None:
    done = run_cli(["devices", "--json"], env=pulse.env)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    names = {a["name"]: a for a in found["audio_inputs"]}
    assert "pulse" in names, found
    pulse_in = names["pulse"]
    assert pulse_in["channels"] >= 1
    assert pulse_in["default_sample_rate"] > 0
    assert isinstance(pulse_in["index"], int)
    assert sum(a["default"] for a in found["audio_inputs"]) <= 1
    if not list(Path("/dev").glob("video*")):  # no local camera node: none can be listed
        assert found["cameras"] == []


CAMERA_SECONDS = 40  # longer than every test that uses the camera, on a busy machine
CAMERA_PROBE_TRIES = 5  # the UDP stream needs a moment (ffmpeg start-up, first keyframe)


def closed_tcp_port() -> int:
    """A loopback TCP port nothing listens on (bound, then closed): connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def udp_camera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The loopback UDP camera (ffmpeg, MPEG-TS), once ``devices --camera URL`` lists it."""
    require_camera_stack()
    clip = write_crafted(tmp_path_factory.mktemp("camera") / "camera.mkv",
                         frames=frame_times(0.0, CAMERA_SECONDS, 5))
    port = free_udp_port()
    camera = serve_camera(clip, port, max_seconds=CAMERA_SECONDS)
    try:
        for _ in range(CAMERA_PROBE_TRIES):
            done = run_cli(["devices", "--json", "--camera", camera_url(port)])
            if json.loads(done.stdout)["cameras"]:
                break
        yield camera_url(port)
    finally:
        kill_group(camera)


@pytest.mark.live
def test_devices_json_lists_a_camera_that_opens_and_says_why_others_did_not(
        udp_camera: str) -> None:
    """``--camera URL`` listed with the size it sends; a URL where nothing is sent and one where
    the connection is refused are each listed with why, and the exit code is 3."""
    silent, refused = camera_url(free_udp_port()), f"rtsp://127.0.0.1:{closed_tcp_port()}/cam"
    done = run_cli(["devices", "--json", "--camera", udp_camera, "--camera", silent,
                    "--camera", refused])
    line = assert_one_line_error(done, EXIT_DEVICE)
    found = json.loads(done.stdout)
    urls = [c for c in found["cameras"] if isinstance(c["index"], str)]
    assert urls == [{"index": udp_camera, "backend": "FFMPEG",
                     "width": VIDEO_SIZE[0], "height": VIDEO_SIZE[1]}]
    reasons = {f["index"]: f["reason"] for f in found["camera_failures"]}
    assert set(reasons) == {silent, refused}
    assert "2000 ms open timeout" in reasons[silent]
    assert "Connection refused" in reasons[refused]
    assert silent in line and refused in line and udp_camera not in line


@pytest.mark.live
@pytest.mark.parametrize(("patch", "missing_line"), [(NO_PORTAUDIO, PORTAUDIO_MISSING),
                                                     (NO_SOUNDDEVICE, SOUNDDEVICE_MISSING)])
def test_devices_without_the_live_extra_still_lists_cameras(
        udp_camera: str, patch: str, missing_line: str) -> None:
    """No PortAudio, or no sounddevice: the camera is listed (exit 0) and one line on stderr
    says what is missing for microphones."""
    for as_json in (True, False):
        done = run_cli(["devices", "--camera", udp_camera, *(["--json"] if as_json else [])],
                       patch=patch)
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines() == [f"avstream: microphones not listed: {missing_line}"]
        if as_json:
            found = json.loads(done.stdout)
            assert found["audio_missing"] == missing_line and found["audio_inputs"] == []
            assert [c["index"] for c in found["cameras"]] == [udp_camera]
        else:
            assert f"(not listed: {missing_line})" in done.stdout
            assert udp_camera in done.stdout


@pytest.mark.live
def test_devices_table_names_the_pulseaudio_source(pulse: PulseServer) -> None:
    done = run_cli(["devices"], env=pulse.env)
    assert done.returncode == 0, done.stderr
    assert "pulse" in done.stdout and "Hz" in done.stdout


@pytest.mark.live
def test_unknown_microphone_is_one_line_listing_the_inputs_that_exist(
    pulse: PulseServer, tmp_path: Path
) -> None:
    # The device is checked before the bundle is read: no model is needed to hear about it.
    done = run_cli(["live", "--model", str(tmp_path / "no-bundle"), "--mic", "no-such-mic",
                    "--no-camera"], env=pulse.env)
    line = assert_one_line_error(done, EXIT_DEVICE)
    assert "no-such-mic" in line
    assert "'pulse'" in line  # the inputs that do exist


@pytest.mark.live
def test_unknown_microphone_index_is_refused(pulse: PulseServer, tmp_path: Path) -> None:
    done = run_cli(["live", "--model", str(tmp_path / "no-bundle"), "--mic", "97",
                    "--no-camera"], env=pulse.env)
    line = assert_one_line_error(done, EXIT_DEVICE)
    assert "97" in line and "'pulse'" in line


def test_missing_portaudio_names_the_package_to_install(tmp_path: Path) -> None:
    """``live`` without PortAudio; ``devices`` without PortAudio and with no camera to list
    (none is asked for, and this machine has no /dev/video node that opens)."""
    for args, want in ((["devices"], f"{PORTAUDIO_MISSING}; and no camera opened"),
                       (["live", "--model", str(tmp_path), "--no-camera"], PORTAUDIO_MISSING)):
        if args == ["devices"] and list(Path("/dev").glob("video*")):
            continue  # a local camera may open here: devices would then exit 0
        done = run_cli(args, patch=NO_PORTAUDIO)
        line = assert_one_line_error(done, EXIT_DEVICE)
        assert line == f"avstream: error: {want}"
        assert "libportaudio2" in line


def test_no_mic_and_no_camera_together_is_refused(tmp_path: Path) -> None:
    done = run_cli(["live", "--model", str(tmp_path), "--no-mic", "--no-camera"])
    line = assert_one_line_error(done, EXIT_USAGE)  # a configuration mistake: not retried
    assert "--no-mic" in line and "--no-camera" in line
