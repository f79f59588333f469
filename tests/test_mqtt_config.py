"""What ``--mqtt URL`` accepts, before any broker is involved: host, port, credentials, topic
prefix, the TLS files (ca=, cert=, key=) and the settings in the query, each refused with its
reason and the password never echoed; and which commands read ``AVSTREAM_MQTT``.

The sink against a real Mosquitto: test_mqtt_broker.py; Home Assistant's entities:
test_mqtt_discovery.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avstream.errors import AvstreamError
from avstream.outputs.mqtt import parse_mqtt_url
from avstream.outputs.network import network_sinks


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
