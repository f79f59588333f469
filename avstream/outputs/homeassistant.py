"""Home Assistant MQTT discovery: the entities of one stream's device, as retained configs.

Four entities of the device ``avstream <name>`` (docs/home-assistant.md):

- ``sensor.<...>_scene``: the label (``device_class: enum``); attributes: the state payload
- ``sensor.<...>_confidence``: the smoothed confidence of the label in %, ``state_class:
  measurement``, published on each label change and at least every ``confidence_interval_s``
- ``binary_sensor.<...>_camera`` / ``_microphone``: ``device_class: connectivity``,
  ``entity_category: diagnostic``, from the source's lost / restored events; only for the
  inputs the run has (the config of the other is cleared with an empty retained payload, which
  removes an entity a previous run announced)

Every entity shares the availability topic, so all show unavailable when the daemon is not
running. Keys follow Home Assistant's MQTT discovery schema (sensor, binary_sensor, device,
origin); tests/test_outputs_mqtt.py checks the required ones.
"""

from __future__ import annotations

from typing import Any

from avstream import __version__
from avstream.outputs.mqtt_config import MqttConfig

ONLINE = "online"
OFFLINE = "offline"
SOURCE_ON = "ON"
SOURCE_OFF = "OFF"
"""Home Assistant's default binary_sensor payloads."""
SOURCES: tuple[str, ...] = ("camera", "microphone")
SOURCE_ICONS = {"camera": "mdi:cctv", "microphone": "mdi:microphone"}
CONFIDENCE_DECIMALS = 1


def device(config: MqttConfig) -> dict[str, Any]:
    block: dict[str, Any] = {
        "identifiers": [config.node_id],
        "name": f"avstream {config.name}",
        "manufacturer": "avstream",
        "model": "audio-visual scene classifier",
        "sw_version": __version__,
    }
    if config.configuration_url is not None:
        block["configuration_url"] = config.configuration_url
    return block


def _entity(config: MqttConfig, object_id: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"{config.node_id}_{object_id}",
        "availability_topic": config.availability_topic,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": device(config),
        "origin": {"name": "avstream", "sw_version": __version__},
    }


def scene_config(config: MqttConfig, classes: tuple[str, ...]) -> dict[str, Any]:
    """The label: state the label, attributes the whole state payload."""
    return {
        **_entity(config, "scene", "Scene"),
        "state_topic": config.state_topic,
        "value_template": "{{ value_json.label }}",
        "json_attributes_topic": config.state_topic,
        "icon": "mdi:home-sound-in",
        "device_class": "enum",
        "options": [*classes, "unknown"],
    }


def confidence_config(config: MqttConfig) -> dict[str, Any]:
    """The confidence, 0-100 % (the payload's ``confidence`` is 0-1 like everywhere else)."""
    return {
        **_entity(config, "confidence", "Confidence"),
        "state_topic": config.confidence_topic,
        "value_template": f"{{{{ (value_json.confidence * 100) | round({CONFIDENCE_DECIMALS}) }}}}",
        "unit_of_measurement": "%",
        "state_class": "measurement",
        "suggested_display_precision": CONFIDENCE_DECIMALS,
        "icon": "mdi:gauge",
    }


def source_config(config: MqttConfig, source: str) -> dict[str, Any]:
    """A camera or microphone that delivers (``ON``) or is lost (``OFF``)."""
    return {
        **_entity(config, source, source.capitalize()),
        "state_topic": config.source_topic(source),
        "payload_on": SOURCE_ON,
        "payload_off": SOURCE_OFF,
        "device_class": "connectivity",
        "entity_category": "diagnostic",
        "icon": SOURCE_ICONS[source],
    }


def discovery_messages(config: MqttConfig, classes: tuple[str, ...],
                       sources: tuple[str, ...]) -> list[tuple[str, dict[str, Any] | None]]:
    """(topic, config) for every entity; None clears the config of an input the run lacks."""
    out: list[tuple[str, dict[str, Any] | None]] = [
        (config.discovery_topic("sensor", "scene"), scene_config(config, classes)),
        (config.discovery_topic("sensor", "confidence"), confidence_config(config)),
    ]
    for source in SOURCES:
        out.append((config.discovery_topic("binary_sensor", source),
                    source_config(config, source) if source in sources else None))
    return out
