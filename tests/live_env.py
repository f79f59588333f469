"""Real capture devices for the ``live`` tests, built from system programs on loopback only.

- Microphone: a private PulseAudio server with a null sink ``vsink`` whose monitor is the
  default source; audio played into the sink with ``paplay`` is what PortAudio records through
  ALSA's pulse plugin. The server runs in the foreground as our child (its own process group,
  its own runtime directory), so it never meets another PulseAudio on the machine and teardown
  kills exactly it. Clients find it through ``PULSE_SERVER``.
- Camera: ``ffmpeg -re`` re-encodes a clip to MPEG-1 in MPEG-TS and sends it to
  ``udp://127.0.0.1:<port>``, which OpenCV opens as a network camera; killing that ffmpeg is a
  camera that dies, starting another on the same port is the camera coming back.

Every subprocess gets a time bound (``-t``, ``timeout``) and is killed with its process group in
teardown. A missing system component skips the test with the reason, unless
AVSTREAM_REQUIRE_LIVE=1 (CI), where it fails: CI promised to install it.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn

import numpy as np
import pytest
import soundfile as sf
from cli_run import Child as Daemon
from cli_run import kill_group, start

REQUIRE_ENV: Final[str] = "AVSTREAM_REQUIRE_LIVE"
LOOPBACK: Final[str] = "127.0.0.1"
SINK: Final[str] = "vsink"
SINK_RATE_HZ: Final[int] = 48_000
PULSE_START_TIMEOUT_S: Final[float] = 10.0
PULSE_LIFETIME_S: Final[int] = 600  # a server is never left running past this, whatever happens
CAMERA_FPS: Final[int] = 25  # a rate MPEG-1 accepts
ALSA_PULSE_PLUGIN_GLOBS: Final[tuple[str, ...]] = (
    "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so",
    "/usr/lib/alsa-lib/libasound_module_pcm_pulse.so",
    "/usr/lib64/alsa-lib/libasound_module_pcm_pulse.so",
)
# Which package brings what, for the skip/fail message (Debian/Ubuntu names, as in .ci/live-setup.sh).
PACKAGES: Final[dict[str, str]] = {
    "pulseaudio": "pulseaudio",
    "pactl": "pulseaudio-utils",
    "paplay": "pulseaudio-utils",
    "ffmpeg": "ffmpeg",
    "timeout": "coreutils",
}


def live_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def missing(reason: str) -> NoReturn:
    """Skip for a missing system component; fail instead where CI promised to provide it."""
    if live_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1, so this is a failure, not a skip)")
    pytest.skip(reason)


def require_programs(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None:
            package = PACKAGES.get(name, name)
            missing(f"{name} is not installed (Debian package {package}; see .ci/live-setup.sh)")


def require_portaudio() -> None:
    if ctypes.util.find_library("portaudio") is None:
        missing("PortAudio is not installed (Debian package libportaudio2)")
    # Not imported here: sounddevice initialises PortAudio at import, which freezes the device
    # list of this process before any test's PulseAudio exists.
    if importlib.util.find_spec("sounddevice") is None:
        missing("the Python package sounddevice is not installed; pip install 'avstream[live]'")


def require_alsa_pulse_plugin() -> None:
    for pattern in ALSA_PULSE_PLUGIN_GLOBS:
        if glob.glob(pattern):
            return
    missing("ALSA's pulse plugin is not installed (Debian package libasound2-plugins)")


def require_microphone_stack() -> None:
    require_programs("pulseaudio", "pactl", "paplay", "timeout")
    require_portaudio()
    require_alsa_pulse_plugin()


def require_camera_stack() -> None:
    require_programs("ffmpeg", "timeout")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- microphone


@dataclass
class PulseServer:
    """A running private PulseAudio with the null sink; ``env`` points clients at it."""

    proc: subprocess.Popen
    root: Path
    socket_path: Path

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PULSE_SERVER"] = f"unix:{self.socket_path}"
        # Clients must not autospawn a server of their own if ours has gone.
        env["PULSE_CLIENTCONFIG"] = str(self.root / "client.conf")
        return env

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        kill_group(self.proc)


PULSE_SCRIPT: Final[str] = f"""\
load-module module-null-sink sink_name={SINK} rate={SINK_RATE_HZ} channels=2
load-module module-native-protocol-unix auth-anonymous=1 socket={{socket}}
set-default-sink {SINK}
set-default-source {SINK}.monitor
"""


def start_pulse(root: Path) -> PulseServer:
    """Start PulseAudio in the foreground as our child and wait until it answers.

    As root, PulseAudio warns that it "is not intended to be run as root" but works: the
    per-user mode only needs a writable runtime and state directory, which we give it. Running
    it as a child with --daemonize=no (instead of --daemonize=yes) lets teardown kill exactly it.
    """
    require_microphone_stack()
    root.mkdir(parents=True, exist_ok=True)
    socket_path = root / "native"
    script = root / "null-sink.pa"
    script.write_text(PULSE_SCRIPT.format(socket=socket_path))
    (root / "client.conf").write_text("autospawn = no\n")
    # A server of ours killed before may linger as an unreaped zombie (the VM's init does not
    # reap), which PulseAudio's pid-file check takes for a live daemon: start from no pid file.
    (root / "runtime" / "pid").unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(
        PULSE_RUNTIME_PATH=str(root / "runtime"),
        PULSE_STATE_PATH=str(root / "state"),
        PULSE_CONFIG_PATH=str(root / "config"),
        HOME=str(root),  # cookie and config land here, not in the real home
    )
    env.pop("PULSE_SERVER", None)
    log_file = (root / "pulseaudio.log").open("w")
    proc = subprocess.Popen(
        [
            "timeout", "-s", "KILL", str(PULSE_LIFETIME_S),
            "pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit",
            "-n", "-F", str(script), "--log-target=stderr", "--log-level=notice",
        ],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log_file.close()
    server = PulseServer(proc=proc, root=root, socket_path=socket_path)
    deadline = time.monotonic() + PULSE_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not server.alive():
            break
        if socket_path.exists() and _pactl_ok(server):
            return server
        time.sleep(0.1)
    server.kill()
    log_text = (root / "pulseaudio.log").read_text(errors="replace")[-2000:]
    missing(f"PulseAudio did not start within {PULSE_START_TIMEOUT_S:g} s: {log_text}")


def _pactl_ok(server: PulseServer) -> bool:
    try:
        done = subprocess.run(
            ["pactl", "info"], env=server.env, capture_output=True, timeout=5, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and f"Default Source: {SINK}.monitor" in done.stdout.decode()


@contextlib.contextmanager
def pulse_server(root: Path) -> Iterator[PulseServer]:
    server = start_pulse(root)
    try:
        yield server
    finally:
        server.kill()


def write_wav_from_media(media: Path, out: Path, sample_rate: int = SINK_RATE_HZ) -> Path:
    """The audio track of a clip as a 16-bit WAV paplay can play (our own decoder reads it)."""
    from avstream.media.audio import read_audio_file

    clip = read_audio_file(media, sample_rate)
    sf.write(str(out), np.ascontiguousarray(clip.samples.T), sample_rate, subtype="PCM_16")
    return out


def play(server: PulseServer, wav: Path, max_seconds: float) -> subprocess.Popen:
    """Play a WAV into the null sink (what the 'microphone' hears), killed after max_seconds."""
    return subprocess.Popen(
        ["timeout", "-s", "KILL", f"{max_seconds:g}", "paplay", f"--device={SINK}", str(wav)],
        env=server.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


# --------------------------------------------------------------------------- camera


def camera_url(port: int) -> str:
    return f"udp://{LOOPBACK}:{port}"


def serve_camera(
    media: Path, port: int, max_seconds: float, start_s: float = 0.0, fps: int = CAMERA_FPS,
    audio: bool = False,
) -> subprocess.Popen:
    """Stream a clip's video (and with ``audio`` its sound, as MPEG audio layer II at 48 kHz:
    an IP camera with a microphone), in real time, as MPEG-TS over UDP on loopback.

    MPEG-1 with a keyframe every 5 frames lets a reader that joins (or rejoins) mid-stream show
    a picture within 0.2 s; MPEG-1 only allows standard rates, so the clip is sent at 25 fps
    (frames repeated as needed). ``-t`` and ``timeout`` bound the run.
    """
    cmd = [
        "timeout", "-s", "KILL", f"{max_seconds + 5:g}",
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
        "-re", "-ss", f"{start_s:.3f}", "-i", str(media), "-t", f"{max_seconds:g}",
        *(("-c:a", "mp2", "-ar", str(SINK_RATE_HZ)) if audio else ("-an",)),
        "-r", str(fps), "-c:v", "mpeg1video", "-q:v", "4", "-g", "5", "-bf", "0",
        "-f", "mpegts", f"{camera_url(port)}?pkt_size=1316",
    ]
    return subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


# --------------------------------------------------------------------------- the daemon


def start_daemon(args: list[str], env: dict[str, str], workdir: Path, max_seconds: float) -> Daemon:
    """``avstream live ARGS`` in the background (tests/cli_run.py's ``start``): stdout (JSON
    lines) in ``workdir/live.stdout``, stderr in ``live.stderr``, killed after ``max_seconds``
    whatever happens; the test ends it with ``Daemon.stop``."""
    return start("live", *args, workdir=workdir, bound_s=max_seconds, env=env, name="live")
