"""Home Assistant's view of the MQTT output, against a real Mosquitto on loopback with a paho
subscriber checking what arrives: the discovery configs of the four entities (checked against
the rules of HA's discovery schema), retained state per label change, hop records at the set
rate, availability, the confidence sensor's refresh, the connectivity sensors following the
source, configuration_url with --http and discovery_prefix.

Records are hand-made here but for the last test, which runs the pipeline;
test_outputs_e2e.py runs the same against a real replay.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from mqtt_env import end_summary, wait_connected
from net_env import (
    CLASSES,
    Broker,
    CameraOutage,
    Subscriber,
    hop_record,
    retained,
    run_info,
)

from avstream.outputs.mqtt import MqttConfig, MqttSink, parse_mqtt_url
from avstream.outputs.network import network_sinks
from avstream.outputs.stats import OutputStats
from avstream.results.summary import RunSummary

LABELS = ["park"] * 4 + ["metro"] * 3 + ["park"] * 2 + ["tram"] * 3


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


def publish_run(sub: Subscriber, config: MqttConfig, labels: list[str]) -> RunSummary:
    """A whole run through a sink: online, one hop record per label, the end, offline."""
    sink = MqttSink(config, OutputStats())
    sink.start(run_info())
    assert sub.wait_for(config.availability_topic, "online")
    for k, label in enumerate(labels):
        sink.hop(hop_record(k, label))
    summary = end_summary()
    sink.end(summary)
    assert sub.wait_for(config.availability_topic, "offline")
    return summary


def test_discovery_state_per_label_change_hops_and_availability(broker: Broker) -> None:
    config = parse_mqtt_url(f"{broker.url}/test", "room1", hop_rate_hz=2.5)
    with Subscriber(broker.port) as sub:
        summary = publish_run(sub, config, LABELS)

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


def test_confidence_is_sent_at_least_every_interval_and_on_each_change(broker: Broker) -> None:
    """Between label changes the confidence sensor is refreshed every ``confidence_interval``
    seconds of stream time, so its value is never older than that; the state is not."""
    config = parse_mqtt_url(f"{broker.url}?confidence_interval=1", "c")
    labels = ["park"] * 18 + ["tram"] * 3  # t = 0.0 ... 4.0
    with Subscriber(broker.port) as sub:
        publish_run(sub, config, labels)
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
