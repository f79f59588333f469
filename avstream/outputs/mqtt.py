"""MQTT output (paho-mqtt 2.x): a retained state per label change, the confidence at a bounded
rate, each input's connectivity, hop records at a set rate, an availability topic with a last
will, and Home Assistant discovery (``homeassistant.py``).

Topics, with ``base = <prefix>/<name>`` (docs/home-assistant.md):

- ``<base>/availability``  ``online`` / ``offline``, retained; ``offline`` is also the last will
- ``<base>/state``         retained JSON, published when the label changes (and again on connect)
- ``<base>/confidence``    retained JSON, on each label change and at least every
  ``confidence_interval_s`` of stream time
- ``<base>/camera``, ``<base>/microphone``  retained ``ON`` / ``OFF`` (the inputs the run has)
- ``<base>/hop``           the full hop record (the JSON-lines object), at ``hop_rate_hz``
- ``<discovery>/{sensor,binary_sensor}/avstream_<name>/<entity>/config``  retained discovery

The pipeline never waits for the broker: ``hop()`` only puts a message on a bounded queue; a
worker thread publishes. A full queue, or a broker that is away, drops the message and counts it
(``OutputStats``); paho reconnects with exponential backoff, and every (re)connect publishes the
discovery configs, ``online`` and the latest retained values again (a broker restarted without
persistence has forgotten its retained messages).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any

from avstream.errors import AvstreamError
from avstream.outputs.homeassistant import (
    OFFLINE,
    ONLINE,
    SOURCE_OFF,
    SOURCE_ON,
    discovery_messages,
)
from avstream.outputs.mqtt_config import MqttConfig, parse_mqtt_url, tls_context
from avstream.outputs.stats import OutputStats, compact_json, wall_clock_iso
from avstream.results.records import HopRecord, RunInfo
from avstream.results.sink import SOURCE_OF_MODALITY
from avstream.results.summary import RunSummary

__all__ = ["MqttConfig", "MqttSink", "parse_mqtt_url"]
log = logging.getLogger(__name__)

NAME = "mqtt"
KEYS = ("published", "dropped", "dropped_queue_full", "dropped_disconnected", "connects",
        "disconnects")
QOS = 0
"""Every message is QoS 0: paho keeps no copy of it, so after a reconnection no stale state can
be resent over a newer one; instead each (re)connection publishes the current values again.
The last will is QoS 1 (the broker holds it)."""
QOS_WILL = 1
POLL_S = 0.1
"""How often the worker looks for a (re)connection while its queue is empty."""


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


def confidence_payload(record: HopRecord) -> dict[str, Any]:
    full = record.to_json()
    return {"label": record.label, "confidence": full["confidence"],
            "time": wall_clock_iso(record.wall_time), "t": full["t"]}


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
        self._discovery: list[_Message] = []
        self._retained: dict[str, str] = {}
        """Topic -> the latest retained value the worker has reached (published or dropped),
        published again on each (re)connection; the worker's alone."""
        self._overflow_state: str | None = None
        self._last_label: str | None = None
        self._last_hop_t: float | None = None
        self._last_confidence_t: float | None = None
        self._worker: threading.Thread | None = None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"avstream-{config.name}-{os.getpid()}")
        if config.username is not None:
            client.username_pw_set(config.username, config.password)
        if config.tls:
            client.tls_set_context(tls_context(config))
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
        scheme = "mqtts (TLS)" if c.tls else "mqtt"
        return (f"{scheme}: {c.host}:{c.port}, topics {c.base}/{{state,confidence,availability,"
                f"camera,microphone{',hop' if c.hop_rate_hz else ''}}}{hops}, Home Assistant "
                f"discovery under {c.discovery_prefix}/")

    # ------------------------------------------------------------------ sink protocol

    def start(self, info: RunInfo) -> None:
        self.reset()
        sources = tuple(SOURCE_OF_MODALITY[m] for m in info.source_modalities)
        self._discovery = [
            _Message(topic, "" if payload is None else compact_json(payload), QOS, True)
            for topic, payload in discovery_messages(self.config, info.classes, sources)]
        for source in sources:  # announced on connecting (the worker has not started yet)
            self._retained[self.config.source_topic(source)] = SOURCE_ON
        self._client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self._client.loop_start()  # connects, and reconnects with backoff, on paho's thread
        self._worker = threading.Thread(target=self._run, name="avstream-mqtt", daemon=True)
        self._worker.start()

    def hop(self, record: HopRecord) -> None:
        c = self.config
        changed = record.label != self._last_label
        if changed:
            self._last_label = record.label
            payload = compact_json(state_payload(record))
            if not self._put(_Message(c.state_topic, payload, QOS, True)):
                with self._lock:
                    self._overflow_state = payload  # the worker sends it when the queue empties
        if changed or _due(self._last_confidence_t, record.t, c.confidence_interval_s):
            self._last_confidence_t = record.t
            self._put(_Message(c.confidence_topic, compact_json(confidence_payload(record)),
                               QOS, True))
        if c.hop_rate_hz > 0 and _due(self._last_hop_t, record.t, 1.0 / c.hop_rate_hz):
            self._last_hop_t = record.t
            self._put(_Message(c.hop_topic, compact_json(record.to_json()), QOS, False))

    def source_changed(self, source: str, up: bool, t: float) -> None:
        """The camera or microphone was lost or is back (``SourceWatcher``)."""
        self._put(_Message(self.config.source_topic(source), SOURCE_ON if up else SOURCE_OFF,
                           QOS, True))

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
        """Forget the previous run's label, rate phases, retained values and queue."""
        self._last_label = None
        self._last_hop_t = None
        self._last_confidence_t = None
        self._retained = {}
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
        online and the retained values the queue has reached (the newer ones follow in order)."""
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
            if message.retain:
                self._retained[message.topic] = message.payload
            if not self._connected.is_set():
                self._drop("dropped_disconnected")
                continue
            self._publish(message)

    def _announce_if_due(self) -> None:
        if not (self._announce.is_set() and self._connected.is_set()):
            return
        self._announce.clear()
        for message in self._discovery:
            self._publish(message)
        self._publish(_Message(self.config.availability_topic, ONLINE, QOS, True))
        for topic, payload in self._retained.items():
            self._publish(_Message(topic, payload, QOS, True))

    def _take_overflow_state(self) -> None:
        """A state that found the queue full (already counted as dropped) is sent late, once
        the queue has emptied, so the retained state is never left behind the label."""
        with self._lock:
            state, self._overflow_state = self._overflow_state, None
        if state is None:
            return
        self._retained[self.config.state_topic] = state
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


def _due(last_t: float | None, t: float, interval_s: float) -> bool:
    """A rate limit in stream time: the first time, then once ``interval_s`` has passed."""
    return last_t is None or t - last_t >= interval_s - 1e-9
