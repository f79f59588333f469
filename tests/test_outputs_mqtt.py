"""The MQTT output against a real Mosquitto on loopback, with a paho subscriber checking what
arrives: discovery, retain flags, one state per label change, hop records at the set rate,
availability and the last will, and a broker that goes away and comes back.

Records are hand-made here; test_outputs_e2e.py runs the same against a real replay.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_env import avstream_command, kill_group
from net_env import (
    CLASSES,
    Broker,
    CameraOutage,
    Subscriber,
    hop_record,
    make_tls_files,
    mosquitto,
    retained,
    run_info,
)

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


# Home Assistant's MQTT discovery schema, the parts these entities use (homeassistant/components/
# mqtt: sensor.py, binary_sensor.py, schemas.py; the integration drops keys it does not know).
COMMON_KEYS = {"name", "unique_id", "availability_topic", "payload_available",
               "payload_not_available", "device", "origin", "icon", "entity_category",
               "json_attributes_topic", "value_template", "device_class", "state_topic"}
KEYS = {"sensor": COMMON_KEYS | {"options", "state_class", "unit_of_measurement",
                                 "suggested_display_precision"},
        "binary_sensor": COMMON_KEYS | {"payload_on", "payload_off"}}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "sw_version",
               "hw_version", "configuration_url", "suggested_area", "serial_number"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
BINARY_CLASSES = {"connectivity", "problem", "running", "motion", "sound", "occupancy"}


def check_discovery(component: str, d: dict) -> None:
    """What Home Assistant would refuse or silently drop in a discovery config."""
    assert set(d) <= KEYS[component], set(d) - KEYS[component]
    assert isinstance(d["state_topic"], str) and not set("+#") & set(d["state_topic"])
    assert d["unique_id"] and d["name"]
    dev = d["device"]
    assert set(dev) <= DEVICE_KEYS and (dev.get("identifiers") or dev.get("connections"))
    if "configuration_url" in dev:
        assert re.match(r"^https?://[^/\s]+/", dev["configuration_url"]), dev["configuration_url"]
    assert d["origin"]["name"]
    assert d.get("entity_category") in (None, "diagnostic")  # sensors may not be 'config'
    if component == "sensor":
        if "options" in d:  # an enum: a non-empty list, never with a state class or a unit
            assert d["options"] and d["device_class"] == "enum"
            assert "state_class" not in d and "unit_of_measurement" not in d
        assert d.get("state_class") in (None, *STATE_CLASSES)
        assert isinstance(d.get("suggested_display_precision", 0), int)
    else:
        assert d.get("device_class") in BINARY_CLASSES


def discovered(sub: Subscriber, config: MqttConfig) -> dict[tuple[str, str], dict]:
    """(component, object id) -> the latest non-empty discovery config of this device."""
    out: dict[tuple[str, str], dict] = {}
    prefix = f"{config.discovery_prefix}/"
    for m in sub.messages:
        parts = m.topic[len(prefix):].split("/")
        if m.topic.startswith(prefix) and parts[1:2] == [config.node_id] and m.payload:
            out[(parts[0], parts[2])] = json.loads(m.payload)
    return out


def test_url_parsing() -> None:
    c = parse_mqtt_url("mqtt://user:p%40ss@broker.lan:1884/home/scenes", "room1", 2.0)
    assert (c.host, c.port, c.username, c.password, c.prefix) == (
        "broker.lan", 1884, "user", "p@ss", "home/scenes")
    assert c.state_topic == "home/scenes/room1/state"
    assert c.discovery_topic("sensor", "scene") == "homeassistant/sensor/avstream_room1/scene/config"
    assert parse_mqtt_url("mqtt://h", "n").base == "avstream/n"
    assert "p@ss" not in repr(c)
    tls = parse_mqtt_url("mqtts://h?discovery_prefix=ha/x&confidence_interval=2.5", "n")
    assert (tls.tls, tls.port, tls.ca_file, tls.confidence_interval_s) == (True, 8883, None, 2.5)
    assert tls.discovery_topic("binary_sensor", "camera") == "ha/x/binary_sensor/avstream_n/camera/config"
    pem = Path(__file__)  # any existing file passes the parse-time existence check...
    for bad, why in (("ftp://h", "scheme"), ("mqtt://", "no host"), ("mqtt://h:0x", "port"),
                     ("mqtt://h/a/+/b", "prefix"), ("mqtt://h?x=1", "unknown setting 'x'"),
                     ("mqtt://h#x", "unexpected '#'"), (f"mqtt://h?ca={pem}", "expected an mqtts"),
                     ("mqtts://h?ca=/nonexistent.pem", "ca=/nonexistent.pem is not a readable file"),
                     (f"mqtts://h?key={pem}", "key without cert"),
                     ("mqtt://h?discovery_prefix=a/+", "discovery_prefix"),
                     ("mqtt://h?confidence_interval=0", "confidence_interval"),
                     ("mqtt://h?confidence_interval=x", "confidence_interval=x"),
                     ("mqtt://h?discovery_prefix=a&discovery_prefix=b", "given twice")):
        with pytest.raises(AvstreamError, match=why):
            parse_mqtt_url(bad, "n")
    with pytest.raises(AvstreamError, match="cannot be used"):  # ...but it must be a PEM file
        parse_mqtt_url(f"mqtts://h?ca={pem}", "n")
    with pytest.raises(AvstreamError, match="password|\\*\\*\\*") as e:
        parse_mqtt_url("ftp://u:hunter2@h", "n")
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

    scene_topic = config.discovery_topic("sensor", "scene")
    disc = sub.on(scene_topic)
    assert len(disc) == 1
    d = json.loads(disc[0].payload)
    assert d["state_topic"] == "test/room1/state" == d["json_attributes_topic"]
    assert d["availability_topic"] == "test/room1/availability"
    assert (d["payload_available"], d["payload_not_available"]) == ("online", "offline")
    assert d["value_template"] == "{{ value_json.label }}"
    assert d["unique_id"] == "avstream_room1_scene" and d["device"]["identifiers"] == ["avstream_room1"]
    assert d["options"] == [*CLASSES, "unknown"]
    assert "configuration_url" not in d["device"]  # no --http
    entities = discovered(sub, config)
    assert set(entities) == {("sensor", "scene"), ("sensor", "confidence"),
                             ("binary_sensor", "camera"), ("binary_sensor", "microphone")}
    for (component, _), payload in entities.items():
        check_discovery(component, payload)
    assert {e["device"]["identifiers"][0] for e in entities.values()} == {"avstream_room1"}
    # the confidence sensor: on every label change (the interval, 10 s, never came in 2.4 s)
    confidences = [json.loads(m.payload) for m in sub.on(config.confidence_topic)]
    assert [(c["label"], c["t"]) for c in confidences] == [
        ("park", 0.0), ("metro", 0.8), ("park", 1.4), ("tram", 1.8)]
    last_confidence = retained(broker.port, config.confidence_topic)
    assert last_confidence is not None and json.loads(last_confidence.payload)["label"] == "tram"
    # both inputs of the run are up
    for source in ("camera", "microphone"):
        assert [m.payload for m in sub.on(config.source_topic(source))] == ["ON"]

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
    for topic, payload in ((scene_topic, disc[0].payload),
                           (config.availability_topic, "offline")):
        got = retained(broker.port, topic)
        assert got is not None and got.retain and got.payload == payload
    last = retained(broker.port, config.state_topic)
    assert last is not None and last.retain and json.loads(last.payload)["label"] == "tram"
    counts = summary.outputs["mqtt"]
    assert counts["dropped"] == 0 and counts["connects"] == 1
    # 4 discovery configs, online, 2 inputs ON, 4 states, 4 confidences, the hops
    assert counts["published"] == 4 + 1 + 2 + 4 + 4 + len(hops)
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
    # 4 discovery configs, online, 2 inputs, park's state, confidence and hop
    while sink.stats.of("mqtt")["published"] < 10:
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
    while sink.stats.of("mqtt")["dropped"] < 54:  # 50 hop records, 2 label changes (state
        # and confidence each)
        assert time.monotonic() < deadline, sink.stats.of("mqtt")
        time.sleep(0.02)
    broker.start()
    wait_connected(sink, connects=2)
    with Subscriber(broker.port) as sub:  # live or retained, whichever comes first
        assert sub.wait_for(config.availability_topic, "online") is not None
        assert sub.wait_for(config.discovery_topic("sensor", "scene")) is not None
    state = retained(broker.port, config.state_topic)
    assert state is not None and state.retain and json.loads(state.payload)["label"] == "tram"
    summary = end_summary()
    sink.end(summary)
    counts = summary.outputs["mqtt"]
    assert counts["disconnects"] == 1 and counts["connects"] == 2
    assert counts["dropped"] == counts["dropped_disconnected"] == 54


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


def test_confidence_is_sent_at_least_every_interval_and_on_each_change(broker: Broker) -> None:
    """Between label changes the confidence sensor is refreshed every ``confidence_interval``
    seconds of stream time, so its value is never older than that; the state is not."""
    config = parse_mqtt_url(f"{broker.url}?confidence_interval=1", "c")
    labels = ["park"] * 18 + ["tram"] * 3  # t = 0.0 ... 4.0
    with Subscriber(broker.port) as sub:
        sink = MqttSink(config, OutputStats())
        sink.start(run_info())
        assert sub.wait_for(config.availability_topic, "online")
        for k, label in enumerate(labels):
            sink.hop(hop_record(k, label))
        sink.end(end_summary())
        assert sub.wait_for(config.availability_topic, "offline")
    sent = [(c["label"], c["t"]) for c in map(json.loads, (m.payload for m in
                                                             sub.on(config.confidence_topic)))]
    assert sent == [("park", 0.0), ("park", 1.0), ("park", 2.0), ("park", 3.0), ("tram", 3.6)]
    assert len(sub.on(config.state_topic)) == 2
    assert retained(broker.port, config.confidence_topic) is not None


def test_connectivity_sensors_follow_the_source(broker: Broker) -> None:
    """A camera lost and back is OFF then ON on <base>/camera (retained); a run without a
    microphone clears the microphone entity a previous run announced."""
    config = parse_mqtt_url(broker.url, "s")
    mic_config = config.discovery_topic("binary_sensor", "microphone")
    with Subscriber(broker.port) as sub:
        sink = MqttSink(config, OutputStats())
        sink.start(run_info())
        assert sub.wait_for(config.availability_topic, "online")  # what comes before the
        # connection is dropped: only the latest retained values are sent on connecting
        sink.hop(hop_record(0, "park"))
        sink.source_changed("camera", False, 0.3)
        sink.hop(hop_record(1, "park"))
        assert sub.wait_for(config.source_topic("camera"), "OFF") is not None
        got = retained(broker.port, config.source_topic("camera"))
        assert got is not None and got.payload == "OFF"
        sink.source_changed("camera", True, 0.5)
        sink.end(end_summary())
        assert sub.wait_for(config.availability_topic, "offline")
    assert [m.payload for m in sub.on(config.source_topic("camera"))] == ["ON", "OFF", "ON"]
    assert retained(broker.port, mic_config) is not None  # announced by the run above

    from dataclasses import replace

    video_only = replace(run_info(), source_modalities=("video",))
    sink = MqttSink(config, OutputStats())
    sink.start(video_only)
    wait_connected(sink)
    sink.hop(hop_record(0, "park"))
    sink.end(end_summary())
    assert retained(broker.port, mic_config, timeout_s=1.0) is None  # entity removed
    assert retained(broker.port, config.discovery_topic("binary_sensor", "camera")) is not None


def test_configuration_url_and_discovery_prefix(broker: Broker) -> None:
    """With --http, the device links to the page; ?discovery_prefix= moves every config."""
    sinks = network_sinks(mqtt=f"{broker.url}?discovery_prefix=ha", http="127.0.0.1:0", name="p")
    mqtt_sink, http_sink = sinks
    assert isinstance(mqtt_sink, MqttSink)
    with Subscriber(broker.port) as sub:
        for sink in sinks:
            sink.start(run_info())
        assert sub.wait_for(mqtt_sink.config.availability_topic, "online")
        summary = end_summary()
        for sink in sinks:
            sink.end(summary)
    entities = discovered(sub, mqtt_sink.config)
    assert len(entities) == 4
    assert all(m.topic.startswith("ha/") for m in sub.messages if m.topic.endswith("/config"))
    for (component, _), payload in entities.items():
        check_discovery(component, payload)
        assert payload["device"]["configuration_url"] == http_sink.url  # type: ignore[attr-defined]


def test_mqtts_with_a_ca_and_a_client_certificate(tmp_path: Path) -> None:
    """A broker with a TLS listener that requires a client certificate: the sink connects with
    ca=, cert=, key= and publishes; trusting another CA, it never connects."""
    files = make_tls_files(tmp_path / "pki")
    with mosquitto(tmp_path / "broker", tls=files) as broker, Subscriber(broker.port) as sub:
        url = (f"mqtts://127.0.0.1:{broker.tls_port}/secure?ca={files.ca}"
               f"&cert={files.client_cert}&key={files.client_key}")
        config = parse_mqtt_url(url, "t")
        sink = MqttSink(config, OutputStats())
        assert sink.description.startswith("mqtts (TLS): 127.0.0.1:")
        sink.start(run_info())
        wait_connected(sink)
        sink.hop(hop_record(0, "park"))
        assert sub.wait_for("secure/t/availability", "online") is not None
        state = sub.wait_for("secure/t/state")
        assert state is not None and json.loads(state.payload)["label"] == "park"
        sink.end(end_summary())

        wrong = parse_mqtt_url(url.replace(str(files.ca), str(files.other_ca)), "u")
        sink = MqttSink(wrong, OutputStats())
        sink.start(run_info())
        time.sleep(3.0)
        assert sink.stats.of("mqtt")["connects"] == 0
        sink.end(end_summary())
        assert not sub.on("secure/u/availability")


def test_a_replay_whose_camera_is_lost_and_back(broker: Broker, tiny_engine: object,
                                                av_file: Path) -> None:
    """The source's own lost / restored events reach the camera's connectivity sensor through
    the pipeline: ON, OFF at the loss, ON again; the microphone stays ON."""
    from avstream.driver import drive
    from avstream.stream.pipeline import PipelineConfig

    config = parse_mqtt_url(broker.url, "outage")
    with Subscriber(broker.port) as sub:
        sink = MqttSink(config, OutputStats())
        # at the pace of capture (3 s): connected long before the loss at 1.4 s
        summary = drive(CameraOutage(av_file, 1.4, 2.2), tiny_engine,  # type: ignore[arg-type]
                        PipelineConfig(), [sink], realtime=True)
        assert summary.windows > 5 and summary.outputs["mqtt"]["dropped"] == 0
        assert sub.wait_for(config.availability_topic, "offline")
    assert [m.payload for m in sub.on(config.source_topic("camera"))] == ["ON", "OFF", "ON"]
    assert [m.payload for m in sub.on(config.source_topic("microphone"))] == ["ON"]
