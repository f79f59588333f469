"""The network outputs of one stream, from command-line options: MQTT and HTTP sinks.

``avstream.driver.Outputs`` calls ``network_sinks``; a many-streams server calls it once per
stream with that stream's ``name`` (topics, Home Assistant ids, metric labels) and its own port.
"""

from __future__ import annotations

import re
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from avstream.errors import AvstreamError
from avstream.outputs.stats import OutputStats
from avstream.results.sink import Sink

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Stream names: one MQTT topic level and part of Home Assistant ids (no '/', '+', '#')."""
FALLBACK_NAME = "avstream"
DEMO_NAME = "demo"
"""``avstream demo``'s default name: never the host's, which its live service publishes as."""
RECORDING_PREFIX = "replay-"
WILDCARD_HOSTS = ("0.0.0.0", "::")


def default_stream_name() -> str:
    """The host name, reduced to the characters a stream name allows."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0])[:64]
    return host if NAME_RE.match(host) else FALLBACK_NAME


def recording_stream_name(path: Path) -> str:
    """``replay-<file stem>``, reduced to a valid name: a replay never takes the live device's
    identity (its topics, its Home Assistant device, its ``offline`` at the end)."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem) or "file"
    return (RECORDING_PREFIX + stem)[:64]


def stream_name(name: str | None) -> str:
    if name is None:
        return default_stream_name()
    if not NAME_RE.match(name):
        raise AvstreamError(f"--name {name!r}: expected 1-64 letters, digits, '_' or '-' "
                            f"(it is an MQTT topic level and part of Home Assistant ids)")
    return name


def network_sinks(mqtt: str | None = None, mqtt_hop_rate_hz: float = 0.0, http: str | None = None,
                  http_token: str | None = None, name: str | None = None,
                  stats: OutputStats | None = None, history: str | None = None) -> list[Sink]:
    """The sinks the options ask for (none by default), sharing one ``OutputStats``;
    ``history`` (a --history file) is what the HTTP server answers /history from.

    Bad values raise AvstreamError naming the option. The HTTP server listens on return.
    """
    if mqtt is None and mqtt_hop_rate_hz:
        raise AvstreamError(f"--mqtt-hop-rate {mqtt_hop_rate_hz:g} without --mqtt; expected "
                            f"--mqtt URL as well (or no --mqtt-hop-rate)")
    if http is None and http_token is not None:
        raise AvstreamError("--http-token without --http; expected --http [HOST:]PORT as well")
    if mqtt is None and http is None:
        return []
    name = stream_name(name)
    stats = stats or OutputStats()
    mqtt_config = None
    if mqtt is not None:
        from avstream.outputs.mqtt_config import parse_mqtt_url

        mqtt_config = parse_mqtt_url(mqtt, name, mqtt_hop_rate_hz)
    sinks: list[Sink] = []
    if http is not None:  # it starts listening, so only once every option has been checked
        from avstream.outputs.http import HttpSink, parse_http_address

        http_config = replace(parse_http_address(http, name, http_token), history=history)
        http_sink = HttpSink(http_config, stats)
        sinks.append(http_sink)
        if mqtt_config is not None:  # Home Assistant links the device to the page
            mqtt_config = replace(mqtt_config, configuration_url=page_url(http_sink.url))
    if mqtt_config is not None:
        from avstream.outputs.mqtt import MqttSink

        try:
            sinks.insert(0, MqttSink(mqtt_config, stats))
        except AvstreamError:
            for sink in sinks:
                sink.close()  # type: ignore[attr-defined]
            raise
    return sinks


def page_url(url: str) -> str:
    """The page's URL as another machine reaches it: a wildcard listening address (0.0.0.0,
    ::) is replaced by this host's name."""
    parts = urlsplit(url)
    if parts.hostname not in WILDCARD_HOSTS:
        return url
    return urlunsplit(parts._replace(netloc=f"{socket.getfqdn()}:{parts.port}"))


def describe(sinks: list[Sink] | list[Any]) -> list[str]:
    """One line per network output, for the command's start-up lines."""
    return [s.description for s in sinks if isinstance(getattr(s, "description", None), str)]
