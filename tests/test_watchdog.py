"""systemd's notifications from a real ``avstream replay --realtime`` (Type=notify, WatchdogSec=).

The test plays systemd's part: it binds the unix datagram socket, passes its path in
NOTIFY_SOCKET, and reads what the daemon sends, with arrival times: READY=1 once the stream
runs, WATCHDOG=1 with every hop (one per JSON line), STOPPING=1 at the end. A run whose engine
stalls (patched in the child only) stops feeding the watchdog for as long as it stalls.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import pytest
from cli_run import avstream, child_env
from crafted_media import frame_times, write_crafted
from streams_env import file_stream, write_config

from avstream.outputs.watchdog import NOTIFY_SOCKET_ENV, notify_address

CLIP_SECONDS: Final[float] = 4.0
RUN_TIMEOUT_S: Final[float] = 120.0
STALL_AFTER: Final[int] = 4  # engine calls before the patched engine stalls
STALL_S: Final[float] = 5.0
NORMAL_GAP_S: Final[float] = 2.5  # hops are at most a second apart in a realtime replay
"""Longest quiet time between two WATCHDOG=1 in a run that does not stall (the hop is well
under it: a busy 2-core machine may delay a hop, not by seconds)."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_crafted(tmp_path_factory.mktemp("watchdog") / "clip.mkv",
                         audio=[(0.0, CLIP_SECONDS)], frames=frame_times(0.0, CLIP_SECONDS, 10))


@contextmanager
def notify_socket(path: Path) -> Iterator[list[tuple[float, str]]]:
    """A bound datagram socket read by a thread into ``(monotonic time, message)`` pairs."""
    received: list[tuple[float, str]] = []
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            received.append((time.monotonic(), data.decode()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield received
    finally:
        done.set()
        reader.join(5)
        sock.close()


def run_notified(args: list[str], tmp_path: Path, patch: str | None = None
                 ) -> tuple[subprocess.CompletedProcess[str], list[tuple[float, str]]]:
    """``avstream ARGS`` under a notify socket; returns the run and the messages."""
    with notify_socket(tmp_path / "notify") as received:
        done = avstream(*args, patch=patch, timeout=RUN_TIMEOUT_S,
                        env=child_env(**{NOTIFY_SOCKET_ENV: str(tmp_path / "notify")}))
        time.sleep(0.3)  # the last datagram is read
    assert done.returncode == 0, done.stderr
    return done, list(received)


def run_replay(clip: Path, bundle: Path, tmp_path: Path, patch: str | None = None
               ) -> tuple[subprocess.CompletedProcess[str], list[tuple[float, str]], int]:
    """``avstream replay --realtime`` under a notify socket; returns the run, the messages and
    the number of JSON lines written."""
    jsonl = tmp_path / "run.jsonl"
    done, received = run_notified(["replay", str(clip), "--model", str(bundle), "--realtime",
                                   "--no-view", "--jsonl", str(jsonl)], tmp_path, patch)
    return done, received, len(jsonl.read_text().splitlines())


def kinds(received: list[tuple[float, str]]) -> list[str]:
    """The first line of each message (READY=1, WATCHDOG=1, STOPPING=1)."""
    return [message.splitlines()[0] for _, message in received]


def watchdog_gaps(received: list[tuple[float, str]]) -> list[float]:
    times = [t for t, message in received if message.startswith("WATCHDOG=1")]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


def test_realtime_replay_sends_ready_then_a_watchdog_per_hop_then_stopping(
        clip: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    done, received, lines = run_replay(clip, tiny_bundle, tmp_path)
    assert done.returncode == 0, done.stderr
    assert lines >= 8
    assert kinds(received) == ["READY=1", *["WATCHDOG=1"] * lines, "STOPPING=1"]
    assert all("\nSTATUS=" in message for _, message in received)
    span = received[-2][0] - received[1][0]  # first to last WATCHDOG=1: the run's real time
    assert span >= CLIP_SECONDS / 2
    assert max(watchdog_gaps(received)) < NORMAL_GAP_S


def test_a_stalled_engine_stops_feeding_the_watchdog(clip: Path, tiny_bundle: Path,
                                                     tmp_path: Path) -> None:
    stall = ("import time\n"
             "from avstream.inference.engine import Engine\n"
             "real = Engine.outputs\n"
             "calls = [0]\n"
             "def stalling(self, *args, **kwargs):\n"
             "    calls[0] += 1\n"
             f"    if calls[0] == {STALL_AFTER}:\n"
             f"        time.sleep({STALL_S})\n"
             "    return real(self, *args, **kwargs)\n"
             "Engine.outputs = stalling\n")
    done, received, lines = run_replay(clip, tiny_bundle, tmp_path, patch=stall)
    assert done.returncode == 0, done.stderr
    assert kinds(received)[0] == "READY=1" and kinds(received)[-1] == "STOPPING=1"
    assert max(watchdog_gaps(received)) >= STALL_S - 0.5  # nothing fed it while stalled


def test_serve_sends_ready_once_a_watchdog_per_hop_of_any_stream_and_stopping_once(
        clip: Path, tiny_bundle: Path, tmp_path: Path) -> None:
    names = ("north", "south")
    cfg = write_config(tmp_path / "serve.toml", tiny_bundle,
                       {name: file_stream(clip, pace="live") for name in names})
    _, received = run_notified(["serve", str(cfg)], tmp_path)
    lines = sum(len((tmp_path / f"{name}.jsonl").read_text().splitlines()) for name in names)
    assert lines >= 16
    assert kinds(received) == ["READY=1", *["WATCHDOG=1"] * lines, "STOPPING=1"]


def test_notify_socket_addresses() -> None:
    assert notify_address(None) is None and notify_address("") is None
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@abstract/name") == "\0abstract/name"
    assert notify_address("relative/path") is None
