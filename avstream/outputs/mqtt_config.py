"""What the MQTT output connects to and how it names things: ``MqttConfig`` from the ``--mqtt``
URL, topics, and the TLS context of an ``mqtts://`` broker.

One URL carries the whole broker setup, so it reads the same from ``--mqtt``, from
``AVSTREAM_MQTT`` in a service's environment file, and from a ``serve`` config:

    mqtt[s]://[user:pass@]host[:port][/prefix][?ca=FILE&cert=FILE&key=FILE
              &discovery_prefix=PREFIX&confidence_interval=SECONDS]

(docs/home-assistant.md). Bad values are AvstreamError lines naming the URL (password hidden)
and the part that is wrong, raised before anything connects.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from avstream.errors import AvstreamError

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
DEFAULT_PREFIX = "avstream"
DISCOVERY_PREFIX = "homeassistant"
"""Home Assistant's default discovery prefix (its MQTT integration's ``discovery_prefix``)."""
CONFIDENCE_INTERVAL_S = 10.0
"""The confidence topic is published on every label change and at least this often (seconds of
stream time) between changes, so Home Assistant's confidence sensor never goes stale."""
SCHEMES = ("mqtt", "mqtts")
QUERY_KEYS = ("ca", "cert", "key", "discovery_prefix", "confidence_interval")
URL_FORM = ("mqtt[s]://[user:pass@]host[:port][/prefix][?ca=FILE&cert=FILE&key=FILE"
            "&discovery_prefix=PREFIX&confidence_interval=SECONDS]")


@dataclass(frozen=True)
class MqttConfig:
    host: str
    name: str
    """This stream's name: the topic level under the prefix and the Home Assistant ids."""
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    prefix: str = DEFAULT_PREFIX
    hop_rate_hz: float = 0.0
    """Hop records per second of stream time on ``<base>/hop``; 0 publishes none."""
    discovery_prefix: str = DISCOVERY_PREFIX
    confidence_interval_s: float = CONFIDENCE_INTERVAL_S
    tls: bool = False
    """``mqtts://``: TLS, the broker's certificate checked against ``ca_file`` (else the
    system's CAs) and its host name."""
    ca_file: Path | None = None
    cert_file: Path | None = None
    """A client certificate (PEM) for brokers that authenticate clients by certificate."""
    key_file: Path | None = None
    """The client certificate's private key (PEM); omitted when ``cert_file`` holds it too."""
    configuration_url: str | None = None
    """The status page (``--http``), shown as the device's link in Home Assistant."""
    queue_size: int = 256
    """Messages waiting for the worker (about 50 s of hops at 5 Hz) before new ones are dropped."""
    keepalive_s: int = 30
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    """paho doubles the wait after each failed attempt, from min to max."""
    end_flush_s: float = 2.0
    """At the end of a run, time given to send what is queued and ``offline``."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"MQTT port {self.port}; expected 1-65535")
        if not self.hop_rate_hz >= 0:
            raise ValueError(f"--mqtt-hop-rate {self.hop_rate_hz}; expected >= 0 (records per second)")
        if not self.confidence_interval_s > 0:
            raise ValueError(f"confidence_interval {self.confidence_interval_s:g}; expected "
                             f"seconds > 0")
        for what, prefix in (("topic prefix", self.prefix),
                             ("discovery_prefix", self.discovery_prefix)):
            for level in prefix.split("/"):
                if not level or any(c in level for c in "+#"):
                    raise ValueError(f"MQTT {what} {prefix!r}; expected non-empty levels "
                                     f"without '+' or '#'")
        if not self.tls and (self.ca_file or self.cert_file or self.key_file):
            raise ValueError("ca, cert and key are TLS settings; expected an mqtts:// URL")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key without cert; expected cert=FILE as well (the client "
                             "certificate the key belongs to)")

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.name}"

    @property
    def availability_topic(self) -> str:
        return f"{self.base}/availability"

    @property
    def state_topic(self) -> str:
        return f"{self.base}/state"

    @property
    def confidence_topic(self) -> str:
        return f"{self.base}/confidence"

    @property
    def hop_topic(self) -> str:
        return f"{self.base}/hop"

    def source_topic(self, source: str) -> str:
        """``<base>/camera`` or ``<base>/microphone``: ``ON`` / ``OFF``."""
        return f"{self.base}/{source}"

    @property
    def node_id(self) -> str:
        return f"avstream_{self.name}"

    def discovery_topic(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"


def parse_mqtt_url(url: str, name: str, hop_rate_hz: float = 0.0) -> MqttConfig:
    """``--mqtt`` URL -> MqttConfig (AvstreamError naming the URL, its password hidden)."""
    shown = without_password(url)
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise AvstreamError(f"--mqtt {shown}: scheme {parts.scheme or '(none)'!r} is not supported; "
                            f"expected {URL_FORM}")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
    except ValueError as e:
        raise AvstreamError(f"--mqtt {shown}: {e}; expected a port 1-65535") from e
    if not parts.hostname:
        raise AvstreamError(f"--mqtt {shown}: no host; expected {URL_FORM}")
    if parts.fragment:
        raise AvstreamError(f"--mqtt {shown}: unexpected '#' part; expected {URL_FORM}")
    query = _query(shown, parts.query)
    try:
        config = MqttConfig(
            host=parts.hostname, port=port, name=name,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            prefix=parts.path.strip("/") or DEFAULT_PREFIX, hop_rate_hz=hop_rate_hz, tls=tls,
            discovery_prefix=query.get("discovery_prefix", DISCOVERY_PREFIX),
            confidence_interval_s=_seconds(shown, query.get("confidence_interval")),
            **{f"{k}_file": _file(shown, k, query[k]) for k in ("ca", "cert", "key") if k in query},
        )
    except ValueError as e:
        raise AvstreamError(f"--mqtt {shown}: {e}") from e
    if tls:
        tls_context(config, shown)  # a bad certificate or key is said now, not at connect time
    return config


def tls_context(config: MqttConfig, shown: str = "") -> ssl.SSLContext:
    """The client's TLS context: the broker's certificate must chain to ``ca_file`` (or the
    system's CAs) and name the host; a client certificate is presented when given."""
    try:
        context = ssl.create_default_context(
            cafile=None if config.ca_file is None else str(config.ca_file))
        if config.cert_file is not None:
            context.load_cert_chain(str(config.cert_file),
                                    None if config.key_file is None else str(config.key_file))
    except (ssl.SSLError, OSError) as e:
        raise AvstreamError(f"--mqtt {shown or config.host}: the TLS files cannot be used ({e}); "
                            f"expected PEM files: ca= the CA that signed the broker's "
                            f"certificate, cert= and key= the client's certificate and key") from e
    return context


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def _query(shown: str, query: str) -> dict[str, str]:
    """``KEY=VALUE&...``, values percent-decoded ('+' stays '+': it is a path character here,
    not a space as in HTML forms)."""
    values: dict[str, str] = {}
    for item in query.split("&") if query else ():
        key, sep, value = item.partition("=")
        if not sep:
            raise AvstreamError(f"--mqtt {shown}: {item!r} in the '?' part is not KEY=VALUE; "
                                f"expected {URL_FORM}")
        if key not in QUERY_KEYS:
            raise AvstreamError(f"--mqtt {shown}: unknown setting {key!r}; expected one of "
                                f"{', '.join(QUERY_KEYS)}")
        if key in values:
            raise AvstreamError(f"--mqtt {shown}: {key} is given twice; expected it once")
        values[key] = unquote(value)
    return values


def _file(shown: str, key: str, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise AvstreamError(f"--mqtt {shown}: {key}={value} is not a readable file; expected "
                            f"the path of a PEM file")
    return path


def _seconds(shown: str, value: str | None) -> float:
    if value is None:
        return CONFIDENCE_INTERVAL_S
    try:
        return float(value)
    except ValueError as e:
        raise AvstreamError(f"--mqtt {shown}: confidence_interval={value}; expected seconds "
                            f"> 0") from e
