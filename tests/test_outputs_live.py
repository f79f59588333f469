"""A live daemon's outputs when its camera dies: ``avstream live`` reading a loopback UDP camera
(ffmpeg), configured the way the service unit does it (the broker in ``AVSTREAM_MQTT``), with
``--http``. The camera's connectivity sensor turns ``OFF`` and ``avstream_source_up`` 0 when the
stream is killed, from the source's own loss event; the microphone's entity, which this run
does not have, is cleared.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import pytest
from live_env import (
    Daemon,
    camera_url,
    free_udp_port,
    kill_group,
    require_camera_stack,
    serve_camera,
    start_daemon,
)
from net_env import Subscriber, mosquitto, require_python, retained

from avstream.errors import EXIT_OK
from avstream.outputs.network import default_stream_name

START_S = 60.0
"""Model load and camera open on a busy 2-core machine."""
LOST_WITHIN_S = 10.0
"""The camera's read timeout and stale-frame limit (1 s) plus the hop: well inside this."""
DAEMON_BOUND_S = 120.0


def source_up(url: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}metrics", timeout=5) as r:
        text = r.read().decode()
    return {s.labels["source"]: s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == "avstream_source_up"}


def wait_until(check: object, timeout_s: float, daemon: Daemon) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and daemon.proc.poll() is None:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.mark.live
def test_a_lost_camera_is_off_in_home_assistant_and_down_in_metrics(
        tiny_bundle: Path, synth_stream: tuple[Path, Path], tmp_path: Path) -> None:
    require_camera_stack()
    require_python("prometheus_client", "http")
    mp4, _ = synth_stream
    host = default_stream_name()
    base = f"avstream/{host}"
    port = free_udp_port()
    with mosquitto(tmp_path / "broker") as broker, Subscriber(broker.port) as sub:
        camera = serve_camera(mp4, port, max_seconds=40)
        daemon = None
        try:
            daemon = start_daemon(
                ["--model", str(tiny_bundle), "--no-mic", "--camera", camera_url(port),
                 "--http", "127.0.0.1:0", "--no-view", "--precision", "fp32"],
                env={**os.environ, "AVSTREAM_MQTT": broker.url}, workdir=tmp_path,
                max_seconds=DAEMON_BOUND_S)
            assert daemon.wait_for_stderr("avstream: http: http://", START_S), \
                daemon.stderr_text()[-3000:]
            url = re.search(r"avstream: http: (http://\S+/)", daemon.stderr_text()).group(1)  # type: ignore[union-attr]
            assert sub.wait_for(f"{base}/availability", "online", timeout_s=START_S)
            assert wait_until(lambda: sub.on(f"{base}/state"), START_S, daemon), \
                daemon.stderr_text()[-3000:]
            assert source_up(url) == {"camera": 1.0}
            t_kill = time.monotonic()
            kill_group(camera)
            assert wait_until(lambda: source_up(url) == {"camera": 0.0}, LOST_WITHIN_S, daemon), \
                daemon.stderr_text()[-3000:]
            off = sub.wait_for(f"{base}/camera", "OFF", timeout_s=5, after=t_kill)
            assert off is not None, [m.payload for m in sub.on(f"{base}/camera")]
            rc = daemon.stop(signal.SIGTERM)
        finally:
            kill_group(camera)
            if daemon is not None:
                kill_group(daemon.proc)
        assert rc == EXIT_OK, daemon.stderr_text()[-3000:]
        got = retained(broker.port, f"{base}/camera")
        assert got is not None and got.payload == "OFF"
        disc = retained(broker.port, f"homeassistant/binary_sensor/avstream_{host}/camera/config")
        assert disc is not None and json.loads(disc.payload)["device_class"] == "connectivity"
        assert retained(broker.port, f"homeassistant/binary_sensor/avstream_{host}/microphone/"
                        "config", timeout_s=1.0) is None  # --no-mic: no microphone entity
    assert [m.payload for m in sub.on(f"{base}/camera")] == ["ON", "OFF"]
    assert sub.on(f"{base}/availability")[-1].payload == "offline"
