"""What the MQTT output tests share: a run's end summary and waiting for the sink to connect.

The broker itself (a private Mosquitto on loopback) and the paho subscriber that checks what
arrives are in tests/net_env.py; the ``broker`` fixture is in tests/conftest.py.
"""

from __future__ import annotations

import time

from net_env import run_info

from avstream.outputs.mqtt import MqttSink
from avstream.results.summary import RunSummary


def end_summary() -> RunSummary:
    from avstream.results.counters import Counters

    return RunSummary(info=run_info(), windows=0, stream_start=None, stream_end=None,
                      wall_seconds=0.0, latency_ms={}, timeline=[], timeline_forgotten=0,
                      counters=Counters(), stopped="end of stream")


def wait_connected(sink: MqttSink, connects: int = 1, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sink.stats.of("mqtt")["connects"] < connects:
        assert time.monotonic() < deadline, f"no MQTT connection #{connects} in {timeout_s:g} s"
        time.sleep(0.02)
