"""The MQTT output against a real Mosquitto on loopback, with a paho subscriber checking what
arrives: discovery, retain flags, one state per label change, hop records at the set rate,
availability and the last will, and a broker that goes away and comes back.

Records are hand-made here; test_outputs_e2e.py runs the same against a real replay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_env import avstream_command, kill_group
from net_env import CLASSES, Broker, Subscriber, hop_record, mosquitto, retained, run_info

from avstream.errors import AvstreamError
from avstream.outputs.mqtt import MqttConfig, MqttSink, parse_mqtt_url
from avstream.outputs.network import default_stream_name, network_sinks
from avstream.outputs.stats import OutputStats
from avstream.outputs.summary import RunSummary

LABELS = ["park"] * 4 + ["metro"] * 3 + ["park"] * 2 + ["tram"] * 3


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with mosquitto(tmp_path / "broker") as b:
        yield b


def end_summary() -> RunSummary:
    from avstream.outputs.records import Counters

    return RunSummary(info=run_info(), windows=0, stream_start=None, stream_end=None,
                      wall_seconds=0.0, latency_ms={}, timeline=[], timeline_forgotten=0,
                      counters=Counters(), stopped="end of stream")


def wait_connected(sink: MqttSink, connects: int = 1, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while sink.stats.of("mqtt")["connects"] < connects:
        assert time.monotonic() < deadline, f"no MQTT connection #{connects} in {timeout_s:g} s"
        time.sleep(0.02)


def test_url_parsing() -> None:
    c = parse_mqtt_url("mqtt://user:p%40ss@broker.lan:1884/home/scenes", "room1", 2.0)
    assert (c.host, c.port, c.username, c.password, c.prefix) == (
        "broker.lan", 1884, "user", "p@ss", "home/scenes")
    assert c.state_topic == "home/scenes/room1/state"
    assert c.discovery_topic == "homeassistant/sensor/avstream_room1/scene/config"
    assert parse_mqtt_url("mqtt://h", "n").base == "avstream/n"
    assert "p@ss" not in repr(c)
    for bad, why in (("mqtts://h", "scheme"), ("mqtt://", "no host"), ("mqtt://h:0x", "port"),
                     ("mqtt://h/a/+/b", "prefix"), ("mqtt://h?x=1", "unexpected")):
        with pytest.raises(AvstreamError, match=why):
            parse_mqtt_url(bad, "n")
    with pytest.raises(AvstreamError, match="password|\\*\\*\\*") as e:
        parse_mqtt_url("mqtts://u:hunter2@h", "n")
    assert "hunter2" not in str(e.value)
    with pytest.raises(AvstreamError, match="--mqtt-hop-rate 5 without --mqtt"):
        network_sinks(mqtt_hop_rate_hz=5)


def test_discovery_state_per_label_change_hops_and_availability(broker: Broker) -> None:
    config = parse_mqtt_url(f"{broker.url}/test", "room1", hop_rate_hz=2.5)
    with Subscriber(broker.port) as sub:
        sink = MqttSink(config, OutputStats())
        sink.start(run_info())
        assert sub.wait_for(config.availability_topic, "online")
        for k, label in enumerate(LABELS):
            sink.hop(hop_record(k, label))
        summary = end_summary()
        sink.end(summary)
        assert sub.wait_for(config.availability_topic, "offline")

    disc = sub.on(config.discovery_topic)
    assert len(disc) == 1
    d = json.loads(disc[0].payload)
    assert d["state_topic"] == "test/room1/state" == d["json_attributes_topic"]
    assert d["availability_topic"] == "test/room1/availability"
    assert (d["payload_available"], d["payload_not_available"]) == ("online", "offline")
    assert d["value_template"] == "{{ value_json.label }}"
    assert d["unique_id"] == "avstream_room1_scene" and d["device"]["identifiers"] == ["avstream_room1"]
    assert d["options"] == [*CLASSES, "unknown"]

    states = [json.loads(m.payload) for m in sub.on(config.state_topic)]
    assert [s["label"] for s in states] == ["park", "metro", "park", "tram"]
    assert [s["window"] for s in states] == [0, 4, 7, 9]
    first = states[0]
    assert set(first) >= {"label", "confidence", "modalities", "time", "t", "probs"}
    assert first["modalities"] == ["audio", "video"] and first["confidence"] == pytest.approx(0.8)
    assert first["time"].endswith("+00:00")
    # 2.5 records per second of stream time at a 0.2 s hop: every second window
    hops = [json.loads(m.payload) for m in sub.on(config.hop_topic)]
    assert [h["window"] for h in hops] == list(range(0, len(LABELS), 2))
    assert not any(m.retain for m in sub.on(config.hop_topic))
    assert [m.payload for m in sub.on(config.availability_topic)] == ["online", "offline"]

    # What Home Assistant sees when it (re)subscribes: the retained messages
    for topic, payload in ((config.discovery_topic, disc[0].payload),
                           (config.availability_topic, "offline")):
        got = retained(broker.port, topic)
        assert got is not None and got.retain and got.payload == payload
    last = retained(broker.port, config.state_topic)
    assert last is not None and last.retain and json.loads(last.payload)["label"] == "tram"
    counts = summary.outputs["mqtt"]
    assert counts["dropped"] == 0 and counts["connects"] == 1
    assert counts["published"] == 1 + 1 + 4 + len(hops)  # discovery, online, states, hops
    assert "output mqtt: published=" in summary.render_text()


def test_broker_gone_and_back(broker: Broker) -> None:
    """Hops while the broker is down are dropped and counted, never waited for; on its return
    the sink reconnects and publishes discovery, online and the current state again."""
    config = MqttConfig(host="127.0.0.1", port=broker.port, name="r", hop_rate_hz=5.0,
                        reconnect_max_s=1)
    sink = MqttSink(config, OutputStats())
    sink.start(run_info())
    wait_connected(sink)
    sink.hop(hop_record(0, "park"))
    deadline = time.monotonic() + 10
    while sink.stats.of("mqtt")["published"] < 4:  # discovery, online, park's state and hop
        assert time.monotonic() < deadline, sink.stats.of("mqtt")
        time.sleep(0.02)
    broker.kill()
    deadline = time.monotonic() + 10
    while sink.stats.of("mqtt")["disconnects"] < 1:  # what was sent before this is in flight
        assert time.monotonic() < deadline, "the sink did not notice the broker had gone"
        time.sleep(0.02)
    t0 = time.monotonic()
    for k in range(1, 51):
        sink.hop(hop_record(k, "metro" if k < 30 else "tram"))
    assert time.monotonic() - t0 < 1.0  # 50 hops never waited for a broker
    deadline = time.monotonic() + 10
    while sink.stats.of("mqtt")["dropped"] < 52:  # 50 hop records, 2 label changes
        assert time.monotonic() < deadline, sink.stats.of("mqtt")
        time.sleep(0.02)
    broker.start()
    wait_connected(sink, connects=2)
    with Subscriber(broker.port) as sub:  # live or retained, whichever comes first
        assert sub.wait_for(config.availability_topic, "online") is not None
        assert sub.wait_for(config.discovery_topic) is not None
    state = retained(broker.port, config.state_topic)
    assert state is not None and state.retain and json.loads(state.payload)["label"] == "tram"
    summary = end_summary()
    sink.end(summary)
    counts = summary.outputs["mqtt"]
    assert counts["disconnects"] == 1 and counts["connects"] == 2
    assert counts["dropped"] == counts["dropped_disconnected"] == 52


def test_last_will_when_the_process_dies(broker: Broker, tmp_path: Path) -> None:
    """A process killed outright leaves 'offline', retained, through the broker's last will."""
    script = tmp_path / "publisher.py"
    script.write_text(
        "import sys, time\n"
        "sys.path[:0] = [sys.argv[2]]\n"
        "from net_env import hop_record, run_info\n"
        "from avstream.outputs.mqtt import MqttConfig, MqttSink\n"
        "from avstream.outputs.stats import OutputStats\n"
        "sink = MqttSink(MqttConfig(host='127.0.0.1', port=int(sys.argv[1]), name='w'), OutputStats())\n"
        "sink.start(run_info())\n"
        "sink.hop(hop_record(0, 'park'))\n"
        "time.sleep(60)\n")
    topic = "avstream/w/availability"
    with Subscriber(broker.port) as sub:
        proc = subprocess.Popen([sys.executable, str(script), str(broker.port),
                                 str(Path(__file__).parent)], start_new_session=True)
        try:
            assert sub.wait_for(topic, "online", timeout_s=20), "the publisher never came online"
            t_kill = time.monotonic()
            kill_group(proc)  # SIGKILL: no goodbye, the socket just closes
            assert sub.wait_for(topic, "offline", timeout_s=10, after=t_kill)
        finally:
            kill_group(proc)
    got = retained(broker.port, topic)
    assert got is not None and got.retain and got.payload == "offline"
    state = retained(broker.port, "avstream/w/state")
    assert state is not None and json.loads(state.payload)["label"] == "park"


def _publish_retained(port: int, topic: str, payload: str) -> None:
    import paho.mqtt.publish as publish

    publish.single(topic, payload, qos=1, retain=True, hostname="127.0.0.1", port=port)


def test_a_replay_never_claims_the_live_devices_identity(broker: Broker, tiny_bundle: Path,
                                                         av_file: Path) -> None:
    """A host whose live service is configured through AVSTREAM_MQTT: a replay run there must
    not publish as the host's device (nor leave it 'offline' at its end). The variable is the
    live service's; a replay given --mqtt publishes as replay-<file stem>."""
    host = default_stream_name()
    live = f"avstream/{host}/availability"
    _publish_retained(broker.port, live, "online")  # the live daemon of this host
    env = {**os.environ, "AVSTREAM_MQTT": broker.url}
    replay = [*avstream_command("replay", str(av_file), "--model", str(tiny_bundle), "--no-view")]
    with Subscriber(broker.port) as sub:
        done = subprocess.run(replay, env=env, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "mqtt:" not in done.stderr  # no MQTT output was started
        done = subprocess.run([*replay, "--mqtt", f"{broker.url}"], env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr[-3000:]
        own = f"avstream/replay-{av_file.stem}/availability"
        assert sub.wait_for(own, "offline") is not None, done.stderr[-3000:]
    published = {m.topic for m in sub.messages if not m.retain or m.topic != live}
    assert not {t for t in published if host in t.split("/")}, published
    got = retained(broker.port, live)
    assert got is not None and got.payload == "online"  # the live device is still online


def test_only_live_reads_the_mqtt_environment_variable() -> None:
    """The commands that replay a recording have no environment default for --mqtt."""
    import typer
    import typer.main

    from avstream.commands.demo import demo
    from avstream.commands.live import live
    from avstream.commands.replay import replay

    for function, envvar in ((replay, None), (demo, None), (live, "AVSTREAM_MQTT")):
        app = typer.Typer()
        app.command()(function)
        option = next(p for p in typer.main.get_command(app).params if p.name == "mqtt")
        assert option.envvar == envvar, function.__name__
