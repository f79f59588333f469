"""MQTT output (paho-mqtt 2.x): a retained state per label change, hop records at a set rate,
an availability topic with a last will, and Home Assistant discovery.

Topics, with ``base = <prefix>/<name>`` (README, "MQTT"):

- ``<base>/availability``  ``online`` / ``offline``, retained; ``offline`` is also the last will
- ``<base>/state``         retained JSON, published when the label changes (and again on connect)
- ``<base>/hop``           the full hop record (the JSON-lines object), at ``hop_rate_hz``
- ``<discovery>/sensor/avstream_<name>/scene/config``  retained Home Assistant discovery config

The pipeline never waits for the broker: ``hop()`` only puts a message on a bounded queue; a
worker thread publishes. A full queue, or a broker that is away, drops the message and counts it
(``OutputStats``); paho reconnects with exponential backoff, and every (re)connect publishes the
discovery config, ``online`` and the latest state again (a broker restarted without persistence
has forgotten its retained messages).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from avstream import __version__
from avstream.errors import AvstreamError
from avstream.outputs.records import HopRecord, RunInfo
from avstream.outputs.stats import OutputStats, compact_json, wall_clock_iso
from avstream.outputs.summary import RunSummary

log = logging.getLogger(__name__)

NAME = "mqtt"
KEYS = ("published", "dropped", "dropped_queue_full", "dropped_disconnected", "connects",
        "disconnects")
DEFAULT_PORT = 1883
DEFAULT_PREFIX = "avstream"
DISCOVERY_PREFIX = "homeassistant"
ONLINE = "online"
OFFLINE = "offline"
QOS = 0
"""Every message is QoS 0: paho keeps no copy of it, so after a reconnection no stale state can
be resent over a newer one; instead each (re)connection publishes the current state again.
The last will is QoS 1 (the broker holds it)."""
QOS_WILL = 1
POLL_S = 0.1
"""How often the worker looks for a (re)connection while its queue is empty."""
STATE_FIELDS_DOC = "label, confidence, modalities, time (ISO 8601 UTC), t, window, probs"


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
        for level in self.prefix.split("/"):
            if not level or any(c in level for c in "+#"):
                raise ValueError(f"MQTT topic prefix {self.prefix!r}; expected non-empty levels "
                                 f"without '+' or '#'")

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
    def hop_topic(self) -> str:
        return f"{self.base}/hop"

    @property
    def node_id(self) -> str:
        return f"avstream_{self.name}"

    @property
    def discovery_topic(self) -> str:
        return f"{self.discovery_prefix}/sensor/{self.node_id}/scene/config"


def parse_mqtt_url(url: str, name: str, hop_rate_hz: float = 0.0) -> MqttConfig:
    """``mqtt://[user:pass@]host[:port][/prefix]`` -> MqttConfig (AvstreamError naming the URL)."""
    shown = _without_password(url)
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        raise AvstreamError(f"--mqtt {shown}: scheme {parts.scheme or '(none)'!r} is not supported; "
                            f"expected mqtt://[user:pass@]host[:port][/prefix]")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as e:
        raise AvstreamError(f"--mqtt {shown}: {e}; expected a port 1-65535") from e
    if not parts.hostname:
        raise AvstreamError(f"--mqtt {shown}: no host; expected mqtt://host[:port][/prefix]")
    if parts.query or parts.fragment:
        raise AvstreamError(f"--mqtt {shown}: unexpected '?' or '#' part; expected "
                            f"mqtt://[user:pass@]host[:port][/prefix]")
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    try:
        return MqttConfig(
            host=parts.hostname, port=port, name=name,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            prefix=prefix, hop_rate_hz=hop_rate_hz,
        )
    except ValueError as e:
        raise AvstreamError(f"--mqtt {shown}: {e}") from e


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def discovery_config(config: MqttConfig, classes: tuple[str, ...]) -> dict[str, Any]:
    """Home Assistant MQTT discovery: one sensor whose state is the label, attributes the rest."""
    return {
        "name": "Scene",
        "unique_id": f"{config.node_id}_scene",
        "state_topic": config.state_topic,
        "value_template": "{{ value_json.label }}",
        "json_attributes_topic": config.state_topic,
        "availability_topic": config.availability_topic,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "icon": "mdi:home-sound-in",
        "device_class": "enum",
        "options": [*classes, "unknown"],
        "device": {
            "identifiers": [config.node_id],
            "name": f"avstream {config.name}",
            "manufacturer": "avstream",
            "model": "audio-visual scene classifier",
            "sw_version": __version__,
        },
        "origin": {"name": "avstream", "sw_version": __version__},
    }


def state_payload(record: HopRecord) -> dict[str, Any]:
    full = record.to_json()
    return {
        "label": record.label,
        "confidence": full["confidence"],
        "modalities": full["modalities"],
        "time": wall_clock_iso(record.wall_time),
        "t": full["t"],
        "window": record.window,
        "probs": full["probs"],
    }


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: str
    qos: int
    retain: bool


class MqttSink:
    """Publishes one stream's results; construct one per stream (the name is in every topic)."""

    name = NAME

    def __init__(self, config: MqttConfig, stats: OutputStats) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError as e:
            raise AvstreamError("--mqtt needs the Python package paho-mqtt (2.x); expected it "
                                "installed: pip install 'avstream[mqtt]'") from e
        self.config = config
        self.stats = stats
        stats.register(NAME, KEYS)
        self._mqtt = mqtt
        self._queue: queue.Queue[_Message] = queue.Queue(maxsize=config.queue_size)
        self._connected = threading.Event()
        self._announce = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._discovery: str | None = None
        self._sent_state: str | None = None
        """The state the worker has reached (published or dropped); the worker's alone."""
        self._overflow_state: str | None = None
        self._last_label: str | None = None
        self._last_hop_t: float | None = None
        self._worker: threading.Thread | None = None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"avstream-{config.name}-{os.getpid()}")
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        client.will_set(config.availability_topic, OFFLINE, qos=QOS_WILL, retain=True)
        client.reconnect_delay_set(config.reconnect_min_s, config.reconnect_max_s)
        client.max_queued_messages_set(config.queue_size)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

    @property
    def description(self) -> str:
        c = self.config
        hops = f", hop records at {c.hop_rate_hz:g}/s" if c.hop_rate_hz else ""
        return (f"mqtt: {c.host}:{c.port}, topics {c.base}/{{state,availability"
                f"{',hop' if c.hop_rate_hz else ''}}}{hops}, discovery {c.discovery_topic}")

    # ------------------------------------------------------------------ sink protocol

    def start(self, info: RunInfo) -> None:
        self.reset()
        self._discovery = compact_json(discovery_config(self.config, info.classes))
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()  # connects, and reconnects with backoff, on paho's thread
        self._worker = threading.Thread(target=self._run, name="avstream-mqtt", daemon=True)
        self._worker.start()

    def hop(self, record: HopRecord) -> None:
        if record.label != self._last_label:
            self._last_label = record.label
            payload = compact_json(state_payload(record))
            if not self._put(_Message(self.config.state_topic, payload, QOS, True)):
                with self._lock:
                    self._overflow_state = payload  # the worker sends it when the queue empties
        rate = self.config.hop_rate_hz
        if rate > 0 and (self._last_hop_t is None or record.t - self._last_hop_t >= 1.0 / rate - 1e-9):
            self._last_hop_t = record.t
            self._put(_Message(self.config.hop_topic, compact_json(record.to_json()), QOS, False))

    def end(self, summary: RunSummary) -> None:
        self._closing.set()
        if self._worker is not None:
            self._worker.join(self.config.end_flush_s)
        while True:  # what the worker could not send in time
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
            self._drop("dropped_disconnected")
        if self._connected.is_set():
            info = self._client.publish(self.config.availability_topic, OFFLINE, QOS, True)
            try:
                info.wait_for_publish(self.config.end_flush_s)
            except (RuntimeError, ValueError):
                pass  # the connection went while waiting: the broker sends the will instead
        self._client.disconnect()
        self._client.loop_stop()
        summary.outputs[NAME] = self.stats.of(NAME)

    def reset(self) -> None:
        """Forget the previous run's label, rate phase and queue (a new run starts)."""
        self._last_label = None
        self._last_hop_t = None
        self._sent_state = None
        with self._lock:
            self._overflow_state = None
        while not self._queue.empty():
            self._queue.get_nowait()
        self._closing.clear()

    # ------------------------------------------------------------------ internals

    def _put(self, message: _Message) -> bool:
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self._drop("dropped_queue_full")
            return False
        return True

    def _drop(self, reason: str, n: int = 1) -> None:
        self.stats.add(NAME, reason, n)
        self.stats.add(NAME, "dropped", n)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            log.warning("mqtt: %s:%d refused the connection (%s); retrying", self.config.host,
                        self.config.port, reason_code)
            return
        self.stats.add(NAME, "connects")
        if self.stats.of(NAME)["connects"] > 1:
            log.warning("mqtt: reconnected to %s:%d", self.config.host, self.config.port)
        self._connected.set()
        self._announce.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        if not self._connected.is_set():
            return  # a failed attempt, not a lost connection
        self._connected.clear()
        if not self._closing.is_set():  # not our own goodbye at the end of the run
            self.stats.add(NAME, "disconnects")
            log.warning("mqtt: lost the connection to %s:%d (%s); reconnecting with backoff "
                        "(%d-%d s), dropping messages meanwhile", self.config.host,
                        self.config.port, reason_code, self.config.reconnect_min_s,
                        self.config.reconnect_max_s)

    def _run(self) -> None:
        """Publish from the queue in order; on each (re)connection first announce discovery,
        online and the state the queue has reached (the newer states follow in order)."""
        while True:
            self._announce_if_due()
            try:
                message = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                self._take_overflow_state()
                if self._closing.is_set():
                    return
                continue
            self._announce_if_due()
            if message.topic == self.config.state_topic:
                self._sent_state = message.payload
            if not self._connected.is_set():
                self._drop("dropped_disconnected")
                continue
            self._publish(message)

    def _announce_if_due(self) -> None:
        if not (self._announce.is_set() and self._connected.is_set()):
            return
        self._announce.clear()
        c = self.config
        if self._discovery is not None:
            self._publish(_Message(c.discovery_topic, self._discovery, QOS, True))
        self._publish(_Message(c.availability_topic, ONLINE, QOS, True))
        if self._sent_state is not None:
            self._publish(_Message(c.state_topic, self._sent_state, QOS, True))

    def _take_overflow_state(self) -> None:
        """A state that found the queue full (already counted as dropped) is sent late, once
        the queue has emptied, so the retained state is never left behind the label."""
        with self._lock:
            state, self._overflow_state = self._overflow_state, None
        if state is None:
            return
        self._sent_state = state
        if self._connected.is_set():
            self._publish(_Message(self.config.state_topic, state, QOS, True))

    def _publish(self, m: _Message) -> None:
        info = self._client.publish(m.topic, m.payload, m.qos, m.retain)
        if info.rc == self._mqtt.MQTT_ERR_SUCCESS:
            self.stats.add(NAME, "published")
        elif info.rc == self._mqtt.MQTT_ERR_QUEUE_SIZE:
            self._drop("dropped_queue_full")
        else:
            self._drop("dropped_disconnected")

