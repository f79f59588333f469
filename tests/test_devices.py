"""``avstream devices`` and the one-line device errors, run as the real command.

The PulseAudio tests start a private server (tests/live_env.py) and run the CLI in a child
process pointed at it: PortAudio reads its device list once per process, at initialisation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from crafted_media import VIDEO_SIZE, frame_times, write_crafted
from live_env import (
    PulseServer,
    avstream_command,
    camera_url,
    free_udp_port,
    kill_group,
    pulse_server,
    require_camera_stack,
    require_portaudio,
    serve_camera,
)

from avstream.errors import EXIT_DEVICE
from avstream.sources.microphone import PORTAUDIO_MISSING

CLI_TIMEOUT_S = 60

# Runs the CLI in a process where ctypes cannot find PortAudio, as on a machine without
# libportaudio2: sounddevice's import then raises OSError exactly as it does there.
NO_PORTAUDIO = (
    "import ctypes.util, sys\n"
    "ctypes.util.find_library = lambda name: None\n"
    "from avstream.cli import main\n"
    "sys.argv = ['avstream', *sys.argv[1:]]\n"
    "main()\n"
)


def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(avstream_command(*args), env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def pulse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    with pulse_server(tmp_path_factory.mktemp("pulse")) as server:
        yield server


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


CAMERA_SECONDS = 20
CAMERA_PROBE_TRIES = 5  # the UDP stream needs a moment (ffmpeg start-up, first keyframe)


@pytest.mark.live
def test_devices_json_lists_a_camera_that_opens(tmp_path: Path) -> None:
    """The loopback UDP camera (ffmpeg, MPEG-TS) probed by ``--camera URL``: listed with the
    size it sends; a URL where nothing is sent is not listed."""
    require_camera_stack()
    require_portaudio()
    clip = write_crafted(tmp_path / "camera.mkv", frames=frame_times(0.0, 10.0, 10))
    port, silent = free_udp_port(), free_udp_port()
    camera = serve_camera(clip, port, max_seconds=CAMERA_SECONDS)
    try:
        for _ in range(CAMERA_PROBE_TRIES):
            done = run_cli(["devices", "--json", "--camera", camera_url(port),
                            "--camera", camera_url(silent)])
            assert done.returncode == 0, done.stderr
            cameras = json.loads(done.stdout)["cameras"]
            if cameras:
                break
    finally:
        kill_group(camera)
    urls = [c for c in cameras if isinstance(c["index"], str)]
    assert urls == [{"index": camera_url(port), "backend": "FFMPEG",
                     "width": VIDEO_SIZE[0], "height": VIDEO_SIZE[1]}]


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
    script = tmp_path / "no_portaudio.py"
    script.write_text(NO_PORTAUDIO)
    for args in (["devices"], ["live", "--model", str(tmp_path), "--no-camera"]):
        done = subprocess.run([sys.executable, str(script), *args], capture_output=True,
                              text=True, timeout=CLI_TIMEOUT_S, check=False)
        line = assert_one_line_error(done, EXIT_DEVICE)
        assert line == f"avstream: error: {PORTAUDIO_MISSING}"
        assert "libportaudio2" in line


def test_no_mic_and_no_camera_together_is_refused(tmp_path: Path) -> None:
    done = run_cli(["live", "--model", str(tmp_path), "--no-mic", "--no-camera"])
    line = assert_one_line_error(done, EXIT_DEVICE)
    assert "--no-mic" in line and "--no-camera" in line
